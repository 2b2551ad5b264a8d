// Socket scenario building blocks. The peer side of every connection is plain Node `net` on 127.0.0.1,
// controlled by the case (segment-by-segment writes, half-close, reset, slow reading); the target side is
// reached only through the Target interface, so the same cases run on the model, native back-ends and
// drivers.
import assert from 'node:assert/strict';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import { CAPABILITIES, TargetError, type Packet, type PortId, type SocketApi, type SocketId, type Target } from '../../reference/src/target.ts';
import type { CaseContext } from '../types.ts';
import { sleep } from './helpers.ts';

export const HOST = '127.0.0.1';
/** Default wait for a completion that must come. */
export const WAIT_MS = 5000;
/** How long "no further packet" is watched for. */
export const QUIET_MS = 200;

/** The target's SocketApi, or the case stops as unsupported. */
export function socketsOf(t: Target, ctx: CaseContext): SocketApi {
  if (t.sockets === undefined) ctx.unsupported(`the target declares '${CAPABILITIES.sockets}' but exposes no SocketApi`);
  return t.sockets;
}

/** Deterministic, non-periodic test bytes (an xorshift stream): reordered or repeated chunks show up. */
export function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Asserts two byte strings are equal, naming the first difference (never dumps megabytes). */
export function assertBytes(got: Uint8Array, want: Uint8Array, what: string): void {
  const n = Math.min(got.length, want.length);
  let i = 0;
  while (i < n && got[i] === want[i]) i++;
  if (i === n && got.length === want.length) return;
  if (i < n) assert.fail(`${what}: ${got.length} bytes vs ${want.length} expected, first difference at offset ${i} (got ${got[i]}, expected ${want[i]})`);
  assert.fail(`${what}: got ${got.length} bytes, expected ${want.length} (equal up to ${n})`);
}

// ------------------------------------------------------------------------------------------ completions

export function describePacket(p: Packet): string {
  return `{op ${p.op ?? '-'}, key ${p.key}, token ${p.token}, status ${p.status}, bytes ${p.bytes}, nativeError ${p.nativeError}${p.socket !== undefined ? `, socket ${p.socket}` : ''}}`;
}

/**
 * Reads the completions of one port. Every packet is counted per operation id: a second packet for an
 * operation fails at once. Packets for operations nobody waits for yet are kept for a later wait().
 */
export class Completions {
  private readonly t: Target;
  private readonly port: PortId;
  private stash: Packet[] = [];
  private readonly count = new Map<number, number>();
  constructor(t: Target, port: PortId) {
    this.t = t;
    this.port = port;
  }

  /** The completion of op, within ms (a missing completion fails naming `what`). */
  async wait(op: number, what: string, ms = WAIT_MS): Promise<Packet> {
    const i = this.stash.findIndex((p) => p.op === op);
    if (i >= 0) return this.stash.splice(i, 1)[0];
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`${what} (op ${op}): no completion within ${ms} ms`);
      const r = await this.t.dequeue(this.port, Math.max(1, Math.min(left, 2 ** 31 - 1)));
      if (r.kind === 'closed') assert.fail(`${what} (op ${op}): the port was closed while waiting`);
      if (r.kind === 'timeout') continue;
      const p = this.record(r.packet);
      if (p.op === op) return p;
      this.stash.push(p);
    }
  }

  /** The next completion of any of ops, within ms. */
  async waitAny(ops: readonly number[], what: string, ms = WAIT_MS): Promise<Packet> {
    const set = new Set(ops);
    const i = this.stash.findIndex((p) => p.op !== undefined && set.has(p.op));
    if (i >= 0) return this.stash.splice(i, 1)[0];
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`${what}: no completion within ${ms} ms`);
      const r = await this.t.dequeue(this.port, Math.max(1, left));
      if (r.kind === 'closed') assert.fail(`${what}: the port was closed while waiting`);
      if (r.kind === 'timeout') continue;
      const p = this.record(r.packet);
      if (p.op !== undefined && set.has(p.op)) return p;
      this.stash.push(p);
    }
  }

  /** Asserts op does not complete within ms (it stays pending); a completion that comes is kept. */
  async stillPending(op: number, what: string, ms = QUIET_MS): Promise<void> {
    const early = this.stash.find((p) => p.op === op);
    if (early !== undefined) assert.fail(`${what} (op ${op}) completed but should still be pending: ${describePacket(early)}`);
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      const r = await this.t.dequeue(this.port, left);
      if (r.kind !== 'packet') return;
      const p = this.record(r.packet);
      assert.notEqual(p.op, op, `${what} (op ${op}) completed but should still be pending: ${describePacket(p)}`);
      this.stash.push(p);
    }
  }

  /**
   * Exactly-once check: watches the port for ms and fails on any packet (every expected completion has
   * been taken by then; a packet now is a second completion or a stray one), and on any packet left over.
   */
  async quiet(what: string, ms = QUIET_MS): Promise<void> {
    assert.equal(this.stash.length, 0, `${what}: unexpected completion(s) ${this.stash.map(describePacket).join(', ')}`);
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      const r = await this.t.dequeue(this.port, left);
      if (r.kind !== 'packet') return;
      const p = this.record(r.packet);
      assert.fail(`${what}: unexpected packet ${describePacket(p)} (a second completion, or one for nothing pending)`);
    }
  }

  private record(p: Packet): Packet {
    if (p.op !== undefined) {
      const n = (this.count.get(p.op) ?? 0) + 1;
      this.count.set(p.op, n);
      assert.ok(n === 1, `operation ${p.op} completed ${n} times: ${describePacket(p)}`);
    }
    return p;
  }
}

export function assertStatus(p: Packet, status: string, bytes: number | undefined, what: string): void {
  assert.equal(p.status, status, `${what}: expected status ${status}, got ${describePacket(p)}`);
  if (bytes !== undefined) assert.equal(p.bytes, bytes, `${what}: expected ${bytes} bytes, got ${describePacket(p)}`);
}

/** recv data of a packet (bytes === data.length is checked). */
export function dataOf(p: Packet, what: string): Uint8Array {
  const d = p.data ?? new Uint8Array(0);
  assert.equal(d.length, p.bytes, `${what}: packet.data has ${d.length} bytes but packet.bytes is ${p.bytes}`);
  return d;
}

/**
 * Receives until eof (or `until` bytes), one recv at a time with `length`. Every ok completion must carry
 * at least one byte (a 0-byte ok for a non-empty buffer would be a disguised eof).
 */
export async function recvUntilEof(s: SocketApi, c: Completions, socket: SocketId, length: number | ((i: number) => number), what: string): Promise<{ data: Uint8Array; eof: Packet; recvs: number }> {
  const parts: Uint8Array[] = [];
  for (let i = 0; ; i++) {
    const len = typeof length === 'number' ? length : length(i);
    const op = await s.recv(socket, { length: len, token: 1000 + i });
    const p = await c.wait(op, `${what}: recv #${i + 1}`);
    if (p.status === 'eof') {
      assert.equal(p.bytes, 0, `${what}: eof with ${p.bytes} bytes`);
      return { data: concat(parts), eof: p, recvs: i + 1 };
    }
    assertStatus(p, 'ok', undefined, `${what}: recv #${i + 1}`);
    assert.ok(p.bytes > 0, `${what}: recv #${i + 1} of ${len} bytes completed ok with 0 bytes before eof`);
    assert.ok(p.bytes <= len, `${what}: recv #${i + 1} of ${len} bytes reported ${p.bytes}`);
    parts.push(dataOf(p, what));
  }
}

/** Receives exactly n bytes (recv of up to `length` each). */
export async function recvExactly(s: SocketApi, c: Completions, socket: SocketId, n: number, length: number, what: string): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let got = 0;
  for (let i = 0; got < n; i++) {
    const op = await s.recv(socket, { length: Math.min(length, n - got), token: 2000 + i });
    const p = await c.wait(op, `${what}: recv #${i + 1} (${got} of ${n} bytes so far)`);
    assertStatus(p, 'ok', undefined, `${what}: recv #${i + 1} (${got} of ${n} bytes so far)`);
    assert.ok(p.bytes > 0, `${what}: recv #${i + 1} completed ok with 0 bytes`);
    parts.push(dataOf(p, what));
    got += p.bytes;
  }
  return concat(parts);
}

// ------------------------------------------------------------------------------------------------ peer

/** The peer end of one connection, with everything it received recorded. */
export class Peer {
  readonly sock: net.Socket;
  private parts: Buffer[] = [];
  received = 0;
  ended = false;
  error: Error | undefined;
  closed = false;
  private waiters: (() => void)[] = [];

  constructor(sock: net.Socket) {
    this.sock = sock;
    sock.on('data', (b: Buffer) => {
      this.parts.push(b);
      this.received += b.length;
      this.poke();
    });
    sock.on('end', () => {
      this.ended = true;
      this.poke();
    });
    sock.on('error', (e) => {
      this.error = e;
      this.poke();
    });
    sock.on('close', () => {
      this.closed = true;
      this.poke();
    });
  }

  /** Everything received so far. */
  data(): Uint8Array {
    const b = Buffer.concat(this.parts);
    this.parts = [b];
    return new Uint8Array(b.buffer, b.byteOffset, b.length);
  }

  /** Writes one segment and waits until Node handed it to the kernel. */
  write(data: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => this.sock.write(data, (e) => (e ? reject(e) : resolve())));
  }

  /** Writes segments one at a time, letting each leave separately (a macrotask between them). */
  async writeSegments(segments: Uint8Array[]): Promise<void> {
    for (const seg of segments) {
      await this.write(seg);
      await new Promise((r) => setImmediate(r));
    }
  }

  /** Graceful half-close (FIN). */
  end(): Promise<void> {
    return new Promise((resolve) => this.sock.end(() => resolve()));
  }

  /** Abortive close (RST). */
  reset(): void {
    this.sock.resetAndDestroy();
  }

  pause(): void {
    this.sock.pause();
  }

  resume(): void {
    this.sock.resume();
  }

  destroy(): void {
    this.sock.destroy();
  }

  /** Waits until cond() holds (checked on every peer event and every 20 ms), or fails naming `what`. */
  async until(cond: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`peer: ${what} did not happen within ${ms} ms (received ${this.received} bytes, ended ${this.ended}, error ${this.error?.message ?? 'none'})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(20, left));
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.push(done);
      });
    }
  }

  private poke(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }
}

/** A peer listener on 127.0.0.1: connections are kept in arrival order. */
export class PeerServer {
  readonly server: net.Server;
  port = 0;
  private readonly arrived: Peer[] = [];
  private taken = 0;
  private constructor(server: net.Server) {
    this.server = server;
  }

  static async listen(): Promise<PeerServer> {
    const server = net.createServer({ allowHalfOpen: true });
    const ps = new PeerServer(server);
    server.on('connection', (c) => ps.arrived.push(new Peer(c)));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: HOST, port: 0 }, () => resolve());
    });
    ps.port = (server.address() as net.AddressInfo).port;
    return ps;
  }

  /** The next connection that arrived (in order), within ms. */
  async next(ms = WAIT_MS): Promise<Peer> {
    const deadline = Date.now() + ms;
    while (this.arrived.length <= this.taken) {
      if (Date.now() > deadline) assert.fail(`peer listener: no connection arrived within ${ms} ms`);
      await sleep(5);
    }
    return this.arrived[this.taken++];
  }

  close(): void {
    this.server.close();
    for (const p of this.arrived) p.destroy();
  }
}

/** A peer client connected to the target's listener. */
export function peerConnect(port: number): Promise<Peer> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host: HOST, port, allowHalfOpen: true });
    const peer = new Peer(c);
    c.once('connect', () => resolve(peer));
    c.once('error', reject);
  });
}

/** A TCP port on 127.0.0.1 with nothing listening (bound, then released). */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen({ host: HOST, port: 0 }, () => resolve());
  });
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/**
 * A listener that never accepts (its thread is blocked): once its accept queue is full, the kernel drops
 * further SYNs, so a connect to it stays in flight. stop() releases the thread and closes everything.
 */
export async function stalledListener(): Promise<{ port: number; stop(): Promise<void> }> {
  const shared = new Int32Array(new SharedArrayBuffer(4));
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const net = require('node:net');
    const server = net.createServer();
    server.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
      parentPort.postMessage(server.address().port);
      Atomics.wait(workerData, 0, 0);
      server.close();
      process.exit(0);
    });`;
  const w = new Worker(code, { eval: true, workerData: shared });
  const port = await new Promise<number>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  return {
    port,
    async stop() {
      Atomics.store(shared, 0, 1);
      Atomics.notify(shared, 0);
      await Promise.race([new Promise((r) => w.once('exit', r)), sleep(2000)]);
      await w.terminate();
    },
  };
}

// ----------------------------------------------------------------------------------------- connections

/** Things to undo when a case ends (run last-first, errors ignored). */
export type Cleanup = (() => unknown)[];

export interface Connected {
  /** The target's connected socket. */
  socket: SocketId;
  peer: Peer;
}

/** The target connects to a fresh peer listener (key = `key`); returns the connected pair. */
export async function connectToPeer(t: Target, s: SocketApi, c: Completions, port: PortId, key: number, cleanup: Cleanup): Promise<Connected> {
  const server = await PeerServer.listen();
  cleanup.push(() => server.close());
  const { socket, op } = await s.connect(port, { key, token: key, host: HOST, remotePort: server.port });
  cleanup.push(() => closeQuietly(s, socket));
  const p = await c.wait(op, `connect to the peer on ${HOST}:${server.port}`);
  assertStatus(p, 'ok', undefined, 'connect');
  const peer = await server.next();
  return { socket, peer };
}

/** Runs fn with a port and a cleanup list; closes the port and runs the cleanups however fn ends. */
export async function withSocketPort(t: Target, fn: (port: PortId, c: Completions, cleanup: Cleanup) => Promise<void>): Promise<void> {
  const port = await t.createPort(0);
  const cleanup: Cleanup = [];
  try {
    await fn(port, new Completions(t, port), cleanup);
  } finally {
    for (const f of cleanup.reverse()) {
      try {
        await f();
      } catch {
        // best effort
      }
    }
    await t.closePort(port).catch(() => undefined);
  }
}

/** Closes a target socket, ignoring 'invalid' (already closed). */
export async function closeQuietly(s: SocketApi, socket: SocketId): Promise<void> {
  await s.close(socket).catch((e) => {
    if (!(e instanceof TargetError)) throw e;
  });
}

/** Asserts a call is rejected with TargetError('invalid') (nothing queued for it). */
export async function rejectsInvalid(p: Promise<unknown>, what: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof TargetError, `${what}: expected a TargetError, got ${String(e)}`);
    assert.equal(e.code, 'invalid', `${what}: expected 'invalid', got '${e.code}' (${e.message})`);
    return;
  }
  assert.fail(`${what}: succeeded where it must be rejected as invalid`);
}
