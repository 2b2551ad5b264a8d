// The one target interface. Every implementation (the reference model, the native back-ends, an external
// driver speaking conformance/PROTOCOL.md) sits behind it, and every requirement in spec/ is written only
// against it. Keep this file free of implementation code: it is the contract.
//
// Conventions
// - Every method is async: a target may live in another process.
// - Handles (ports, sockets, pools) are small integers chosen by the target, unique within one target
//   instance until reset().
// - A method that is called with bad arguments rejects with a TargetError whose code is 'invalid'.
// - A method that needs a capability the target lacks rejects with code 'unsupported'.

/** Portable completion statuses. The native error code travels beside them (Packet.nativeError). */
export const STATUSES = [
  'ok',
  'eof',
  'aborted',
  'reset',
  'refused',
  'pool-exhausted',
  'timeout',
  'closed',
  'invalid',
] as const;
export type Status = (typeof STATUSES)[number];

/**
 * Capabilities a target may declare in info().capabilities. A requirement names the capabilities it needs;
 * the runner reports it `unsupported` (never skipped silently) when one is missing.
 */
export const CAPABILITIES = {
  /** create/post/dequeue/close on a completion port. */
  port: 'port',
  /** dequeueMany (GetQueuedCompletionStatusEx-like). */
  portBatch: 'port.batch',
  /** runWorkers: worker programs on threads (real OS threads or the model's virtual threads). */
  workers: 'workers',
  /** The 'block' step: a blocking region that releases the thread's concurrency slot (Windows does this in the kernel). */
  blockingRegion: 'workers.blocking-region',
  /** Worker threads are real OS threads (traces are measured, not simulated). */
  realThreads: 'workers.real-threads',
  /** Sockets (listen/accept/connect/recv/send/shutdown/close/cancel) completing through the port. */
  sockets: 'sockets',
  /** Zero-length receive as a readiness probe. */
  zeroLengthProbe: 'sockets.zero-length-probe',
  /** Opt-in exposure of short send completions. */
  partialSendMode: 'sockets.partial-send-mode',
  /** Deterministic fault injection (cap bytes per call, fail the Nth call). */
  faultInjection: 'fault-injection',
  /** Buffer pools and pool-backed receives. */
  pool: 'pool',
  /** Session pools (connection limits). */
  sessionPool: 'pool.sessions',
  /** Packet framing codec (decode/encode of the seeds' game packet). */
  framing: 'framing',
  /** Skip-on-success mode: synchronous successes queue no packet. */
  skipOnSuccess: 'sockets.skip-on-success',
} as const;
export type Capability = (typeof CAPABILITIES)[keyof typeof CAPABILITIES];

export interface TargetInfo {
  /** Implementation name, e.g. "cpspec-model", "cpspec-native". */
  name: string;
  version: string;
  /** Back-end in use, e.g. "model", "epoll", "uring", "iocp", "wine-iocp". */
  backend: string;
  capabilities: string[];
  /** Why a back-end was chosen or rejected (e.g. "io_uring denied: EPERM; using epoll"). */
  notes?: string[];
  /** Number of hardware threads as seen by the target (used to resolve concurrency 0). */
  hardwareThreads: number;
}

export type PortId = number;

export interface Packet {
  key: number;
  bytes: number;
  /** Opaque value returned unchanged (the OVERLAPPED pointer / user_data analogue). Safe integer. */
  token: number;
  status: Status;
  /** Native error code beside the portable status: errno on Linux, GetLastError()/NTSTATUS on Windows; 0 if none. */
  nativeError: number;
  // Socket completions (see SocketApi) also carry:
  /** The operation id the submission returned. */
  op?: number;
  /** recv: the bytes received (bytes === data.length). */
  data?: Uint8Array;
  /** accept: the new connected socket, already associated with the listener's port. */
  socket?: number;
  /** pool-backed recv: the pool buffer holding the data (give it back with the pool API). */
  buffer?: number;
}

export type DequeueResult =
  | { kind: 'packet'; packet: Packet }
  | { kind: 'timeout' }
  | { kind: 'closed' };

export type DequeueManyResult =
  | { kind: 'packets'; packets: Packet[] }
  | { kind: 'timeout' }
  | { kind: 'closed' };

export interface PostOptions {
  key: number;
  bytes?: number; // default 0
  token?: number; // default 0
  /** Status carried by the packet (a failed-I/O packet); default 'ok'. */
  status?: Status;
  nativeError?: number;
}

/** Timeouts are in milliseconds: 0 = poll, -1 = infinite, otherwise 1..2^31-1. Anything else is 'invalid'. */
export const INFINITE = -1;
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

// ---------------------------------------------------------------------------------------------------------
// Worker programs: threads that run a small program against one port and record a trace. Concurrency
// requirements are checked on these traces, so on native targets they are measured on real OS threads.
// ---------------------------------------------------------------------------------------------------------

export type WorkerStep =
  /**
   * Record 'wait', then dequeue (max > 1: dequeueMany). Records one 'got' per packet (key), or 'timeout' or
   * 'closed'; on 'timeout' or 'closed' the worker records 'exit' and stops.
   */
  | { op: 'dequeue'; timeoutMs: number; max?: number }
  /** Busy work for `us` microseconds (the thread keeps its slot). */
  | { op: 'spin'; us: number }
  /** Sleep `us` microseconds outside any blocking region (the thread keeps its slot if it holds one). */
  | { op: 'sleep'; us: number }
  /** Sleep `us` microseconds inside a blocking region: records 'block-enter' before and 'block-leave' after. */
  | { op: 'block'; us: number }
  /**
   * Post `count` (default 1) packets with keys key + iteration*count + i (i in 0..count-1), bytes = `bytes`
   * (default 0), token = the key. Records one 'post' per packet (key), before posting it.
   */
  | { op: 'post'; key: number; count?: number; bytes?: number };

export interface WorkerProgram {
  steps: WorkerStep[];
  /** Times to run the steps; -1 = until a dequeue step times out or sees 'closed'. Default 1. */
  repeat?: number;
}

export interface RunWorkersOptions {
  /** Close the port this many ms after all workers have started (-1 = never; default -1). */
  closeAfterMs?: number;
  /** Whole-run limit in ms; workers still running then are reported (the target must not hang). Default 30000. */
  deadlineMs?: number;
}

/** Event codes in a trace. Numeric so traces can be compact (typed arrays, JSON number arrays). */
export const TRACE_EVENTS = {
  start: 0, // thread started (key unused)
  wait: 1, // about to call dequeue
  got: 2, // dequeued a packet: key
  timeout: 3, // dequeue timed out
  closed: 4, // dequeue saw the port closed
  'block-enter': 5,
  'block-leave': 6,
  post: 7, // about to post: key
  exit: 8, // thread leaves
  'port-closed': 9, // the harness closed the port (thread = -1 in JSON, 65535 in typed arrays)
} as const;
export type TraceEventName = keyof typeof TRACE_EVENTS;
export const HARNESS_THREAD = 65535;

/**
 * A trace: struct of arrays, one entry per event, sorted by time (ties: the order the target recorded them).
 * t is nanoseconds since the run started (monotonic clock; virtual time on the model).
 */
export interface Trace {
  threads: number;
  t: Float64Array;
  thread: Uint16Array;
  ev: Uint8Array;
  key: Float64Array;
  /** Workers that did not finish by the deadline (the run was cut short). */
  unfinished: number;
  /**
   * Packets no worker dequeued: those handed back by the harness's own close (closeAfterMs or the deadline)
   * plus those still queued in the port when the run ended (they stay there).
   */
  leftover: number;
}

// ---------------------------------------------------------------------------------------------------------
// Sockets (capability 'sockets'): TCP operations whose completions arrive through a port, proactor style.
// Every operation is submitted with a caller-chosen token and returns an operation id at once; its result
// arrives later as ONE packet on the port the socket is associated with (key = the socket's key, token = the
// operation's token, op = the id, status = the portable status, nativeError = errno / Win32 code).
// ---------------------------------------------------------------------------------------------------------

export type SocketId = number;
export type OpId = number;

export interface SocketAddress {
  host: string;
  port: number;
}

export interface SendOptions {
  token: number;
  /**
   * false (default): the send completes with every byte or with an error; the back-end resubmits the rest
   * itself. true (needs 'sockets.partial-send-mode'): a short write completes with the bytes sent so far.
   */
  partial?: boolean;
}

/** Deterministic fault injection (needs 'fault-injection'): applied to one socket's system calls. */
export interface SocketFaults {
  /** At most this many bytes per send/recv system call (short transfers on demand). */
  maxBytesPerCall?: number;
  /** Fail the nth (1-based) send or recv system call with this errno. */
  failNth?: { call: 'send' | 'recv'; n: number; errno: number };
}

export interface SocketApi {
  /** A listening TCP socket on host (default 127.0.0.1) and bindPort (0 = any), associated with `port` under `key`. */
  listen(port: PortId, options: { key: number; host?: string; bindPort?: number; backlog?: number }): Promise<{ socket: SocketId; address: SocketAddress }>;
  /** Queues an accept; its completion carries the listener's key and the new socket (associated under newKey). */
  accept(listener: SocketId, options: { token: number; newKey: number }): Promise<OpId>;
  /** Creates a socket associated with `port` under `key` and connects it asynchronously (refused → status refused). */
  connect(port: PortId, options: { key: number; token: number; host: string; remotePort: number }): Promise<{ socket: SocketId; op: OpId }>;
  /**
   * length > 0: a receive of up to length bytes; length 0: a readiness probe that consumes nothing.
   * pool (needs 'pool'): a pool-backed receive. Its buffer is taken from the pool when the receive is
   * attempted (at submission, and each time the socket becomes readable), not reserved for it; the packet
   * carries `buffer` (the application releases it) and `data`. An attempt that finds no free buffer
   * completes with status 'pool-exhausted', 0 bytes, nothing read: the bytes (and a pending end of stream)
   * stay for the next receive. The first pool-backed receive binds the pool to receives: acquireBuffer on it
   * is then 'invalid' (on io_uring its free buffers belong to the kernel's buffer ring). At most
   * min(length, buffer size) bytes. Full contract: native/core/recv_pool.h.
   */
  recv(socket: SocketId, options: { length: number; token: number; pool?: PoolId }): Promise<OpId>;
  send(socket: SocketId, data: Uint8Array, options: SendOptions): Promise<OpId>;
  /** Shuts down a direction; queues no packet. */
  shutdown(socket: SocketId, how: 'send' | 'recv' | 'both'): Promise<void>;
  /** Closes the socket: every pending operation completes once with 'aborted'. abortive: linger 0 (sends RST). */
  close(socket: SocketId, options?: { abortive?: boolean }): Promise<void>;
  /** Cancels one pending operation, or all on the socket when op is omitted: 'ok' if something was pending, else 'not-found'. */
  cancel(socket: SocketId, op?: OpId): Promise<'ok' | 'not-found'>;
  /** SO_SNDBUF / SO_RCVBUF, in bytes (the kernel may round). */
  setBuffers(socket: SocketId, sizes: { send?: number; recv?: number }): Promise<void>;
  setFaults(socket: SocketId, faults: SocketFaults): Promise<void>;
  /**
   * Session limit on a listener (capability 'pool.sessions'): at most `max` accepted sockets open at once
   * (0 = no limit). A connection arriving at the limit, while an accept is pending, is refused: `fullMessage`
   * (at most 4096 bytes) is written to it, then its sending side is shut down and it is closed (the peer
   * reads the message, then end of stream); no accept completes for it and `refused` counts it. A session
   * ends when the application closes the accepted socket.
   */
  limitSessions?(listener: SocketId, options: { max: number; fullMessage?: Uint8Array }): Promise<void>;
  sessionStats?(listener: SocketId): Promise<SessionStats>;
}

export interface SessionStats {
  max: number;
  active: number;
  refused: number;
}

// ---------------------------------------------------------------------------------------------------------
// Buffer pools (capability 'pool').
// ---------------------------------------------------------------------------------------------------------

export type PoolId = number;
export type BufferId = number;

export type AcquireResult = { kind: 'buffer'; id: BufferId } | { kind: 'exhausted' };
export const RELEASE_RESULTS = ['ok', 'double-release', 'foreign'] as const;
export type ReleaseResult = (typeof RELEASE_RESULTS)[number];

export interface PoolStats {
  total: number;
  inUse: number;
  available: number;
  highWater: number;
  failedAcquires: number;
}

export interface BufferPoolOptions {
  /** 1..2^30 bytes, rounded up to a multiple of 64. */
  bufferSize: number;
  /** 1..2^30 buffers; bufferSize (rounded) x count at most 2^36 bytes. */
  count: number;
}

/**
 * Buffer pools (capability 'pool'): fixed-size buffers, bounded count, exhaustion reported, never waited out
 * forever. Unknown pool handles reject with 'not-found'; bad arguments with 'invalid'.
 */
export interface PoolTarget {
  createBufferPool(options: BufferPoolOptions): Promise<PoolId>;
  /** waitMs default 0 (answer at once); 0..2^31-1, never infinite (-1 is 'invalid'). */
  acquireBuffer(pool: PoolId, waitMs?: number): Promise<AcquireResult>;
  releaseBuffer(pool: PoolId, id: BufferId): Promise<ReleaseResult>;
  poolStats(pool: PoolId): Promise<PoolStats>;
  /** Frees the pool (pending waits resolve 'exhausted'); later calls with this handle reject 'not-found'. */
  destroyBufferPool(pool: PoolId): Promise<void>;
}


// ---------------------------------------------------------------------------------------------------------
// Packet framing (capability 'framing'): the seeds' 12-byte little-endian game header over a byte stream
// (reference/src/framing/FRAMING.md). Codec errors are data, not rejections: { code, offset, ...details }.
// ---------------------------------------------------------------------------------------------------------

export type DecoderId = number;

export interface WireFrame {
  /** u16 */
  type: number;
  /** u32 */
  sequence: number;
  /** u32 */
  playerId: number;
  payload: Uint8Array;
}

/** A typed codec error: code (see FRAMING.md), the stream offset of the offending frame, and details. */
export interface FramingFault {
  code: string;
  offset: number;
  /** truncated: bytes held when the stream ended. */
  dangling?: number;
  [detail: string]: unknown;
}

export interface FramingApi {
  /** maxSize: 12..65535 (default 65535); types: the registry of allowed frame types (default: all). */
  createDecoder(options?: { maxSize?: number; types?: number[] }): Promise<DecoderId>;
  /** Frames completed by this chunk, in order; error: a fatal error (the decoder is closed after it). */
  feed(decoder: DecoderId, chunk: Uint8Array): Promise<{ frames: WireFrame[]; error: FramingFault | null }>;
  /** Applies to the next frame header not yet parsed. */
  setMaxSize(decoder: DecoderId, maxSize: number): Promise<void>;
  /** End of stream: null, or truncated (with dangling) when a frame is incomplete. */
  end(decoder: DecoderId): Promise<FramingFault | null>;
  destroyDecoder(decoder: DecoderId): Promise<void>;
  /** Rejects 'invalid' for fields out of range or a payload too large for the u16 size. */
  encode(frames: WireFrame[]): Promise<Uint8Array>;
  /** The payload of a batch frame (reserved type 0xFFFF): explicit count and sizes, optionally zlib. */
  encodeBatch(frames: WireFrame[], options?: { compress?: boolean; level?: number }): Promise<Uint8Array>;
  /** Never inflates beyond maxDecompressed (default 1 MiB). */
  decodeBatch(payload: Uint8Array, options?: { maxDecompressed?: number; maxCount?: number }): Promise<{ frames: WireFrame[]; error: FramingFault | null }>;
  /**
   * The write side: writes `bytes` through a writer that follows `script` (per call: the byte count it
   * accepts, 0 for no progress, or 'again' for would-block), resuming where it stopped after each
   * would-block while the script lasts. written = what the writer received, in order.
   */
  writeAll(bytes: Uint8Array, script: Array<number | 'again'>): Promise<{ done: boolean; offset: number; error: FramingFault | null; written: Uint8Array; resumes: number }>;
}

// ---------------------------------------------------------------------------------------------------------
// The target.
// ---------------------------------------------------------------------------------------------------------

export interface Target {
  info(): Promise<TargetInfo>;

  /** concurrency: 0 = hardware threads; must be 0..1024. */
  createPort(concurrency: number): Promise<PortId>;
  /** Rejects with 'closed' on a closed port. */
  post(port: PortId, packet: PostOptions): Promise<void>;
  /** On a closed port resolves { kind: 'closed' } at once. */
  dequeue(port: PortId, timeoutMs: number): Promise<DequeueResult>;
  /** max: 1..4096. Returns at least one packet unless timeout/closed; at most max. Needs 'port.batch'. */
  dequeueMany(port: PortId, max: number, timeoutMs: number): Promise<DequeueManyResult>;
  /**
   * Closes the port: every waiter wakes with 'closed'; later dequeues see 'closed', later posts reject.
   * Packets still queued are not lost silently: they are returned here, in FIFO order (drained to the closer).
   * Closing twice resolves with an empty list.
   */
  closePort(port: PortId): Promise<Packet[]>;

  /** Runs one worker thread per program on the port and resolves with the trace. Needs 'workers'. */
  runWorkers(port: PortId, programs: WorkerProgram[], options?: RunWorkersOptions): Promise<Trace>;

  /** Socket operations (capability 'sockets'); absent on targets without sockets. */
  sockets?: SocketApi;
  /** Buffer pools (capability 'pool'); absent on targets without pools. */
  pools?: PoolTarget;
  /** The packet framing codec (capability 'framing'); absent on targets without it. */
  framing?: FramingApi;

  /** Releases everything the target holds (ports, sockets, pools); the target stays usable. */
  reset(): Promise<void>;
  /** Releases everything and ends the target (stops a driver process). */
  dispose(): Promise<void>;
}

/**
 * invalid, closed, unsupported, not-found and internal come from targets (and travel in the driver protocol);
 * protocol, crash and timeout are raised by the runner's driver client when a driver misbehaves.
 */
export type TargetErrorCode = 'invalid' | 'closed' | 'unsupported' | 'not-found' | 'protocol' | 'crash' | 'timeout' | 'internal';

/** The error every target rejects with. */
export class TargetError extends Error {
  readonly code: TargetErrorCode;
  readonly nativeError: number;
  constructor(code: TargetErrorCode, message: string, nativeError = 0) {
    super(message);
    this.name = 'TargetError';
    this.code = code;
    this.nativeError = nativeError;
  }
}

/** Validates a timeout argument (shared by all implementations so they reject the same inputs). */
export function checkTimeout(timeoutMs: unknown): number {
  if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < -1 || timeoutMs > MAX_TIMEOUT_MS) {
    throw new TargetError('invalid', `timeout must be an integer in -1..${MAX_TIMEOUT_MS} ms (-1 = infinite), got ${String(timeoutMs)}`);
  }
  return timeoutMs;
}

export function checkConcurrency(concurrency: unknown): number {
  if (typeof concurrency !== 'number' || !Number.isInteger(concurrency) || concurrency < 0 || concurrency > 1024) {
    throw new TargetError('invalid', `concurrency must be an integer in 0..1024 (0 = hardware threads), got ${String(concurrency)}`);
  }
  return concurrency;
}
