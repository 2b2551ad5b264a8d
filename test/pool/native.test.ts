// The native buffer pool from JS: the C++ test binary (cpspec-pool-test), and the addon bindings
// (native/addon/pool.cpp) including bounded waits across threads. Skipped with the reason when the binary
// or the pool-enabled addon is not available (see fuzz/pool/native.ts).
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { describe, expect, test } from 'vitest';
import { findPoolAddon, findPoolTestBinary, type PoolAddon } from '../../fuzz/pool/native.ts';

const serve = findPoolTestBinary();
const found = await findPoolAddon();
const skipAddon = !found.ok;
const addonName = `addon bindings${found.ok ? '' : ` (skipped: ${found.why})`}`;

function addon(): PoolAddon {
  if (!found.ok) throw new Error(found.why);
  return found.value.addon;
}

function thrownCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

describe('cpspec-pool-test', () => {
  test.skipIf(!serve.ok)('the C++ tests pass', () => {
    if (!serve.ok) return;
    const r = spawnSync(serve.value, [], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^\d+ passed, 0 failed$/);
    expect(r.status).toBe(0);
  });
});

describe.skipIf(skipAddon)(addonName, () => {
  test('acquire / release / stats (CP-POOL-001..004, 009)', () => {
    const p = new (addon().BufferPool)(100, 2);
    expect([p.bufferSize, p.capacity]).toEqual([128, 2]);
    expect(p.acquire()).toEqual({ kind: 'buffer', id: 0 });
    expect(p.acquire()).toEqual({ kind: 'buffer', id: 1 });
    expect(p.acquire()).toEqual({ kind: 'exhausted' });
    expect(p.release(1)).toBe('ok');
    expect(p.release(1)).toBe('double-release');
    for (const id of [-1, 2, 0.5, Number.NaN, Infinity, 2 ** 32, 2 ** 53]) expect(p.release(id)).toBe('foreign');
    expect(p.stats()).toEqual({ total: 2, inUse: 1, available: 1, highWater: 2, failedAcquires: 1 });
    expect(p.audit()).toBe('');
  });

  test('argument errors carry code invalid', () => {
    const { BufferPool } = addon();
    expect(thrownCode(() => new BufferPool(0, 1))).toBe('invalid');
    expect(thrownCode(() => new BufferPool(64, 0))).toBe('invalid');
    expect(thrownCode(() => new BufferPool(2 ** 30, 1024))).toBe('invalid');
    expect(thrownCode(() => new BufferPool('64' as unknown as number, 1))).toBe('invalid');
    const p = new BufferPool(64, 1);
    expect(thrownCode(() => p.release('0' as unknown as number))).toBe('invalid');
    expect(thrownCode(() => p.acquireWait(-1))).toBe('invalid');
    expect(thrownCode(() => p.acquireSync(2 ** 31))).toBe('invalid');
    expect(thrownCode(() => addon().openBufferPool(123456789))).toBe('invalid');
  });

  test('size classes', () => {
    const a = addon();
    expect(a.sizeClasses).toEqual([64, 512, 2048, 8192, 32768]);
    expect([1, 64, 65, 8192, 8193, 32768, 32769].map((n) => a.pickSizeClass(n))).toEqual([0, 0, 1, 3, 4, 4, -1]);
  });

  test('acquireWait: times out, or wakes on a release; the loop keeps running', async () => {
    const p = new (addon().BufferPool)(64, 1);
    expect(await p.acquireWait(1000)).toEqual({ kind: 'buffer', id: 0 }); // free: at once
    let t0 = Date.now();
    expect(await p.acquireWait(80)).toEqual({ kind: 'exhausted' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(75);
    t0 = Date.now();
    const waiting = p.acquireWait(10_000);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    setTimeout(() => expect(p.release(0)).toBe('ok'), 60);
    expect(await waiting).toEqual({ kind: 'buffer', id: 0 });
    clearInterval(timer);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(ticks).toBeGreaterThan(3); // the event loop was not blocked
    expect(p.stats().failedAcquires).toBe(1);
  });

  test('a worker_thread blocked in acquireSync is woken by a release on the main thread', async () => {
    if (!found.ok) return;
    const p = new found.value.addon.BufferPool(64, 1);
    expect(p.acquire()).toEqual({ kind: 'buffer', id: 0 });
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const a = require(workerData.file);
      const p = a.openBufferPool(workerData.id);
      parentPort.postMessage('waiting');
      const t0 = Date.now();
      const r = p.acquireSync(10000);
      parentPort.postMessage({ r, ms: Date.now() - t0, release: r.kind === 'buffer' ? p.release(r.id) : null });
    `;
    const w = new Worker(code, { eval: true, workerData: { file: found.value.file, id: p.id } });
    const result = await new Promise<{ r: unknown; ms: number; release: string | null }>((resolve, reject) => {
      w.on('message', (m) => {
        if (m === 'waiting') setTimeout(() => p.release(0), 50);
        else resolve(m as { r: unknown; ms: number; release: string | null });
      });
      w.on('error', reject);
    });
    await w.terminate();
    expect(result.r).toEqual({ kind: 'buffer', id: 0 });
    expect(result.ms).toBeLessThan(5000);
    expect(result.release).toBe('ok');
    expect(p.stats()).toMatchObject({ inUse: 0, available: 1 });
  });

  test('two worker_threads hammer one pool: exclusive ownership, conservation', async () => {
    if (!found.ok) return;
    const count = 4;
    const p = new found.value.addon.BufferPool(256, count);
    const owners = new Int32Array(new SharedArrayBuffer(4 * count)).fill(-1);
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const a = require(workerData.file);
      const p = a.openBufferPool(workerData.id);
      const owners = new Int32Array(workerData.owners);
      const me = workerData.me;
      let bad = 0, ops = 0;
      const end = Date.now() + 400;
      const held = [];
      while (Date.now() < end) {
        for (let k = 0; k < 2; k++) {
          const r = p.acquire();
          if (r.kind !== 'buffer') continue;
          if (Atomics.compareExchange(owners, r.id, -1, me) !== -1) bad++;
          held.push(r.id);
        }
        while (held.length) {
          const id = held.pop();
          if (Atomics.compareExchange(owners, id, me, -1) !== me) bad++;
          if (p.release(id) !== 'ok') bad++;
          ops++;
        }
        const s = p.stats();
        if (s.inUse > s.total || s.inUse + s.available !== s.total) bad++;
      }
      parentPort.postMessage({ bad, ops });
    `;
    const run = (me: number) =>
      new Promise<{ bad: number; ops: number }>((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { file: found.value.file, id: p.id, owners: owners.buffer, me } });
        w.on('message', (m) => resolve(m as { bad: number; ops: number }));
        w.on('error', reject);
      });
    const results = await Promise.all([run(0), run(1)]);
    for (const r of results) {
      expect(r.bad).toBe(0);
      expect(r.ops).toBeGreaterThan(100);
    }
    expect(p.stats()).toMatchObject({ total: count, inUse: 0, available: count });
    expect(p.stats().highWater).toBeLessThanOrEqual(count);
    expect(p.audit()).toBe('');
  });
});
