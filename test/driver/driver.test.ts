// Tests of the standalone native driver (native/driver, `cpspec-driver`): spawns the binary and speaks
// JSON-RPC lines to it (conformance/PROTOCOL.md).
//
// The binary: see ./locate.ts (env CPSPEC_DRIVER, else the release build).

import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';

import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { driverPath } from './locate.ts';


let DRIVER = '';

// ---------------------------------------------------------------------------------------------------------
// A small client: every stdout line is kept; requests wait for the line with their id.
// ---------------------------------------------------------------------------------------------------------

interface RpcError {
  code: number;
  message: string;
  data?: { code: string; nativeError: number };
}
interface Response {
  jsonrpc: string;
  id: number | string | null;
  result?: any;
  error?: RpcError;
}

class Driver {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly lines: string[] = []; // every stdout line, in arrival order
  stderr = '';
  private nextId = 1;
  private waiters: Array<() => void> = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private alive = true;

  constructor(args: string[] = []) {
    this.proc = spawn(DRIVER, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stdin.on('error', () => {}); // EPIPE after a crash is expected in some tests
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      this.lines.push(line);
      this.wake();
    });
    this.proc.stderr.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.alive = false;
        this.wake();
        resolve({ code, signal });
      });
    });
    live.add(this);
  }

  get isAlive(): boolean {
    return this.alive;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(line: string): void {
    this.proc.stdin.write(line + '\n');
  }

  /** Waits until pred matches one of the lines; resolves with it, or undefined after timeoutMs. */
  async waitLine(pred: (line: string, parsed: any) => boolean, timeoutMs = 5000): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const l of this.lines) {
        let parsed: any;
        try {
          parsed = JSON.parse(l);
        } catch {
          parsed = undefined;
        }
        if (pred(l, parsed)) return l;
      }
      const left = deadline - Date.now();
      if (left <= 0 || !this.alive) return undefined;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async response(id: number | string, timeoutMs = 5000): Promise<Response> {
    const line = await this.waitLine((_l, p) => p !== undefined && p !== null && p.id === id, timeoutMs);
    if (line === undefined) {
      throw new Error(`no response to request ${id} within ${timeoutMs} ms; stdout: ${this.lines.join('\n')}; stderr: ${this.stderr}`);
    }
    return JSON.parse(line);
  }

  /** Sends a request and returns its id (use response(id) to await it). */
  start(method: string, params?: unknown): number {
    const id = this.nextId++;
    const req: Record<string, unknown> = { jsonrpc: '2.0', id, method };
    if (params !== undefined) req.params = params;
    this.send(JSON.stringify(req));
    return id;
  }

  async call(method: string, params?: unknown, timeoutMs = 5000): Promise<Response> {
    return this.response(this.start(method, params), timeoutMs);
  }

  /** Calls and expects a result. */
  async ok(method: string, params?: unknown, timeoutMs = 5000): Promise<any> {
    const r = await this.call(method, params, timeoutMs);
    if (r.error) throw new Error(`${method} failed: ${JSON.stringify(r.error)}`);
    return r.result;
  }

  async err(method: string, params?: unknown): Promise<RpcError> {
    const r = await this.call(method, params);
    if (!r.error) throw new Error(`${method} ${JSON.stringify(params)} succeeded, expected an error: ${JSON.stringify(r.result)}`);
    return r.error;
  }

  async hello(): Promise<void> {
    await this.ok('cpspec.hello', { protocol: 1, client: 'cpspec-test' });
  }

  async exitWithin(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | 'timeout'> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), ms);
    });
    const r = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    return r;
  }

  kill(): void {
    if (this.alive) this.proc.kill('SIGKILL');
  }
}

const live = new Set<Driver>();

// Sanitizer builds (CPSPEC_DRIVER pointing at an ASan/UBSan or TSan build) report on stderr; any report
// fails the test that produced it.
const SANITIZER_REPORT = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|runtime error:|ThreadSanitizer: reported/;

afterEach(async () => {
  const reports: string[] = [];
  for (const d of live) {
    d.kill();
    await d.exitWithin(5000);
    if (SANITIZER_REPORT.test(d.stderr)) reports.push(d.stderr);
  }
  live.clear();
  if (reports.length > 0) throw new Error(`sanitizer report(s) from the driver:\n${reports.join('\n---\n')}`);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function expectInvalid(e: RpcError): void {
  expect(e.code).toBe(-32000);
  expect(e.data).toEqual({ code: 'invalid', nativeError: 0 });
}

function pkt(key: number, extra: Partial<{ bytes: number; token: number; status: string; nativeError: number }> = {}) {
  return { key, bytes: 0, token: 0, status: 'ok', nativeError: 0, ...extra };
}

// ---------------------------------------------------------------------------------------------------------

beforeAll(() => {
  DRIVER = driverPath();
}, 600_000);

describe('command line', () => {
  it('--version and --help', () => {
    const v = spawnSync(DRIVER, ['--version'], { encoding: 'utf8' });
    expect(v.status).toBe(0);
    expect(v.stdout).toMatch(/cpspec-native-driver 0\.1\.0/);
    const h = spawnSync(DRIVER, ['--help'], { encoding: 'utf8' });
    expect(h.status).toBe(0);
    for (const f of ['drop-every:N', 'duplicate-every:N', 'no-concurrency-cap', 'hang-after:N', 'crash-after:N', 'garbage-after:N']) {
      expect(h.stdout).toContain(`--fault=${f}`);
    }
  });

  it('rejects unknown and malformed options with exit 2', () => {
    for (const args of [['--nope'], ['--fault=drop-every:0'], ['--fault=drop-every:x'], ['--fault=explode'], ['--fault=hang-after']]) {
      const r = spawnSync(DRIVER, args, { encoding: 'utf8', input: '' });
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/unknown or malformed option/);
    }
  });
});

describe('protocol', () => {
  it('handshake, info and the method-not-found probe', async () => {
    const d = new Driver();
    const hello = await d.ok('cpspec.hello', { protocol: 1, client: 'cpspec 0.1.0' });
    expect(hello).toEqual({ protocol: 1, name: 'cpspec-native-driver', version: '0.1.0' });
    const probe = await d.call(`cpspec.no-such-method-${Math.random().toString(36).slice(2)}`);
    expect(probe.error?.code).toBe(-32601);
    expect(probe.result).toBeUndefined();
    const info = await d.ok('info');
    expect(info).toMatchObject({ name: 'cpspec-native-driver', version: '0.1.0' });
    const sockets = process.platform === 'linux' ? ['sockets', 'sockets.zero-length-probe', 'sockets.partial-send-mode', 'fault-injection', 'pool.sessions'] : [];
    expect(info.capabilities).toEqual(['port', 'port.batch', 'workers', 'workers.blocking-region', 'workers.real-threads', 'pool', 'framing', ...sockets]);
    expect(Number.isInteger(info.hardwareThreads) && info.hardwareThreads >= 1).toBe(true);
    // The socket back-end (sockets.test.ts checks the choice and its note).
    if (process.platform === 'linux') expect(['uring', 'epoll']).toContain(info.backend);
  });

  it('refuses other protocol versions with -32000', async () => {
    const d = new Driver();
    const e = await d.err('cpspec.hello', { protocol: 2, client: 'future' });
    expect(e.code).toBe(-32000);
    expect(e.data?.code).toBe('unsupported');
    expect((await d.err('cpspec.hello', { client: 'x' })).code).toBe(-32602);
  });

  it('answers a garbage line with a parse error (id null) and keeps serving', async () => {
    const d = new Driver();
    await d.hello();
    const parseErrors = () => d.lines.map((l) => JSON.parse(l)).filter((p) => p.error?.code === -32700);
    const garbageLines = ['this is not json', '{"jsonrpc":"2.0","id":5,', '{"a":1}}', '[1,2', '\u00ff\u0000', '{"id":1,"id":2'];
    for (const [i, garbage] of garbageLines.entries()) {
      d.send(garbage);
      expect(await d.waitLine(() => parseErrors().length === i + 1), garbage).toBeDefined();
      expect(parseErrors()[i].id).toBeNull();
    }
    expect(await d.ok('info')).toHaveProperty('name');
  });

  it('answers invalid requests with -32600', async () => {
    const d = new Driver();
    d.send('[1,2,3]');
    d.send('{"jsonrpc":"1.0","id":77,"method":"info"}');
    d.send('{"jsonrpc":"2.0","id":78}');
    d.send('{"jsonrpc":"2.0","id":79,"method":5}');
    expect((await d.response(77)).error?.code).toBe(-32600);
    expect((await d.response(78)).error?.code).toBe(-32600);
    expect((await d.response(79)).error?.code).toBe(-32600);
    expect(await d.waitLine((_l, p) => p?.id === null && p?.error?.code === -32600)).toBeDefined();
    d.send('{"jsonrpc":"2.0","id":"str-id","method":"info"}');
    expect((await d.response('str-id')).result.name).toBe('cpspec-native-driver');
  });

  it('checks params: wrong types are -32602, bad values are -32000 invalid', async () => {
    const d = new Driver();
    await d.hello();
    expect((await d.err('port.create', {})).code).toBe(-32602);
    expect((await d.err('port.create', { concurrency: '1' })).code).toBe(-32602);
    expect((await d.err('port.create', [1])).code).toBe(-32602);
    for (const c of [-1, 1025, 1.5, 2 ** 40]) expectInvalid(await d.err('port.create', { concurrency: c }));
    const { port } = await d.ok('port.create', { concurrency: 1 });
    expect(port).toBe(1);
    expect((await d.ok('port.create', { concurrency: 0 })).port).toBe(2);
    expect((await d.ok('port.create', { concurrency: 1024 })).port).toBe(3);

    for (const t of [-2, 2 ** 31, 0.5, -1.5]) expectInvalid(await d.err('port.dequeue', { port, timeoutMs: t }));
    expect((await d.err('port.dequeue', { port, timeoutMs: '5' })).code).toBe(-32602);
    expect((await d.err('port.dequeue', { port })).code).toBe(-32602);
    expect((await d.err('port.dequeue', { timeoutMs: 0 })).code).toBe(-32602);
    expectInvalid(await d.err('port.dequeue', { port: 99, timeoutMs: 0 }));
    expectInvalid(await d.err('port.dequeue', { port: 1.5, timeoutMs: 0 }));
    for (const m of [0, 4097, 2.5]) expectInvalid(await d.err('port.dequeueMany', { port, max: m, timeoutMs: 0 }));
    expect((await d.err('port.dequeueMany', { port, timeoutMs: 0 })).code).toBe(-32602);

    expect((await d.err('port.post', { port })).code).toBe(-32602);
    expect((await d.err('port.post', { port, key: 'k' })).code).toBe(-32602);
    expect((await d.err('port.post', { port, key: 1, status: 3 })).code).toBe(-32602);
    expectInvalid(await d.err('port.post', { port, key: 1, status: 'bogus' }));
    expectInvalid(await d.err('port.post', { port, key: -1 }));
    expectInvalid(await d.err('port.post', { port, key: 1.25 }));
    expectInvalid(await d.err('port.post', { port, key: 1, bytes: 2 ** 32 }));
    expectInvalid(await d.err('port.post', { port: 42, key: 1 }));
    expectInvalid(await d.err('port.close', { port: 42 }));
    // Nothing above was queued.
    expect(await d.ok('port.dequeue', { port, timeoutMs: 0 })).toEqual({ kind: 'timeout' });
  });

  it('posts and dequeues packets (FIFO, all fields round-trip)', async () => {
    const d = new Driver();
    await d.hello();
    const { port } = await d.ok('port.create', { concurrency: 1 });
    await d.ok('port.post', { port, key: 7, bytes: 42, token: 99 });
    expect(await d.ok('port.dequeue', { port, timeoutMs: 1000 })).toEqual({ kind: 'packet', packet: pkt(7, { bytes: 42, token: 99 }) });

    const big = 2 ** 53 - 1;
    const sent = [
      { key: 1, bytes: 2 ** 32 - 1, token: big, status: 'eof', nativeError: 104 },
      { key: big, bytes: 0, token: 0, status: 'pool-exhausted', nativeError: -2147483648 },
      { key: 0, bytes: 5, token: 123456789012345, status: 'invalid', nativeError: 2147483647 },
    ];
    for (const p of sent) await d.ok('port.post', { port, ...p });
    expect(await d.ok('port.dequeue', { port, timeoutMs: 0 })).toEqual({ kind: 'packet', packet: sent[0] });
    expect(await d.ok('port.dequeueMany', { port, max: 10, timeoutMs: 0 })).toEqual({ kind: 'packets', packets: sent.slice(1) });
    expect(await d.ok('port.dequeue', { port, timeoutMs: 0 })).toEqual({ kind: 'timeout' });
    expect(await d.ok('port.dequeue', { port, timeoutMs: 30 })).toEqual({ kind: 'timeout' });
    expect(await d.ok('port.dequeueMany', { port, max: 1, timeoutMs: 30 })).toEqual({ kind: 'timeout' });

    for (let k = 0; k < 10; k++) await d.ok('port.post', { port, key: k });
    const many = await d.ok('port.dequeueMany', { port, max: 4, timeoutMs: -1 });
    expect(many.packets.map((p: any) => p.key)).toEqual([0, 1, 2, 3]);
    const rest = await d.ok('port.close', { port });
    expect(rest.packets.map((p: any) => p.key)).toEqual([4, 5, 6, 7, 8, 9]);
  });

  it('a pending infinite dequeue does not hold up a later post (responses out of order)', async () => {
    const d = new Driver();
    await d.hello();
    const { port } = await d.ok('port.create', { concurrency: 1 });
    const other = (await d.ok('port.create', { concurrency: 1 })).port;
    const waitId = d.start('port.dequeue', { port, timeoutMs: -1 });
    const manyId = d.start('port.dequeueMany', { port: other, max: 8, timeoutMs: -1 });
    await sleep(100);
    // Later requests are answered while the dequeues are pending: their responses come first.
    const infoId = d.start('info');
    expect((await d.response(infoId)).result).toHaveProperty('name');
    const postId = d.start('port.post', { port, key: 11, token: 5 });
    expect((await d.response(postId)).result).toEqual({});
    const waited = await d.response(waitId);
    expect(waited.result).toEqual({ kind: 'packet', packet: pkt(11, { token: 5 }) });
    const idx = (id: number) => d.lines.findIndex((l) => JSON.parse(l).id === id);
    expect(idx(infoId)).toBeLessThan(idx(waitId));
    expect(idx(infoId)).toBeLessThan(idx(manyId) === -1 ? Infinity : idx(manyId));
    // The other pending batch dequeue is still there; a post releases it.
    await d.ok('port.post', { port: other, key: 1 });
    await d.ok('port.post', { port: other, key: 2 });
    const many = (await d.response(manyId)).result;
    expect(many.kind).toBe('packets');
    expect(many.packets.length).toBeGreaterThanOrEqual(1);
  });

  it('close wakes every waiter with closed and returns the leftover packets', async () => {
    const d = new Driver();
    await d.hello();
    const a = (await d.ok('port.create', { concurrency: 2 })).port;
    const w1 = d.start('port.dequeue', { port: a, timeoutMs: -1 });
    const w2 = d.start('port.dequeueMany', { port: a, max: 4, timeoutMs: -1 });
    const w3 = d.start('port.dequeue', { port: a, timeoutMs: 60_000 });
    await sleep(100);
    expect(await d.ok('port.close', { port: a })).toEqual({ packets: [] });
    for (const id of [w1, w2, w3]) expect((await d.response(id, 2000)).result).toEqual({ kind: 'closed' });

    const b = (await d.ok('port.create', { concurrency: 1 })).port;
    for (const key of [3, 1, 2]) await d.ok('port.post', { port: b, key, bytes: key * 10 });
    expect(await d.ok('port.close', { port: b })).toEqual({ packets: [pkt(3, { bytes: 30 }), pkt(1, { bytes: 10 }), pkt(2, { bytes: 20 })] });
    expect(await d.ok('port.close', { port: b })).toEqual({ packets: [] });
    const e = await d.err('port.post', { port: b, key: 1 });
    expect(e.code).toBe(-32000);
    expect(e.data).toEqual({ code: 'closed', nativeError: 0 });
    expect(await d.ok('port.dequeue', { port: b, timeoutMs: -1 })).toEqual({ kind: 'closed' });
    expect(await d.ok('port.dequeueMany', { port: b, max: 3, timeoutMs: 0 })).toEqual({ kind: 'closed' });
  });

  it('reset closes every port and forgets them', async () => {
    const d = new Driver();
    await d.hello();
    const p = (await d.ok('port.create', { concurrency: 1 })).port;
    const w = d.start('port.dequeue', { port: p, timeoutMs: -1 });
    await sleep(50);
    expect(await d.ok('reset')).toEqual({});
    expect((await d.response(w, 2000)).result).toEqual({ kind: 'closed' });
    expectInvalid(await d.err('port.post', { port: p, key: 1 }));
    const q = (await d.ok('port.create', { concurrency: 1 })).port;
    expect(q).not.toBe(p);
    await d.ok('port.post', { port: q, key: 1 });
  });
});

describe('workers.run', () => {
  function checkTrace(tr: any, programs: number): void {
    expect(Object.keys(tr).sort()).toEqual(['ev', 'key', 'leftover', 't', 'thread', 'threads', 'unfinished']);
    expect(tr.threads).toBe(programs);
    const n = tr.t.length;
    for (const k of ['thread', 'ev', 'key']) expect(tr[k].length, k).toBe(n);
    for (let i = 0; i < n; i++) {
      expect(Number.isInteger(tr.t[i]) && tr.t[i] >= 0).toBe(true);
      if (i > 0) expect(tr.t[i]).toBeGreaterThanOrEqual(tr.t[i - 1]);
      expect(tr.thread[i] === -1 || (tr.thread[i] >= 0 && tr.thread[i] < programs)).toBe(true);
      expect(tr.ev[i] >= 0 && tr.ev[i] <= 9).toBe(true);
      expect(tr.thread[i] === -1).toBe(tr.ev[i] === 9);
    }
    for (let th = 0; th < programs; th++) {
      const evs = tr.ev.filter((_: number, i: number) => tr.thread[i] === th);
      expect(evs[0], `thread ${th} starts`).toBe(0);
      expect(evs[evs.length - 1], `thread ${th} exits`).toBe(8);
    }
  }

  it('returns a well-formed trace', async () => {
    const d = new Driver();
    await d.hello();
    const { port } = await d.ok('port.create', { concurrency: 2 });
    const programs = [
      { steps: [{ op: 'post', key: 100, count: 5, bytes: 1 }], repeat: 2 },
      { steps: [{ op: 'dequeue', timeoutMs: 300 }, { op: 'spin', us: 10 }], repeat: -1 },
      { steps: [{ op: 'dequeue', timeoutMs: 300, max: 4 }, { op: 'block', us: 100 }], repeat: -1 },
    ];
    const tr = await d.ok('workers.run', { port, programs, options: { deadlineMs: 5000 } }, 10_000);
    checkTrace(tr, 3);
    const keysOf = (ev: number) => tr.key.filter((_: number, i: number) => tr.ev[i] === ev).sort((a: number, b: number) => a - b);
    const expected = [100, 101, 102, 103, 104, 105, 106, 107, 108, 109];
    expect(keysOf(7)).toEqual(expected); // post
    expect(keysOf(2)).toEqual(expected); // got
    expect(tr.unfinished).toBe(0);
    expect(tr.leftover).toBe(0);
    expect(tr.ev.filter((e: number) => e === 5).length).toBe(tr.ev.filter((e: number) => e === 6).length);
  });

  it('records the harness port-closed event as thread -1', async () => {
    const d = new Driver();
    await d.hello();
    const { port } = await d.ok('port.create', { concurrency: 1 });
    const tr = await d.ok(
      'workers.run',
      { port, programs: [{ steps: [{ op: 'dequeue', timeoutMs: -1 }], repeat: -1 }], options: { closeAfterMs: 50, deadlineMs: 5000 } },
      10_000,
    );
    checkTrace(tr, 1);
    expect(tr.thread).toContain(-1);
    expect(tr.ev).toContain(9);
    expect(tr.ev).toContain(4); // the worker saw closed
    expect(await d.ok('port.dequeue', { port, timeoutMs: 0 })).toEqual({ kind: 'closed' });
  });

  it('rejects bad programs', async () => {
    const d = new Driver();
    await d.hello();
    const { port } = await d.ok('port.create', { concurrency: 1 });
    const run = (params: unknown) => d.err('workers.run', params);
    expect((await run({ port })).code).toBe(-32602);
    expect((await run({ port, programs: {} })).code).toBe(-32602);
    expect((await run({ port, programs: [5] })).code).toBe(-32602);
    expect((await run({ port, programs: [{ steps: 'x' }] })).code).toBe(-32602);
    expect((await run({ port, programs: [{ steps: [{ op: 'spin' }] }] })).code).toBe(-32602);
    expect((await run({ port, programs: [{ steps: [{ op: 'spin', us: 1 }] }], options: 3 })).code).toBe(-32602);
    expectInvalid(await run({ port, programs: [] }));
    expectInvalid(await run({ port, programs: [{ steps: [] }] }));
    expectInvalid(await run({ port, programs: [{ steps: [{ op: 'fly' }] }] }));
    expectInvalid(await run({ port, programs: [{ steps: [{ op: 'spin', us: -1 }] }] }));
    expectInvalid(await run({ port, programs: [{ steps: [{ op: 'spin', us: 20_000_000 }] }] }));
    expectInvalid(await run({ port, programs: [{ steps: [{ op: 'dequeue', timeoutMs: -5 }] }] }));
    expectInvalid(await run({ port, programs: [{ steps: [{ op: 'dequeue', timeoutMs: 0, max: 5000 }] }] }));
    expectInvalid(await run({ port, programs: [{ steps: [{ op: 'spin', us: 1 }], repeat: -1 }] }));
    expectInvalid(await run({ port: 77, programs: [{ steps: [{ op: 'spin', us: 1 }] }] }));
    expectInvalid(await run({ port, programs: Array.from({ length: 257 }, () => ({ steps: [{ op: 'spin', us: 1 }] })) }));
  });

  it('a running workers.run does not hold up other requests', async () => {
    const d = new Driver();
    await d.hello();
    const { port } = await d.ok('port.create', { concurrency: 1 });
    const runId = d.start('workers.run', { port, programs: [{ steps: [{ op: 'dequeue', timeoutMs: -1 }], repeat: -1 }], options: { deadlineMs: 10_000 } });
    await sleep(100);
    const infoId = d.start('info');
    await d.response(infoId);
    await d.ok('port.close', { port });
    const tr = (await d.response(runId, 5000)).result;
    checkTrace(tr, 1);
    const idx = (id: number) => d.lines.findIndex((l) => JSON.parse(l).id === id);
    expect(idx(infoId)).toBeLessThan(idx(runId));
  });
});

describe('lifecycle', () => {
  it('exits 0 quickly on stdin EOF, even with a pending infinite dequeue', async () => {
    const d = new Driver();
    await d.hello();
    const { port } = await d.ok('port.create', { concurrency: 1 });
    d.start('port.dequeue', { port, timeoutMs: -1 });
    await sleep(50);
    d.proc.stdin.end();
    const r = await d.exitWithin(3000);
    expect(r).toEqual({ code: 0, signal: null });
  });

  it('shutdown answers {} and exits 0', async () => {
    const d = new Driver();
    await d.hello();
    expect(await d.ok('shutdown')).toEqual({});
    expect(await d.exitWithin(3000)).toEqual({ code: 0, signal: null });
  });

  it('survives random input lines (a small fuzz)', async () => {
    const d = new Driver();
    await d.hello();
    const { port } = await d.ok('port.create', { concurrency: 2 });
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const values: unknown[] = [0, 1, -1, 2, port, 1.5, -0.5, 2 ** 31, 2 ** 53, 2 ** 64, 1e308, '', 'x', 'ok', 'eof', null, true, [], {}, [1], { a: 1 }];
    const methods = ['port.create', 'port.post', 'port.dequeue', 'port.dequeueMany', 'port.close', 'cpspec.hello', 'info', 'nope', 'reset'];
    const fields = ['port', 'key', 'bytes', 'token', 'status', 'nativeError', 'timeoutMs', 'max', 'concurrency', 'protocol'];
    const template = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'port.post', params: { port, key: 1, bytes: 2, token: 3, status: 'ok', nativeError: 0 } });
    let sent = 0;
    for (let i = 0; i < 400; i++) {
      let line: string;
      const kind = rnd(4);
      if (kind === 0) {
        line = Array.from({ length: rnd(40) }, () => String.fromCharCode(rnd(2) ? 32 + rnd(95) : rnd(256))).join('');
      } else if (kind === 1) {
        line = template.slice(0, rnd(template.length));
      } else if (kind === 2) {
        const chars = [...template];
        for (let k = 0; k < 3; k++) chars[rnd(chars.length)] = String.fromCharCode(32 + rnd(95));
        line = chars.join('');
      } else {
        const params: Record<string, unknown> = {};
        for (let k = rnd(5); k > 0; k--) params[fields[rnd(fields.length)]] = values[rnd(values.length)];
        if (params.timeoutMs !== undefined && rnd(2)) params.timeoutMs = rnd(50); // keep most waits short
        line = JSON.stringify({ jsonrpc: '2.0', id: 1000 + i, method: methods[rnd(methods.length)], params: rnd(10) ? params : values[rnd(values.length)] });
      }
      line = line.replace(/[\r\n]/g, ' ');
      if (line.trim() === '') continue;
      d.send(line);
      sent++;
    }
    expect(sent).toBeGreaterThan(300);
    const last = await d.call('info', undefined, 10_000);
    expect(last.result.name).toBe('cpspec-native-driver');
    expect(d.isAlive).toBe(true);
    for (const l of d.lines) {
      const p = JSON.parse(l); // every stdout line is JSON
      expect(p.jsonrpc).toBe('2.0');
      expect('result' in p !== 'error' in p).toBe(true);
    }
    d.proc.stdin.end();
    expect(await d.exitWithin(4000)).toEqual({ code: 0, signal: null });
  });
});

describe('fault injection', () => {
  it('drop-every:N silently drops every Nth post', async () => {
    const d = new Driver(['--fault=drop-every:3']);
    await d.hello();
    const { port } = await d.ok('port.create', { concurrency: 1 });
    for (let k = 1; k <= 7; k++) expect(await d.ok('port.post', { port, key: k })).toEqual({});
    const { packets } = await d.ok('port.close', { port });
    expect(packets.map((p: any) => p.key)).toEqual([1, 2, 4, 5, 7]);
  });

  it('duplicate-every:N queues every Nth post twice', async () => {
    const d = new Driver(['--fault=duplicate-every:2']);
    await d.hello();
    const { port } = await d.ok('port.create', { concurrency: 1 });
    for (let k = 1; k <= 5; k++) await d.ok('port.post', { port, key: k });
    const { packets } = await d.ok('port.close', { port });
    expect(packets.map((p: any) => p.key)).toEqual([1, 2, 2, 3, 4, 4, 5]);
  });

  // Two workers on a concurrency-1 port, two packets queued; each worker dequeues once and then sleeps
  // 300 ms holding its slot. With the cap the second 'got' waits for the first worker to exit.
  async function secondGotBeforeFirstExit(args: string[]): Promise<boolean> {
    const d = new Driver(args);
    await d.hello();
    const { port } = await d.ok('port.create', { concurrency: 1 });
    await d.ok('port.post', { port, key: 1 });
    await d.ok('port.post', { port, key: 2 });
    const prog = { steps: [{ op: 'dequeue', timeoutMs: 3000 }, { op: 'sleep', us: 300_000 }], repeat: 1 };
    const tr = await d.ok('workers.run', { port, programs: [prog, prog], options: { deadlineMs: 10_000 } }, 15_000);
    const gots = tr.ev.flatMap((e: number, i: number) => (e === 2 ? [i] : []));
    expect(gots.length).toBe(2);
    const firstThread = tr.thread[gots[0]];
    const firstExit = tr.ev.findIndex((e: number, i: number) => e === 8 && tr.thread[i] === firstThread);
    return gots[1] < firstExit;
  }

  it('no-concurrency-cap ignores the requested concurrency', async () => {
    expect(await secondGotBeforeFirstExit([])).toBe(false);
    expect(await secondGotBeforeFirstExit(['--fault=no-concurrency-cap'])).toBe(true);
  });

  it('hang-after:N stops answering after N requests and stays alive', async () => {
    const d = new Driver(['--fault=hang-after:2']);
    await d.hello();
    await d.ok('info');
    const id = d.start('info');
    expect(await d.waitLine((_l, p) => p?.id === id, 500)).toBeUndefined();
    d.proc.stdin.end();
    expect(await d.exitWithin(500)).toBe('timeout');
    expect(d.lines.length).toBe(2);
    expect(d.stderr).toMatch(/hang-after/);
    d.kill();
  });

  it('crash-after:N aborts when request N+1 arrives', async () => {
    const d = new Driver(['--fault=crash-after:2']);
    await d.hello();
    await d.ok('info');
    d.start('info');
    const r = await d.exitWithin(5000);
    expect(r).not.toBe('timeout');
    if (r !== 'timeout') expect(r.signal === 'SIGABRT' || (r.code !== null && r.code !== 0)).toBe(true);
    expect(d.lines.length).toBe(2);
  });

  it('garbage-after:N writes a non-JSON line in place of response N+1', async () => {
    const d = new Driver(['--fault=garbage-after:1']);
    await d.hello();
    d.start('info');
    const garbage = await d.waitLine((l) => {
      try {
        JSON.parse(l);
        return false;
      } catch {
        return true;
      }
    });
    expect(garbage).toBeDefined();
    expect(d.lines.length).toBe(2);
    expect((await d.call('info')).result.name).toBe('cpspec-native-driver');
  });
});
