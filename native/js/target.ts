// The native reference implementation behind the Target interface (reference/src/target.ts): the port
// core in C++ (native/core), reached through the addon (native/addon). On Linux the port core is shared by
// the epoll and io_uring back-ends; sockets come later, so today the back-end only names which one will
// carry socket I/O.
//
// - Ports are tracked by small integer ids (1, 2, ...), unique until reset().
// - JS-level dequeues run on the addon's own threads: each pending dequeue is a separate waiter, as if made
//   by its own thread that exits when the call returns (it needs a free slot to be released but never
//   keeps one), the same rule as the model. runWorkers runs real OS threads.
// - Errors: TargetError 'invalid' for bad arguments (unknown port included), 'closed' for a post on a
//   closed port, 'unsupported' for a back-end that is not built.
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
  type Target,
  type TargetInfo,
  type Trace,
  type WorkerProgram,
} from '../../reference/src/target.ts';
import { addonPath, loadAddon, repoRoot, type Addon, type AddonPort } from './addon.ts';

export { addonPath, loadAddon } from './addon.ts';
export type { Addon, AddonPort } from './addon.ts';

export const NATIVE_NAME = 'cpspec-native';

export interface NativeTargetOptions {
  /** 'epoll' (default on Linux) or 'uring' (not built yet: rejected with 'unsupported'). */
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

/** Turns an addon error (an Error with code 'invalid' / 'closed' / 'internal') into a TargetError. */
function toTargetError(e: unknown): TargetError {
  if (e instanceof TargetError) return e;
  const err = e as { code?: unknown; message?: unknown } | null;
  const code = err?.code === 'invalid' || err?.code === 'closed' ? err.code : 'internal';
  const message = typeof err?.message === 'string' ? err.message : String(e);
  return new TargetError(code, message);
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

  constructor(addon: Addon, backend: string) {
    this.addon = addon;
    this.backend = backend;
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
      capabilities: [...CAPS],
      notes: [
        `port core in user space (native/core), shared by the epoll and io_uring back-ends; sockets not built yet`,
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
    for (const p of this.ports.values()) {
      try {
        p.close();
      } catch {
        // closing cannot fail; ignore anyway so reset always completes
      }
    }
    this.ports.clear();
    this.nextId = 1;
  }

  async dispose(): Promise<void> {
    await this.reset();
    this.disposed = true;
  }
}

/** Creates the native target. Rejects with 'unsupported' for a back-end that is not built. */
export async function createNativeTarget(opts: NativeTargetOptions = {}): Promise<Target> {
  const backend = opts.backend ?? 'epoll';
  if (backend === 'uring') throw new TargetError('unsupported', 'io_uring back-end not built yet');
  if (backend !== 'epoll') throw new TargetError('unsupported', `unknown native back-end '${backend}' (available: epoll)`);
  let addon: Addon;
  try {
    addon = loadAddon();
  } catch (e) {
    throw new TargetError('unsupported', (e as Error)?.message ?? String(e));
  }
  return new NativeTarget(addon, backend);
}
