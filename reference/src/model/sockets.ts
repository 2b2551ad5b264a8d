// The model's sockets: the reference socket semantics (SocketApi in ../target.ts, backend.h in
// native/core) layered on real loopback TCP streams from Node's `net` module. Every operation is queued
// on the model socket and completes exactly once, as one packet posted into the model port the socket is
// associated with (key = the socket's key, or the listener's key for an accept).
//
// Rules (the native back-ends implement the same; see native/core/backend.h):
// - recv (length > 0) completes as soon as any data is available, with at most `length` bytes (and at most
//   faults.maxBytesPerCall). Receives complete in submission order (one FIFO per socket).
// - Graceful close by the peer: every receive completes with status eof and 0 bytes once all data before
//   the FIN was delivered; eof is sticky.
// - Peer reset: the receive completes with status reset (ECONNRESET) and 0 bytes, never a 0-byte success;
//   every later recv and send completes with reset too.
// - A probe (length 0) pends until the socket is readable; it completes ok/0 consuming nothing, eof/0 when
//   the peer closed and nothing is left, reset on RST.
// - send, default mode: completes with every byte or with an error whose bytes are the exact prefix handed
//   to the kernel. partial = true: the send completes after one "system call" with the bytes it took. The
//   model's call takes min(remaining, faults.maxBytesPerCall, the send-buffer size recorded by setBuffers,
//   CHUNK) bytes: Node cannot set SO_SNDBUF nor make a non-blocking send(2), so the recorded size stands
//   in for what the kernel would have accepted. Sends are transmitted in submission order, one at a time.
// - close: every pending operation completes exactly once with aborted (ECANCELED) and 0 bytes (a send:
//   the exact prefix already in the kernel, as the native back-ends report it); the socket id is
//   forgotten, so later calls reject with TargetError('invalid'). abortive: linger 0 (RST).
// - cancel: pending operations complete with aborted; unread data stays for the next recv. A send that is
//   under way completes (aborted) with bytes = the exact prefix consumed (the chunks confirmed plus the one
//   already handed to Node, which still reaches the peer). Nothing pending: 'not-found', no packet.
// - shutdown queues no packet. send direction: FIN after the sends already started; later sends complete
//   with status reset (EPIPE), like the native back-ends. recv direction: receives complete with eof.
// - setBuffers is recorded only (Node exposes no SO_SNDBUF/SO_RCVBUF for TCP); see partial mode above.
// - setFaults: maxBytesPerCall caps every send and recv "call"; failNth fails the nth send or recv call
//   (counted from setFaults) with the errno, mapped to a status by statusOfErrno.
// - Pool-backed receive (recv with `pool`; contract in native/core/recv_pool.h): a buffer is taken from the
//   pool when the receive is attempted: when it reaches the head of the queue (its "issue"), and whenever
//   data or the end of the stream is there for it. No free buffer at an attempt: pool-exhausted, ENOBUFS,
//   0 bytes, nothing consumed (an end of stream not yet reported stays pending too). The first one binds
//   the pool: acquireBuffer on it is then invalid. The packet carries `buffer` and `data`.
// - Session limit (limitSessions): at the limit, a connection taken from the backlog while an accept is
//   pending is refused: the full message is written, then FIN, then the socket is destroyed; the accept
//   stays pending. A session ends when the application closes the accepted socket.
// - Flow control: the Node socket reads only while a receive or probe waits and nothing is buffered, so
//   unread data stays in the kernel (apart from Node's read-ahead of one highWaterMark) and the peer's
//   writes feel back-pressure.
import net from 'node:net';
import { constants as osConstants } from 'node:os';
import {
  TargetError,
  type OpId,
  type PoolId,
  type PortId,
  type SessionStats,
  type SendOptions,
  type SocketAddress,
  type SocketApi,
  type SocketFaults,
  type SocketId,
  type Status,
} from '../target.ts';
import type { ModelPort } from './port.ts';
import type { ModelBufferPool } from '../pool.ts';
import { MAX_KEY, invalid, isIntIn } from './validate.ts';

export const ECONNRESET = 104;
export const EPIPE = 32;
export const ECONNREFUSED = 111;
export const ECANCELED = 125;
export const ETIMEDOUT = 110;
export const ENOBUFS = 105;

/** Largest single write the model hands to Node at once (also the partial-mode call size without caps). */
export const CHUNK = 256 * 1024;
/** Largest receive length accepted. */
export const MAX_RECV = 2 ** 31 - 1;

/** The portable status of an errno. */
export function statusOfErrno(errno: number): Status {
  switch (errno) {
    case 0:
      return 'ok';
    case ECONNRESET:
    case EPIPE:
    case 103: // ECONNABORTED
    case 102: // ENETRESET
      return 'reset';
    case ECONNREFUSED:
      return 'refused';
    case ECANCELED:
      return 'aborted';
    case ETIMEDOUT:
      return 'timeout';
    case ENOBUFS:
      return 'pool-exhausted';
    default:
      return 'closed';
  }
}

/** The errno of a Node error (code name first, then the negative uv errno). */
export function errnoOf(e: unknown): number {
  const err = e as { code?: unknown; errno?: unknown };
  const table = osConstants.errno as Record<string, number>;
  if (typeof err?.code === 'string' && typeof table[err.code] === 'number') return table[err.code];
  if (typeof err?.errno === 'number' && err.errno !== 0) return Math.abs(err.errno);
  return ECONNRESET;
}

// ---------------------------------------------------------------------------------------------------------
// Socket fields on model packets. ModelPort stores packets as a struct of arrays with the five port fields;
// the socket fields (op, data, socket) travel in a queue kept beside it, aligned by patching the port
// instance's push/pop methods (so the port's faults, batching and close-drain keep working unchanged).
// ---------------------------------------------------------------------------------------------------------

interface Extras {
  op: number;
  data?: Uint8Array;
  socket?: number;
  buffer?: number;
}

class ExtrasQueue {
  items: (Extras | undefined)[] = [];
  head = 0;
  /** Set around a socket completion's port.post(). */
  current: Extras | undefined = undefined;
  shift(): Extras | undefined {
    if (this.head >= this.items.length) return undefined;
    const x = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }
}

interface PatchablePort {
  size: number;
  push(key: number, bytes: number, token: number, status: number, nativeError: number): void;
  popKey(): number;
  popPacket(): ReturnType<ModelPort['popPacket']>;
  clear(): void;
}

const extrasByPort = new WeakMap<ModelPort, ExtrasQueue>();

function extrasFor(port: ModelPort): ExtrasQueue {
  let q = extrasByPort.get(port);
  if (q !== undefined) return q;
  const queue = new ExtrasQueue();
  q = queue;
  const p = port as unknown as PatchablePort;
  queue.items = new Array<Extras | undefined>(p.size).fill(undefined);
  const push = p.push.bind(p);
  const popKey = p.popKey.bind(p);
  const popPacket = p.popPacket.bind(p);
  const clear = p.clear.bind(p);
  p.push = (key, bytes, token, status, nativeError) => {
    queue.items.push(queue.current);
    push(key, bytes, token, status, nativeError);
  };
  p.popKey = () => {
    queue.shift();
    return popKey();
  };
  p.popPacket = () => {
    const packet = popPacket();
    const x = queue.shift();
    if (x !== undefined) {
      packet.op = x.op;
      if (x.data !== undefined) packet.data = x.data;
      if (x.socket !== undefined) packet.socket = x.socket;
      if (x.buffer !== undefined) packet.buffer = x.buffer;
    }
    return packet;
  };
  p.clear = () => {
    queue.items = [];
    queue.head = 0;
    clear();
  };
  extrasByPort.set(port, queue);
  return queue;
}

// ---------------------------------------------------------------------------------------------------------

type OpKind = 'recv' | 'probe' | 'send' | 'accept' | 'connect';

interface Op {
  id: number;
  token: number;
  kind: OpKind;
  sock: Sock;
  done: boolean;
  /** recv length. */
  length: number;
  /** send data and progress. */
  data: Uint8Array;
  sent: number;
  partial: boolean;
  /** A chunk of this send is in Node's hands (its callback has not come yet), of inflightLen bytes. */
  inflight: boolean;
  inflightLen: number;
  newKey: number;
  /** A pool-backed receive: its pool, and whether it was attempted once (its issue). */
  pool: ModelBufferPool | undefined;
  issued: boolean;
}

class Sock {
  id = 0;
  port: ModelPort | undefined;
  key = 0;
  readonly listener: boolean;
  server: net.Server | undefined;
  conn: net.Socket | undefined;
  connected = false;
  /** Set when a connect failed or was cancelled: the socket can do nothing. */
  dead: string | undefined;
  connectOp: Op | undefined;
  recvQ: Op[] = [];
  sendQ: Op[] = [];
  acceptQ: Op[] = [];
  backlog: Sock[] = [];
  activeSend: Op | undefined;
  chunks: Buffer[] = [];
  buffered = 0;
  eof = false;
  /** errno of a connection error (reset); 0 if none. */
  err = 0;
  rdShut = false;
  wrShut = false;
  faults: SocketFaults = {};
  sendCalls = 0;
  recvCalls = 0;
  sndbuf = 0;
  rcvbuf = 0;
  /** An end of stream or reset was reported to a receive (later ones need no pool buffer). */
  endReported = false;
  /** Listener: its session limit. Accepted socket of a limited listener: that listener. */
  sessions: SessionStats = { max: 0, active: 0, refused: 0 };
  sessionFullMessage: Uint8Array = new Uint8Array(0);
  sessionOf: Sock | undefined;
  constructor(listener: boolean) {
    this.listener = listener;
  }
}

function checkToken(what: string, v: unknown): number {
  if (!isIntIn(v, 0, MAX_KEY)) invalid(`${what} must be an integer in 0..2^53-1, got ${String(v)}`);
  return v;
}

function checkObject(what: string, v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null) invalid(`${what} must be an object`);
  return v as Record<string, unknown>;
}

export class ModelSockets implements SocketApi {
  private readonly getPort: (id: PortId) => ModelPort;
  private readonly socks = new Map<number, Sock>();
  private readonly ops = new Map<number, Op>();
  private nextSock = 1;
  private nextOp = 1;
  /** Connections accepted by Node but not yet by an accept op, and connecting sockets not yet registered. */
  private readonly orphans = new Set<Sock>();

  private readonly getPool: (id: PoolId) => ModelBufferPool;

  constructor(getPort: (id: PortId) => ModelPort, getPool: (id: PoolId) => ModelBufferPool) {
    this.getPort = getPort;
    this.getPool = getPool;
  }

  // ------------------------------------------------------------------------------------------- SocketApi

  async listen(port: PortId, options: { key: number; host?: string; bindPort?: number; backlog?: number }): Promise<{ socket: SocketId; address: SocketAddress }> {
    const p = this.openPort(port);
    const o = checkObject('options', options);
    const key = checkToken('key', o.key);
    const host = o.host === undefined ? '127.0.0.1' : o.host;
    if (typeof host !== 'string' || host.length === 0) invalid('host must be a non-empty string');
    const bindPort = o.bindPort === undefined ? 0 : o.bindPort;
    if (!isIntIn(bindPort, 0, 65535)) invalid(`bindPort must be an integer in 0..65535, got ${String(bindPort)}`);
    const backlog = o.backlog === undefined ? 511 : o.backlog;
    if (!isIntIn(backlog, 0, 65535)) invalid(`backlog must be an integer in 0..65535, got ${String(backlog)}`);

    const s = new Sock(true);
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
    s.server = server;
    server.on('connection', (c) => this.onConnection(s, c));
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => reject(new TargetError('invalid', `listen on ${host}:${bindPort}: ${e.message}`, errnoOf(e)));
      server.once('error', onError);
      server.listen({ host, port: bindPort, backlog }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', () => undefined);
    const addr = server.address() as net.AddressInfo;
    this.register(s, p, key);
    extrasFor(p);
    return { socket: s.id, address: { host: addr.address, port: addr.port } };
  }

  async accept(listener: SocketId, options: { token: number; newKey: number }): Promise<OpId> {
    const s = this.sock(listener);
    if (!s.listener) invalid(`socket ${listener} is not a listening socket`);
    const o = checkObject('options', options);
    const op = this.newOp(s, 'accept', checkToken('token', o.token));
    op.newKey = checkToken('newKey', o.newKey);
    s.acceptQ.push(op);
    this.pumpAccept(s);
    return op.id;
  }

  async connect(port: PortId, options: { key: number; token: number; host: string; remotePort: number }): Promise<{ socket: SocketId; op: OpId }> {
    const p = this.openPort(port);
    const o = checkObject('options', options);
    const key = checkToken('key', o.key);
    const token = checkToken('token', o.token);
    if (typeof o.host !== 'string' || o.host.length === 0) invalid('host must be a non-empty string');
    if (!isIntIn(o.remotePort, 1, 65535)) invalid(`remotePort must be an integer in 1..65535, got ${String(o.remotePort)}`);
    const s = new Sock(false);
    this.register(s, p, key);
    extrasFor(p);
    const op = this.newOp(s, 'connect', token);
    s.connectOp = op;
    const conn = new net.Socket({ allowHalfOpen: true });
    s.conn = conn;
    this.wire(s, conn);
    conn.once('connect', () => {
      if (op.done) return;
      s.connected = true;
      s.connectOp = undefined;
      this.complete(op, 'ok', 0, 0);
      this.pumpRecv(s);
      this.pumpSend(s);
    });
    conn.connect({ host: o.host, port: o.remotePort });
    return { socket: s.id, op: op.id };
  }

  async recv(socket: SocketId, options: { length: number; token: number; pool?: number }): Promise<OpId> {
    const s = this.stream(socket);
    const o = checkObject('options', options);
    if (!isIntIn(o.length, 0, MAX_RECV)) invalid(`length must be an integer in 0..${MAX_RECV}, got ${String(o.length)}`);
    let pool: ModelBufferPool | undefined;
    if (o.pool !== undefined) {
      if (o.length === 0) invalid('a pool-backed receive needs a length > 0');
      pool = this.getPool(o.pool as PoolId);
      pool.bound = true;
    }
    const op = this.newOp(s, o.length === 0 ? 'probe' : 'recv', checkToken('token', o.token));
    op.length = o.length;
    op.pool = pool;
    s.recvQ.push(op);
    this.pumpRecv(s);
    return op.id;
  }

  async send(socket: SocketId, data: Uint8Array, options: SendOptions): Promise<OpId> {
    const s = this.stream(socket);
    if (!(data instanceof Uint8Array)) invalid('data must be a Uint8Array');
    const o = checkObject('options', options);
    if (o.partial !== undefined && typeof o.partial !== 'boolean') invalid('partial must be a boolean');
    const op = this.newOp(s, 'send', checkToken('token', o.token));
    // Copy: the caller may reuse its buffer once the call returns.
    op.data = Uint8Array.from(data);
    op.partial = o.partial === true;
    if (s.wrShut) {
      // Sending after shutdown(send) fails like send(2) with EPIPE (status reset, as on the native back-ends);
      // the completion still comes through the port.
      this.complete(op, statusOfErrno(EPIPE), EPIPE, 0);
      return op.id;
    }
    s.sendQ.push(op);
    this.pumpSend(s);
    return op.id;
  }

  async shutdown(socket: SocketId, how: 'send' | 'recv' | 'both'): Promise<void> {
    const s = this.stream(socket);
    if (how !== 'send' && how !== 'recv' && how !== 'both') invalid(`how must be 'send', 'recv' or 'both', got ${String(how)}`);
    if (how !== 'recv' && !s.wrShut) {
      s.wrShut = true;
      // Sends not started yet fail; the one in flight finishes, then the FIN goes out.
      for (const op of s.sendQ.slice()) if (op !== s.activeSend) this.complete(op, statusOfErrno(EPIPE), EPIPE, 0);
      if (s.activeSend === undefined) this.endWrite(s);
    }
    if (how !== 'send' && !s.rdShut) {
      s.rdShut = true;
      this.pumpRecv(s);
    }
  }

  async close(socket: SocketId, options?: { abortive?: boolean }): Promise<void> {
    const s = this.sock(socket);
    if (options !== undefined) {
      const o = checkObject('options', options);
      if (o.abortive !== undefined && typeof o.abortive !== 'boolean') invalid('abortive must be a boolean');
    }
    this.closeSock(s, options?.abortive === true, true);
  }

  async cancel(socket: SocketId, op?: OpId): Promise<'ok' | 'not-found'> {
    const s = this.sock(socket);
    if (op !== undefined && !isIntIn(op, 1, Number.MAX_SAFE_INTEGER)) invalid(`op must be a positive integer, got ${String(op)}`);
    const targets = this.pending(s).filter((x) => op === undefined || x.id === op);
    if (targets.length === 0) return 'not-found';
    for (const x of targets) this.cancelOp(x);
    this.pumpRecv(s);
    this.pumpSend(s);
    return 'ok';
  }

  async setBuffers(socket: SocketId, sizes: { send?: number; recv?: number }): Promise<void> {
    const s = this.stream(socket);
    const o = checkObject('sizes', sizes);
    for (const k of ['send', 'recv'] as const) {
      if (o[k] !== undefined && !isIntIn(o[k], 0, 2 ** 31 - 1)) invalid(`${k} must be an integer in 0..2^31-1, got ${String(o[k])}`);
    }
    // Recorded only: Node has no SO_SNDBUF/SO_RCVBUF for TCP. The send size caps a partial-mode call.
    if (typeof o.send === 'number' && o.send > 0) s.sndbuf = o.send;
    if (typeof o.recv === 'number' && o.recv > 0) s.rcvbuf = o.recv;
  }

  async setFaults(socket: SocketId, faults: SocketFaults): Promise<void> {
    const s = this.stream(socket);
    const o = checkObject('faults', faults);
    const f: SocketFaults = {};
    if (o.maxBytesPerCall !== undefined) {
      if (!isIntIn(o.maxBytesPerCall, 0, 2 ** 31 - 1)) invalid(`maxBytesPerCall must be an integer >= 0, got ${String(o.maxBytesPerCall)}`);
      if (o.maxBytesPerCall > 0) f.maxBytesPerCall = o.maxBytesPerCall;
    }
    if (o.failNth !== undefined) {
      const n = checkObject('failNth', o.failNth);
      if (n.call !== 'send' && n.call !== 'recv') invalid(`failNth.call must be 'send' or 'recv', got ${String(n.call)}`);
      if (!isIntIn(n.n, 1, 2 ** 31 - 1)) invalid(`failNth.n must be a positive integer, got ${String(n.n)}`);
      if (!isIntIn(n.errno, 1, 4095)) invalid(`failNth.errno must be an integer in 1..4095, got ${String(n.errno)}`);
      f.failNth = { call: n.call, n: n.n, errno: n.errno };
    }
    s.faults = f;
    s.sendCalls = 0;
    s.recvCalls = 0;
  }

  async limitSessions(listener: SocketId, options: { max: number; fullMessage?: Uint8Array }): Promise<void> {
    const s = this.sock(listener);
    if (!s.listener) invalid(`socket ${listener} is not a listening socket`);
    const o = checkObject('options', options);
    if (!isIntIn(o.max, 0, 2 ** 32 - 1)) invalid(`max must be an integer in 0..2^32-1, got ${String(o.max)}`);
    if (o.fullMessage !== undefined && !(o.fullMessage instanceof Uint8Array)) invalid('fullMessage must be a Uint8Array');
    const msg = (o.fullMessage as Uint8Array | undefined) ?? new Uint8Array(0);
    if (msg.length > 4096) invalid('the server-full message is longer than 4096 bytes');
    s.sessions.max = o.max;
    s.sessionFullMessage = Uint8Array.from(msg);
  }

  async sessionStats(listener: SocketId): Promise<SessionStats> {
    const s = this.sock(listener);
    if (!s.listener) invalid(`socket ${listener} is not a listening socket`);
    return { ...s.sessions };
  }

  // ------------------------------------------------------------------------------------------- lifecycle

  /** Closes every socket. silent: post nothing (the ports are being released too). */
  closeAll(silent: boolean): void {
    for (const s of [...this.socks.values()]) this.closeSock(s, true, !silent);
    for (const s of [...this.orphans]) this.closeSock(s, true, false);
    this.orphans.clear();
  }

  /** Number of sockets open (for tests). */
  get openSockets(): number {
    return this.socks.size;
  }

  // ------------------------------------------------------------------------------------------- internals

  private openPort(port: PortId): ModelPort {
    const p = this.getPort(port);
    if (p.closed) throw new TargetError('closed', `port ${port} is closed`);
    return p;
  }

  private register(s: Sock, port: ModelPort, key: number): void {
    s.id = this.nextSock++;
    s.port = port;
    s.key = key;
    this.socks.set(s.id, s);
  }

  private sock(id: unknown): Sock {
    const s = isIntIn(id, 1, Number.MAX_SAFE_INTEGER) ? this.socks.get(id) : undefined;
    if (s === undefined) invalid(`unknown or closed socket ${String(id)}`);
    return s;
  }

  private stream(id: unknown): Sock {
    const s = this.sock(id);
    if (s.listener) invalid(`socket ${String(id)} is a listening socket`);
    if (s.dead !== undefined) invalid(`socket ${String(id)} is not connected (${s.dead})`);
    return s;
  }

  private newOp(s: Sock, kind: OpKind, token: number): Op {
    const op: Op = {
      id: this.nextOp++,
      token,
      kind,
      sock: s,
      done: false,
      length: 0,
      data: new Uint8Array(0),
      sent: 0,
      partial: false,
      inflight: false,
      inflightLen: 0,
      newKey: 0,
      pool: undefined,
      issued: false,
    };
    this.ops.set(op.id, op);
    return op;
  }

  private pending(s: Sock): Op[] {
    const out: Op[] = [];
    if (s.connectOp !== undefined && !s.connectOp.done) out.push(s.connectOp);
    for (const q of [s.acceptQ, s.recvQ, s.sendQ]) for (const op of q) if (!op.done) out.push(op);
    return out;
  }

  /** Completes an operation: exactly once, by construction. */
  private complete(op: Op, status: Status, nativeError: number, bytes: number, data?: Uint8Array, newSocket?: number, buffer?: number): void {
    if (op.done) return;
    op.done = true;
    this.ops.delete(op.id);
    const s = op.sock;
    for (const q of [s.recvQ, s.sendQ, s.acceptQ]) {
      const i = q.indexOf(op);
      if (i >= 0) q.splice(i, 1);
    }
    if (s.activeSend === op) s.activeSend = undefined;
    if (s.connectOp === op) s.connectOp = undefined;
    const port = s.port;
    if (port === undefined || port.closed) return; // nowhere to deliver
    const q = extrasFor(port);
    const extras: Extras = { op: op.id };
    if (op.kind === 'recv' || op.kind === 'probe') extras.data = data ?? new Uint8Array(0);
    if (newSocket !== undefined) extras.socket = newSocket;
    if (buffer !== undefined) extras.buffer = buffer;
    q.current = extras;
    try {
      port.post(s.key, bytes, op.token, status, nativeError);
    } finally {
      q.current = undefined;
    }
  }

  private cancelOp(op: Op): void {
    const s = op.sock;
    if (op.kind === 'connect') {
      s.dead = 'connect cancelled';
      s.conn?.destroy();
      this.complete(op, 'aborted', ECANCELED, 0);
      return;
    }
    // A send reports the exact prefix consumed: the bytes confirmed plus the chunk already handed to Node,
    // which will still reach the peer (the next send queues behind it, so the stream stays exact).
    this.complete(op, 'aborted', ECANCELED, op.kind === 'send' ? op.sent + (op.inflight ? op.inflightLen : 0) : 0);
  }

  private closeSock(s: Sock, abortive: boolean, post: boolean): void {
    this.socks.delete(s.id);
    if (s.sessionOf !== undefined) {
      if (s.sessionOf.sessions.active > 0) s.sessionOf.sessions.active--;
      s.sessionOf = undefined;
    }
    this.orphans.delete(s);
    const ops = this.pending(s);
    if (!post) s.port = undefined;
    // A send reports the exact prefix that reached the kernel (which still delivers it before the FIN): the
    // chunks confirmed, plus the part of the chunk in flight that libuv already wrote (its write queue holds
    // the rest, which destroy() discards). Everything else: 0 bytes.
    const queued = (s.conn as unknown as { _handle?: { writeQueueSize?: number } } | undefined)?._handle?.writeQueueSize;
    for (const op of ops) {
      let bytes = 0;
      if (op.kind === 'send') {
        bytes = op.sent;
        if (op.inflight) bytes += typeof queued === 'number' ? Math.max(0, op.inflightLen - queued) : 0;
      }
      this.complete(op, 'aborted', ECANCELED, bytes);
    }
    s.port = undefined;
    s.dead = 'closed';
    if (s.server !== undefined) {
      s.server.close();
      for (const b of s.backlog) this.closeSock(b, true, false);
      s.backlog = [];
    }
    if (s.conn !== undefined) {
      if (abortive && !s.conn.destroyed && !s.conn.connecting) s.conn.resetAndDestroy();
      else s.conn.destroy();
    }
    s.chunks = [];
    s.buffered = 0;
  }

  private onConnection(listener: Sock, c: net.Socket): void {
    if (listener.dead !== undefined) {
      c.destroy();
      return;
    }
    const s = new Sock(false);
    s.conn = c;
    s.connected = true;
    this.wire(s, c);
    this.orphans.add(s);
    listener.backlog.push(s);
    this.pumpAccept(listener);
  }

  private pumpAccept(l: Sock): void {
    while (l.acceptQ.length > 0 && l.backlog.length > 0) {
      const op = l.acceptQ[0];
      const s = l.backlog.shift()!;
      this.orphans.delete(s);
      if (l.sessions.max !== 0 && l.sessions.active >= l.sessions.max) {
        // Refused the documented way; the accept stays pending.
        l.sessions.refused++;
        s.dead = 'refused: session limit';
        const c = s.conn!;
        c.end(Buffer.from(l.sessionFullMessage), () => c.destroy());
        continue;
      }
      if (l.sessions.max !== 0) {
        l.sessions.active++;
        s.sessionOf = l;
      }
      this.register(s, l.port!, op.newKey);
      this.complete(op, 'ok', 0, 0, undefined, s.id);
      this.pumpRecv(s);
    }
  }

  /** Listens to a Node socket's events. */
  private wire(s: Sock, conn: net.Socket): void {
    conn.on('data', (b: Buffer) => {
      if (s.dead !== undefined) return;
      s.chunks.push(b);
      s.buffered += b.length;
      this.pumpRecv(s);
    });
    conn.on('end', () => {
      s.eof = true;
      this.pumpRecv(s);
    });
    conn.on('error', (e) => {
      const errno = errnoOf(e);
      if (s.connectOp !== undefined && !s.connected) {
        s.dead = `connect failed: ${e.message}`;
        this.complete(s.connectOp, statusOfErrno(errno), errno, 0);
        return;
      }
      if (s.err === 0) s.err = errno;
      this.pumpRecv(s);
      this.pumpSend(s);
    });
    conn.on('close', () => {
      // A socket that closed with neither 'end' nor 'error' (e.g. destroyed under us): treat as reset.
      if (s.dead === undefined && !s.eof && s.err === 0 && s.connected) {
        s.err = ECONNRESET;
        this.pumpRecv(s);
        this.pumpSend(s);
      }
    });
    conn.pause();
  }

  private take(s: Sock, max: number): Uint8Array {
    const n = Math.min(max, s.buffered);
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const c = s.chunks[0];
      const k = Math.min(c.length, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
      if (k === c.length) s.chunks.shift();
      else s.chunks[0] = c.subarray(k);
    }
    s.buffered -= n;
    return out;
  }

  private pumpRecv(s: Sock): void {
    if (!s.connected || s.dead !== undefined) return;
    while (s.recvQ.length > 0) {
      const op = s.recvQ[0];
      if (op.kind === 'probe') {
        if (s.buffered > 0) this.complete(op, 'ok', 0, 0);
        else if (s.err !== 0) this.complete(op, 'reset', s.err, 0);
        else if (s.eof || s.rdShut) this.complete(op, 'eof', 0, 0);
        else break;
        continue;
      }
      if (op.pool !== undefined) {
        if (!this.pumpPooled(s, op, op.pool)) break;
        continue;
      }
      if (s.buffered > 0 && !s.rdShut) {
        s.recvCalls++;
        const fail = s.faults.failNth;
        if (fail !== undefined && fail.call === 'recv' && fail.n === s.recvCalls) {
          this.complete(op, statusOfErrno(fail.errno), fail.errno, 0);
          continue;
        }
        const cap = s.faults.maxBytesPerCall ?? Number.MAX_SAFE_INTEGER;
        const data = this.take(s, Math.min(op.length, cap));
        this.complete(op, 'ok', 0, data.length, data);
      } else if (s.err !== 0) {
        s.endReported = true;
        this.complete(op, 'reset', s.err, 0);
      } else if (s.eof || s.rdShut) {
        s.endReported = true;
        this.complete(op, 'eof', 0, 0);
      } else break;
    }
    this.updateFlow(s);
  }

  /** One attempt of the pool-backed receive at the head of s.recvQ; false when it must wait. */
  private pumpPooled(s: Sock, op: Op, pool: ModelBufferPool): boolean {
    const first = !op.issued;
    op.issued = true;
    const data = s.buffered > 0 && !s.rdShut;
    const ended = s.err !== 0 || s.eof || s.rdShut;
    if (!data && ended && s.endReported) {
      // Already reported: sticky, no buffer needed.
      if (s.err !== 0) this.complete(op, 'reset', s.err, 0);
      else this.complete(op, 'eof', 0, 0);
      return true;
    }
    if (!data && !ended) {
      if (!first || pool.stats().available > 0) return false;
      pool.acquire(); // counts the failed acquire: the pool is empty
      this.complete(op, 'pool-exhausted', ENOBUFS, 0);
      return true;
    }
    const got = pool.acquire();
    if (got.kind === 'exhausted') {
      this.complete(op, 'pool-exhausted', ENOBUFS, 0);
      return true;
    }
    if (!data) {
      pool.release(got.id); // nothing lands in it
      s.endReported = true;
      if (s.err !== 0) this.complete(op, 'reset', s.err, 0);
      else this.complete(op, 'eof', 0, 0);
      return true;
    }
    s.recvCalls++;
    const fail = s.faults.failNth;
    if (fail !== undefined && fail.call === 'recv' && fail.n === s.recvCalls) {
      pool.release(got.id);
      this.complete(op, statusOfErrno(fail.errno), fail.errno, 0);
      return true;
    }
    const cap = s.faults.maxBytesPerCall ?? Number.MAX_SAFE_INTEGER;
    const bytes = this.take(s, Math.min(op.length, pool.bufferSize, cap));
    this.complete(op, 'ok', 0, bytes.length, bytes, undefined, got.id);
    return true;
  }

  /** Reads from the kernel only while a receive waits for data. */
  private updateFlow(s: Sock): void {
    const c = s.conn;
    if (c === undefined || c.destroyed || !s.connected) return;
    const want = s.recvQ.length > 0 && s.buffered === 0 && !s.eof && s.err === 0 && !s.rdShut;
    if (want) c.resume();
    else c.pause();
  }

  private pumpSend(s: Sock): void {
    if (!s.connected || s.dead !== undefined || s.activeSend !== undefined) return;
    const op = s.sendQ[0];
    if (op === undefined) return;
    s.activeSend = op;
    this.sendStep(op);
  }

  /** One step of the active send: finish it, or hand the next chunk ("system call") to Node. */
  private sendStep(op: Op): void {
    const s = op.sock;
    if (op.done) return;
    const finish = (status: Status, errno: number) => {
      this.complete(op, status, errno, op.sent);
      if (s.wrShut && s.activeSend === undefined && s.sendQ.length === 0) this.endWrite(s);
      queueMicrotask(() => this.pumpSend(s));
    };
    const remaining = op.data.length - op.sent;
    if (s.err !== 0) return finish('reset', s.err);
    if (remaining === 0) return finish('ok', 0);
    if (op.partial && op.sent > 0) return finish('ok', 0); // one call per partial-mode completion
    const conn = s.conn;
    if (conn === undefined || conn.destroyed || !conn.writable) return finish('reset', s.err || EPIPE);
    s.sendCalls++;
    const fail = s.faults.failNth;
    if (fail !== undefined && fail.call === 'send' && fail.n === s.sendCalls) return finish(statusOfErrno(fail.errno), fail.errno);
    let n = Math.min(remaining, CHUNK, s.faults.maxBytesPerCall ?? CHUNK);
    if (op.partial && s.sndbuf > 0) n = Math.min(n, s.sndbuf);
    const chunk = op.data.subarray(op.sent, op.sent + n);
    op.inflight = true;
    op.inflightLen = n;
    conn.write(chunk, (err) => {
      op.inflight = false;
      if (op.done) return;
      if (err) {
        const errno = s.err || errnoOf(err);
        return finish(statusOfErrno(errno) === 'ok' ? 'reset' : statusOfErrno(errno), errno);
      }
      op.sent += n;
      this.sendStep(op);
    });
  }

  private endWrite(s: Sock): void {
    const c = s.conn;
    if (c !== undefined && !c.destroyed && s.connected) c.end();
  }
}
