// The TS reference model of the buffer pool (reference/src/pool.ts): the semantics the native pool is
// compared against (test/pool/property.test.ts).
import { describe, expect, test } from 'vitest';
import { TargetError } from '../../reference/src/target.ts';
import {
  ModelBufferPool,
  ModelPools,
  SIZE_CLASSES,
  checkPoolOptions,
  pickSizeClass,
  roundBufferSize,
} from '../../reference/src/pool.ts';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TargetError);
    return (e as TargetError).code;
  }
  return undefined;
}

describe('model buffer pool', () => {
  test('hands out 0, 1, 2, ... then exhausted; never more than capacity (CP-POOL-001, 003)', () => {
    const p = new ModelBufferPool(100, 3);
    expect(p.bufferSize).toBe(128);
    expect(p.capacity).toBe(3);
    expect([p.acquire(), p.acquire(), p.acquire()]).toEqual([
      { kind: 'buffer', id: 0 },
      { kind: 'buffer', id: 1 },
      { kind: 'buffer', id: 2 },
    ]);
    expect(p.acquire()).toEqual({ kind: 'exhausted' });
    expect(p.stats()).toEqual({ total: 3, inUse: 3, available: 0, highWater: 3, failedAcquires: 1 });
    expect(p.audit()).toBe('');
  });

  test('LIFO reuse: the last released is the next handed out', () => {
    const p = new ModelBufferPool(64, 4);
    for (let i = 0; i < 4; i++) p.acquire();
    expect(p.release(2)).toBe('ok');
    expect(p.release(0)).toBe('ok');
    expect(p.acquire()).toEqual({ kind: 'buffer', id: 0 });
    expect(p.acquire()).toEqual({ kind: 'buffer', id: 2 });
  });

  test('double and foreign releases are rejected and change nothing (CP-POOL-004)', () => {
    const p = new ModelBufferPool(64, 2);
    p.acquire();
    const before = p.stats();
    expect(p.release(1)).toBe('double-release'); // never acquired
    for (const id of [-1, 2, 1.5, Number.NaN, Infinity, 2 ** 53]) expect(p.release(id)).toBe('foreign');
    expect(p.stats()).toEqual(before);
    expect(p.release(0)).toBe('ok');
    expect(p.release(0)).toBe('double-release');
    expect(p.stats()).toEqual({ total: 2, inUse: 0, available: 2, highWater: 1, failedAcquires: 0 });
    expect(p.audit()).toBe('');
    // Not on the free list twice: two acquires give two different buffers, the third is refused.
    const a = p.acquire();
    const b = p.acquire();
    expect(a).not.toEqual(b);
    expect(p.acquire()).toEqual({ kind: 'exhausted' });
  });

  test('a non-number id is invalid', () => {
    const p = new ModelBufferPool(64, 2);
    expect(code(() => p.release('0' as unknown as number))).toBe('invalid');
    expect(code(() => p.release(undefined as unknown as number))).toBe('invalid');
  });

  test('conservation and high water over a long deterministic run (CP-POOL-002, 009)', () => {
    const p = new ModelBufferPool(64, 5);
    const held: number[] = [];
    let peak = 0;
    let seed = 7;
    for (let i = 0; i < 2000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      if (seed % 3 !== 0) {
        const r = p.acquire();
        if (r.kind === 'buffer') held.push(r.id);
      } else if (held.length > 0) {
        expect(p.release(held.splice(seed % held.length, 1)[0])).toBe('ok');
      }
      peak = Math.max(peak, held.length);
      const s = p.stats();
      expect(s.inUse + s.available).toBe(s.total);
      expect(s.inUse).toBe(held.length);
      expect(s.highWater).toBe(peak);
    }
    expect(p.audit()).toBe('');
  });

  test('argument checks match the native pool', () => {
    expect(code(() => new ModelBufferPool(0, 1))).toBe('invalid');
    expect(code(() => new ModelBufferPool(64, 0))).toBe('invalid');
    expect(code(() => new ModelBufferPool(2 ** 30 + 1, 1))).toBe('invalid');
    expect(code(() => new ModelBufferPool(64, 2 ** 30 + 1))).toBe('invalid');
    expect(code(() => new ModelBufferPool(2 ** 30, 1024))).toBe('invalid'); // 1 TiB: over the 64 GiB limit
    expect(code(() => new ModelBufferPool(1.5, 1))).toBe('invalid');
    expect(code(() => checkPoolOptions(null))).toBe('invalid');
    expect(code(() => new ModelBufferPool(64, 1).acquireWait(-1))).toBe('invalid');
    expect(code(() => new ModelBufferPool(64, 1).acquireWait(2 ** 31))).toBe('invalid');
  });

  test('rounding and size classes', () => {
    expect([1, 63, 64, 65, 100, 8192].map(roundBufferSize)).toEqual([64, 64, 64, 128, 128, 8192]);
    expect(SIZE_CLASSES).toEqual([64, 512, 2048, 8192, 32768]);
    expect([0, 1, 64, 65, 512, 513, 2048, 2049, 8192, 8193, 32768, 32769].map((n) => pickSizeClass(n))).toEqual([
      0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, -1,
    ]);
  });
});

describe('model bounded waits', () => {
  test('a wait on a free pool answers at once; waitMs 0 on an empty pool is an immediate exhausted', async () => {
    const p = new ModelBufferPool(64, 1);
    expect(await p.acquireWait(1000)).toEqual({ kind: 'buffer', id: 0 });
    const t0 = Date.now();
    expect(await p.acquireWait(0)).toEqual({ kind: 'exhausted' });
    expect(Date.now() - t0).toBeLessThan(50);
    expect(p.stats().failedAcquires).toBe(1);
  });

  test('a wait times out with exhausted and counts one failure', async () => {
    const p = new ModelBufferPool(64, 1);
    p.acquire();
    const t0 = Date.now();
    expect(await p.acquireWait(60)).toEqual({ kind: 'exhausted' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(55);
    expect(p.stats().failedAcquires).toBe(1);
  });

  test('a release wakes the oldest waiter', async () => {
    const p = new ModelBufferPool(64, 1);
    p.acquire();
    const first = p.acquireWait(5000);
    const second = p.acquireWait(100);
    setTimeout(() => expect(p.release(0)).toBe('ok'), 10);
    expect(await first).toEqual({ kind: 'buffer', id: 0 });
    expect(await second).toEqual({ kind: 'exhausted' });
    expect(p.stats()).toEqual({ total: 1, inUse: 1, available: 0, highWater: 1, failedAcquires: 1 });
  });

  test('a synchronous acquire right after a release is served before a waiter (as on the native pool)', async () => {
    const p = new ModelBufferPool(64, 1);
    p.acquire();
    const waiting = p.acquireWait(50);
    expect(p.release(0)).toBe('ok');
    expect(p.acquire()).toEqual({ kind: 'buffer', id: 0 });
    expect(await waiting).toEqual({ kind: 'exhausted' });
  });
});

describe('model pool target methods', () => {
  test('handles, not-found, destroy ends waits, reset', async () => {
    const t = new ModelPools();
    const a = await t.createBufferPool({ bufferSize: 8192, count: 2 });
    const b = await t.createBufferPool({ bufferSize: 64, count: 1 });
    expect([a, b]).toEqual([1, 2]);
    expect(await t.acquireBuffer(b)).toEqual({ kind: 'buffer', id: 0 });
    const waiting = t.acquireBuffer(b, 10_000);
    await t.destroyBufferPool(b);
    expect(await waiting).toEqual({ kind: 'exhausted' });
    await expect(t.poolStats(b)).rejects.toMatchObject({ code: 'not-found' });
    await expect(t.createBufferPool({ bufferSize: 0, count: 1 })).rejects.toMatchObject({ code: 'invalid' });
    expect(await t.releaseBuffer(a, 0)).toBe('double-release');
    expect(await t.poolStats(a)).toEqual({ total: 2, inUse: 0, available: 2, highWater: 0, failedAcquires: 0 });
    t.reset();
    expect(await t.createBufferPool({ bufferSize: 64, count: 1 })).toBe(1);
  });
});
