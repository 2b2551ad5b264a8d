// Target specifications (--target) and the factory that creates a Target from one. The factory runs in the
// host process; implementations are imported lazily so a missing or broken one only affects runs that use it.
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import type { Target } from '../../reference/src/target.ts';
import { splitCommand } from './shell-split.ts';
import { UsageError } from './types.ts';

export interface ModelFaults {
  noConcurrencyCap?: boolean;
  fifoWake?: boolean;
  dropEvery?: number;
  duplicateEvery?: number;
  dropOnClose?: boolean;
}

export interface ModelOptions {
  faults: ModelFaults;
  hardwareThreads?: number;
}

export type TargetSpec =
  | { kind: 'model'; options: ModelOptions }
  | { kind: 'native'; backend?: string }
  | { kind: 'driver'; command: string; argv: string[] }
  | { kind: 'module'; path: string };

export const TARGET_FORMS = [
  'native            the native addon, best back-end available (default)',
  'native:<backend>  the native addon with one back-end (epoll, uring, ...)',
  'model[:faults]    the reference model, in process; faults comma-separated, e.g. model:drop-every=5,fifo-wake',
  'driver:<command>  an external driver speaking conformance/PROTOCOL.md on stdin/stdout',
  'module:<file>     a JS/TS module exporting createTarget(): Target | Promise<Target>, run in the host process',
];

export const MODEL_FAULTS = [
  'no-concurrency-cap      release waiters beyond the port\'s concurrency value',
  'fifo-wake               wake waiters first-in first-out instead of LIFO',
  'drop-every=N            lose every Nth packet',
  'duplicate-every=N       deliver every Nth packet twice',
  'drop-on-close           lose the queued packets when a port is closed',
  'hardware-threads=N      hardware threads the model reports (not a fault)',
];

function positiveInt(name: string, v: string | undefined): number {
  const n = Number(v);
  if (v === undefined || !/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`fault ${name} needs a positive integer, as in ${name}=5 (got '${v ?? ''}')`);
  }
  return n;
}

/** Parses one model fault ('drop-every=5') into options; shared with bin/serve-model.js. */
export function applyModelFault(options: ModelOptions, fault: string): void {
  const [name, value] = fault.trim().split('=', 2) as [string, string | undefined];
  const flagOnly = () => {
    if (value !== undefined) throw new UsageError(`fault ${name} takes no value`);
  };
  switch (name) {
    case 'no-concurrency-cap':
      flagOnly();
      options.faults.noConcurrencyCap = true;
      break;
    case 'fifo-wake':
      flagOnly();
      options.faults.fifoWake = true;
      break;
    case 'drop-on-close':
      flagOnly();
      options.faults.dropOnClose = true;
      break;
    case 'drop-every':
      options.faults.dropEvery = positiveInt(name, value);
      break;
    case 'duplicate-every':
      options.faults.duplicateEvery = positiveInt(name, value);
      break;
    case 'hardware-threads':
      options.hardwareThreads = positiveInt(name, value);
      break;
    default:
      throw new UsageError(`unknown model fault '${name}'; known:\n  ${MODEL_FAULTS.join('\n  ')}`);
  }
}

export function parseTargetSpec(spec: string): TargetSpec {
  const s = spec.trim();
  const colon = s.indexOf(':');
  const kind = colon < 0 ? s : s.slice(0, colon);
  const rest = colon < 0 ? '' : s.slice(colon + 1);
  switch (kind) {
    case 'model': {
      const options: ModelOptions = { faults: {} };
      for (const f of rest.split(',').filter((x) => x.trim().length > 0)) applyModelFault(options, f);
      return { kind: 'model', options };
    }
    case 'native':
      if (colon >= 0 && !/^[a-z][a-z0-9-]*$/.test(rest)) throw new UsageError(`bad native back-end name '${rest}'`);
      return rest ? { kind: 'native', backend: rest } : { kind: 'native' };
    case 'driver': {
      const argv = splitCommand(rest);
      if (argv.length === 0) throw new UsageError('driver: needs a command, as in --target "driver:./my-driver --flag"');
      return { kind: 'driver', command: rest, argv };
    }
    case 'module': {
      if (!rest) throw new UsageError('module: needs a file, as in --target module:./my-target.ts');
      return { kind: 'module', path: resolve(rest) };
    }
    default:
      throw new UsageError(`unknown target '${spec}'; targets are:\n  ${TARGET_FORMS.join('\n  ')}`);
  }
}

export interface CreateTargetOptions {
  /** Deadline for starting an external driver and its handshake. */
  handshakeTimeoutMs: number;
  /** Told the pid of every external process a target starts (so the runner can kill it on every path). */
  onProcess?: (pid: number) => void;
  /** Where a driver's stderr is copied (besides the tail the driver client keeps). */
  stderrSink?: NodeJS.WritableStream;
}

/** A target that can tell it is broken beyond the current case (its driver died or spoke garbage). */
export interface FailingTarget {
  failure(): { kind: 'crash' | 'protocol'; message: string; stderrTail: string } | undefined;
}

/** Waits (briefly, bounded by the target) until a broken target's diagnostics are complete. */
export async function targetSettle(t: Target): Promise<void> {
  const f = (t as { settle?: () => Promise<void> }).settle;
  if (typeof f === 'function') await f.call(t);
}

export function targetFailure(t: Target): ReturnType<FailingTarget['failure']> {
  const f = (t as Partial<FailingTarget>).failure;
  return typeof f === 'function' ? f.call(t) : undefined;
}

/** Thrown when an implementation cannot be loaded or created: exit code 2. */
export class TargetCreateError extends Error {
  override name = 'TargetCreateError';
}

async function importFrom(rel: string, what: string): Promise<Record<string, unknown>> {
  const url = new URL(rel, import.meta.url).href;
  try {
    return (await import(url)) as Record<string, unknown>;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err?.code === 'ERR_MODULE_NOT_FOUND' ? `module not found (${err.message.split('\n')[0]})` : err?.stack ?? String(e);
    throw new TargetCreateError(`target '${what}' is not available: cannot load ${rel.replace(/^(\.\.\/)+/, '')}: ${why}`);
  }
}

export async function createTarget(spec: TargetSpec, opts: CreateTargetOptions): Promise<Target> {
  switch (spec.kind) {
    case 'model': {
      const mod = await importFrom('../../reference/src/model/index.ts', 'model');
      const create = mod.createModelTarget as ((o?: unknown) => Target) | undefined;
      if (typeof create !== 'function') throw new TargetCreateError('reference/src/model/index.ts does not export createModelTarget');
      const o: { faults: ModelFaults; hardwareThreads?: number } = { faults: spec.options.faults };
      if (spec.options.hardwareThreads !== undefined) o.hardwareThreads = spec.options.hardwareThreads;
      return await create(o);
    }
    case 'native': {
      const mod = await importFrom('../../native/js/target.ts', spec.backend ? `native:${spec.backend}` : 'native');
      const create = mod.createNativeTarget as ((o?: unknown) => Promise<Target>) | undefined;
      if (typeof create !== 'function') throw new TargetCreateError('native/js/target.ts does not export createNativeTarget');
      try {
        return await create(spec.backend ? { backend: spec.backend } : {});
      } catch (e) {
        const err = e as { code?: string; message?: string };
        throw new TargetCreateError(`cannot create target 'native${spec.backend ? `:${spec.backend}` : ''}': ${err?.code ? `[${err.code}] ` : ''}${err?.message ?? String(e)}`);
      }
    }
    case 'driver': {
      const { createDriverTarget } = await import('./driver.ts');
      return await createDriverTarget(spec.argv, { handshakeTimeoutMs: opts.handshakeTimeoutMs, onProcess: opts.onProcess, stderrSink: opts.stderrSink });
    }
    case 'module': {
      let mod: Record<string, unknown>;
      try {
        mod = (await import(pathToFileURL(spec.path).href)) as Record<string, unknown>;
      } catch (e) {
        throw new TargetCreateError(`cannot load target module ${spec.path}: ${(e as Error)?.stack ?? String(e)}`);
      }
      const create = (mod.createTarget ?? mod.default) as (() => Target | Promise<Target>) | undefined;
      if (typeof create !== 'function') throw new TargetCreateError(`${spec.path} must export createTarget() (or a default function)`);
      return await create();
    }
  }
}
