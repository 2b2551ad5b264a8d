// POOL: buffer pools that never hand out more than they have, never the same buffer twice, say
// "exhausted" at once, reject bad releases, and account for every buffer. (Pool-backed receives and the
// session pool need sockets: CP-POOL-005..008.)
import assert from 'node:assert/strict';
import type { PoolId, PoolStats, PoolTarget, Target } from '../../reference/src/target.ts';
import type { CaseContext, SpecCase } from '../types.ts';
import { settledWithin } from './helpers.ts';

function poolsOf(t: Target, ctx: CaseContext): PoolTarget {
  if (!t.pools) ctx.unsupported('the target has no pools member');
  return t.pools;
}

async function withPool<T>(p: PoolTarget, bufferSize: number, count: number, fn: (id: PoolId) => Promise<T>): Promise<T> {
  const id = await p.createBufferPool({ bufferSize, count });
  try {
    return await fn(id);
  } finally {
    await p.destroyBufferPool(id).catch(() => undefined);
  }
}

function assertConserved(s: PoolStats, what: string): void {
  assert.equal(s.inUse + s.available, s.total, `${what}: in use ${s.inUse} + available ${s.available} != total ${s.total}`);
}

/** A small deterministic generator (the same sequence on every target). */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

export const poolCases: SpecCase[] = [
  {
    id: 'CP-POOL-001',
    async run(t, ctx) {
      const p = poolsOf(t, ctx);
      for (const [size, count] of [[8192, 16], [64, 1], [32768, 5]] as const) {
        await withPool(p, size, count, async (pool) => {
          const held = new Set<number>();
          for (let i = 0; i < count; i++) {
            const r = await p.acquireBuffer(pool);
            assert.equal(r.kind, 'buffer', `acquire ${i + 1} of ${count} (size ${size}) found the pool empty`);
            if (r.kind !== 'buffer') return;
            assert.ok(!held.has(r.id), `buffer ${r.id} handed out twice`);
            held.add(r.id);
          }
          assert.deepEqual(await p.acquireBuffer(pool), { kind: 'exhausted' }, `a pool of ${count} handed out a buffer number ${count + 1}`);
          // Release one, get exactly that capacity back, and never a buffer still held.
          const [first] = held;
          assert.equal(await p.releaseBuffer(pool, first), 'ok');
          held.delete(first);
          const again = await p.acquireBuffer(pool);
          assert.equal(again.kind, 'buffer');
          if (again.kind === 'buffer') assert.ok(!held.has(again.id), `buffer ${again.id} handed out while still held`);
          assert.deepEqual(await p.acquireBuffer(pool), { kind: 'exhausted' });
        });
      }
    },
  },
  {
    id: 'CP-POOL-002',
    async run(t, ctx) {
      const p = poolsOf(t, ctx);
      const steps = Math.max(200, Math.round(2000 * ctx.scale));
      await withPool(p, 512, 8, async (pool) => {
        const rnd = lcg(2024);
        const held: number[] = [];
        assertConserved(await p.poolStats(pool), 'fresh pool');
        for (let i = 0; i < steps; i++) {
          if (held.length > 0 && rnd() < 0.45) {
            const id = held.splice(Math.floor(rnd() * held.length), 1)[0];
            assert.equal(await p.releaseBuffer(pool, id), 'ok', `step ${i}: release of held buffer ${id}`);
          } else {
            const r = await p.acquireBuffer(pool);
            if (r.kind === 'buffer') held.push(r.id);
            else assert.equal(held.length, 8, `step ${i}: exhausted with only ${held.length} of 8 held`);
          }
          const s = await p.poolStats(pool);
          assertConserved(s, `step ${i}`);
          assert.equal(s.inUse, held.length, `step ${i}: the pool says ${s.inUse} in use, the caller holds ${held.length}`);
        }
      });
    },
  },
  {
    id: 'CP-POOL-003',
    async run(t, ctx) {
      const p = poolsOf(t, ctx);
      await withPool(p, 2048, 2, async (pool) => {
        const a = await p.acquireBuffer(pool);
        const b = await p.acquireBuffer(pool);
        assert.ok(a.kind === 'buffer' && b.kind === 'buffer');
        // At once, without waiting.
        const now = await settledWithin(p.acquireBuffer(pool), 1000);
        assert.notEqual(now, 'pending', 'acquire on an exhausted pool blocked');
        assert.deepEqual(now, { kind: 'exhausted' });
        // A bounded wait ends with exhausted, no earlier than asked.
        const start = performance.now();
        const waited = await settledWithin(p.acquireBuffer(pool, 100), 5000);
        const took = performance.now() - start;
        assert.notEqual(waited, 'pending', 'a 100 ms bounded wait had not returned after 5 s');
        assert.deepEqual(waited, { kind: 'exhausted' });
        assert.ok(took >= 95, `a 100 ms bounded wait gave up after ${took.toFixed(1)} ms`);
        // A release during a bounded wait satisfies it.
        const pending = p.acquireBuffer(pool, 5000);
        await new Promise((r) => setTimeout(r, 50));
        if (a.kind === 'buffer') assert.equal(await p.releaseBuffer(pool, a.id), 'ok');
        const got = await settledWithin(pending, 5000);
        assert.notEqual(got, 'pending', 'a release did not wake the bounded wait');
        assert.equal((got as { kind: string }).kind, 'buffer', 'the wait should get the released buffer');
        const s = await p.poolStats(pool);
        assert.ok(s.failedAcquires >= 2, `failed acquires ${s.failedAcquires}: the two exhausted answers must be counted`);
      });
    },
  },
  {
    id: 'CP-POOL-004',
    async run(t, ctx) {
      const p = poolsOf(t, ctx);
      await withPool(p, 64, 4, async (pool) => {
        const r = await p.acquireBuffer(pool);
        assert.equal(r.kind, 'buffer');
        if (r.kind !== 'buffer') return;
        assert.equal(await p.releaseBuffer(pool, r.id), 'ok');
        const before = await p.poolStats(pool);
        assert.equal(await p.releaseBuffer(pool, r.id), 'double-release', 'a second release of the same buffer must be rejected');
        for (const foreign of [4, 1000, -1, 2 ** 40]) {
          assert.equal(await p.releaseBuffer(pool, foreign), 'foreign', `release of ${foreign}, not a buffer of this pool`);
        }
        const after = await p.poolStats(pool);
        assert.equal(after.inUse, before.inUse, 'rejected releases changed the in-use count');
        assert.equal(after.available, before.available, 'rejected releases changed the available count');
        // The pool is intact: four distinct buffers, then exhausted.
        const ids = new Set<number>();
        for (let i = 0; i < 4; i++) {
          const x = await p.acquireBuffer(pool);
          assert.equal(x.kind, 'buffer', `acquire ${i + 1} of 4 after rejected releases`);
          if (x.kind === 'buffer') ids.add(x.id);
        }
        assert.equal(ids.size, 4, 'after rejected releases the pool handed out a buffer twice');
        assert.deepEqual(await p.acquireBuffer(pool), { kind: 'exhausted' });
      });
    },
  },
  {
    id: 'CP-POOL-009',
    async run(t, ctx) {
      const p = poolsOf(t, ctx);
      await withPool(p, 8192, 3, async (pool) => {
        const s0 = await p.poolStats(pool);
        assert.deepEqual(s0, { total: 3, inUse: 0, available: 3, highWater: 0, failedAcquires: 0 });
        const a = await p.acquireBuffer(pool);
        const b = await p.acquireBuffer(pool);
        assert.ok(a.kind === 'buffer' && b.kind === 'buffer');
        if (a.kind === 'buffer') await p.releaseBuffer(pool, a.id);
        await p.acquireBuffer(pool);
        await p.acquireBuffer(pool);
        await p.acquireBuffer(pool); // exhausted: 3 held
        const s = await p.poolStats(pool);
        assert.deepEqual(s, { total: 3, inUse: 3, available: 0, highWater: 3, failedAcquires: 1 });
      });
    },
  },
];
