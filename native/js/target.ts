// The native reference implementation behind the Target interface (reference/src/target.ts): the port
// core in C++ (native/core), reached through the addon (native/addon). On Linux the port core is shared by
// the epoll and io_uring back-ends. Sockets (SocketApi) run on the epoll back-end (native/epoll) or the
// io_uring back-end (native/uring) through the addon's createSocketBackend. The default target (no backend
// option) takes the best one available: uring when the addon can create it here, else epoll; info().notes
// says which and why (e.g. "io_uring unavailable: io_uring_setup: EPERM; using epoll"). CPSPEC_DISABLE_URING=1
// in the environment makes the io_uring setup fail as a seccomp denial would (native/uring/uring_backend.cpp).
//
// - Ports are tracked by small integer ids (1, 2, ...), unique until reset().
// - JS-level dequeues run on the addon's own threads: each pending dequeue is a separate waiter, as if made
//   by its own thread that exits when the call returns (it needs a free slot to be released but never
//   keeps one), the same rule as the model. runWorkers runs real OS threads.
// - Errors: TargetError 'invalid' for bad arguments (unknown port or socket included), 'closed' for a post on
//   a closed port, 'unsupported' for a back-end that is not built. A socket call that fails synchronously
//   (nothing queued) rejects with the addon's code: 'invalid', or the portable status name (e.g. 'refused')
//   with nativeError = errno.
// - Sockets: one native back-end per target, created on first use and shut down by reset()/dispose()
//   (every pending operation then completes with 'aborted'). Socket and operation ids come from it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  CAPABILITIES,
  TargetError,
  checkConcurrency,
  checkTimeout,
  type DequeueManyResult,
  type DequeueResult,
  type Packet,
  type PortId,
  type PostOptions,
  type RunWorkersOptions,
  type SendOptions,
  type SessionStats,
  type SocketAddress,
  type SocketApi,
  type SocketFaults,
  type SocketId,
  type OpId,
  type Target,
  type TargetErrorCode,
  type TargetInfo,
  type Trace,
  type WorkerProgram,
} from '../../reference/src/target.ts';
import { addonPath, loadAddon, repoRoot, type Addon, type AddonPort } from './addon.ts';
import { NativePools, type PoolBindings } from './pools.ts';
import { nativeFramingApi } from './framing.ts';
import type { CodecFramingApi } from '../../reference/src/framing/api.ts';

export { addonPath, loadAddon } from './addon.ts';
export type { Addon, AddonPort } from './addon.ts';

export const NATIVE_NAME = 'cpspec-native';

export interface NativeTargetOptions {
  /** 'epoll' or 'uring' on Linux (rejected with 'unsupported' where io_uring cannot run), 'iocp' on Windows; default: the best available. */
  backend?: string;
}

const CAPS = [
  CAPABILITIES.port,
  CAPABILITIES.portBatch,
  CAPABILITIES.workers,
  CAPABILITIES.blockingRegion,
  CAPABILITIES.realThreads,
];

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

const SOCKET_CAPS = [
  CAPABILITIES.sockets,
  CAPABILITIES.zeroLengthProbe,
  CAPABILITIES.partialSendMode,
  CAPABILITIES.faultInjection,
  CAPABILITIES.sessionPool,
];

/** Codes an addon socket call may throw besides the TargetError codes: the portable status names. */
const PASS_THROUGH = new Set(['invalid', 'closed', 'unsupported', 'not-found', 'eof', 'aborted', 'reset', 'refused', 'pool-exhausted', 'timeout']);

/**
 * Turns an addon error (an Error with code 'invalid' / 'closed' / 'internal', or for socket calls a status
 * name with nativeError) into a TargetError.
 */
function toTargetError(e: unknown): TargetError {
  if (e instanceof TargetError) return e;
  const err = e as { code?: unknown; message?: unknown; nativeError?: unknown } | null;
  const code = typeof err?.code === 'string' && PASS_THROUGH.has(err.code) ? (err.code as TargetErrorCode) : 'internal';
  const message = typeof err?.message === 'string' ? err.message : String(e);
  const nativeError = typeof err?.nativeError === 'number' ? err.nativeError : 0;
  return new TargetError(code, message, nativeError);
}

/** The addon's socket back-end object (native/addon/sockets.cpp). Sync failures throw {code, nativeError}. */
export interface AddonSocketBackend {
  readonly name: string;
  listen(port: AddonPort, key: number, host?: string, bindPort?: number, backlog?: number): { socket: number; address: SocketAddress };
  accept(listener: number, token: number, newKey: number): number;
  connect(port: AddonPort, key: number, token: number, host: string, remotePort: number): { socket: number; op: number };
  recv(socket: number, length: number, token: number, pool?: unknown): number;
  send(socket: number, data: Uint8Array, token: number, partial?: boolean): number;
  shutdown(socket: number, how: 'send' | 'recv' | 'both'): void;
  close(socket: number, abortive?: boolean): void;
  cancel(socket: number, op?: number): 'ok' | 'not-found';
  setBuffers(socket: number, send?: number, recv?: number): void;
  setFaults(socket: number, faults: SocketFaults): void;
  setSessionLimit(listener: number, max: number, message?: Uint8Array): void;
  sessionStats(listener: number): SessionStats;
  shutdownAll(): void;
}

type SocketAddon = Addon & { createSocketBackend?: (name: string) => AddonSocketBackend };

function options(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TargetError('invalid', `${what} must be an object, got ${String(v)}`);
  return v as Record<string, unknown>;
}

/** SocketApi over the addon's back-end; ports are the target's (looked up by id). */
class NativeSockets implements SocketApi {
  private readonly owner: NativeTarget;
  constructor(owner: NativeTarget) {
    this.owner = owner;
  }

  private call<T>(fn: (b: AddonSocketBackend) => T): T {
    const b = this.owner.socketBackend();
    try {
      return fn(b);
    } catch (e) {
      throw toTargetError(e);
    }
  }

  async listen(port: number, opts: { key: number; host?: string; bindPort?: number; backlog?: number }): Promise<{ socket: SocketId; address: SocketAddress }> {
    const p = this.owner.portById(port);
    const o = options(opts, 'options');
    return this.call((b) => b.listen(p, o.key as number, (o.host as string | undefined) ?? '127.0.0.1', o.bindPort as number | undefined, o.backlog as number | undefined));
  }

  async accept(listener: SocketId, opts: { token: number; newKey: number }): Promise<OpId> {
    const o = options(opts, 'options');
    return this.call((b) => b.accept(listener, o.token as number, o.newKey as number));
  }

  async connect(port: number, opts: { key: number; token: number; host: string; remotePort: number }): Promise<{ socket: SocketId; op: OpId }> {
    const p = this.owner.portById(port);
    const o = options(opts, 'options');
    return this.call((b) => b.connect(p, o.key as number, o.token as number, o.host as string, o.remotePort as number));
  }

  async recv(socket: SocketId, opts: { length: number; token: number; pool?: number }): Promise<OpId> {
    const o = options(opts, 'options');
    if (o.pool === undefined) return this.call((b) => b.recv(socket, o.length as number, o.token as number));
    const pool = this.owner.pools?.addonPool(o.pool as number);
    if (pool === undefined) throw new TargetError('unsupported', 'this native target has no buffer pools');
    return this.call((b) => b.recv(socket, o.length as number, o.token as number, pool));
  }

  async send(socket: SocketId, data: Uint8Array, opts: SendOptions): Promise<OpId> {
    const o = options(opts, 'options');
    if (!(data instanceof Uint8Array)) throw new TargetError('invalid', `data must be a Uint8Array, got ${String(data)}`);
    return this.call((b) => b.send(socket, data, o.token as number, o.partial as boolean | undefined));
  }

  async shutdown(socket: SocketId, how: 'send' | 'recv' | 'both'): Promise<void> {
    this.call((b) => b.shutdown(socket, how));
  }

  async close(socket: SocketId, opts?: { abortive?: boolean }): Promise<void> {
    const o = opts === undefined ? {} : options(opts, 'options');
    this.call((b) => b.close(socket, o.abortive as boolean | undefined));
  }

  async cancel(socket: SocketId, op?: OpId): Promise<'ok' | 'not-found'> {
    return this.call((b) => b.cancel(socket, op));
  }

  async setBuffers(socket: SocketId, sizes: { send?: number; recv?: number }): Promise<void> {
    const o = options(sizes, 'sizes');
    this.call((b) => b.setBuffers(socket, o.send as number | undefined, o.recv as number | undefined));
  }

  async setFaults(socket: SocketId, faults: SocketFaults): Promise<void> {
    const o = options(faults, 'faults');
    this.call((b) => b.setFaults(socket, o as SocketFaults));
  }

  async limitSessions(listener: SocketId, opts: { max: number; fullMessage?: Uint8Array }): Promise<void> {
    const o = options(opts, 'options');
    if (o.fullMessage !== undefined && !(o.fullMessage instanceof Uint8Array)) throw new TargetError('invalid', `fullMessage must be a Uint8Array, got ${String(o.fullMessage)}`);
    this.call((b) => b.setSessionLimit(listener, o.max as number, o.fullMessage as Uint8Array | undefined));
  }

  async sessionStats(listener: SocketId): Promise<SessionStats> {
    return this.call((b) => b.sessionStats(listener));
  }
}

function checkMax(max: unknown): number {
  if (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > 4096) {
    throw new TargetError('invalid', `max must be an integer in 1..4096, got ${String(max)}`);
  }
  return max;
}

class NativeTarget implements Target {
  private readonly addon: Addon;
  private readonly backend: string;
  private readonly version = packageVersion();
  private ports = new Map<PortId, AddonPort>();
  private nextId = 1;
  private disposed = false;
  private sock: AddonSocketBackend | undefined;
  readonly sockets?: SocketApi;
  /** Buffer pools over the addon's lock-free BufferPool (native/pool). */
  readonly pools?: NativePools;
  /** The C++ framing codec. */
  readonly framing?: CodecFramingApi;

  private readonly choice: string | undefined;

  constructor(addon: Addon, backend: string, first?: AddonSocketBackend, choice?: string) {
    this.addon = addon;
    this.backend = backend;
    this.sock = first;
    this.choice = choice;
    if (this.hasSockets()) this.sockets = new NativeSockets(this);
    const bindings = addon as Partial<PoolBindings>;
    if (typeof bindings.BufferPool === 'function') this.pools = new NativePools(bindings as PoolBindings);
    this.framing = nativeFramingApi();
  }

  private hasSockets(): boolean {
    return (this.backend === 'epoll' || this.backend === 'uring' || this.backend === 'iocp') && typeof (this.addon as SocketAddon).createSocketBackend === 'function';
  }

  /** The target's socket back-end, created on first use (and again after reset). */
  socketBackend(): AddonSocketBackend {
    this.live();
    if (!this.sock) {
      try {
        this.sock = (this.addon as SocketAddon).createSocketBackend!(this.backend);
      } catch (e) {
        throw toTargetError(e);
      }
    }
    return this.sock;
  }

  /** A port by target id, for the socket calls. */
  portById(id: unknown): AddonPort {
    return this.port(id);
  }

  private live(): void {
    if (this.disposed) throw new TargetError('invalid', 'the native target was disposed');
  }

  private port(id: unknown): AddonPort {
    this.live();
    const p = typeof id === 'number' ? this.ports.get(id) : undefined;
    if (!p) throw new TargetError('invalid', `unknown port ${String(id)}`);
    return p;
  }

  async info(): Promise<TargetInfo> {
    const a = this.addon.info();
    return {
      name: NATIVE_NAME,
      version: this.version,
      backend: this.backend,
      capabilities: [...CAPS, ...(this.hasSockets() ? SOCKET_CAPS : []), ...(this.pools ? [CAPABILITIES.pool] : []), ...(this.framing ? [CAPABILITIES.framing] : [])],
      notes: [
        !this.hasSockets()
          ? `port core in user space (native/core), shared by the epoll and io_uring back-ends; sockets not built`
          : this.backend === 'uring'
            ? `port core in user space (native/core); sockets on the io_uring back-end (native/uring, one ring, one completion thread)`
            : `port core in user space (native/core); sockets on the epoll back-end (native/epoll, edge-triggered, one thread)`,
        ...(this.choice ? [this.choice] : []),
        `addon ${path.relative(repoRoot, addonPath())} (core ${a.version})`,
      ],
      hardwareThreads: a.hardwareThreads,
    };
  }

  async createPort(concurrency: number): Promise<PortId> {
    this.live();
    const c = checkConcurrency(concurrency);
    let p: AddonPort;
    try {
      p = this.addon.createPort(c);
    } catch (e) {
      throw toTargetError(e);
    }
    const id = this.nextId++;
    this.ports.set(id, p);
    return id;
  }

  async post(port: PortId, packet: PostOptions): Promise<void> {
    const p = this.port(port);
    if (typeof packet !== 'object' || packet === null) throw new TargetError('invalid', `packet must be an object, got ${String(packet)}`);
    try {
      p.post(packet.key, packet.bytes, packet.token, packet.status, packet.nativeError);
    } catch (e) {
      throw toTargetError(e);
    }
  }

  async dequeue(port: PortId, timeoutMs: number): Promise<DequeueResult> {
    const p = this.port(port);
    const t = checkTimeout(timeoutMs);
    try {
      return (await p.dequeue(t)) as DequeueResult;
    } catch (e) {
      throw toTargetError(e);
    }
  }

  async dequeueMany(port: PortId, max: number, timeoutMs: number): Promise<DequeueManyResult> {
    const p = this.port(port);
    const m = checkMax(max);
    const t = checkTimeout(timeoutMs);
    try {
      return (await p.dequeueMany(m, t)) as DequeueManyResult;
    } catch (e) {
      throw toTargetError(e);
    }
  }

  async closePort(port: PortId): Promise<Packet[]> {
    const p = this.port(port);
    try {
      return p.close() as Packet[];
    } catch (e) {
      throw toTargetError(e);
    }
  }

  async runWorkers(port: PortId, programs: WorkerProgram[], options?: RunWorkersOptions): Promise<Trace> {
    const p = this.port(port);
    if (options !== undefined && options !== null && typeof options !== 'object') {
      throw new TargetError('invalid', `options must be an object, got ${String(options)}`);
    }
    try {
      return await this.addon.runWorkers(p, programs, options ?? undefined);
    } catch (e) {
      throw toTargetError(e);
    }
  }

  async reset(): Promise<void> {
    if (this.sock) {
      const s = this.sock;
      this.sock = undefined;
      try {
        s.shutdownAll(); // pending socket operations complete with 'aborted' (to ports closed just below)
      } catch {
        // cannot fail; keep reset total
      }
    }
    for (const p of this.ports.values()) {
      try {
        p.close();
      } catch {
        // closing cannot fail; ignore anyway so reset always completes
      }
    }
    this.ports.clear();
    this.nextId = 1;
    this.pools?.reset();
    this.framing?.reset();
  }

  async dispose(): Promise<void> {
    await this.reset();
    this.disposed = true;
  }
}

/** The reason in an addon 'unsupported' error: "createSocketBackend('uring'): <why>" -> "<why>". */
function whyOf(e: unknown): string {
  const m = (e as Error | null)?.message ?? String(e);
  const i = m.indexOf('): ');
  return i >= 0 ? m.slice(i + 3) : m;
}

/**
 * Creates the native target. Rejects with 'unsupported' for an unknown back-end or one that cannot run here
 * ('uring' under a seccomp denial, an old kernel or CPSPEC_DISABLE_URING=1). No backend option: the best
 * available (uring, else epoll), named by info().backend and explained in info().notes.
 */
export async function createNativeTarget(opts: NativeTargetOptions = {}): Promise<Target> {
  const backend = opts.backend;
  if (backend !== undefined && backend !== 'epoll' && backend !== 'uring' && backend !== 'iocp') {
    throw new TargetError('unsupported', `unknown native back-end '${backend}' (available: epoll, uring, iocp)`);
  }
  if (backend === 'iocp' && process.platform !== 'win32') throw new TargetError('unsupported', 'the iocp back-end runs on Windows only');
  if ((backend === 'epoll' || backend === 'uring') && process.platform === 'win32') {
    throw new TargetError('unsupported', `the ${backend} back-end runs on Linux only`);
  }
  let addon: Addon;
  try {
    addon = loadAddon();
  } catch (e) {
    throw new TargetError('unsupported', (e as Error)?.message ?? String(e));
  }
  const create = (addon as SocketAddon).createSocketBackend;
  if (process.platform === 'win32') {
    // The Windows addon: the kernel completion port and the IOCP socket back-end (native/iocp).
    if (typeof create !== 'function') throw new TargetError('unsupported', 'this addon has no socket back-ends (createSocketBackend)');
    return new NativeTarget(addon, 'iocp', create('iocp'));
  }
  if (backend === 'epoll') return new NativeTarget(addon, 'epoll');
  if (typeof create !== 'function') {
    if (backend === 'uring') throw new TargetError('unsupported', 'this addon has no socket back-ends (createSocketBackend)');
    return new NativeTarget(addon, 'epoll');
  }
  let first: AddonSocketBackend;
  try {
    first = create('uring');
  } catch (e) {
    if (backend === 'uring') throw toTargetError(e);
    return new NativeTarget(addon, 'epoll', undefined, `io_uring unavailable: ${whyOf(e)}; using epoll`);
  }
  return new NativeTarget(addon, 'uring', first, backend === 'uring' ? undefined : 'io_uring available: using uring (best back-end)');
}
