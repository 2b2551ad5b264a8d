// The native target's port API, driven from JS: the Target implementation (native/js/target.ts) and the
// addon under it. Threaded behaviour is in workers.test.ts and threads.test.ts.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TargetError, type Packet, type Target } from '../../reference/src/target.ts';
import { createNativeTarget, loadAddon } from '../../native/js/target.ts';

const addon = loadAddon();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function settledWithin<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'pending'>((r) => {
    timer = setTimeout(() => r('pending'), ms);
  });
  try {
    return await Promise.race([p, pending]);
  } finally {
    clearTimeout(timer);
  }
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<TargetError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TargetError);
    expect((e as TargetError).code).toBe(code);
    return e as TargetError;
  }
  throw new Error(`expected a rejection with code '${code}', but it resolved`);
}

function throwsCode(fn: () => unknown, code: string, match?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a throw').toBeInstanceOf(Error);
  expect((caught as { code?: string }).code).toBe(code);
  if (match) expect((caught as Error).message).toMatch(match);
}

describe('native target', () => {
  let t: Target;
  beforeAll(async () => {
    t = await createNativeTarget();
  });
  afterAll(async () => {
    await t.dispose();
  });

  test('info', async () => {
    const info = await t.info();
    expect(info.name).toBe('cpspec-native');
    // The default target takes the best back-end that can run here: io_uring, else epoll (with the reason).
    expect(['uring', 'epoll']).toContain(info.backend);
    if (info.backend === 'epoll') expect(info.notes?.join('\n')).toMatch(/io_uring unavailable/);
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.capabilities).toEqual(
      expect.arrayContaining(['port', 'port.batch', 'workers', 'workers.blocking-region', 'workers.real-threads', 'sockets', 'sockets.zero-length-probe', 'sockets.partial-send-mode', 'fault-injection']),
    );
    expect(Number.isInteger(info.hardwareThreads) && info.hardwareThreads >= 1).toBe(true);
    expect(addon.info().hardwareThreads).toBe(info.hardwareThreads);
  });

  test('back-end selection', async () => {
    // io_uring is selectable by name here (test/sockets/native-uring.test.ts covers the fallback when it is not).
    const uring = await createNativeTarget({ backend: 'uring' });
    expect((await uring.info()).backend).toBe('uring');
    await uring.dispose();
    await rejectsWith(createNativeTarget({ backend: 'bogus' }), 'unsupported');
    const explicit = await createNativeTarget({ backend: 'epoll' });
    expect((await explicit.info()).backend).toBe('epoll');
    await explicit.dispose();
  });

  test('a posted packet comes back unchanged', async () => {
    const port = await t.createPort(1);
    const sent: Packet[] = [
      { key: 7, bytes: 42, token: 99, status: 'ok', nativeError: 0 },
      { key: 0, bytes: 0, token: 0, status: 'ok', nativeError: 0 },
      { key: 2 ** 53 - 1, bytes: 2 ** 32 - 1, token: 2 ** 53 - 1, status: 'reset', nativeError: 104 },
      { key: 3, bytes: 1, token: 5, status: 'pool-exhausted', nativeError: -105 },
    ];
    for (const p of sent) await t.post(port, p);
    await t.post(port, { key: 8 }); // defaults
    for (const p of sent) expect(await t.dequeue(port, 1000)).toEqual({ kind: 'packet', packet: p });
    expect(await t.dequeue(port, 0)).toEqual({ kind: 'packet', packet: { key: 8, bytes: 0, token: 0, status: 'ok', nativeError: 0 } });
    await t.closePort(port);
  });

  test('timeouts: 0 returns at once, 50 ms waits about 50 ms', async () => {
    const port = await t.createPort(1);
    let start = performance.now();
    expect(await t.dequeue(port, 0)).toEqual({ kind: 'timeout' });
    expect(performance.now() - start).toBeLessThan(1000);
    expect(await t.dequeueMany(port, 8, 0)).toEqual({ kind: 'timeout' });
    start = performance.now();
    expect(await t.dequeue(port, 50)).toEqual({ kind: 'timeout' });
    const took = performance.now() - start;
    expect(took).toBeGreaterThanOrEqual(49);
    expect(took).toBeLessThan(5000);
    start = performance.now();
    expect(await t.dequeueMany(port, 4, 50)).toEqual({ kind: 'timeout' });
    expect(performance.now() - start).toBeGreaterThanOrEqual(49);
    await t.closePort(port);
  });

  test('FIFO over 100 000 packets, and batches of at most max', async () => {
    const port = await t.createPort(1);
    const n = 100_000;
    for (let k = 0; k < n; k++) await t.post(port, { key: k, token: n - k });
    const keys: number[] = [];
    let bad = 0;
    for (;;) {
      const r = await t.dequeueMany(port, 4096, 0);
      if (r.kind !== 'packets') {
        expect(r.kind).toBe('timeout');
        break;
      }
      expect(r.packets.length).toBeGreaterThanOrEqual(1);
      expect(r.packets.length).toBeLessThanOrEqual(4096);
      for (const p of r.packets) {
        if (p.token !== n - p.key) bad++;
        keys.push(p.key);
      }
    }
    expect(bad).toBe(0);
    expect(keys.length).toBe(n);
    expect(keys.every((k, i) => k === i)).toBe(true);
    // 100 packets with max 64: 64, then 36, then timeout.
    for (let k = 0; k < 100; k++) await t.post(port, { key: k });
    const a = await t.dequeueMany(port, 64, 0);
    const b = await t.dequeueMany(port, 64, 0);
    expect(a.kind === 'packets' && a.packets.length).toBe(64);
    expect(b.kind === 'packets' && b.packets.map((p) => p.key)).toEqual(Array.from({ length: 36 }, (_, i) => 64 + i));
    expect(await t.dequeueMany(port, 64, 0)).toEqual({ kind: 'timeout' });
    await t.closePort(port);
  });

  test('close hands back the queued packets in FIFO order; then posts reject and dequeues see closed', async () => {
    const port = await t.createPort(1);
    for (const k of [5, 6, 7, 8]) await t.post(port, { key: k, bytes: k, token: k * 10, status: k === 7 ? 'eof' : 'ok' });
    const first = await t.dequeue(port, 0);
    expect(first.kind === 'packet' && first.packet.key).toBe(5);
    const left = await t.closePort(port);
    expect(left).toEqual([
      { key: 6, bytes: 6, token: 60, status: 'ok', nativeError: 0 },
      { key: 7, bytes: 7, token: 70, status: 'eof', nativeError: 0 },
      { key: 8, bytes: 8, token: 80, status: 'ok', nativeError: 0 },
    ]);
    expect(await t.closePort(port)).toEqual([]);
    const e = await rejectsWith(t.post(port, { key: 1 }), 'closed');
    expect(e.message).toMatch(/closed/);
    expect(await settledWithin(t.dequeue(port, -1), 2000)).toEqual({ kind: 'closed' });
    expect(await settledWithin(t.dequeueMany(port, 16, -1), 2000)).toEqual({ kind: 'closed' });
  });

  test('close wakes every waiter', async () => {
    const port = await t.createPort(2);
    const waiters = [t.dequeue(port, -1), t.dequeue(port, -1), t.dequeue(port, 60_000), t.dequeueMany(port, 8, -1)];
    expect(await settledWithin(Promise.race(waiters), 200)).toBe('pending');
    await t.closePort(port);
    expect(await settledWithin(Promise.all(waiters), 5000)).toEqual([
      { kind: 'closed' },
      { kind: 'closed' },
      { kind: 'closed' },
      { kind: 'closed' },
    ]);
  });

  test('async dequeues do not block the event loop', async () => {
    const port = await t.createPort(1);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const start = performance.now();
    const r = await t.dequeue(port, 200);
    const took = performance.now() - start;
    clearInterval(timer);
    expect(r).toEqual({ kind: 'timeout' });
    expect(took).toBeGreaterThanOrEqual(199);
    // 200 ms of 10 ms ticks: a blocked loop would show none. Generous bound for a loaded machine.
    expect(ticks).toBeGreaterThanOrEqual(5);

    // Four infinite dequeues at once (more than the libuv pool's default of 4 would allow alongside other
    // work): a post releases exactly one, close releases the rest.
    const four = [t.dequeue(port, -1), t.dequeue(port, -1), t.dequeue(port, -1), t.dequeue(port, -1)];
    const extra = t.dequeue(port, -1);
    const done: unknown[] = [];
    for (const p of [...four, extra]) void p.then((v) => done.push(v));
    await sleep(100);
    expect(done).toEqual([]);
    const other = addon.createPort(1); // the loop is responsive: sync calls still work meanwhile
    expect(other.stats().waiters).toBe(0);
    other.close();
    await t.post(port, { key: 77 });
    const deadline = performance.now() + 5000;
    while (done.length < 1 && performance.now() < deadline) await sleep(5);
    await sleep(50);
    expect(done).toEqual([{ kind: 'packet', packet: { key: 77, bytes: 0, token: 0, status: 'ok', nativeError: 0 } }]);
    await t.closePort(port);
    const all = await settledWithin(Promise.all([...four, extra]), 5000);
    expect(all).not.toBe('pending');
    const kinds = (all as { kind: string }[]).map((r) => r.kind).sort();
    expect(kinds).toEqual(['closed', 'closed', 'closed', 'closed', 'packet']);
  });

  test('bad arguments reject with invalid', async () => {
    for (const c of [-1, 1025, 100_000, 1.5, NaN, '2', undefined]) await rejectsWith(t.createPort(c as number), 'invalid');
    const port = await t.createPort(0);
    for (const to of [-2, 2 ** 31, 0.5, NaN, Infinity, '1', null]) {
      await rejectsWith(t.dequeue(port, to as number), 'invalid');
      await rejectsWith(t.dequeueMany(port, 1, to as number), 'invalid');
    }
    for (const max of [0, 4097, 1.5, -1, '8']) await rejectsWith(t.dequeueMany(port, max as number, 0), 'invalid');
    await rejectsWith(t.dequeue(987654, 0), 'invalid');
    await rejectsWith(t.post(987654, { key: 1 }), 'invalid');
    await rejectsWith(t.closePort(987654), 'invalid');
    await rejectsWith(t.runWorkers(987654, [{ steps: [{ op: 'spin', us: 1 }] }]), 'invalid');
    const badPackets: unknown[] = [
      { key: -1 },
      { key: 2 ** 53 },
      { key: 1.5 },
      { key: '1' },
      {},
      { key: 1, bytes: -1 },
      { key: 1, bytes: 2 ** 32 },
      { key: 1, token: -5 },
      { key: 1, status: 'bogus' },
      { key: 1, status: 3 },
      { key: 1, nativeError: 2 ** 31 },
      null,
    ];
    for (const p of badPackets) await rejectsWith(t.post(port, p as never), 'invalid');
    // Nothing was queued by the failed posts, and the port still works.
    expect(await t.dequeue(port, 0)).toEqual({ kind: 'timeout' });
    await t.post(port, { key: 42 });
    const r = await t.dequeue(port, 1000);
    expect(r.kind === 'packet' && r.packet.key).toBe(42);
    await t.closePort(port);
  });

  test('reset closes every port and forgets the ids; dispose ends the target', async () => {
    const t2 = await createNativeTarget();
    const a = await t2.createPort(1);
    const b = await t2.createPort(2);
    expect([a, b]).toEqual([1, 2]);
    await t2.post(b, { key: 3 });
    const pending = t2.dequeue(a, -1);
    await t2.reset();
    expect(await settledWithin(pending, 5000)).toEqual({ kind: 'closed' });
    await rejectsWith(t2.post(b, { key: 1 }), 'invalid'); // b is forgotten
    const c = await t2.createPort(1);
    expect(await t2.dequeue(c, 0)).toEqual({ kind: 'timeout' });
    await t2.dispose();
    await rejectsWith(t2.createPort(1), 'invalid');
    await rejectsWith(t2.dequeue(c, 0), 'invalid');
  });
});

describe('addon', () => {
  test('bad arguments throw errors with code invalid and a clear message', () => {
    throwsCode(() => addon.createPort(-1), 'invalid', /concurrency must be an integer in 0\.\.1024/);
    throwsCode(() => addon.createPort(1025), 'invalid', /got 1025/);
    throwsCode(() => addon.createPort('x' as never), 'invalid', /got 'x'/);
    throwsCode(() => addon.openPort(0), 'invalid');
    throwsCode(() => addon.openPort(2 ** 40), 'invalid', /no live port/);
    throwsCode(() => new (addon as unknown as { Port: new () => unknown }).Port(), 'invalid', /createPort/);
    const p = addon.createPort(1);
    throwsCode(() => p.post(-1), 'invalid', /key/);
    throwsCode(() => p.post(1, 0, 0, 'nope' as never), 'invalid', /status/);
    throwsCode(() => p.dequeue(-2), 'invalid', /timeoutMs/);
    throwsCode(() => p.dequeueSync(2 ** 31), 'invalid', /timeoutMs/);
    throwsCode(() => p.dequeueMany(0, 0), 'invalid', /max/);
    throwsCode(() => p.dequeueManySync(4097, 0), 'invalid', /max/);
    throwsCode(() => p.postMany('x' as never), 'invalid', /array/);
    throwsCode(() => p.postMany([{ key: 1 }, { key: -1 }]), 'invalid', /packets\[1\]\.key/);
    expect(p.stats().queued).toBe(0); // postMany is all or nothing
    throwsCode(() => addon.runWorkers({} as never, [{ steps: [{ op: 'spin', us: 1 }] }]), 'invalid', /Port/);
    throwsCode(() => addon.runWorkers(p, []), 'invalid', /1\.\.256/);
    throwsCode(() => addon.runWorkers(p, [{ steps: [{ op: 'jump' } as never] }]), 'invalid', /op must be one of/);
    throwsCode(() => addon.runWorkers(p, [{ steps: [{ op: 'dequeue', timeoutMs: 0, max: 0 }] }]), 'invalid', /max/);
    throwsCode(() => addon.runWorkers(p, [{ steps: [{ op: 'spin', us: 10_000_001 }] }]), 'invalid', /us/);
    throwsCode(() => addon.runWorkers(p, [{ steps: [{ op: 'spin', us: 1 }], repeat: -1 }]), 'invalid', /needs a dequeue step/);
    throwsCode(() => addon.runWorkers(p, [{ steps: [{ op: 'post', key: 2 ** 53 - 1, count: 2 }] }]), 'invalid', /2\^53-1/);
    throwsCode(() => addon.runWorkers(p, [{ steps: [{ op: 'spin', us: 1 }] }], { deadlineMs: -5 }), 'invalid', /deadlineMs/);
    throwsCode(() => addon.runWorkers(p, [{ steps: [{ op: 'spin', us: 1 }] }], { closeAfterMs: 1.5 }), 'invalid', /closeAfterMs/);
    p.close();
    throwsCode(() => p.post(1), 'closed', /closed/);
    throwsCode(() => p.postMany([{ key: 1 }]), 'closed');
  });

  test('postMany, sync dequeues, stats, blocking region on the calling thread', () => {
    const p = addon.createPort(1);
    expect(p.id).toBeGreaterThan(0);
    expect(addon.openPort(p.id).stats()).toEqual({ running: 0, queued: 0, waiters: 0, concurrency: 1, closed: false });
    expect(p.postMany(Array.from({ length: 10 }, (_, i) => ({ key: i, token: i * 2 })))).toBe(10);
    expect(p.stats().queued).toBe(10);
    const r = p.dequeueManySync(4, 0);
    expect(r.kind === 'packets' && r.packets.map((x) => x.key)).toEqual([0, 1, 2, 3]);
    // This (JS) thread dequeued synchronously: it holds the port's only slot until it dequeues again.
    expect(p.stats().running).toBe(1);
    p.enterBlocking();
    expect(p.stats().running).toBe(0);
    p.leaveBlocking();
    expect(p.stats().running).toBe(1);
    const one = p.dequeueSync(0);
    expect(one.kind === 'packet' && one.packet).toEqual({ key: 4, bytes: 0, token: 8, status: 'ok', nativeError: 0 });
    expect(p.close().map((x) => x.key)).toEqual([5, 6, 7, 8, 9]);
    expect(p.stats().closed).toBe(true);
    expect(p.dequeueSync(-1)).toEqual({ kind: 'closed' });
    expect(p.stats().running).toBe(0);
  });

  test('concurrency 0 resolves to the hardware threads', () => {
    const p = addon.createPort(0);
    expect(p.stats().concurrency).toBe(addon.info().hardwareThreads);
    p.close();
  });
});
