// Loads the native addon (native/addon/addon.cpp) and describes its JS API.
//
// Where the addon comes from (see native/scripts/build.mjs):
//   CPSPEC_NATIVE_BUILD unset or 'release'  build/Release/cpspec_native.node
//   'debug'                                  build/Debug/cpspec_native.node
//   'asan'                                   build-asan/Release/cpspec_native.node (run node with LD_PRELOAD=libasan)
//   'tsan'                                   build-tsan/Release/cpspec_native.node
// CPSPEC_NATIVE_ADDON=<path> loads that file instead.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Status } from '../../reference/src/target.ts';

export interface AddonPacket {
  key: number;
  bytes: number;
  token: number;
  status: Status;
  nativeError: number;
}

export type AddonDequeueResult = { kind: 'packet'; packet: AddonPacket } | { kind: 'timeout' } | { kind: 'closed' };
export type AddonDequeueManyResult = { kind: 'packets'; packets: AddonPacket[] } | { kind: 'timeout' } | { kind: 'closed' };

export interface AddonPostPacket {
  key: number;
  bytes?: number;
  token?: number;
  status?: Status;
  nativeError?: number;
}

/**
 * A completion port. Errors are thrown (or rejected) as Error objects with `code` 'invalid' (bad argument)
 * or 'closed' (post on a closed port); an internal failure rejects with code 'internal'.
 */
export interface AddonPort {
  /** Process-wide id; openPort(id) gives the same port in a worker_thread. */
  readonly id: number;
  /** key, token: integers 0..2^53-1; bytes 0..2^32-1; status default 'ok'; nativeError int32, default 0. */
  post(key: number, bytes?: number, token?: number, status?: Status, nativeError?: number): void;
  /** Posts all packets under one lock (all or none); returns the number posted. */
  postMany(packets: AddonPostPacket[]): number;
  /**
   * Waits on a thread of the addon's own pool (never the event loop, never the libuv pool). That thread
   * detaches from the port when the call returns, so an async dequeue does not keep a concurrency slot.
   * timeoutMs: -1 (infinite), 0 (poll) .. 2^31-1.
   */
  dequeue(timeoutMs: number): Promise<AddonDequeueResult>;
  /** max 1..4096. */
  dequeueMany(max: number, timeoutMs: number): Promise<AddonDequeueManyResult>;
  /** Blocks the calling thread, which stays associated with the port (for worker_threads). */
  dequeueSync(timeoutMs: number): AddonDequeueResult;
  dequeueManySync(max: number, timeoutMs: number): AddonDequeueManyResult;
  /** Closes the port; returns the packets still queued (FIFO). A second close returns []. */
  close(): AddonPacket[];
  /** Blocking region of the calling thread (see Port::enter_blocking). */
  enterBlocking(): void;
  leaveBlocking(): void;
  stats(): { running: number; queued: number; waiters: number; concurrency: number; closed: boolean };
}

export type AddonStep =
  | { op: 'dequeue'; timeoutMs: number; max?: number }
  | { op: 'spin' | 'sleep' | 'block'; us: number }
  | { op: 'post'; key: number; count?: number; bytes?: number };

export interface AddonTrace {
  threads: number;
  t: Float64Array;
  thread: Uint16Array;
  ev: Uint8Array;
  key: Float64Array;
  unfinished: number;
  leftover: number;
}

export interface Addon {
  /** concurrency: integer 0..1024 (0 = hardware threads). */
  createPort(concurrency: number): AddonPort;
  /** The port with this id (created in any thread of the process); throws code 'invalid' if it is gone. */
  openPort(id: number): AddonPort;
  runWorkers(port: AddonPort, programs: { steps: AddonStep[]; repeat?: number }[], options?: { closeAfterMs?: number; deadlineMs?: number }): Promise<AddonTrace>;
  info(): { hardwareThreads: number; version: string; backends: string[] };
  readonly version: string;
}

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const LAYOUT: Record<string, string> = {
  release: 'build/Release/cpspec_native.node',
  debug: 'build/Debug/cpspec_native.node',
  asan: 'build-asan/Release/cpspec_native.node',
  tsan: 'build-tsan/Release/cpspec_native.node',
};

/** The path of the addon that loadAddon() would load. */
export function addonPath(): string {
  const explicit = process.env.CPSPEC_NATIVE_ADDON;
  if (explicit) return path.resolve(explicit);
  const variant = process.env.CPSPEC_NATIVE_BUILD || 'release';
  const rel = LAYOUT[variant];
  if (!rel) throw new Error(`CPSPEC_NATIVE_BUILD must be one of ${Object.keys(LAYOUT).join(', ')}, got '${variant}'`);
  return path.join(repoRoot, rel);
}

let cached: { path: string; addon: Addon } | undefined;

/** Loads the addon (once per path). Throws a clear error when it has not been built. */
export function loadAddon(): Addon {
  const file = addonPath();
  if (cached?.path === file) return cached.addon;
  if (!existsSync(file)) {
    const variant = process.env.CPSPEC_NATIVE_BUILD || 'release';
    const hint = variant === 'release' ? 'npm run build:native' : `node native/scripts/build.mjs --variant ${variant}`;
    const rel = path.relative(process.cwd(), file);
    const shown = rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
    throw new Error(`the native addon is not built (${shown} is missing): run \`${hint}\``);
  }
  const addon = createRequire(import.meta.url)(file) as Addon;
  cached = { path: file, addon };
  return addon;
}
