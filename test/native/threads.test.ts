// The addon from several JS threads (worker_threads): a port shared by id, synchronous dequeues that keep
// the calling thread associated with the port, and environment teardown with waits still pending.
import { Worker } from 'node:worker_threads';
import { describe, expect, test } from 'vitest';
import { addonPath, loadAddon } from '../../native/js/target.ts';

const addon = loadAddon();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// Runs `body` (CommonJS source; `addon`, `workerData` and `post(msg)` in scope) in a worker thread.
function spawn(body: string, workerData: unknown): { worker: Worker; messages: unknown[]; next: () => Promise<unknown>; exited: Promise<number> } {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const addon = require(${JSON.stringify(addonPath())});
    const post = (m) => parentPort.postMessage(m);
    (async () => { ${body} })().catch((e) => post({ error: String(e && e.stack || e) }));
  `;
  const worker = new Worker(code, { eval: true, workerData });
  const messages: unknown[] = [];
  const waiting: ((m: unknown) => void)[] = [];
  worker.on('message', (m) => {
    const w = waiting.shift();
    if (w) w(m);
    else messages.push(m);
  });
  const exited = new Promise<number>((resolve, reject) => {
    worker.on('exit', resolve);
    worker.on('error', reject);
  });
  const next = () =>
    messages.length ? Promise.resolve(messages.shift()) : new Promise<unknown>((resolve) => waiting.push(resolve));
  return { worker, messages, next, exited };
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, limit]);
  } finally {
    clearTimeout(timer);
  }
}

describe('addon across worker_threads', () => {
  test('a worker thread opens the port by id and dequeues synchronously', async () => {
    const port = addon.createPort(2);
    const w = spawn(
      `const p = addon.openPort(workerData.id);
       post('ready');
       const r = p.dequeueSync(10000);
       post(r);`,
      { id: port.id },
    );
    expect(await within(w.next(), 10_000, 'ready')).toBe('ready');
    port.post(5, 6, 7, 'eof', 8);
    expect(await within(w.next(), 10_000, 'result')).toEqual({
      kind: 'packet',
      packet: { key: 5, bytes: 6, token: 7, status: 'eof', nativeError: 8 },
    });
    expect(await within(w.exited, 10_000, 'exit')).toBe(0);
    // The worker thread exited: its slot was released.
    expect(port.stats().running).toBe(0);
    port.close();
  });

  test('a thread that dequeued synchronously keeps its slot until it dequeues again (concurrency 1)', async () => {
    const port = addon.createPort(1);
    port.post(1);
    port.post(2);
    // Worker A takes packet 1 and holds the port's only slot until told to go on.
    const a = spawn(
      `const p = addon.openPort(workerData.id);
       const r = p.dequeueSync(5000);
       post(r.packet.key);
       await new Promise((res) => require('node:worker_threads').parentPort.once('message', res));
       const again = p.dequeueSync(0);   // gives its slot back first, then gets packet 2 at once (P5)
       post(again.kind === 'packet' ? again.packet.key : again.kind);
       await new Promise((res) => require('node:worker_threads').parentPort.once('message', res));`,
      { id: port.id },
    );
    expect(await within(a.next(), 10_000, 'A got')).toBe(1);
    expect(port.stats().running).toBe(1);
    // Worker B: packet 2 is queued but the slot is taken, so B times out.
    const b = spawn(
      `const p = addon.openPort(workerData.id);
       const t0 = Date.now();
       const r = p.dequeueSync(150);
       post({ kind: r.kind, ms: Date.now() - t0 });`,
      { id: port.id },
    );
    const bres = (await within(b.next(), 10_000, 'B result')) as { kind: string; ms: number };
    expect(bres.kind).toBe('timeout');
    expect(bres.ms).toBeGreaterThanOrEqual(140);
    expect(port.stats().queued).toBe(1);
    a.worker.postMessage('go');
    expect(await within(a.next(), 10_000, 'A again')).toBe(2);
    a.worker.postMessage('exit');
    await within(a.exited, 10_000, 'A exit');
    await within(b.exited, 10_000, 'B exit');
    expect(port.stats().running).toBe(0);
    port.close();
  });

  test('a worker thread torn down with async dequeues pending: its own ports close, foreign waits give their packets back', async () => {
    const shared = addon.createPort(4);
    const w = spawn(
      `const own = addon.createPort(1);
       const p = addon.openPort(workerData.id);
       own.dequeue(-1);             // pending forever on a port of this thread
       p.dequeue(-1);               // pending on the main thread's port
       post(own.id);`,
      { id: shared.id },
    );
    const ownId = (await within(w.next(), 10_000, 'ready')) as number;
    const deadline = Date.now() + 5000;
    while (shared.stats().waiters < 1 && Date.now() < deadline) await sleep(5);
    expect(shared.stats().waiters).toBe(1);
    const own = addon.openPort(ownId);
    while (own.stats().waiters < 1 && Date.now() < deadline) await sleep(5);
    expect(own.stats().waiters).toBe(1);
    await within(w.worker.terminate(), 10_000, 'terminate');
    // The worker's own port was closed at teardown, which ended its wait.
    expect(own.stats().closed).toBe(true);
    expect(own.stats().waiters).toBe(0);
    // The wait on the shared port is still there (a thread of the addon's pool): a packet posted now is
    // handed to it, then put back on the port because nobody is left to receive it.
    shared.post(99);
    const r = await within(shared.dequeue(5000), 10_000, 'dequeue after teardown');
    expect(r).toEqual({ kind: 'packet', packet: { key: 99, bytes: 0, token: 0, status: 'ok', nativeError: 0 } });
    shared.close();
  });

  test('a worker thread can run workers and exit normally', async () => {
    const w = spawn(
      `const p = addon.createPort(1);
       const tr = await addon.runWorkers(p, [{ steps: [{ op: 'post', key: 0, count: 100 }] }, { steps: [{ op: 'dequeue', timeoutMs: 200, max: 8 }], repeat: -1 }]);
       p.close();
       post({ events: tr.t.length, got: Array.from(tr.ev).filter((e) => e === 2).length });`,
      {},
    );
    const r = (await within(w.next(), 20_000, 'trace')) as { events: number; got: number };
    expect(r.got).toBe(100);
    expect(r.events).toBeGreaterThan(200);
    expect(await within(w.exited, 10_000, 'exit')).toBe(0);
  });
});
