// The reference model of cpspec: a pure TypeScript, deterministic implementation of the completion-port
// semantics behind the Target interface. It is the oracle for fuzzing and a conformance target of its own.
//
// - Ports: port.ts (FIFO queue, LIFO waiter release, concurrency gate).
// - runWorkers: sim.ts (a discrete-event simulation in virtual time; its rules are documented there).
// - JS-level dequeues: each pending dequeue is a separate waiter, as if made by its own external thread
//   that exits right after the call returns: it needs a free slot to be released but never keeps one.
//   The most recent pending dequeue gets the next packet (LIFO). Their timeouts use real timers.
import {
  TargetError,
  checkConcurrency,
  checkTimeout,
  type DequeueManyResult,
  type DequeueResult,
  type Packet,
  type PortId,
  type PostOptions,
  type RunWorkersOptions,
  type SocketApi,
  type Target,
  type TargetInfo,
  type Trace,
  type WorkerProgram,
} from '../target.ts';
import { ModelPort, type ModelFaults, type PortWaiter } from './port.ts';
import { simulate } from './sim.ts';
import { ModelSockets } from './sockets.ts';
import { ModelPools } from '../pool.ts';
import { CodecFramingApi, tsCodec } from '../framing/api.ts';
import { checkInt, checkMax, checkPostOptions, checkRunOptions, compilePrograms, invalid, isIntIn } from './validate.ts';

export type { ModelFaults } from './port.ts';

export interface ModelOptions {
  /** What info().hardwareThreads reports and concurrency 0 resolves to: 1..1024, default 4. */
  hardwareThreads?: number;
  /** Deterministic faults (deliberately broken targets); listed in info().notes. */
  faults?: ModelFaults;
  /** Virtual cost of one dequeue or one posted packet in runWorkers, in ns: 1..1_000_000, default 100. */
  opCostNs?: number;
  /**
   * Trace size limit of one runWorkers: the run is cut short (like a deadline, threads still going are
   * `unfinished`) once the trace holds this many events. Default 8_000_000 (about 150 MB of typed arrays).
   */
  maxTraceEvents?: number;
}

export const MODEL_NAME = 'cpspec-model';
export const MODEL_VERSION = '0.1.0';
export const MODEL_CAPABILITIES: readonly string[] = [
  'port',
  'port.batch',
  'workers',
  'workers.blocking-region',
  'sockets',
  'sockets.zero-length-probe',
  'sockets.partial-send-mode',
  'fault-injection',
  'pool',
  'pool.sessions',
  'framing',
];
export const DEFAULT_HARDWARE_THREADS = 4;
export const DEFAULT_OP_COST_NS = 100;
export const DEFAULT_MAX_TRACE_EVENTS = 8_000_000;

/** One line per fault in effect (info().notes). */
export function describeFaults(f: ModelFaults): string[] {
  const notes: string[] = [];
  if (f.noConcurrencyCap) notes.push('fault noConcurrencyCap: the concurrency gate is ignored');
  if (f.fifoWake) notes.push('fault fifoWake: waiters are released FIFO instead of LIFO');
  if (f.dropEvery) notes.push(`fault dropEvery ${f.dropEvery}: every ${ordinal(f.dropEvery)}posted packet is discarded`);
  if (f.duplicateEvery) notes.push(`fault duplicateEvery ${f.duplicateEvery}: every ${ordinal(f.duplicateEvery)}posted packet is queued twice`);
  if (f.dropOnClose) notes.push('fault dropOnClose: closing a port discards its queued packets');
  return notes;
}

function ordinal(n: number): string {
  if (n === 1) return '';
  const s = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${s} `;
}

function checkFaults(f: unknown): ModelFaults {
  if (f === undefined) return {};
  if (typeof f !== 'object' || f === null) invalid('faults must be an object');
  const o = f as ModelFaults;
  for (const k of ['noConcurrencyCap', 'fifoWake', 'dropOnClose'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') invalid(`faults.${k} must be a boolean`);
  }
  for (const k of ['dropEvery', 'duplicateEvery'] as const) {
    if (o[k] !== undefined) checkInt(`faults.${k}`, o[k], 1, Number.MAX_SAFE_INTEGER);
  }
  return { ...o };
}

type Outcome = Packet[] | 'timeout' | 'closed';

/** A pending JS-level dequeue. */
class JsWaiter implements PortWaiter {
  max: number;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  private readonly settle: (o: Outcome) => void;
  constructor(max: number, settle: (o: Outcome) => void) {
    this.max = max;
    this.settle = settle;
  }
  wake(port: ModelPort): void {
    this.stopTimer();
    const k = Math.min(this.max, port.size);
    const packets: Packet[] = [];
    for (let i = 0; i < k; i++) packets.push(port.popPacket());
    this.settle(packets);
  }
  abandon(): void {
    this.stopTimer();
    this.settle('closed');
  }
  timedOut(): void {
    this.timer = undefined;
    this.settle('timeout');
  }
  private stopTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

class ModelTarget implements Target {
  private readonly hardwareThreads: number;
  private readonly faults: ModelFaults;
  private readonly opCostNs: number;
  private readonly maxTraceEvents: number;
  private readonly ports = new Map<number, ModelPort>();
  private nextPort = 1;
  private disposed = false;
  /** Sockets on real loopback TCP streams (sockets.ts). */
  readonly sockets: SocketApi & { closeAll(silent: boolean): void };
  /** Buffer pools: the TS model of native/pool (reference/src/pool.ts). */
  readonly pools = new ModelPools();
  /** The TypeScript framing codec (reference/src/framing). */
  readonly framing = new CodecFramingApi(tsCodec);

  constructor(options: ModelOptions) {
    if (typeof options !== 'object' || options === null) invalid('options must be an object');
    this.hardwareThreads = options.hardwareThreads === undefined ? DEFAULT_HARDWARE_THREADS : checkInt('hardwareThreads', options.hardwareThreads, 1, 1024);
    this.faults = checkFaults(options.faults);
    this.opCostNs = options.opCostNs === undefined ? DEFAULT_OP_COST_NS : checkInt('opCostNs', options.opCostNs, 1, 1_000_000);
    this.maxTraceEvents =
      options.maxTraceEvents === undefined ? DEFAULT_MAX_TRACE_EVENTS : checkInt('maxTraceEvents', options.maxTraceEvents, 1, 2 ** 28);
    this.sockets = new ModelSockets(
      (id) => {
        this.live();
        return this.port(id);
      },
      (id) => this.pools.get(id),
    );
  }

  async info(): Promise<TargetInfo> {
    return {
      name: MODEL_NAME,
      version: MODEL_VERSION,
      backend: 'model',
      capabilities: [...MODEL_CAPABILITIES],
      notes: describeFaults(this.faults),
      hardwareThreads: this.hardwareThreads,
    };
  }

  async createPort(concurrency: number): Promise<PortId> {
    this.live();
    const c = checkConcurrency(concurrency);
    const id = this.nextPort++;
    this.ports.set(id, new ModelPort(id, c === 0 ? this.hardwareThreads : c, this.faults));
    return id;
  }

  async post(port: PortId, packet: PostOptions): Promise<void> {
    this.live();
    const p = this.port(port);
    const c = checkPostOptions(packet);
    if (p.closed) throw new TargetError('closed', `port ${port} is closed`);
    p.post(c.key, c.bytes, c.token, c.status, c.nativeError);
  }

  async dequeue(port: PortId, timeoutMs: number): Promise<DequeueResult> {
    this.live();
    const p = this.port(port);
    const timeout = checkTimeout(timeoutMs);
    const o = await this.wait(p, 1, timeout);
    if (o === 'timeout' || o === 'closed') return { kind: o };
    return { kind: 'packet', packet: o[0] };
  }

  async dequeueMany(port: PortId, max: number, timeoutMs: number): Promise<DequeueManyResult> {
    this.live();
    const p = this.port(port);
    const m = checkMax(max);
    const timeout = checkTimeout(timeoutMs);
    const o = await this.wait(p, m, timeout);
    if (o === 'timeout' || o === 'closed') return { kind: o };
    return { kind: 'packets', packets: o };
  }

  async closePort(port: PortId): Promise<Packet[]> {
    this.live();
    return this.port(port).close();
  }

  async runWorkers(port: PortId, programs: WorkerProgram[], options?: RunWorkersOptions): Promise<Trace> {
    this.live();
    const p = this.port(port);
    const compiled = compilePrograms(programs, this.maxTraceEvents);
    const o = checkRunOptions(options);
    return simulate(p, compiled, { ...o, opCostNs: this.opCostNs, maxEvents: this.maxTraceEvents });
  }

  async reset(): Promise<void> {
    this.live();
    this.closeAll();
  }

  async dispose(): Promise<void> {
    this.closeAll();
    this.disposed = true;
  }

  private closeAll(): void {
    this.sockets.closeAll(true);
    this.pools.reset();
    this.framing.reset();
    for (const p of this.ports.values()) p.close();
    this.ports.clear();
  }

  private live(): void {
    if (this.disposed) throw new TargetError('closed', 'the target was disposed');
  }

  private port(id: unknown): ModelPort {
    const p = isIntIn(id, 1, Number.MAX_SAFE_INTEGER) ? this.ports.get(id) : undefined;
    if (p === undefined) invalid(`unknown port ${String(id)}`);
    return p;
  }

  private wait(p: ModelPort, max: number, timeout: number): Promise<Outcome> {
    if (p.closed) return Promise.resolve('closed');
    // Served at once if a packet is queued and the gate lets a thread run (always true outside runWorkers).
    if (p.size > 0 && p.gateOpen()) {
      const k = Math.min(max, p.size);
      const packets: Packet[] = [];
      for (let i = 0; i < k; i++) packets.push(p.popPacket());
      return Promise.resolve(packets);
    }
    if (timeout === 0) return Promise.resolve('timeout');
    return new Promise<Outcome>((resolve) => {
      const w = new JsWaiter(max, resolve);
      p.addWaiter(w);
      if (timeout > 0) {
        w.timer = setTimeout(() => {
          if (p.removeWaiter(w)) w.timedOut();
        }, timeout);
      }
    });
  }
}

/** Creates a fresh model target. Throws TargetError('invalid') for bad options. */
export function createModelTarget(options: ModelOptions = {}): Target {
  return new ModelTarget(options);
}
