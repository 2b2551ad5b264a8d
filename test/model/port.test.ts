// The model's JS-level port API: createPort/post/dequeue/dequeueMany/closePort, reset, dispose, bad args.
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createModelTarget } from '../../reference/src/model/index.ts';
import { STATUSES, TargetError, type Target, type WorkerProgram } from '../../reference/src/target.ts';

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a rejection').toBeInstanceOf(TargetError);
  expect((err as TargetError).code).toBe(code);
}

let target: Target | undefined;
afterEach(async () => {
  vi.useRealTimers();
  await target?.dispose();
  target = undefined;
});
function fresh(): Target {
  target = createModelTarget();
  return target;
}

describe('model port: basics', () => {
  it('info describes the model', async () => {
    const info = await fresh().info();
    expect(info).toEqual({
      name: 'cpspec-model',
      version: '0.1.0',
      backend: 'model',
      capabilities: ['port', 'port.batch', 'workers', 'workers.blocking-region', 'sockets', 'sockets.zero-length-probe', 'sockets.partial-send-mode', 'fault-injection', 'pool', 'pool.sessions', 'framing'],
      notes: [],
      hardwareThreads: 4,
    });
    expect((await createModelTarget({ hardwareThreads: 12 }).info()).hardwareThreads).toBe(12);
  });

  it('returns the posted values unchanged (round trip)', async () => {
    const t = fresh();
    const port = await t.createPort(1);
    await t.post(port, { key: 7 });
    expect(await t.dequeue(port, 0)).toEqual({ kind: 'packet', packet: { key: 7, bytes: 0, token: 0, status: 'ok', nativeError: 0 } });
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          key: fc.maxSafeNat(),
          bytes: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
          token: fc.maxSafeNat(),
          status: fc.constantFrom(...STATUSES),
          nativeError: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        }),
        async (packet) => {
          await t.post(port, packet);
          const r = await t.dequeue(port, 0);
          expect(r).toEqual({ kind: 'packet', packet });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps FIFO order over 100 000 packets', async () => {
    const t = fresh();
    const port = await t.createPort(0);
    const n = 100_000;
    for (let i = 0; i < n; i++) await t.post(port, { key: i, token: n - i });
    for (let i = 0; i < n; i++) {
      const r = await t.dequeue(port, 0);
      if (r.kind !== 'packet' || r.packet.key !== i || r.packet.token !== n - i) {
        expect.fail(`dequeue ${i}: ${JSON.stringify(r)}`);
      }
    }
    expect(await t.dequeue(port, 0)).toEqual({ kind: 'timeout' });
  });

  it('dequeueMany returns at least one and at most max packets, FIFO (100 posts, max 64: 64, 36, timeout)', async () => {
    const t = fresh();
    const port = await t.createPort(1);
    for (let i = 0; i < 100; i++) await t.post(port, { key: i });
    const a = await t.dequeueMany(port, 64, 0);
    const b = await t.dequeueMany(port, 64, 0);
    expect(a.kind === 'packets' && a.packets.map((p) => p.key)).toEqual([...Array(64).keys()]);
    expect(b.kind === 'packets' && b.packets.map((p) => p.key)).toEqual([...Array(36).keys()].map((i) => 64 + i));
    expect(await t.dequeueMany(port, 64, 0)).toEqual({ kind: 'timeout' });
  });
});

describe('model port: waiters', () => {
  it('releases pending JS dequeues LIFO: the most recent one gets the next packet', async () => {
    const t = fresh();
    const port = await t.createPort(1);
    const d1 = t.dequeue(port, -1);
    const d2 = t.dequeue(port, -1);
    const d3 = t.dequeue(port, 10_000);
    for (const key of [1, 2, 3]) await t.post(port, { key });
    const keys = (await Promise.all([d1, d2, d3])).map((r) => (r.kind === 'packet' ? r.packet.key : r.kind));
    expect(keys).toEqual([3, 2, 1]);
  });

  it('a pending dequeueMany takes what is there, up to max, when released', async () => {
    const t = fresh();
    const port = await t.createPort(2);
    const many = t.dequeueMany(port, 3, -1);
    await t.post(port, { key: 1 });
    await t.post(port, { key: 2 });
    const r = await many;
    expect(r.kind === 'packets' && r.packets.map((p) => p.key)).toEqual([1]);
    expect(await t.dequeue(port, 0)).toMatchObject({ kind: 'packet', packet: { key: 2 } });
  });

  it('close wakes every waiter with closed, drains the queue FIFO, and a second close returns []', async () => {
    const t = fresh();
    const port = await t.createPort(1);
    const d1 = t.dequeue(port, -1);
    const d2 = t.dequeueMany(port, 8, 60_000);
    expect(await t.closePort(port)).toEqual([]);
    expect(await d1).toEqual({ kind: 'closed' });
    expect(await d2).toEqual({ kind: 'closed' });

    const port2 = await t.createPort(1);
    for (let i = 0; i < 5; i++) await t.post(port2, { key: i, bytes: i * 10, token: 100 + i, status: 'eof', nativeError: i });
    const drained = await t.closePort(port2);
    expect(drained).toEqual([0, 1, 2, 3, 4].map((i) => ({ key: i, bytes: i * 10, token: 100 + i, status: 'eof', nativeError: i })));
    expect(await t.closePort(port2)).toEqual([]);
    expect(await t.dequeue(port2, -1)).toEqual({ kind: 'closed' });
    expect(await t.dequeueMany(port2, 4, -1)).toEqual({ kind: 'closed' });
    await rejectsWith(t.post(port2, { key: 1 }), 'closed');
  });

  it('timeout 0 polls; a finite timeout expires on a real timer and the expired waiter takes nothing', async () => {
    const t = fresh();
    const port = await t.createPort(1);
    expect(await t.dequeue(port, 0)).toEqual({ kind: 'timeout' });
    const start = performance.now();
    expect(await t.dequeue(port, 40)).toEqual({ kind: 'timeout' });
    expect(performance.now() - start).toBeGreaterThanOrEqual(35);
    expect(await t.dequeueMany(port, 5, 20)).toEqual({ kind: 'timeout' });
    await t.post(port, { key: 9 });
    expect(await t.dequeue(port, 0)).toMatchObject({ kind: 'packet', packet: { key: 9 } });
  });

  it('clears the timer of a dequeue that completes, and of one woken by close', async () => {
    vi.useFakeTimers();
    const t = fresh();
    const port = await t.createPort(1);
    const d = t.dequeue(port, 5000);
    expect(vi.getTimerCount()).toBe(1);
    await t.post(port, { key: 1 });
    expect(await d).toMatchObject({ kind: 'packet' });
    expect(vi.getTimerCount()).toBe(0);
    const d2 = t.dequeue(port, 5000);
    expect(vi.getTimerCount()).toBe(1);
    await t.closePort(port);
    expect(await d2).toEqual({ kind: 'closed' });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a finite-timeout waiter times out when the fake clock passes its timeout', async () => {
    vi.useFakeTimers();
    const t = fresh();
    const port = await t.createPort(1);
    const d = t.dequeue(port, 1000);
    await vi.advanceTimersByTimeAsync(999);
    await t.post(port, { key: 5 });
    expect(await d).toMatchObject({ kind: 'packet', packet: { key: 5 } });
    const d2 = t.dequeue(port, 1000);
    await vi.advanceTimersByTimeAsync(1000);
    expect(await d2).toEqual({ kind: 'timeout' });
  });

  it('reset closes and forgets every port; dispose ends the target', async () => {
    const t = fresh();
    const port = await t.createPort(1);
    const d = t.dequeue(port, -1);
    await t.reset();
    expect(await d).toEqual({ kind: 'closed' });
    await rejectsWith(t.post(port, { key: 1 }), 'invalid');
    await rejectsWith(t.dequeue(port, 0), 'invalid');
    const port2 = await t.createPort(1);
    expect(port2).not.toBe(port);
    const d2 = t.dequeue(port2, -1);
    await t.dispose();
    expect(await d2).toEqual({ kind: 'closed' });
    await rejectsWith(t.createPort(1), 'closed');
  });
});

describe('model port: invalid arguments reject with invalid', () => {
  it('createPort', async () => {
    const t = fresh();
    for (const c of [-1, 1025, 1.5, Number.NaN, '1', undefined]) await rejectsWith(t.createPort(c as number), 'invalid');
    await t.createPort(1024);
  });

  it('post', async () => {
    const t = fresh();
    const port = await t.createPort(1);
    await rejectsWith(t.post(999, { key: 1 }), 'invalid');
    await rejectsWith(t.post(-1, { key: 1 }), 'invalid');
    const bad: unknown[] = [
      undefined,
      null,
      {},
      { key: -1 },
      { key: 2 ** 53 },
      { key: 1.5 },
      { key: '1' },
      { key: 1, bytes: -1 },
      { key: 1, bytes: 2 ** 32 },
      { key: 1, token: -1 },
      { key: 1, token: 2 ** 53 },
      { key: 1, status: 'weird' },
      { key: 1, nativeError: 2 ** 31 },
      { key: 1, nativeError: 0.5 },
    ];
    for (const p of bad) await rejectsWith(t.post(port, p as never), 'invalid');
    expect(await t.dequeue(port, 0)).toEqual({ kind: 'timeout' });
    // bad arguments are 'invalid' even on a closed port
    await t.closePort(port);
    await rejectsWith(t.post(port, { key: -1 }), 'invalid');
  });

  it('dequeue, dequeueMany and closePort', async () => {
    const t = fresh();
    const port = await t.createPort(1);
    for (const to of [-2, 2 ** 31, 1.5, Number.NaN, '5']) {
      await rejectsWith(t.dequeue(port, to as number), 'invalid');
      await rejectsWith(t.dequeueMany(port, 1, to as number), 'invalid');
    }
    for (const max of [0, 4097, 2.5, -1]) await rejectsWith(t.dequeueMany(port, max, 0), 'invalid');
    await rejectsWith(t.dequeue(42, 0), 'invalid');
    await rejectsWith(t.dequeueMany(42, 1, 0), 'invalid');
    await rejectsWith(t.closePort(42), 'invalid');
    expect(await t.dequeueMany(port, 4096, 0)).toEqual({ kind: 'timeout' });
  });

  it('runWorkers programs and options', async () => {
    const t = fresh();
    const port = await t.createPort(1);
    const dq = { op: 'dequeue', timeoutMs: 0 } as const;
    const bad: unknown[] = [
      [],
      Array.from({ length: 257 }, () => ({ steps: [dq] })),
      [{ steps: [] }],
      [{ steps: Array.from({ length: 65 }, () => dq) }],
      [{ steps: [{ op: 'spin', us: 10_000_001 }] }],
      [{ steps: [{ op: 'sleep', us: -1 }] }],
      [{ steps: [{ op: 'block', us: 0.5 }] }],
      [{ steps: [{ op: 'dequeue', timeoutMs: -2 }] }],
      [{ steps: [{ op: 'dequeue', timeoutMs: 0, max: 0 }] }],
      [{ steps: [{ op: 'dequeue', timeoutMs: 0, max: 4097 }] }],
      [{ steps: [{ op: 'post', key: 1, count: 0 }] }],
      [{ steps: [{ op: 'post', key: 1, count: 1_000_001 }] }],
      [{ steps: [{ op: 'post', key: -1 }] }],
      [{ steps: [{ op: 'post', key: 1, bytes: 2 ** 32 }] }],
      [{ steps: [{ op: 'post', key: 2 ** 53 - 10, count: 5 }], repeat: 3 }],
      [{ steps: [dq], repeat: -2 }],
      [{ steps: [dq], repeat: 100_000_001 }],
      [{ steps: [{ op: 'spin', us: 1 }], repeat: -1 }],
      [{ steps: [{ op: 'post', key: 1 }], repeat: -1 }],
      [{ steps: [{ op: 'jump' }] }],
      [null],
      'programs',
    ];
    for (const programs of bad) await rejectsWith(t.runWorkers(port, programs as WorkerProgram[]), 'invalid');
    await rejectsWith(t.runWorkers(port, [{ steps: [dq] }], { closeAfterMs: -2 }), 'invalid');
    await rejectsWith(t.runWorkers(port, [{ steps: [dq] }], { deadlineMs: 0 }), 'invalid');
    await rejectsWith(t.runWorkers(port, [{ steps: [dq] }], { deadlineMs: 1.5 }), 'invalid');
    await rejectsWith(t.runWorkers(77, [{ steps: [dq] }]), 'invalid');
    // the limits themselves are accepted
    const ok = await t.runWorkers(port, [
      { steps: [{ op: 'spin', us: 10_000_000 }, dq, { op: 'dequeue', timeoutMs: 0, max: 4096 }], repeat: 100_000_000 },
      { steps: [{ op: 'post', key: 0, count: 1_000_000 }], repeat: 0 },
      ...Array.from({ length: 254 }, () => ({ steps: Array.from({ length: 64 }, () => dq), repeat: -1 })),
    ]);
    expect(ok.threads).toBe(256);
  });

  it('createModelTarget rejects bad options', () => {
    for (const o of [{ hardwareThreads: 0 }, { opCostNs: 0 }, { faults: { dropEvery: 0 } }, { faults: { fifoWake: 'yes' } }]) {
      expect(() => createModelTarget(o as never)).toThrow(TargetError);
    }
  });
});
