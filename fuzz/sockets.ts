// Model-based fuzzing of a target's sockets and buffer pools through the Target interface (the second
// scenario suite beside fuzz/port.ts; same shape: plain-JSON scenarios, invariants after every step and at
// the end, fast-check shrinking, runnable repros).
//
// Both ends of every connection live inside the target: the executor listens on a target socket and
// connects another target socket to it, so no Node peer is involved and the same scenarios run on the model
// (real loopback streams under the model port) and on the native back-ends. Connection set-up is serialized
// (a `connect` step waits for its accept), so the executor knows which accepted socket is whose peer.
//
// Invariants, checked whatever the timing of the target's threads:
//   - every accepted operation (each OpId a submission returned) completes exactly once: no completion of an
//     unknown op, none twice, none missing once everything is closed and the port has settled; completions
//     carry the socket's key (the listener's for an accept) and the operation's token;
//   - a recv completes with bytes === data.length, at most `length` bytes, never ok with 0 bytes unless it
//     was a zero-length probe (which consumes nothing); a default-mode send that completes ok sent every byte;
//   - the bytes received on a connection (recv completions in submission order) are exactly a prefix of the
//     bytes its peer sent, in order (each send contributing the prefix its completion reports); after eof
//     from a peer that shut down cleanly with every send complete, exactly everything;
//   - cancel says 'ok' only when something was pending; a recv it cancelled by id completes 'aborted';
//   - pools: inUse + available === total, inUse equals the buffers the executor holds (whenever no
//     pool-backed receive of the pool is pending), acquire never hands out a held buffer and answers
//     exhausted only when all are held; release answers ok / double-release / foreign exactly as the
//     executor expects;
//   - pool-backed receives (native/core/recv_pool.h): an ok one names a buffer of its pool that the
//     executor did not hold (the executor holds it from then on), with 1..min(length, buffer size) bytes;
//     pool-exhausted carries 0 bytes, no data and no buffer, reads nothing (its bytes come in later
//     receives: the stream invariant above sees them in submission order like any other), and comes only
//     when every buffer of the pool could have been in use at some moment of the receive's life; only an
//     ok pool-backed receive names a buffer; a pool that served one is bound to receives: acquire on it
//     rejects invalid;
//   - at the end nothing leaks: every socket handle is forgotten after close (a later call rejects), and
//     after releasing what it held every pool has inUse 0.
import fc from 'fast-check';
import { TargetError, type OpId, type Packet, type PoolId, type SocketApi, type SocketId, type Target } from '../reference/src/target.ts';
import { InvariantError } from './port.ts';

export type SocketOp =
  /** A listener on 127.0.0.1, any port. */
  | { op: 'listen' }
  /** Connects a new socket to listener l (queueing an accept first when none is pending) and waits for both ends. */
  | { op: 'connect'; l: number }
  /** An extra pending accept on listener l (taken by the next connect, or aborted by close). */
  | { op: 'accept'; l: number }
  | { op: 'send'; s: number; size: number }
  /** length 0: a zero-length readiness probe. */
  | { op: 'recv'; s: number; length: number }
  /** A pool-backed receive into a buffer of pool p (binds p to receives). */
  | { op: 'recvPooled'; s: number; p: number; length: number }
  | { op: 'shutdown'; s: number; how: 'send' | 'recv' | 'both' }
  | { op: 'close'; s: number; abortive: boolean }
  | { op: 'closeListener'; l: number }
  /** Cancels the oldest pending recv by id, or everything pending on the socket. */
  | { op: 'cancel'; s: number; which: 'recv' | 'all' }
  /** Dequeues completions: waits up to ms for the first, then polls the rest. */
  | { op: 'pump'; ms: number }
  | { op: 'pool'; bufferSize: number; count: number }
  | { op: 'acquire'; p: number }
  /** held: give back a held buffer; double: an id of the pool not held; foreign: an id beyond the pool. */
  | { op: 'release'; p: number; b: number; kind: 'held' | 'double' | 'foreign' }
  | { op: 'stats'; p: number };

export interface SocketScenario {
  suite: 'sockets';
  ops: SocketOp[];
}

const sock = fc.nat(3);
const poolOpArb = fc.record({ op: fc.constant('pool' as const), bufferSize: fc.integer({ min: 1, max: 4096 }), count: fc.integer({ min: 1, max: 4 }) });
const opArb: fc.Arbitrary<SocketOp> = fc.oneof(
  { weight: 1, arbitrary: fc.constant({ op: 'listen' as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('connect' as const), l: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('accept' as const), l: fc.nat(3) }) },
  {
    weight: 5,
    arbitrary: fc.record({ op: fc.constant('send' as const), s: sock, size: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 8192 })) }),
  },
  {
    weight: 5,
    arbitrary: fc.record({ op: fc.constant('recv' as const), s: sock, length: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 8192 })) }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant('recvPooled' as const), s: sock, p: fc.nat(3), length: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 8192 })) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('shutdown' as const), s: sock, how: fc.constantFrom('send' as const, 'recv' as const, 'both' as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('close' as const), s: sock, abortive: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('closeListener' as const), l: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('cancel' as const), s: sock, which: fc.constantFrom('recv' as const, 'all' as const) }) },
  {
    weight: 8,
    arbitrary: fc.record({
      op: fc.constant('pump' as const),
      ms: fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.integer({ min: 1, max: 4 }) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 20 }) }),
    }),
  },
  { weight: 1, arbitrary: poolOpArb },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('acquire' as const), p: fc.nat(3) }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('release' as const), p: fc.nat(3), b: fc.nat(7), kind: fc.constantFrom('held' as const, 'double' as const, 'foreign' as const) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('stats' as const), p: fc.nat(3) }) },
);

/**
 * Scenarios start with a listener and a connection, and three in four with a buffer pool (shrinking drops
 * it when the failure does not need it), so that pool-backed receives have a pool to use in short ones.
 */
export const socketScenarioArb: fc.Arbitrary<SocketScenario> = fc
  .tuple(fc.option(poolOpArb, { nil: undefined, freq: 4 }), fc.array(opArb, { maxLength: 40 }))
  .map(([pool, ops]) => ({ suite: 'sockets' as const, ops: [{ op: 'listen' as const }, { op: 'connect' as const, l: 0 }, ...(pool ? [pool] : []), ...ops] }));

// ---------------------------------------------------------------------------------------------------------

interface Listener {
  id: SocketId;
  key: number;
  port: number;
  closed: boolean;
  pendingAccepts: number;
}

interface SendRec {
  data: Uint8Array;
  done?: Packet;
}

interface RecvRec {
  op: OpId;
  length: number;
  done?: Packet;
  /** cancel(op) answered 'ok' for it. */
  cancelled: boolean;
  /** Set for a pool-backed receive. */
  pooled?: PooledRecv;
}

interface PooledRecv {
  pool: PoolState;
  /**
   * The most buffers of the pool that may have been in use at one moment of the receive's life, as far as
   * the executor can tell: those it held, plus one per other pending pool-backed receive of the pool (which
   * may have taken one already). Below the pool's count, the pool never ran dry for this receive.
   */
  busy: number;
}

interface Conn {
  id: SocketId;
  key: number;
  name: string;
  /** Connected to a peer inside the target (not a connect to a closed listener). */
  usable: boolean;
  peer?: Conn;
  closed: boolean;
  abortive: boolean;
  shutSend: boolean;
  shutRecv: boolean;
  /** The next byte value's stream offset (sent data is a function of the offset, so reordering shows). */
  sentOffset: number;
  sends: SendRec[];
  recvs: RecvRec[];
  sawEof: boolean;
}

interface OpRec {
  id: OpId;
  kind: 'accept' | 'connect' | 'send' | 'recv';
  token: number;
  key: number;
  step: number;
  done: boolean;
  conn?: Conn;
  listener?: Listener;
  newKey?: number;
  send?: SendRec;
  recv?: RecvRec;
}

interface PoolState {
  id: PoolId;
  count: number;
  /** The size of each buffer: bufferSize rounded up to a multiple of 64 (BufferPoolOptions). */
  bufferSize: number;
  held: Set<number>;
  /** The step of the first pool-backed receive the target accepted on it (the pool is bound to receives from then on). */
  boundAt?: number;
}

const SETTLE_MS = 5000;
const CONNECT_MS = 3000;

/** Byte i of the stream a connection sends (depends on the offset and the socket, so a reordering or a mixup shows). */
function streamByte(conn: Conn, offset: number): number {
  return (offset * 7 + conn.key * 13 + (offset >>> 8)) & 0xff;
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string, step: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new InvariantError(step, `${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Runs a socket/pool scenario against a target. Resolves when every invariant held; rejects with an
 * InvariantError (or the target's own error) otherwise. The caller resets the target afterwards.
 */
export async function runSocketScenario(t: Target, scenario: SocketScenario, options: SocketRunOptions = {}): Promise<SocketRunStats> {
  const opTimeoutMs = options.opTimeoutMs ?? 5000;
  const allow = new Set(options.allow ?? []);
  const stats: SocketRunStats = { completions: {}, bytesReceived: 0, connections: 0, poolOps: 0 };
  const sockets = t.sockets;
  const pools = t.pools;
  const listeners: Listener[] = [];
  const conns: Conn[] = [];
  const poolStates: PoolState[] = [];
  const ops = new Map<OpId, OpRec>();
  let nextToken = 1;
  let nextKey = 1;
  /** The connect step under way: the accept that completes now is the peer of `client`. */
  let pairing: { listener: Listener; client: Conn; server?: Conn } | undefined;
  const call = <T>(p: Promise<T>, what: string, step: number) => withDeadline(p, opTimeoutMs, what, step);
  const port = await call(t.createPort(1), 'createPort', 0);

  const submitted = (step: number, kind: OpRec['kind'], id: OpId, token: number, key: number, extra: Partial<OpRec> = {}): OpRec => {
    if (typeof id !== 'number' || !Number.isSafeInteger(id)) throw new InvariantError(step, `${kind} returned the operation id ${String(id)}`);
    if (ops.has(id)) throw new InvariantError(step, `${kind} returned op id ${id}, already used by a ${ops.get(id)!.kind} of step ${ops.get(id)!.step}`);
    const rec: OpRec = { id, kind, token, key, step, done: false, ...extra };
    ops.set(id, rec);
    return rec;
  };

  /** Bytes received so far on `c`, in recv submission order, up to the first recv not yet completed. */
  const received = (c: Conn): Uint8Array => {
    const parts: Uint8Array[] = [];
    for (const r of c.recvs) {
      if (!r.done) break;
      if (r.done.data) parts.push(r.done.data);
    }
    return concat(parts);
  };

  /**
   * What `c` is known to have sent: the completed sends' prefixes in order, up to the first pending send
   * (`pending`: its bytes may be arriving already). With the 'close-under-reports-send' allowance, a send
   * aborted by closing its socket counts as pending with all its bytes (it is the socket's last).
   */
  const sentKnown = (c: Conn): { known: Uint8Array; pending: Uint8Array | undefined } => {
    const parts: Uint8Array[] = [];
    for (const s of c.sends) {
      if (!s.done) return { known: concat(parts), pending: s.data };
      if (s.done.status === 'aborted' && c.closed && allow.has('close-under-reports-send') && s.done.bytes < s.data.length) {
        return { known: concat([...parts, s.data.subarray(0, s.done.bytes)]), pending: s.data.subarray(s.done.bytes) };
      }
      parts.push(s.data.subarray(0, s.done.bytes));
    }
    return { known: concat(parts), pending: undefined };
  };

  const checkStream = (step: number, receiver: Conn) => {
    const sender = receiver.peer;
    if (!sender) return;
    const got = received(receiver);
    const { known, pending } = sentKnown(sender);
    // While a send is pending (as far as we have dequeued) its bytes may be arriving already.
    const bound = pending ? concat([known, pending]) : known;
    const n = Math.min(got.length, bound.length);
    for (let i = 0; i < n; i++) {
      if (got[i] !== bound[i]) {
        throw new InvariantError(step, `${receiver.name} received byte ${got[i]} at stream offset ${i}, but ${sender.name} sent ${bound[i]} there (received must be a prefix of what was sent, in order)`);
      }
    }
    if (!pending && got.length > known.length) {
      throw new InvariantError(step, `${receiver.name} received ${got.length} bytes, but ${sender.name} sent only ${known.length} (every send completed)`);
    }
  };

  /** The pending pool-backed receives of pool ps (submitted, completion not yet dequeued). */
  const pooledPending = (ps: PoolState): PooledRecv[] => pending().flatMap((o) => (o.recv?.pooled?.pool === ps ? [o.recv.pooled] : []));

  /**
   * Raises the busy mark of every pending pool-backed receive of ps. Called when one is submitted: that is
   * when the mark can grow (acquire cannot run on a bound pool, and an ok completion moves one buffer from
   * a pending receive to the held set).
   */
  const noteBusy = (ps: PoolState) => {
    const mine = pooledPending(ps);
    for (const r of mine) r.busy = Math.max(r.busy, ps.held.size + mine.length - 1);
  };

  /** The completion of a pool-backed receive (its bytes were checked like any recv's). */
  const checkPooled = (step: number, what: string, r: PooledRecv, p: Packet) => {
    const ps = r.pool;
    if (p.status === 'ok') {
      if (p.bytes > ps.bufferSize) throw new InvariantError(step, `${what}: ${p.bytes} bytes in a buffer of ${ps.bufferSize}`);
      const b = p.buffer;
      if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b >= ps.count) {
        throw new InvariantError(step, `${what}: completed ok naming buffer ${String(b)}, not one of pool ${ps.id}'s ${ps.count}`);
      }
      if (ps.held.has(b)) throw new InvariantError(step, `${what}: completed ok in buffer ${b} of pool ${ps.id}, which the executor still holds`);
      // The application holds it now: a later 'release' gives it back, the end releases it at the latest.
      ps.held.add(b);
    } else if (p.status === 'pool-exhausted') {
      // Nothing read (bytes === data.length was checked): the bytes stay for the next receive.
      if (p.bytes !== 0) throw new InvariantError(step, `${what}: pool-exhausted with ${p.bytes} bytes (an exhausted receive reads nothing)`);
      if (r.busy < ps.count) {
        throw new InvariantError(step, `${what}: pool-exhausted, but at most ${r.busy} of pool ${ps.id}'s ${ps.count} buffers were in use at any moment of its life (held by the executor or taken by another pending pool-backed receive)`);
      }
    }
  };

  const onPacket = (step: number, p: Packet, via: string) => {
    if (p.op === undefined) throw new InvariantError(step, `${via} delivered a packet without an op id (key ${p.key}, token ${p.token}, status ${p.status}); nothing was posted`);
    const rec = ops.get(p.op);
    if (!rec) throw new InvariantError(step, `${via} delivered a completion of op ${p.op}, which no submission returned`);
    if (rec.done) throw new InvariantError(step, `${via} delivered a second completion of op ${p.op} (${rec.kind} of step ${rec.step}), status ${p.status}`);
    rec.done = true;
    const pooled = rec.recv?.pooled;
    const what = `op ${p.op} (${pooled ? 'pool-backed recv' : rec.kind} of step ${rec.step})`;
    const k = `${pooled ? 'recvPooled' : rec.kind}:${p.status}`;
    stats.completions[k] = (stats.completions[k] ?? 0) + 1;
    stats.bytesReceived += rec.kind === 'recv' ? (p.data?.length ?? 0) : 0;
    if (p.token !== rec.token) throw new InvariantError(step, `${what} completed with token ${p.token}, submitted with ${rec.token}`);
    if (p.key !== rec.key) throw new InvariantError(step, `${what} completed with key ${p.key}, expected ${rec.key}`);
    // Only an ok pool-backed receive hands a buffer to the application; only a pool-backed one can find its pool empty.
    if (p.buffer !== undefined && !(pooled && p.status === 'ok')) throw new InvariantError(step, `${what} completed ${p.status} naming buffer ${p.buffer}`);
    if (p.status === 'pool-exhausted' && !pooled) throw new InvariantError(step, `${what} completed pool-exhausted without a pool`);
    switch (rec.kind) {
      case 'connect':
        break;
      case 'accept': {
        const l = rec.listener!;
        l.pendingAccepts--;
        if (p.status !== 'ok') break;
        if (typeof p.socket !== 'number') throw new InvariantError(step, `${what} completed ok without a socket`);
        if (!pairing || pairing.listener !== l || pairing.server) {
          throw new InvariantError(step, `${what} accepted socket ${p.socket}, but no connect to that listener was under way`);
        }
        const server: Conn = {
          id: p.socket,
          key: rec.newKey!,
          name: `socket ${p.socket} (accepted)`,
          usable: true,
          closed: false,
          abortive: false,
          shutSend: false,
          shutRecv: false,
          sentOffset: 0,
          sends: [],
          recvs: [],
          sawEof: false,
          peer: pairing.client,
        };
        pairing.client.peer = server;
        pairing.server = server;
        conns.push(server);
        stats.connections++;
        break;
      }
      case 'send': {
        const s = rec.send!;
        s.done = p;
        if (p.bytes < 0 || p.bytes > s.data.length) throw new InvariantError(step, `${what} on ${rec.conn!.name} completed with ${p.bytes} bytes of ${s.data.length}`);
        if (p.status === 'ok' && p.bytes !== s.data.length) {
          throw new InvariantError(step, `${what} on ${rec.conn!.name} completed ok with ${p.bytes} of ${s.data.length} bytes (a default-mode send completes whole or with an error)`);
        }
        if (rec.conn!.peer) checkStream(step, rec.conn!.peer);
        break;
      }
      case 'recv': {
        const r = rec.recv!;
        r.done = p;
        const n = p.data?.length ?? 0;
        if (p.bytes !== n) throw new InvariantError(step, `${what} on ${rec.conn!.name}: bytes ${p.bytes} but ${n} bytes of data`);
        if (r.length === 0 && n !== 0) throw new InvariantError(step, `${what} on ${rec.conn!.name}: a zero-length probe returned ${n} bytes (a probe consumes nothing)`);
        if (r.length > 0 && n > r.length) throw new InvariantError(step, `${what} on ${rec.conn!.name}: ${n} bytes for a recv of ${r.length}`);
        if (r.length > 0 && p.status === 'ok' && n === 0) {
          throw new InvariantError(step, `${what} on ${rec.conn!.name}: a recv of ${r.length} completed ok with 0 bytes (end of stream is status eof, not a 0-byte success)`);
        }
        if (r.cancelled && p.status !== 'aborted') throw new InvariantError(step, `${what} on ${rec.conn!.name}: cancel(op) answered ok, but it completed ${p.status}`);
        if (pooled) checkPooled(step, `${what} on ${rec.conn!.name}`, pooled, p);
        if (p.status === 'eof') rec.conn!.sawEof = true;
        checkStream(step, rec.conn!);
        break;
      }
    }
  };

  /** Waits up to ms for a completion, then drains what is queued. Returns how many were taken. */
  const pumpOnce = async (step: number, ms: number): Promise<number> => {
    const first = await call(t.dequeue(port, ms), 'dequeue', step);
    if (first.kind === 'closed') throw new InvariantError(step, 'dequeue said closed on an open port');
    if (first.kind === 'timeout') return 0;
    onPacket(step, first.packet, 'dequeue');
    let n = 1;
    for (;;) {
      const r = await call(t.dequeueMany(port, 64, 0), 'dequeueMany(0)', step);
      if (r.kind !== 'packets') return n;
      for (const p of r.packets) onPacket(step, p, 'dequeueMany');
      n += r.packets.length;
    }
  };

  /** Takes completions for `ms` milliseconds (at least one poll), so that I/O makes progress meanwhile. */
  const pump = async (step: number, ms: number) => {
    const until = Date.now() + ms;
    do await pumpOnce(step, Math.max(0, until - Date.now()));
    while (Date.now() < until);
  };

  const pending = () => [...ops.values()].filter((o) => !o.done);

  /** A submission that may legitimately be refused (closed socket, shut-down direction): a TargetError. */
  const tolerate = (step: number, e: unknown, what: string, mustWork: boolean) => {
    if (e instanceof InvariantError) throw e;
    if (!(e instanceof TargetError)) throw new InvariantError(step, `${what} failed with ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} (not a TargetError)`);
    if (mustWork) throw new InvariantError(step, `${what} was refused (${e.code}: ${e.message})`);
  };

  const checkStats = async (step: number, ps: PoolState) => {
    stats.poolOps++;
    const s = await call(pools!.poolStats(ps.id), 'poolStats', step);
    if (s.total !== ps.count) throw new InvariantError(step, `pool ${ps.id}: total ${s.total}, created with ${ps.count}`);
    if (s.inUse + s.available !== s.total) throw new InvariantError(step, `pool ${ps.id}: inUse ${s.inUse} + available ${s.available} !== total ${s.total}`);
    // A pending pool-backed receive may take a buffer at any moment, counted in use before its completion
    // reaches the executor; and the counts are exact only while nothing else touches the pool (racy reads
    // on the native pool, native/pool/buffer_pool.h). So inUse is compared once no such receive is pending.
    if (pooledPending(ps).length === 0 && s.inUse !== ps.held.size) throw new InvariantError(step, `pool ${ps.id}: inUse ${s.inUse}, but the executor holds ${ps.held.size} buffer(s)`);
  };

  const connOf = (i: number): Conn | undefined => (conns.length === 0 ? undefined : conns[i % conns.length]);
  const api = (): SocketApi => sockets!;

  for (let step = 0; step < scenario.ops.length; step++) {
    const op = scenario.ops[step];
    switch (op.op) {
      case 'listen': {
        if (!sockets) break;
        const key = nextKey++;
        const r = await call(api().listen(port, { key, host: '127.0.0.1', bindPort: 0 }), 'listen', step);
        listeners.push({ id: r.socket, key, port: r.address.port, closed: false, pendingAccepts: 0 });
        break;
      }
      case 'accept': {
        const l = listeners.length ? listeners[op.l % listeners.length] : undefined;
        if (!l) break;
        const token = nextToken++;
        const newKey = nextKey++;
        try {
          const id = await call(api().accept(l.id, { token, newKey }), 'accept', step);
          submitted(step, 'accept', id, token, l.key, { listener: l, newKey });
          l.pendingAccepts++;
        } catch (e) {
          tolerate(step, e, `accept on listener ${l.id}`, !l.closed);
        }
        break;
      }
      case 'connect': {
        const l = listeners.length ? listeners[op.l % listeners.length] : undefined;
        if (!l) break;
        if (!l.closed && l.pendingAccepts === 0) {
          const token = nextToken++;
          const newKey = nextKey++;
          const id = await call(api().accept(l.id, { token, newKey }), 'accept', step);
          submitted(step, 'accept', id, token, l.key, { listener: l, newKey });
          l.pendingAccepts++;
        }
        const token = nextToken++;
        const key = nextKey++;
        const r = await call(api().connect(port, { key, token, host: '127.0.0.1', remotePort: l.port }), 'connect', step);
        const client: Conn = {
          id: r.socket,
          key,
          name: `socket ${r.socket} (connected at step ${step})`,
          usable: !l.closed,
          closed: false,
          abortive: false,
          shutSend: false,
          shutRecv: false,
          sentOffset: 0,
          sends: [],
          recvs: [],
          sawEof: false,
        };
        conns.push(client);
        const rec = submitted(step, 'connect', r.op, token, key, { conn: client });
        if (l.closed) break; // refused (or aborted at close): whatever it says, it completes once
        pairing = { listener: l, client };
        const until = Date.now() + CONNECT_MS;
        while (!(rec.done && pairing.server) && Date.now() < until) await pumpOnce(step, 20);
        const server = pairing.server;
        pairing = undefined;
        if (!rec.done || !server) {
          throw new InvariantError(step, `connect to an open listener: ${rec.done ? 'the connect completed' : 'the connect did not complete'} and ${server ? 'an accept completed' : 'no accept completed'} within ${CONNECT_MS} ms`);
        }
        break;
      }
      case 'send': {
        const c = connOf(op.s);
        if (!c) break;
        const data = new Uint8Array(op.size);
        for (let i = 0; i < data.length; i++) data[i] = streamByte(c, c.sentOffset + i);
        const token = nextToken++;
        try {
          const id = await call(api().send(c.id, data, { token }), 'send', step);
          const s: SendRec = { data };
          c.sends.push(s);
          c.sentOffset += data.length;
          submitted(step, 'send', id, token, c.key, { conn: c, send: s });
        } catch (e) {
          tolerate(step, e, `send on ${c.name}`, c.usable && !c.closed && !c.shutSend);
        }
        break;
      }
      case 'recv': {
        const c = connOf(op.s);
        if (!c) break;
        const token = nextToken++;
        try {
          const id = await call(api().recv(c.id, { length: op.length, token }), 'recv', step);
          const r: RecvRec = { op: id, length: op.length, cancelled: false };
          c.recvs.push(r);
          submitted(step, 'recv', id, token, c.key, { conn: c, recv: r });
        } catch (e) {
          tolerate(step, e, `recv on ${c.name}`, c.usable && !c.closed);
        }
        break;
      }
      case 'recvPooled': {
        const c = connOf(op.s);
        const ps = poolStates.length ? poolStates[op.p % poolStates.length] : undefined;
        if (!c || !ps) break;
        const token = nextToken++;
        try {
          const id = await call(api().recv(c.id, { length: op.length, token, pool: ps.id }), 'recv (pool-backed)', step);
          // Accepted: the pool serves receives now (a refused submission binds nothing: acquire still works).
          ps.boundAt ??= step;
          const r: RecvRec = { op: id, length: op.length, cancelled: false, pooled: { pool: ps, busy: 0 } };
          c.recvs.push(r);
          submitted(step, 'recv', id, token, c.key, { conn: c, recv: r });
          noteBusy(ps);
        } catch (e) {
          tolerate(step, e, `pool-backed recv on ${c.name}`, c.usable && !c.closed);
        }
        break;
      }
      case 'shutdown': {
        const c = connOf(op.s);
        if (!c) break;
        try {
          await call(api().shutdown(c.id, op.how), 'shutdown', step);
          if (op.how !== 'recv') c.shutSend = true;
          if (op.how !== 'send') c.shutRecv = true;
        } catch (e) {
          // A socket reset by its peer (RST after data reached a shut-down side) may refuse shutdown (ENOTCONN).
          const untouched = !c.shutSend && !c.shutRecv && !c.peer?.closed && !c.peer?.shutRecv && !c.peer?.shutSend;
          tolerate(step, e, `shutdown(${op.how}) on ${c.name}`, c.usable && !c.closed && untouched);
        }
        break;
      }
      case 'close': {
        const c = connOf(op.s);
        if (!c) break;
        try {
          await call(api().close(c.id, { abortive: op.abortive }), 'close', step);
          if (c.closed) throw new InvariantError(step, `closing ${c.name} a second time succeeded: its handle was not forgotten`);
          c.closed = true;
          c.abortive = op.abortive;
        } catch (e) {
          tolerate(step, e, `close of ${c.name}`, !c.closed);
        }
        break;
      }
      case 'closeListener': {
        const l = listeners.length ? listeners[op.l % listeners.length] : undefined;
        if (!l) break;
        try {
          await call(api().close(l.id), 'close', step);
          if (l.closed) throw new InvariantError(step, `closing listener ${l.id} a second time succeeded`);
          l.closed = true;
        } catch (e) {
          tolerate(step, e, `close of listener ${l.id}`, !l.closed);
        }
        break;
      }
      case 'cancel': {
        const c = connOf(op.s);
        if (!c) break;
        const mine = pending().filter((o) => o.conn === c);
        try {
          if (op.which === 'recv') {
            const r = c.recvs.find((x) => !x.done);
            if (!r) break;
            const res = await call(api().cancel(c.id, r.op), 'cancel', step);
            if (res === 'ok') r.cancelled = true;
            else if (res !== 'not-found') throw new InvariantError(step, `cancel answered ${String(res)}`);
          } else {
            const res = await call(api().cancel(c.id), 'cancel', step);
            if (res === 'ok' && mine.length === 0) throw new InvariantError(step, `cancel on ${c.name} answered ok, but nothing was pending on it`);
            if (res !== 'ok' && res !== 'not-found') throw new InvariantError(step, `cancel answered ${String(res)}`);
          }
        } catch (e) {
          tolerate(step, e, `cancel on ${c.name}`, !c.closed);
        }
        break;
      }
      case 'pump':
        await pump(step, op.ms);
        break;
      case 'pool': {
        if (!pools) break;
        const id = await call(pools.createBufferPool({ bufferSize: op.bufferSize, count: op.count }), 'createBufferPool', step);
        const ps: PoolState = { id, count: op.count, bufferSize: Math.ceil(op.bufferSize / 64) * 64, held: new Set() };
        poolStates.push(ps);
        await checkStats(step, ps);
        break;
      }
      case 'acquire': {
        const ps = poolStates.length ? poolStates[op.p % poolStates.length] : undefined;
        if (!ps) break;
        if (ps.boundAt !== undefined) {
          // Bound to receives (on io_uring its free buffers are the kernel's): acquire is invalid on every target.
          let answer: string;
          try {
            answer = JSON.stringify(await call(pools!.acquireBuffer(ps.id, 0), 'acquireBuffer', step));
          } catch (e) {
            if (e instanceof InvariantError) throw e;
            if (!(e instanceof TargetError) || e.code !== 'invalid') throw new InvariantError(step, `acquire on pool ${ps.id}, bound to receives, failed with ${e instanceof TargetError ? e.code : String(e)} (expected invalid)`);
            await checkStats(step, ps);
            break;
          }
          throw new InvariantError(step, `acquire on pool ${ps.id}, bound to receives since step ${ps.boundAt}, answered ${answer} (expected invalid)`);
        }
        const r = await call(pools!.acquireBuffer(ps.id, 0), 'acquireBuffer', step);
        if (r.kind === 'buffer') {
          if (!Number.isInteger(r.id) || r.id < 0 || r.id >= ps.count) throw new InvariantError(step, `pool ${ps.id} of ${ps.count} handed out buffer ${r.id}`);
          if (ps.held.has(r.id)) throw new InvariantError(step, `pool ${ps.id} handed out buffer ${r.id}, which the executor still holds`);
          ps.held.add(r.id);
        } else if (ps.held.size < ps.count) {
          throw new InvariantError(step, `pool ${ps.id} said exhausted with ${ps.held.size} of ${ps.count} buffers held`);
        }
        await checkStats(step, ps);
        break;
      }
      case 'release': {
        const ps = poolStates.length ? poolStates[op.p % poolStates.length] : undefined;
        if (!ps) break;
        const free = Array.from({ length: ps.count }, (_, i) => i).filter((i) => !ps.held.has(i));
        let id: number;
        let want: 'ok' | 'double-release' | 'foreign';
        if (op.kind === 'held' && ps.held.size > 0) {
          id = [...ps.held][op.b % ps.held.size];
          want = 'ok';
        } else if (op.kind !== 'foreign' && free.length > 0 && pooledPending(ps).length === 0) {
          // (Not while a pool-backed receive of the pool is pending: it may have taken that buffer by now.)
          id = free[op.b % free.length];
          want = 'double-release';
        } else {
          id = ps.count + op.b;
          want = 'foreign';
        }
        const r = await call(pools!.releaseBuffer(ps.id, id), 'releaseBuffer', step);
        if (r !== want) throw new InvariantError(step, `pool ${ps.id}: releasing buffer ${id} answered ${r}, expected ${want} (held: ${[...ps.held].join(', ') || 'none'})`);
        if (r === 'ok') ps.held.delete(id);
        await checkStats(step, ps);
        break;
      }
      case 'stats': {
        const ps = poolStates.length ? poolStates[op.p % poolStates.length] : undefined;
        if (ps) await checkStats(step, ps);
        break;
      }
    }
  }

  // The end: close everything, let every operation complete, account for every one, and look for leaks.
  const end = scenario.ops.length;
  for (const c of conns) {
    if (c.closed) continue;
    await call(api().close(c.id), 'close (end)', end);
    c.closed = true;
  }
  for (const l of listeners) {
    if (l.closed) continue;
    await call(api().close(l.id), 'close (end)', end);
    l.closed = true;
  }
  // Closing completes what was pending at once (as aborted): wait while completions keep coming, and give
  // up after `quietMs` without one (or SETTLE_MS in all).
  const quietMs = options.quietMs ?? 1000;
  const until = Date.now() + SETTLE_MS;
  let lastProgress = Date.now();
  while (pending().length > 0 && Date.now() < until && Date.now() - lastProgress < quietMs) {
    if ((await pumpOnce(end, 20)) > 0) lastProgress = Date.now();
  }
  const missing = pending();
  if (missing.length > 0) {
    const list = missing.slice(0, 6).map((o) => `op ${o.id} (${o.kind} of step ${o.step}${o.conn ? ` on ${o.conn.name}` : o.listener ? ` on listener ${o.listener.id}` : ''})`);
    throw new InvariantError(end, `${missing.length} operation(s) never completed after every socket was closed (nothing more for ${quietMs} ms): ${list.join(', ')}`);
  }
  for (const p of await call(t.closePort(port), 'closePort (end)', end)) onPacket(end, p, 'closePort');
  for (const c of conns) {
    checkStream(end, c);
    // After a clean end of stream, everything the peer sent arrived.
    const peer = c.peer;
    if (peer && c.sawEof && !c.shutRecv && !peer.abortive && (peer.shutSend || peer.closed) && peer.sends.every((s) => s.done?.status === 'ok')) {
      const got = received(c).length;
      const sent = sentKnown(peer).known.length;
      if (got !== sent) throw new InvariantError(end, `${c.name} saw eof after ${got} bytes, but its peer sent ${sent} and shut down cleanly`);
    }
  }
  for (const s of [...conns.map((c) => ({ id: c.id, name: c.name })), ...listeners.map((l) => ({ id: l.id, name: `listener ${l.id}` }))]) {
    let known = true;
    try {
      await call(api().cancel(s.id), 'cancel (leak check)', end);
    } catch (e) {
      if (!(e instanceof TargetError)) throw e;
      known = false;
    }
    if (known) throw new InvariantError(end, `${s.name} is still known to the target after close (leaked handle)`);
  }
  for (const ps of poolStates) {
    for (const id of [...ps.held]) {
      const r = await call(pools!.releaseBuffer(ps.id, id), 'releaseBuffer (end)', end);
      if (r !== 'ok') throw new InvariantError(end, `pool ${ps.id}: releasing held buffer ${id} at the end answered ${r}`);
      ps.held.delete(id);
    }
    await checkStats(end, ps);
    await call(pools!.destroyBufferPool(ps.id), 'destroyBufferPool', end);
  }
  return stats;
}

/** Documented deviations of a target that the invariants tolerate (each with its reason in KNOWN_DEVIATIONS). */
export type SocketAllowance = 'close-under-reports-send';

export interface SocketRunOptions {
  opTimeoutMs?: number;
  /** At the end, how long to wait without a completion before declaring the pending ones lost (default 1000). */
  quietMs?: number;
  allow?: SocketAllowance[];
}

/**
 * Known deviations by target name (info().name): tolerated by the sockets suite and printed by `cpspec
 * fuzz`, never silent. test/fuzz/sockets.test.ts proves each one still exists, so a fixed target makes its
 * entry fail as stale.
 */
export const KNOWN_DEVIATIONS: Record<string, Array<{ allow: SocketAllowance; why: string; repro: SocketScenario }>> = {
  // None today. The model once under-reported a send aborted by close (it counted only the chunks Node had
  // confirmed, while libuv had already written part of the chunk in flight); closeSock now counts what
  // libuv wrote, and the repro that showed it is kept in fuzz/corpus/sockets-close-after-send.json.
};

/** The allowances for a target, by its info().name. */
export function allowancesFor(name: string): SocketAllowance[] {
  return (KNOWN_DEVIATIONS[name] ?? []).map((d) => d.allow);
}

/** What one run exercised (for tests and progress lines): completions by kind:status, bytes, connections. */
export interface SocketRunStats {
  completions: Record<string, number>;
  bytesReceived: number;
  connections: number;
  poolOps: number;
}

// ---------------------------------------------------------------------------------------------------------
// Deliberately broken targets, to prove the fuzzer catches real socket and pool bugs and shrinks them.
// ---------------------------------------------------------------------------------------------------------

interface CompletionEdits {
  /** Sees every receive the inner target accepted. */
  recv?(socket: SocketId, options: { length: number; token: number; pool?: PoolId }, op: OpId): void;
  /** Sees every close before it is made. */
  close?(socket: SocketId): void;
  /** Each completion on its way to the application: the packet to deliver instead, or undefined to drop it. */
  edit(p: Packet): Packet | undefined | Promise<Packet | undefined>;
  reset(): void;
}

/** Wraps a target so that its completions pass through `hooks.edit` (dequeue, dequeueMany and closePort alike). */
function editCompletions(inner: Target, hooks: CompletionEdits): Target {
  const s = inner.sockets;
  if (!s) throw new Error('a broken socket target needs a target with sockets');
  const editAll = async (packets: Packet[]) => (await Promise.all(packets.map((p) => hooks.edit(p)))).filter((p): p is Packet => p !== undefined);
  const sockets: SocketApi = {
    listen: (...a) => s.listen(...a),
    accept: (...a) => s.accept(...a),
    connect: (...a) => s.connect(...a),
    recv: async (socket, options) => {
      const op = await s.recv(socket, options);
      hooks.recv?.(socket, options, op);
      return op;
    },
    send: (...a) => s.send(...a),
    shutdown: (...a) => s.shutdown(...a),
    close: (socket, options) => {
      hooks.close?.(socket);
      return s.close(socket, options);
    },
    cancel: (...a) => s.cancel(...a),
    setBuffers: (...a) => s.setBuffers(...a),
    setFaults: (...a) => s.setFaults(...a),
  };
  const t: Target = {
    info: () => inner.info(),
    createPort: (c) => inner.createPort(c),
    post: (p, o) => inner.post(p, o),
    dequeue: async (port, timeoutMs) => {
      for (;;) {
        const r = await inner.dequeue(port, timeoutMs);
        if (r.kind !== 'packet') return r;
        const p = await hooks.edit(r.packet);
        if (p) return { kind: 'packet', packet: p };
      }
    },
    dequeueMany: async (port, max, timeoutMs) => {
      for (;;) {
        const r = await inner.dequeueMany(port, max, timeoutMs);
        if (r.kind !== 'packets') return r;
        const packets = await editAll(r.packets);
        if (packets.length > 0) return { kind: 'packets', packets };
        if (timeoutMs === 0) return { kind: 'timeout' };
      }
    },
    closePort: async (port) => editAll(await inner.closePort(port)),
    runWorkers: (p, programs, o) => inner.runWorkers(p, programs, o),
    sockets,
    reset: async () => {
      hooks.reset();
      await inner.reset();
    },
    dispose: () => inner.dispose(),
  };
  if (inner.pools) t.pools = inner.pools;
  if (inner.framing) t.framing = inner.framing;
  return t;
}

/**
 * Wraps a target so that the 'aborted' completion of a recv that was pending when its socket was closed is
 * dropped on the floor (the classic "close leaves a receive pending forever" bug).
 */
export function dropAbortedRecvOnClose(inner: Target): Target {
  const recvSocket = new Map<OpId, SocketId>();
  const closed = new Set<SocketId>();
  return editCompletions(inner, {
    recv: (socket, _options, op) => recvSocket.set(op, socket),
    close: (socket) => closed.add(socket),
    edit: (p) => (p.status === 'aborted' && p.op !== undefined && closed.has(recvSocket.get(p.op) ?? -1) ? undefined : p),
    reset: () => {
      recvSocket.clear();
      closed.clear();
    },
  });
}

/** Linux's ENOBUFS: the native error of a pool-exhausted receive. */
const ENOBUFS = 105;

/**
 * Wraps a target so that a pool-backed receive that took the last free buffer of its pool reports
 * pool-exhausted (0 bytes, ENOBUFS) and loses the bytes it read, its buffer going back to the pool
 * quietly: a back-end that checks for exhaustion after taking the buffer instead of before.
 */
export function exhaustedOnLastBuffer(inner: Target): Target {
  const pools = inner.pools;
  if (!pools) throw new Error('exhaustedOnLastBuffer needs a target with pools');
  const recvPool = new Map<OpId, PoolId>();
  return editCompletions(inner, {
    recv: (_socket, options, op) => {
      if (options.pool !== undefined) recvPool.set(op, options.pool);
    },
    edit: async (p) => {
      const pool = p.op === undefined ? undefined : recvPool.get(p.op);
      if (pool === undefined || p.status !== 'ok' || p.buffer === undefined || (await pools.poolStats(pool)).available > 0) return p;
      await pools.releaseBuffer(pool, p.buffer);
      return { key: p.key, token: p.token, op: p.op, status: 'pool-exhausted', bytes: 0, nativeError: ENOBUFS };
    },
    reset: () => recvPool.clear(),
  });
}
