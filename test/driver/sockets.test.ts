// Socket (socket.*) and buffer pool (pool.*) methods of the standalone native driver (native/driver),
// spoken to over JSON-RPC lines (conformance/PROTOCOL.md). Linux only: elsewhere the driver has no sockets.
//
// The binary: see ./locate.ts (env CPSPEC_DRIVER, else the release build).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { driverPath } from './locate.ts';

let DRIVER = '';
const SANITIZER_REPORT = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|runtime error:|ThreadSanitizer: reported/;

interface RpcError {
  code: number;
  message: string;
  data?: { code: string; nativeError: number };
}
interface Response {
  id: number;
  result?: any;
  error?: RpcError;
}

class Client {
  readonly proc: ChildProcessWithoutNullStreams;
  stderr = '';
  private nextId = 1;
  private readonly answers = new Map<number, Response>();
  private readonly waiters = new Map<number, (r: Response) => void>();
  readonly exited: Promise<number | null>;

  constructor(args: string[] = []) {
    this.proc = spawn(DRIVER, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stdin.on('error', () => {});
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      const m = JSON.parse(line) as Response;
      const w = this.waiters.get(m.id);
      if (w) {
        this.waiters.delete(m.id);
        w(m);
      } else {
        this.answers.set(m.id, m);
      }
    });
    this.proc.stderr.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => resolve(code)));
    live.add(this);
  }

  call(method: string, params: unknown = {}, timeoutMs = 5000): Promise<Response> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no answer to ${method} within ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      this.waiters.set(id, (r) => {
        clearTimeout(t);
        resolve(r);
      });
      this.proc.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
    });
  }

  async ok(method: string, params: unknown = {}, timeoutMs = 5000): Promise<any> {
    const r = await this.call(method, params, timeoutMs);
    if (r.error) throw new Error(`${method} ${JSON.stringify(params)} failed: ${JSON.stringify(r.error)}`);
    return r.result;
  }

  async err(method: string, params: unknown = {}): Promise<RpcError> {
    const r = await this.call(method, params);
    if (!r.error) throw new Error(`${method} ${JSON.stringify(params)} succeeded, expected an error: ${JSON.stringify(r.result)}`);
    return r.error;
  }

  /** Dequeues one packet (waits up to ms). */
  async packet(port: number, ms = 5000): Promise<any> {
    const r = await this.ok('port.dequeue', { port, timeoutMs: ms }, ms + 5000);
    if (r.kind !== 'packet') throw new Error(`expected a packet, got ${JSON.stringify(r)}`);
    return r.packet;
  }
}

const live = new Set<Client>();

afterEach(async () => {
  const reports: string[] = [];
  for (const c of live) {
    c.proc.stdin.end();
    const t = setTimeout(() => c.proc.kill('SIGKILL'), 5000);
    await c.exited;
    clearTimeout(t);
    if (SANITIZER_REPORT.test(c.stderr)) reports.push(c.stderr);
  }
  live.clear();
  if (reports.length > 0) throw new Error(`sanitizer report(s) from the driver:\n${reports.join('\n---\n')}`);
});

beforeAll(() => {
  DRIVER = driverPath();
}, 600_000);

const b64 = (s: string) => Buffer.from(s).toString('base64');
const SOCKET_CAPS = ['sockets', 'sockets.zero-length-probe', 'sockets.partial-send-mode', 'fault-injection'];
const linux = process.platform === 'linux';

describe.runIf(linux)('socket back-end selection', () => {
  it('defaults to the best back-end and says which and why', async () => {
    const c = new Client();
    const info = await c.ok('info');
    expect(info.capabilities).toEqual(expect.arrayContaining(['port', 'pool', ...SOCKET_CAPS]));
    expect(['uring', 'epoll']).toContain(info.backend);
    expect(info.notes.join('\n')).toMatch(info.backend === 'uring' ? /io_uring available/ : /io_uring unavailable: .+; using epoll/);
  });

  it('--backend epoll picks epoll; an unknown back-end is exit 2', async () => {
    const c = new Client(['--backend', 'epoll']);
    const info = await c.ok('info');
    expect(info.backend).toBe('epoll');
    expect(info.notes.join('\n')).toMatch(/epoll/);
    const c2 = new Client(['--backend=epoll']);
    expect((await c2.ok('info')).backend).toBe('epoll');
    const bad = spawnSync(DRIVER, ['--backend', 'kqueue'], { encoding: 'utf8', input: '' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/unknown back-end 'kqueue'/);
    expect(spawnSync(DRIVER, ['--backend'], { encoding: 'utf8', input: '' }).status).toBe(2);
    expect(spawnSync(DRIVER, ['--help'], { encoding: 'utf8' }).stdout).toContain('--backend epoll|uring');
  });
});

for (const args of [[], ['--backend', 'epoll']]) {
  describe.runIf(linux)(`sockets (${args.length ? args.join(' ') : 'default back-end'})`, () => {
    it('accept, connect, send and recv: completions carry op, socket and base64 data', async () => {
      const c = new Client(args);
      const { port } = await c.ok('port.create', { concurrency: 1 });
      const l = await c.ok('socket.listen', { port, key: 1 });
      expect(l.address.host).toBe('127.0.0.1');
      expect(l.address.port).toBeGreaterThan(0);
      const { op: acceptOp } = await c.ok('socket.accept', { socket: l.socket, token: 10, newKey: 2 });
      const conn = await c.ok('socket.connect', { port, key: 3, token: 11, host: '127.0.0.1', remotePort: l.address.port });
      expect(conn.socket).toBeGreaterThan(0);
      const got = [await c.packet(port), await c.packet(port)];
      const accepted = got.find((p) => p.op === acceptOp);
      const connected = got.find((p) => p.op === conn.op);
      expect(accepted).toMatchObject({ key: 1, token: 10, status: 'ok' });
      expect(accepted.socket).toBeGreaterThan(0);
      expect(connected).toMatchObject({ key: 3, token: 11, status: 'ok' });
      expect(connected.data).toBeUndefined();

      const payload = 'hello, \u00e9 world\n';
      const { op: sendOp } = await c.ok('socket.send', { socket: conn.socket, data: b64(payload), token: 20 });
      const sent = await c.packet(port);
      expect(sent).toMatchObject({ key: 3, token: 20, op: sendOp, status: 'ok', bytes: Buffer.byteLength(payload) });
      const { op: recvOp } = await c.ok('socket.recv', { socket: accepted.socket, length: 4096, token: 21 });
      const r = await c.packet(port);
      expect(r).toMatchObject({ key: 2, token: 21, op: recvOp, status: 'ok', bytes: Buffer.byteLength(payload) });
      expect(Buffer.from(r.data, 'base64').toString()).toBe(payload);

      // A zero-length probe consumes nothing; eof after the peer shuts its sending side.
      await c.ok('socket.send', { socket: accepted.socket, data: b64('xy'), token: 30 });
      expect((await c.packet(port)).bytes).toBe(2);
      await c.ok('socket.recv', { socket: conn.socket, length: 0, token: 31 });
      expect(await c.packet(port)).toMatchObject({ token: 31, bytes: 0, status: 'ok' });
      await c.ok('socket.recv', { socket: conn.socket, length: 10, token: 32 });
      const xy = await c.packet(port);
      expect(Buffer.from(xy.data, 'base64').toString()).toBe('xy');
      expect(await c.ok('socket.shutdown', { socket: accepted.socket, how: 'send' })).toEqual({});
      await c.ok('socket.recv', { socket: conn.socket, length: 10, token: 33 });
      expect(await c.packet(port)).toMatchObject({ token: 33, status: 'eof', bytes: 0 });
      expect(await c.ok('socket.close', { socket: conn.socket })).toEqual({});
      expect(await c.ok('socket.close', { socket: accepted.socket, abortive: true })).toEqual({});
      expect(await c.ok('socket.close', { socket: l.socket })).toEqual({});
    });

    it('a large send arrives whole at a node peer; recv data from a node peer round-trips', async () => {
      const c = new Client(args);
      const { port } = await c.ok('port.create', { concurrency: 1 });
      const chunks: Buffer[] = [];
      let peer: net.Socket | undefined;
      const server = net.createServer((s) => {
        peer = s;
        s.on('data', (d) => chunks.push(d));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      try {
        const { port: remotePort } = server.address() as net.AddressInfo;
        const conn = await c.ok('socket.connect', { port, key: 7, token: 1, remotePort });
        expect(await c.packet(port)).toMatchObject({ op: conn.op, status: 'ok' });
        const big = Buffer.alloc(3 * 1024 * 1024 + 5);
        for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
        await c.ok('socket.setBuffers', { socket: conn.socket, send: 8192 });
        await c.ok('socket.send', { socket: conn.socket, data: big.toString('base64'), token: 2 });
        expect(await c.packet(port, 20000)).toMatchObject({ token: 2, status: 'ok', bytes: big.length });
        for (let i = 0; i < 200 && Buffer.concat(chunks).length < big.length; i++) await new Promise((r) => setTimeout(r, 20));
        expect(Buffer.concat(chunks).equals(big)).toBe(true);
        const back = Buffer.from([0, 1, 2, 255, 254, 10, 13]);
        peer!.write(back);
        await c.ok('socket.recv', { socket: conn.socket, length: 100, token: 3 });
        const p = await c.packet(port);
        expect(Buffer.from(p.data, 'base64').equals(back)).toBe(true);
        // Injected faults: a 3-byte cap on system calls, then a failed recv call.
        await c.ok('socket.setFaults', { socket: conn.socket, maxBytesPerCall: 3, failNth: { call: 'recv', n: 2, errno: 104 } });
        peer!.write('abcdef');
        await new Promise((r) => setTimeout(r, 50));
        await c.ok('socket.recv', { socket: conn.socket, length: 100, token: 4 });
        const first = await c.packet(port);
        expect(first).toMatchObject({ token: 4, status: 'ok', bytes: 3 });
        expect(Buffer.from(first.data, 'base64').toString()).toBe('abc');
        await c.ok('socket.recv', { socket: conn.socket, length: 100, token: 5 });
        expect(await c.packet(port)).toMatchObject({ token: 5, status: 'reset', nativeError: 104 });
      } finally {
        peer?.destroy();
        server.close();
      }
    });

    it('cancel, close with pending operations, and port.close keep the socket fields', async () => {
      const c = new Client(args);
      const { port } = await c.ok('port.create', { concurrency: 1 });
      const l = await c.ok('socket.listen', { port, key: 1, bindPort: 0, backlog: 4 });
      const { op: a1 } = await c.ok('socket.accept', { socket: l.socket, token: 1, newKey: 9 });
      expect(await c.ok('socket.cancel', { socket: l.socket, op: a1 })).toEqual({ result: 'ok' });
      expect(await c.packet(port)).toMatchObject({ op: a1, status: 'aborted', token: 1 });
      expect(await c.ok('socket.cancel', { socket: l.socket, op: a1 })).toEqual({ result: 'not-found' });
      expect(await c.ok('socket.cancel', { socket: l.socket })).toEqual({ result: 'not-found' });
      const { op: a2 } = await c.ok('socket.accept', { socket: l.socket, token: 2, newKey: 9 });
      await c.ok('socket.close', { socket: l.socket });
      expect(await c.packet(port)).toMatchObject({ op: a2, status: 'aborted' });
      expectCode(await c.err('socket.accept', { socket: l.socket, token: 3, newKey: 9 }), 'invalid');

      // A completed recv left in the port: port.close hands it back with its data.
      const l2 = await c.ok('socket.listen', { port, key: 1 });
      await c.ok('socket.accept', { socket: l2.socket, token: 1, newKey: 2 });
      const conn = await c.ok('socket.connect', { port, key: 3, token: 2, remotePort: l2.address.port });
      const acc = [await c.packet(port), await c.packet(port)].find((p) => p.key === 1);
      await c.ok('socket.send', { socket: conn.socket, data: b64('kept'), token: 5 });
      await c.packet(port);
      const { op: recvOp } = await c.ok('socket.recv', { socket: acc.socket, length: 64, token: 6 });
      await new Promise((r) => setTimeout(r, 200));
      const { packets } = await c.ok('port.close', { port });
      const recv = packets.find((p: any) => p.op === recvOp);
      expect(recv).toMatchObject({ key: 2, token: 6, status: 'ok', bytes: 4 });
      expect(Buffer.from(recv.data, 'base64').toString()).toBe('kept');
    });

    it('checks params: -32602 for types, -32000 invalid for unknown sockets and bad values', async () => {
      const c = new Client(args);
      const { port } = await c.ok('port.create', { concurrency: 1 });
      for (const [m, p] of [
        ['socket.listen', { port, key: 'x' }],
        ['socket.listen', { port, key: 1, host: 5 }],
        ['socket.recv', { socket: '1', length: 1, token: 0 }],
        ['socket.send', { socket: 1, data: 'not base64!', token: 0 }],
        ['socket.send', { socket: 1, data: 5, token: 0 }],
        ['socket.send', { socket: 1, data: 'AA==', token: 0, partial: 'yes' }],
        ['socket.shutdown', { socket: 1, how: 'sideways' }],
        ['socket.close', { socket: 1, abortive: 1 }],
        ['socket.setFaults', { socket: 1, failNth: { call: 'accept', n: 1, errno: 5 } }],
        ['socket.setFaults', { socket: 1, failNth: 3 }],
      ] as const) {
        expect((await c.err(m, p)).code, `${m} ${JSON.stringify(p)}`).toBe(-32602);
      }
      for (const [m, p] of [
        ['socket.recv', { socket: 99, length: 1, token: 0 }],
        ['socket.send', { socket: 99, data: 'AA==', token: 0 }],
        ['socket.close', { socket: 99 }],
        ['socket.cancel', { socket: 99 }],
        ['socket.setBuffers', { socket: 99, send: 4096 }],
        ['socket.recv', { socket: 0, length: 1, token: 0 }],
        ['socket.recv', { socket: 1.5, length: 1, token: 0 }],
        ['socket.connect', { port, key: 1, token: 0, remotePort: 0 }],
        ['socket.connect', { port: 999, key: 1, token: 0, remotePort: 80 }],
        ['socket.listen', { port, key: 1, host: 'example.com' }],
      ] as const) {
        expectCode(await c.err(m, p), 'invalid');
      }
      // A refused connect is a completion, not a synchronous failure.
      const l = await c.ok('socket.listen', { port, key: 1 });
      await c.ok('socket.close', { socket: l.socket });
      const conn = await c.ok('socket.connect', { port, key: 4, token: 8, remotePort: l.address.port });
      expect(await c.packet(port)).toMatchObject({ op: conn.op, key: 4, token: 8, status: 'refused' });
      // Pool-backed recv: not on a listener, not as a probe, not with an unknown pool; session limits only
      // on listeners, with a base64 message of at most 4096 bytes.
      const { pool } = await c.ok('pool.create', { bufferSize: 64, count: 1 });
      const s = await c.ok('socket.listen', { port, key: 1 });
      expectCode(await c.err('socket.recv', { socket: s.socket, length: 1, token: 0, pool }), 'invalid');
      expectCode(await c.err('socket.recv', { socket: s.socket, length: 1, token: 0, pool: 77 }), 'not-found');
      const conn2 = await c.ok('socket.connect', { port, key: 5, token: 9, remotePort: s.address.port });
      expectCode(await c.err('socket.recv', { socket: conn2.socket, length: 0, token: 0, pool }), 'invalid');
      expectCode(await c.err('socket.limitSessions', { socket: conn2.socket, max: 1 }), 'invalid');
      expect((await c.err('socket.limitSessions', { socket: s.socket, max: 1, fullMessage: '!!' })).code).toBe(-32602);
      expectCode(await c.err('socket.limitSessions', { socket: s.socket, max: 1, fullMessage: Buffer.alloc(5000).toString('base64') }), 'invalid');
      expect(await c.ok('socket.limitSessions', { socket: s.socket, max: 3, fullMessage: 'RlVMTA==' })).toEqual({});
      expect(await c.ok('socket.sessionStats', { socket: s.socket })).toEqual({ max: 3, active: 0, refused: 0 });
    });

    it('reset shuts the sockets down: pending operations complete aborted before the ports close', async () => {
      const c = new Client(args);
      const { port } = await c.ok('port.create', { concurrency: 1 });
      const l = await c.ok('socket.listen', { port, key: 1 });
      await c.ok('socket.accept', { socket: l.socket, token: 1, newKey: 2 });
      const waiting = c.ok('port.dequeue', { port, timeoutMs: -1 });
      expect(await c.ok('reset')).toEqual({});
      const r = await waiting;
      expect(r.kind === 'closed' || (r.kind === 'packet' && r.packet.status === 'aborted')).toBe(true);
      expectCode(await c.err('socket.close', { socket: l.socket }), 'invalid');
      // Sockets work again after the reset (a new back-end).
      const { port: p2 } = await c.ok('port.create', { concurrency: 1 });
      const l2 = await c.ok('socket.listen', { port: p2, key: 5 });
      const { op } = await c.ok('socket.accept', { socket: l2.socket, token: 1, newKey: 6 });
      const conn = await c.ok('socket.connect', { port: p2, key: 7, token: 2, remotePort: l2.address.port });
      const ops = [(await c.packet(p2)).op, (await c.packet(p2)).op].sort();
      expect(ops).toEqual([op, conn.op].sort());
    });
  });
}

function expectCode(e: RpcError, code: string): void {
  expect(e.code, e.message).toBe(-32000);
  expect(e.data?.code, e.message).toBe(code);
}

describe('buffer pools', () => {
  it('create, acquire, release, stats and destroy', async () => {
    const c = new Client();
    expect((await c.ok('info')).capabilities).toContain('pool');
    const { pool } = await c.ok('pool.create', { bufferSize: 100, count: 2 });
    expect(await c.ok('pool.acquire', { pool })).toEqual({ kind: 'buffer', id: 0 });
    const b = await c.ok('pool.acquire', { pool, waitMs: 0 });
    expect(b.kind).toBe('buffer');
    expect(await c.ok('pool.acquire', { pool })).toEqual({ kind: 'exhausted' });
    expect(await c.ok('pool.stats', { pool })).toEqual({ total: 2, inUse: 2, available: 0, highWater: 2, failedAcquires: 1 });
    expect(await c.ok('pool.release', { pool, buffer: 0 })).toEqual({ result: 'ok' });
    expect(await c.ok('pool.release', { pool, buffer: 0 })).toEqual({ result: 'double-release' });
    for (const buffer of [2, -1, 1.5, 2 ** 40]) expect(await c.ok('pool.release', { pool, buffer })).toEqual({ result: 'foreign' });
    expect(await c.ok('pool.stats', { pool })).toMatchObject({ inUse: 1, available: 1 });
    expect(await c.ok('pool.destroy', { pool })).toEqual({});
    for (const m of ['pool.acquire', 'pool.stats', 'pool.destroy']) expectCode(await c.err(m, { pool }), 'not-found');
    expectCode(await c.err('pool.release', { pool, buffer: 0 }), 'not-found');
  });

  it('a bounded wait runs apart: it does not hold up other requests, and ends with a release or exhausted', async () => {
    const c = new Client();
    const { pool } = await c.ok('pool.create', { bufferSize: 64, count: 1 });
    await c.ok('pool.acquire', { pool });
    const t0 = Date.now();
    const waiting = c.ok('pool.acquire', { pool, waitMs: 2000 });
    expect(await c.ok('pool.stats', { pool })).toMatchObject({ inUse: 1 });
    expect(await c.ok('pool.release', { pool, buffer: 0 })).toEqual({ result: 'ok' });
    expect(await waiting).toEqual({ kind: 'buffer', id: 0 });
    expect(Date.now() - t0).toBeLessThan(1500);
    const t1 = Date.now();
    expect(await c.ok('pool.acquire', { pool, waitMs: 100 })).toEqual({ kind: 'exhausted' });
    expect(Date.now() - t1).toBeGreaterThanOrEqual(90);
    // Destroying a pool with a wait pending: the wait still ends (exhausted), the handle is gone.
    const pending = c.ok('pool.acquire', { pool, waitMs: 300 });
    expect(await c.ok('pool.destroy', { pool })).toEqual({});
    expect(await pending).toEqual({ kind: 'exhausted' });
  });

  it('checks params and sizes; reset destroys every pool', async () => {
    const c = new Client();
    expect((await c.err('pool.create', { bufferSize: '64', count: 1 })).code).toBe(-32602);
    expect((await c.err('pool.acquire', { pool: 'a' })).code).toBe(-32602);
    expect((await c.err('pool.release', { pool: 1 })).code).toBe(-32602);
    for (const p of [{ bufferSize: 0, count: 1 }, { bufferSize: 64, count: 0 }, { bufferSize: 2 ** 30 + 1, count: 1 }, { bufferSize: 2 ** 30, count: 2 ** 7 }, { bufferSize: 1.5, count: 1 }]) {
      expectCode(await c.err('pool.create', p), 'invalid');
    }
    const { pool } = await c.ok('pool.create', { bufferSize: 1, count: 3 });
    for (const waitMs of [-1, 2 ** 31, 0.5]) expectCode(await c.err('pool.acquire', { pool, waitMs }), 'invalid');
    expectCode(await c.err('pool.stats', { pool: 42 }), 'not-found');
    expect(await c.ok('reset')).toEqual({});
    expectCode(await c.err('pool.stats', { pool }), 'not-found');
    expect((await c.ok('pool.create', { bufferSize: 64, count: 1 })).pool).toBe(1);
  });
});
