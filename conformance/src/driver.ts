// The client side of conformance/PROTOCOL.md: a Target backed by an external driver process speaking
// JSON-RPC 2.0 over newline-delimited stdio.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  TargetError,
  TRACE_EVENTS,
  HARNESS_THREAD,
  type DequeueManyResult,
  type DequeueResult,
  type Packet,
  type PortId,
  type PostOptions,
  type RunWorkersOptions,
  type Target,
  type TargetErrorCode,
  type TargetInfo,
  type Trace,
  type WorkerProgram,
  type AcquireResult,
  type PoolStats,
  type PoolTarget,
  type ReleaseResult,
  RELEASE_RESULTS,
  type OpId,
  type SendOptions,
  type SocketAddress,
  type SocketApi,
  type SessionStats,
  type SocketFaults,
  type SocketId,
  type FramingApi,
  type FramingFault,
  type WireFrame,
} from '../../reference/src/target.ts';
import { LineSplitter, LineTooLongError, TailBuffer, clip } from './lines.ts';
import { PROTOCOL_VERSION, RUNNER_NAME, RUNNER_VERSION } from './version.ts';
import type { FailingTarget } from './targets.ts';

export const JSONRPC = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  targetError: -32000,
} as const;

const TARGET_ERROR_CODES: readonly TargetErrorCode[] = ['invalid', 'closed', 'unsupported', 'not-found', 'protocol', 'crash', 'timeout', 'internal'];
/** Synchronous socket failures carry the portable status name as their code (PROTOCOL.md): passed through. */
const SOCKET_STATUS_CODES: readonly string[] = ['eof', 'aborted', 'reset', 'refused', 'pool-exhausted'];

/** The driver could not be started or does not speak the protocol: the run stops with exit code 2. */
export class HandshakeError extends Error {
  override name = 'HandshakeError';
}

export interface DriverOptions {
  handshakeTimeoutMs: number;
  onProcess?: (pid: number) => void;
  stderrTailBytes?: number;
  /** Also copy the driver's stderr here (e.g. the host's stderr), besides keeping its tail. */
  stderrSink?: NodeJS.WritableStream;
}

interface Pending {
  method: string;
  since: number;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface RpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

/** A JSON-RPC error answer (kept apart from TargetError until mapped). */
class RpcError extends Error {
  readonly code: number;
  readonly data: unknown;
  constructor(e: RpcErrorObject) {
    super(e.message);
    this.code = e.code;
    this.data = e.data;
  }
}

type Failure = { kind: 'crash' | 'protocol'; message: string; stderrTail: string };

export class DriverTarget implements Target, FailingTarget {
  readonly argv: string[];
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly stderr: TailBuffer;
  private readonly splitter = new LineSplitter();
  private failed: Failure | undefined;
  private exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private disposing = false;
  private readonly exitWaiters: Array<() => void> = [];
  private settledResolve: () => void = () => undefined;
  private readonly settled = new Promise<void>((resolve) => {
    this.settledResolve = resolve;
  });
  /** Name/version the driver gave in cpspec.hello. */
  hello: { name: string; version: string } = { name: '?', version: '?' };

  constructor(argv: string[], opts: DriverOptions) {
    this.argv = argv;
    this.stderr = new TailBuffer(opts.stderrTailBytes ?? 4096);
    this.child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    if (this.child.pid !== undefined) opts.onProcess?.(this.child.pid);
    this.child.on('error', (e) => {
      // Spawn failure (ENOENT, EACCES) or a failed kill.
      if (this.exited === undefined && this.child.pid === undefined) {
        this.exited = { code: null, signal: null };
        this.fail('crash', `cannot start driver '${argv[0]}': ${e.message}`);
        this.settledResolve();
        this.notifyExit();
      }
    });
    this.child.stdin.on('error', () => {
      /* EPIPE when the driver is gone: reported through 'exit' */
    });
    this.child.stderr.on('data', (d: Buffer) => {
      this.stderr.write(d);
      opts.stderrSink?.write(d);
    });
    this.child.stdout.on('data', (d: Buffer) => this.onStdout(d));
    this.child.stdout.on('end', () => {
      const rest = this.splitter.end();
      if (rest !== undefined && rest.trim().length > 0) this.onLine(rest);
      // Usually the process is exiting: let 'exit' report it with its code; otherwise it is a protocol error.
      setTimeout(() => {
        if (!this.disposing && this.exited === undefined) this.fail('protocol', 'protocol error: the driver closed its stdout but kept running');
      }, 500).unref();
    });
    this.child.on('exit', (code, signal) => {
      this.exited = { code, signal };
      if (!this.disposing) {
        // Broken from now on; the pending requests are rejected once stderr has drained (at most 200 ms),
        // so the tail shows the driver's last words.
        if (this.failed === undefined) {
          this.failed = { kind: 'crash', message: `the driver exited ${signal ? `on signal ${signal}` : `with code ${code}`}`, stderrTail: '' };
        }
        let done = false;
        const once = () => {
          if (done) return;
          done = true;
          this.fail(this.failed!.kind, this.failed!.message);
          this.settledResolve();
        };
        this.child.stderr.once('close', once);
        setTimeout(once, 200).unref();
      } else {
        this.rejectAll(new TargetError('crash', 'the driver exited'));
        this.settledResolve();
      }
      this.notifyExit();
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  stderrTail(): string {
    return this.stderr.text();
  }

  failure(): Failure | undefined {
    return this.failed && { ...this.failed, stderrTail: this.stderr.text() };
  }

  /** Resolves once a dead driver's stderr has drained (at most ~200 ms after its exit); at once if it runs. */
  settle(): Promise<void> {
    return this.exited ? this.settled : Promise.resolve();
  }

  /** Requests still waiting for an answer, oldest first (shown when a case times out). */
  outstanding(): string[] {
    const now = performance.now();
    return [...this.pending.entries()].map(([id, p]) => `${p.method} (id ${id}) for ${Math.round(now - p.since)} ms`);
  }

  private notifyExit(): void {
    for (const w of this.exitWaiters.splice(0)) w();
  }

  private fail(kind: Failure['kind'], message: string): void {
    if (this.failed === undefined) {
      this.failed = { kind, message, stderrTail: '' };
    }
    this.rejectAll(new TargetError(kind === 'crash' ? 'crash' : 'protocol', this.failed.message));
    this.killNow();
  }

  private rejectAll(err: Error): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(err);
    }
  }

  /** Kills the driver at once (SIGKILL); safe to call from a process 'exit' handler. */
  killNow(): void {
    if (this.exited === undefined && this.child.pid !== undefined) {
      try {
        this.child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }

  private onStdout(d: Buffer): void {
    let lines: string[];
    try {
      lines = this.splitter.push(d);
    } catch (e) {
      if (e instanceof LineTooLongError) {
        this.fail('protocol', `protocol error: the driver wrote a ${e.message} on stdout`);
        return;
      }
      throw e;
    }
    for (const line of lines) {
      if (this.failed) return;
      this.onLine(line);
    }
  }

  private onLine(line: string): void {
    if (line.trim().length === 0) return; // blank lines are tolerated
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      this.fail('protocol', `protocol error: the driver printed a line on stdout that is not JSON: ${JSON.stringify(clip(line, 500))}`);
      return;
    }
    const m = msg as { jsonrpc?: unknown; id?: unknown; result?: unknown; error?: unknown };
    const bad = (why: string) => this.fail('protocol', `protocol error: ${why}: ${JSON.stringify(clip(line, 500))}`);
    if (typeof m !== 'object' || m === null || Array.isArray(m)) return bad('the driver printed a JSON value that is not a JSON-RPC response object');
    if (m.jsonrpc !== '2.0') return bad('a response without "jsonrpc":"2.0"');
    if (typeof m.id !== 'number' || !Number.isInteger(m.id)) {
      if (m.error !== undefined && m.id === null) {
        const e = m.error as Partial<RpcErrorObject>;
        return bad(`the driver answered an error to no request (code ${String(e?.code)}: ${String(e?.message)})`);
      }
      return bad('a response without an integer id');
    }
    const p = this.pending.get(m.id);
    if (!p) return bad(`a response to id ${m.id}, which is not outstanding (answered twice, or never asked)`);
    const hasResult = 'result' in m;
    const hasError = 'error' in m;
    if (hasResult === hasError) return bad('a response must have exactly one of "result" and "error"');
    this.pending.delete(m.id);
    if (hasError) {
      const e = m.error as Partial<RpcErrorObject>;
      if (typeof e !== 'object' || e === null || typeof e.code !== 'number' || typeof e.message !== 'string') {
        this.pending.set(m.id, p);
        return bad('an error object needs an integer "code" and a string "message"');
      }
      p.reject(new RpcError(e as RpcErrorObject));
    } else {
      p.resolve(m.result);
    }
  }

  /** Sends a request; resolves with the raw result, rejects with RpcError or TargetError. */
  rawCall(method: string, params: object | undefined, timeoutMs?: number): Promise<unknown> {
    if (this.failed) return Promise.reject(new TargetError(this.failed.kind === 'crash' ? 'crash' : 'protocol', this.failed.message));
    if (this.exited) return Promise.reject(new TargetError('crash', 'the driver is not running'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = <T>(f: (v: T) => void) => (v: T) => {
        if (timer) clearTimeout(timer);
        f(v);
      };
      this.pending.set(id, { method, since: performance.now(), resolve: settle(resolve), reject: settle(reject) });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          if (this.pending.delete(id)) reject(new TargetError('timeout', `the driver did not answer ${method} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      const req: Record<string, unknown> = { jsonrpc: '2.0', id, method };
      if (params !== undefined) req.params = params;
      try {
        this.child.stdin.write(`${JSON.stringify(req)}\n`);
      } catch (e) {
        this.pending.delete(id);
        reject(new TargetError('crash', `cannot write to the driver: ${(e as Error).message}`));
      }
    });
  }

  /** A target method: maps JSON-RPC errors to TargetError. */
  private async call(method: string, params?: object): Promise<unknown> {
    try {
      return await this.rawCall(method, params ?? {});
    } catch (e) {
      if (e instanceof RpcError) throw toTargetError(method, e);
      throw e;
    }
  }

  async handshake(timeoutMs: number): Promise<void> {
    const where = () => {
      const tail = this.stderr.text();
      return tail ? `\n--- driver stderr (tail) ---\n${tail}` : '';
    };
    let hello: unknown;
    try {
      hello = await this.rawCall('cpspec.hello', { protocol: PROTOCOL_VERSION, client: `${RUNNER_NAME} ${RUNNER_VERSION}` }, timeoutMs);
    } catch (e) {
      if (e instanceof RpcError) {
        throw new HandshakeError(
          e.code === JSONRPC.targetError
            ? `the driver does not support protocol ${PROTOCOL_VERSION}: ${e.message}`
            : `the driver answered cpspec.hello with JSON-RPC error ${e.code}: ${e.message}`,
        );
      }
      throw new HandshakeError(`handshake failed (cpspec.hello): ${(e as Error).message}${where()}`);
    }
    const h = hello as { protocol?: unknown; name?: unknown; version?: unknown };
    if (typeof h !== 'object' || h === null || h.protocol !== PROTOCOL_VERSION) {
      throw new HandshakeError(
        `the driver answered cpspec.hello with ${clip(JSON.stringify(hello) ?? 'undefined', 200)}; expected {"protocol":${PROTOCOL_VERSION},...}`,
      );
    }
    this.hello = { name: String(h.name ?? '?'), version: String(h.version ?? '?') };
    const probe = `cpspec.no-such-method-${randomBytes(6).toString('hex')}`;
    try {
      const r = await this.rawCall(probe, {}, timeoutMs);
      throw new HandshakeError(
        `the driver answered ${probe}, a method that does not exist, with a result (${clip(JSON.stringify(r) ?? 'undefined', 200)}); it must answer JSON-RPC error -32601: it does not speak the cpspec protocol`,
      );
    } catch (e) {
      if (e instanceof HandshakeError) throw e;
      if (e instanceof RpcError) {
        if (e.code !== JSONRPC.methodNotFound) {
          throw new HandshakeError(`the driver answered ${probe}, a method that does not exist, with error ${e.code} (${e.message}); it must answer -32601 (method not found)`);
        }
        return;
      }
      throw new HandshakeError(`the driver failed the method-not-found probe (${probe}): ${(e as Error).message}${where()}`);
    }
  }

  async info(): Promise<TargetInfo> {
    const r = (await this.call('info')) as Partial<TargetInfo>;
    const ok =
      typeof r === 'object' && r !== null &&
      typeof r.name === 'string' && typeof r.version === 'string' && typeof r.backend === 'string' &&
      Array.isArray(r.capabilities) && r.capabilities.every((c) => typeof c === 'string') &&
      typeof r.hardwareThreads === 'number' &&
      (r.notes === undefined || (Array.isArray(r.notes) && r.notes.every((n) => typeof n === 'string')));
    if (!ok) throw new TargetError('protocol', `the driver's info result is not a TargetInfo: ${clip(JSON.stringify(r) ?? 'undefined', 300)}`);
    const info: TargetInfo = { name: r.name!, version: r.version!, backend: r.backend!, capabilities: r.capabilities!, hardwareThreads: r.hardwareThreads! };
    if (r.notes) info.notes = r.notes;
    return info;
  }

  async createPort(concurrency: number): Promise<PortId> {
    const r = (await this.call('port.create', { concurrency })) as { port?: unknown };
    if (typeof r !== 'object' || r === null || typeof r.port !== 'number') throw shape('port.create', r);
    return r.port;
  }

  async post(port: PortId, packet: PostOptions): Promise<void> {
    await this.call('port.post', {
      port,
      key: packet.key,
      bytes: packet.bytes ?? 0,
      token: packet.token ?? 0,
      status: packet.status ?? 'ok',
      nativeError: packet.nativeError ?? 0,
    });
  }

  async dequeue(port: PortId, timeoutMs: number): Promise<DequeueResult> {
    const r = (await this.call('port.dequeue', { port, timeoutMs })) as DequeueResult;
    if (typeof r !== 'object' || r === null) throw shape('port.dequeue', r);
    if (r.kind === 'packet') return { kind: 'packet', packet: packetOf('port.dequeue', r.packet) };
    if (r.kind === 'timeout' || r.kind === 'closed') return { kind: r.kind };
    throw shape('port.dequeue', r);
  }

  async dequeueMany(port: PortId, max: number, timeoutMs: number): Promise<DequeueManyResult> {
    const r = (await this.call('port.dequeueMany', { port, max, timeoutMs })) as DequeueManyResult;
    if (typeof r !== 'object' || r === null) throw shape('port.dequeueMany', r);
    if (r.kind === 'packets') {
      if (!Array.isArray(r.packets)) throw shape('port.dequeueMany', r);
      return { kind: 'packets', packets: r.packets.map((p) => packetOf('port.dequeueMany', p)) };
    }
    if (r.kind === 'timeout' || r.kind === 'closed') return { kind: r.kind };
    throw shape('port.dequeueMany', r);
  }

  async closePort(port: PortId): Promise<Packet[]> {
    const r = (await this.call('port.close', { port })) as { packets?: unknown };
    if (typeof r !== 'object' || r === null || !Array.isArray(r.packets)) throw shape('port.close', r);
    return r.packets.map((p) => packetOf('port.close', p));
  }

  async runWorkers(port: PortId, programs: WorkerProgram[], options?: RunWorkersOptions): Promise<Trace> {
    const r = await this.call('workers.run', { port, programs, options: options ?? {} });
    return traceFromJson(r);
  }

  /** Buffer pools over the protocol's pool.* methods (capability 'pool'). */
  readonly pools: PoolTarget = {
    createBufferPool: async (options) => {
      const r = (await this.call('pool.create', { bufferSize: options.bufferSize, count: options.count })) as { pool?: unknown };
      if (typeof r !== 'object' || r === null || typeof r.pool !== 'number') throw shape('pool.create', r);
      return r.pool;
    },
    acquireBuffer: async (pool, waitMs = 0) => {
      const r = (await this.call('pool.acquire', { pool, waitMs })) as AcquireResult;
      if (r?.kind === 'exhausted') return { kind: 'exhausted' };
      if (r?.kind === 'buffer' && typeof r.id === 'number') return { kind: 'buffer', id: r.id };
      throw shape('pool.acquire', r);
    },
    releaseBuffer: async (pool, id) => {
      const r = (await this.call('pool.release', { pool, buffer: id })) as { result?: unknown };
      if (!(RELEASE_RESULTS as readonly unknown[]).includes(r?.result)) throw shape('pool.release', r);
      return r.result as ReleaseResult;
    },
    poolStats: async (pool) => {
      const r = (await this.call('pool.stats', { pool })) as PoolStats;
      const keys = ['total', 'inUse', 'available', 'highWater', 'failedAcquires'] as const;
      if (typeof r !== 'object' || r === null || !keys.every((k) => typeof r[k] === 'number')) throw shape('pool.stats', r);
      return { total: r.total, inUse: r.inUse, available: r.available, highWater: r.highWater, failedAcquires: r.failedAcquires };
    },
    destroyBufferPool: async (pool) => {
      await this.call('pool.destroy', { pool });
    },
  };

  /** Sockets over the protocol's socket.* methods (capability 'sockets'); data travels as base64. */
  readonly sockets: SocketApi = {
    listen: async (port, options) => {
      const r = (await this.call('socket.listen', {
        port,
        key: options.key,
        host: options.host ?? '127.0.0.1',
        bindPort: options.bindPort ?? 0,
        ...(options.backlog === undefined ? {} : { backlog: options.backlog }),
      })) as { socket?: unknown; address?: Partial<SocketAddress> };
      if (
        typeof r !== 'object' || r === null || typeof r.socket !== 'number' ||
        typeof r.address !== 'object' || r.address === null || typeof r.address.host !== 'string' || typeof r.address.port !== 'number'
      ) {
        throw shape('socket.listen', r);
      }
      return { socket: r.socket, address: { host: r.address.host, port: r.address.port } };
    },
    accept: async (listener, options) => opOf('socket.accept', await this.call('socket.accept', { socket: listener, token: options.token, newKey: options.newKey })),
    connect: async (port, options) => {
      const r = (await this.call('socket.connect', { port, key: options.key, token: options.token, host: options.host, remotePort: options.remotePort })) as {
        socket?: unknown;
        op?: unknown;
      };
      if (typeof r !== 'object' || r === null || typeof r.socket !== 'number' || typeof r.op !== 'number') throw shape('socket.connect', r);
      return { socket: r.socket, op: r.op };
    },
    recv: async (socket, options) =>
      opOf('socket.recv', await this.call('socket.recv', { socket, length: options.length, token: options.token, ...(options.pool === undefined ? {} : { pool: options.pool }) })),
    send: async (socket: SocketId, data: Uint8Array, options: SendOptions): Promise<OpId> => {
      if (!(data instanceof Uint8Array)) throw new TargetError('invalid', `socket.send: data must be a Uint8Array, got ${String(data)}`);
      const b64 = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
      return opOf('socket.send', await this.call('socket.send', { socket, data: b64, token: options.token, partial: options.partial ?? false }));
    },
    shutdown: async (socket, how) => {
      await this.call('socket.shutdown', { socket, how });
    },
    close: async (socket, options) => {
      await this.call('socket.close', { socket, abortive: options?.abortive ?? false });
    },
    cancel: async (socket, op) => {
      const r = (await this.call('socket.cancel', op === undefined ? { socket } : { socket, op })) as { result?: unknown };
      if (r?.result !== 'ok' && r?.result !== 'not-found') throw shape('socket.cancel', r);
      return r.result;
    },
    setBuffers: async (socket, sizes) => {
      const p: Record<string, unknown> = { socket };
      if (sizes?.send !== undefined) p.send = sizes.send;
      if (sizes?.recv !== undefined) p.recv = sizes.recv;
      await this.call('socket.setBuffers', p);
    },
    setFaults: async (socket, faults: SocketFaults) => {
      const p: Record<string, unknown> = { socket };
      if (faults?.maxBytesPerCall !== undefined) p.maxBytesPerCall = faults.maxBytesPerCall;
      if (faults?.failNth !== undefined) p.failNth = faults.failNth;
      await this.call('socket.setFaults', p);
    },
    limitSessions: async (listener, options) => {
      const p: Record<string, unknown> = { socket: listener, max: options?.max };
      if (options?.fullMessage !== undefined) {
        const m = options.fullMessage;
        if (!(m instanceof Uint8Array)) throw new TargetError('invalid', `socket.limitSessions: fullMessage must be a Uint8Array, got ${String(m)}`);
        p.fullMessage = Buffer.from(m.buffer, m.byteOffset, m.byteLength).toString('base64');
      }
      await this.call('socket.limitSessions', p);
    },
    sessionStats: async (listener) => {
      const r = (await this.call('socket.sessionStats', { socket: listener })) as SessionStats;
      const keys = ['max', 'active', 'refused'] as const;
      if (typeof r !== 'object' || r === null || !keys.every((k) => typeof r[k] === 'number')) throw shape('socket.sessionStats', r);
      return { max: r.max, active: r.active, refused: r.refused };
    },
  };

  /** The framing codec over the protocol's framing.* methods (capability 'framing'); bytes travel as base64. */
  readonly framing: FramingApi = {
    createDecoder: async (options = {}) => {
      const p: Record<string, unknown> = {};
      if (options?.maxSize !== undefined) p.maxSize = options.maxSize;
      if (options?.types !== undefined) p.types = Array.isArray(options.types) ? options.types : Array.from(options.types as Iterable<number>);
      const r = (await this.call('framing.createDecoder', p)) as { decoder?: unknown };
      if (typeof r !== 'object' || r === null || typeof r.decoder !== 'number') throw shape('framing.createDecoder', r);
      return r.decoder;
    },
    feed: async (decoder, chunk) => framesAndFault('framing.feed', await this.call('framing.feed', { decoder, data: toBase64('framing.feed', chunk) })),
    setMaxSize: async (decoder, maxSize) => {
      await this.call('framing.setMaxSize', { decoder, maxSize });
    },
    end: async (decoder) => faultOf('framing.end', ((await this.call('framing.end', { decoder })) as { error?: unknown })?.error),
    destroyDecoder: async (decoder) => {
      await this.call('framing.destroyDecoder', { decoder });
    },
    encode: async (frames) => bytesOf('framing.encode', await this.call('framing.encode', { frames: framesJson('framing.encode', frames) })),
    encodeBatch: async (frames, options = {}) => {
      const p: Record<string, unknown> = { frames: framesJson('framing.encodeBatch', frames) };
      if (options?.compress !== undefined) p.compress = options.compress;
      if (options?.level !== undefined) p.level = options.level;
      return bytesOf('framing.encodeBatch', await this.call('framing.encodeBatch', p));
    },
    decodeBatch: async (payload, options = {}) => {
      const p: Record<string, unknown> = { data: toBase64('framing.decodeBatch', payload) };
      if (options?.maxDecompressed !== undefined) p.maxDecompressed = options.maxDecompressed;
      if (options?.maxCount !== undefined) p.maxCount = options.maxCount;
      return framesAndFault('framing.decodeBatch', await this.call('framing.decodeBatch', p));
    },
    writeAll: async (bytes, script) => {
      const r = (await this.call('framing.writeAll', { data: toBase64('framing.writeAll', bytes), script })) as {
        done?: unknown;
        offset?: unknown;
        error?: unknown;
        written?: unknown;
        resumes?: unknown;
      };
      if (typeof r !== 'object' || r === null || typeof r.done !== 'boolean' || typeof r.offset !== 'number' || typeof r.resumes !== 'number') {
        throw shape('framing.writeAll', r);
      }
      return { done: r.done, offset: r.offset, error: faultOf('framing.writeAll', r.error), written: fromBase64Strict('framing.writeAll', r.written), resumes: r.resumes };
    },
  };

  async reset(): Promise<void> {
    await this.call('reset');
  }

  /** Asks the driver to shut down, then makes sure it is gone (never waits more than a few seconds). */
  async dispose(): Promise<void> {
    if (this.exited) return;
    this.disposing = true;
    const exitedWithin = (ms: number) =>
      new Promise<boolean>((resolve) => {
        if (this.exited) return resolve(true);
        const t = setTimeout(() => resolve(false), ms);
        this.exitWaiters.push(() => {
          clearTimeout(t);
          resolve(true);
        });
      });
    if (!this.failed) {
      await this.rawCall('shutdown', {}, 2000).catch(() => undefined);
    }
    try {
      this.child.stdin.end();
    } catch {
      /* ignore */
    }
    if (await exitedWithin(2000)) return;
    try {
      this.child.kill('SIGTERM');
    } catch {
      /* ignore */
    }
    if (await exitedWithin(1000)) return;
    this.killNow();
    await exitedWithin(1000);
  }
}

function shape(method: string, r: unknown): TargetError {
  return new TargetError('protocol', `the driver's ${method} result has the wrong shape: ${clip(JSON.stringify(r) ?? 'undefined', 300)}`);
}

function opOf(method: string, r: unknown): OpId {
  const o = r as { op?: unknown };
  if (typeof o !== 'object' || o === null || typeof o.op !== 'number') throw shape(method, r);
  return o.op;
}

// ---- framing.* values (PROTOCOL.md, "Framing") --------------------------------------------------------------

function toBase64(method: string, b: Uint8Array): string {
  if (!(b instanceof Uint8Array)) throw new TargetError('invalid', `${method}: bytes must be a Uint8Array, got ${String(b)}`);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

function fromBase64Strict(method: string, s: unknown): Uint8Array {
  if (typeof s !== 'string' || !isBase64(s)) throw new TargetError('protocol', `the driver's ${method} result holds bytes that are not base64: ${clip(JSON.stringify(s) ?? 'undefined', 100)}`);
  const b = Buffer.from(s, 'base64');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function framesJson(method: string, frames: WireFrame[]): unknown {
  if (!Array.isArray(frames)) throw new TargetError('invalid', `${method}: frames must be an array`);
  return frames.map((f) =>
    typeof f === 'object' && f !== null && f.payload instanceof Uint8Array ? { type: f.type, sequence: f.sequence, playerId: f.playerId, payload: toBase64(method, f.payload) } : f,
  );
}

function bytesOf(method: string, r: unknown): Uint8Array {
  const o = r as { data?: unknown };
  if (typeof o !== 'object' || o === null) throw shape(method, r);
  return fromBase64Strict(method, o.data);
}

function faultOf(method: string, e: unknown): FramingFault | null {
  if (e === null) return null;
  const f = e as Partial<FramingFault>;
  if (typeof f !== 'object' || typeof f.code !== 'string' || typeof f.offset !== 'number') {
    throw new TargetError('protocol', `the driver's ${method} result holds a malformed codec error: ${clip(JSON.stringify(e) ?? 'undefined', 300)}`);
  }
  return f as FramingFault;
}

function framesAndFault(method: string, r: unknown): { frames: WireFrame[]; error: FramingFault | null } {
  const o = r as { frames?: unknown; error?: unknown };
  if (typeof o !== 'object' || o === null || !Array.isArray(o.frames)) throw shape(method, r);
  const frames = o.frames.map((x): WireFrame => {
    const f = x as { type?: unknown; sequence?: unknown; playerId?: unknown; payload?: unknown };
    if (typeof f !== 'object' || f === null || typeof f.type !== 'number' || typeof f.sequence !== 'number' || typeof f.playerId !== 'number') {
      throw new TargetError('protocol', `the driver's ${method} result holds a malformed frame: ${clip(JSON.stringify(x) ?? 'undefined', 300)}`);
    }
    return { type: f.type, sequence: f.sequence, playerId: f.playerId, payload: fromBase64Strict(method, f.payload) };
  });
  return { frames, error: faultOf(method, o.error) };
}

/** Standard padded base64 (a linear scan: a regular expression overflows the stack on megabytes). */
function isBase64(s: string): boolean {
  if (s.length % 4 !== 0) return false;
  let pad = 0;
  if (s.endsWith('==')) pad = 2;
  else if (s.endsWith('=')) pad = 1;
  for (let i = 0; i < s.length - pad; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 47;
    if (!ok) return false;
  }
  return true;
}

function packetOf(method: string, p: unknown): Packet {
  const q = p as Omit<Partial<Packet>, 'data'> & { data?: unknown };
  const bad = () => new TargetError('protocol', `the driver's ${method} result holds a malformed packet: ${clip(JSON.stringify(p) ?? 'undefined', 300)}`);
  if (
    typeof q !== 'object' || q === null ||
    typeof q.key !== 'number' || typeof q.bytes !== 'number' || typeof q.token !== 'number' ||
    typeof q.status !== 'string' || typeof q.nativeError !== 'number'
  ) {
    throw bad();
  }
  const packet: Packet = { key: q.key, bytes: q.bytes, token: q.token, status: q.status, nativeError: q.nativeError };
  // Socket completions (PROTOCOL.md): op, socket and buffer are numbers; data is base64.
  for (const f of ['op', 'socket', 'buffer'] as const) {
    if (q[f] === undefined) continue;
    if (typeof q[f] !== 'number' || !Number.isInteger(q[f])) throw bad();
    packet[f] = q[f];
  }
  if (q.data !== undefined) {
    if (typeof q.data !== 'string' || !isBase64(q.data)) throw bad();
    const b = Buffer.from(q.data, 'base64');
    packet.data = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }
  return packet;
}

function numberArray(name: string, v: unknown): number[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number')) {
    throw new TargetError('protocol', `the driver's workers.run result: "${name}" must be an array of numbers`);
  }
  return v as number[];
}

export function traceFromJson(r: unknown): Trace {
  const o = r as Record<string, unknown>;
  if (typeof o !== 'object' || o === null) throw shape('workers.run', r);
  const t = numberArray('t', o.t);
  const thread = numberArray('thread', o.thread);
  const ev = numberArray('ev', o.ev);
  const key = numberArray('key', o.key);
  if (thread.length !== t.length || ev.length !== t.length || key.length !== t.length) {
    throw new TargetError('protocol', `the driver's workers.run result: t, thread, ev and key must have the same length (${t.length}, ${thread.length}, ${ev.length}, ${key.length})`);
  }
  const maxEv = Math.max(...Object.values(TRACE_EVENTS));
  if (ev.some((e) => !Number.isInteger(e) || e < 0 || e > maxEv)) throw new TargetError('protocol', `the driver's workers.run result has an unknown event code`);
  return {
    threads: typeof o.threads === 'number' ? o.threads : 0,
    t: Float64Array.from(t),
    thread: Uint16Array.from(thread, (x) => (x < 0 ? HARNESS_THREAD : x)),
    ev: Uint8Array.from(ev),
    key: Float64Array.from(key),
    unfinished: typeof o.unfinished === 'number' ? o.unfinished : 0,
    leftover: typeof o.leftover === 'number' ? o.leftover : 0,
  };
}

function toTargetError(method: string, e: RpcError): TargetError {
  if (e.code === JSONRPC.targetError) {
    const d = e.data as { code?: unknown; nativeError?: unknown } | undefined;
    const known = typeof d?.code === 'string' && ((TARGET_ERROR_CODES as readonly string[]).includes(d.code) || SOCKET_STATUS_CODES.includes(d.code));
    const code = known ? (d!.code as TargetErrorCode) : 'internal';
    const native = typeof d?.nativeError === 'number' ? d.nativeError : 0;
    return new TargetError(code, e.message, native);
  }
  if (e.code === JSONRPC.invalidParams) return new TargetError('invalid', `${method}: ${e.message} (JSON-RPC -32602)`);
  if (e.code === JSONRPC.methodNotFound) return new TargetError('protocol', `the driver does not implement ${method} (JSON-RPC -32601: ${e.message})`);
  return new TargetError('protocol', `the driver answered ${method} with JSON-RPC error ${e.code}: ${e.message}`);
}

/** Starts a driver and performs the handshake; kills it if the handshake fails. */
export async function createDriverTarget(argv: string[], opts: DriverOptions): Promise<DriverTarget> {
  const d = new DriverTarget(argv, opts);
  try {
    await d.handshake(opts.handshakeTimeoutMs);
  } catch (e) {
    d.killNow();
    throw e;
  }
  return d;
}
