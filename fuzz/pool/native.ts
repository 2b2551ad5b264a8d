// Where the pool tests find the native pool: the serve harness (cpspec-pool-test --serve) and the addon.
import { createRequire } from 'node:module';
import path from 'node:path';
import { locateNativeBinary } from '../../bench/lib.ts';
import type { AcquireResult, BufferPoolApi } from '../../reference/src/pool.ts';

export type Found<T> = { ok: true; value: T } | { ok: false; why: string };

/**
 * cpspec-pool-test: CPSPEC_POOL_TEST, or built in build-bench/ (bench/lib.ts). When cmake is missing and
 * nothing is prebuilt the result says why (tests skip); a failing build throws (tests fail).
 */
export function findPoolTestBinary(): Found<string> {
  try {
    return { ok: true, value: locateNativeBinary({ target: 'cpspec-pool-test', envVar: 'CPSPEC_POOL_TEST', label: 'test:pool', quiet: true }) };
  } catch (e) {
    const msg = (e as Error).message;
    if (/cmake not found/.test(msg)) return { ok: false, why: msg };
    throw e;
  }
}

/** The addon's pool API: the exports of native/addon/pool.cpp. */
export interface AddonBufferPool extends BufferPoolApi {
  /** Process-wide; openBufferPool(id) opens the same pool (in a worker_thread). */
  readonly id: number;
  /** Blocks the calling thread up to waitMs. */
  acquireSync(waitMs: number): AcquireResult;
}

export interface PoolAddon {
  BufferPool: new (bufferSize: number, count: number) => AddonBufferPool;
  openBufferPool(id: number): AddonBufferPool;
  pickSizeClass(request: number): number;
  sizeClasses: number[];
}

/**
 * The addon with the pool bindings, and its file: CPSPEC_POOL_ADDON=<file.node> (any module whose
 * exports include InitPool's), else the project addon (native/js/addon.ts) if it is built and its init
 * calls InitPool.
 */
export async function findPoolAddon(): Promise<Found<{ addon: PoolAddon; file: string }>> {
  let mod: Partial<PoolAddon>;
  let file: string;
  try {
    const explicit = process.env.CPSPEC_POOL_ADDON;
    if (explicit) {
      file = path.resolve(explicit);
      mod = createRequire(import.meta.url)(file) as Partial<PoolAddon>;
    } else {
      const { addonPath, loadAddon } = await import('../../native/js/addon.ts');
      file = addonPath();
      mod = loadAddon() as unknown as Partial<PoolAddon>;
    }
  } catch (e) {
    return { ok: false, why: (e as Error).message };
  }
  if (typeof mod.BufferPool !== 'function') {
    return { ok: false, why: `${file} does not export BufferPool (the addon's init must call cpspec::pool::InitPool)` };
  }
  return { ok: true, value: { addon: mod as PoolAddon, file } };
}
