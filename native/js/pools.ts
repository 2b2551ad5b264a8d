// Buffer pools of the native target: the PoolTarget interface over the addon's BufferPool
// (native/pool, bound in native/addon/pool.cpp).
import { TargetError, type AcquireResult, type BufferPoolOptions, type PoolId, type PoolStats, type PoolTarget, type ReleaseResult } from '../../reference/src/target.ts';
import { checkPoolOptions, checkWaitMs } from '../../reference/src/pool.ts';

/** The addon's pool object (see native/addon/pool.cpp). */
export interface AddonBufferPool {
  readonly id: number;
  readonly bufferSize: number;
  readonly capacity: number;
  acquire(): AcquireResult;
  acquireWait(waitMs: number): Promise<AcquireResult>;
  release(id: number): ReleaseResult;
  stats(): PoolStats;
}

export interface PoolBindings {
  BufferPool: new (bufferSize: number, count: number) => AddonBufferPool;
}

function mapError(e: unknown): never {
  const err = e as { code?: string; message?: string };
  throw new TargetError(err?.code === 'invalid' ? 'invalid' : 'internal', err?.message ?? String(e));
}

export class NativePools implements PoolTarget {
  private readonly bindings: PoolBindings;
  private readonly pools = new Map<PoolId, AddonBufferPool>();
  private next = 1;

  constructor(bindings: PoolBindings) {
    this.bindings = bindings;
  }

  async createBufferPool(options: BufferPoolOptions): Promise<PoolId> {
    const o = checkPoolOptions(options);
    let pool: AddonBufferPool;
    try {
      pool = new this.bindings.BufferPool(o.bufferSize, o.count);
    } catch (e) {
      mapError(e);
    }
    const id = this.next++;
    this.pools.set(id, pool);
    return id;
  }

  async acquireBuffer(pool: PoolId, waitMs = 0): Promise<AcquireResult> {
    const p = this.get(pool);
    const wait = checkWaitMs(waitMs);
    try {
      return wait === 0 ? p.acquire() : await p.acquireWait(wait);
    } catch (e) {
      mapError(e);
    }
  }

  async releaseBuffer(pool: PoolId, id: number): Promise<ReleaseResult> {
    const p = this.get(pool);
    if (typeof id !== 'number' || Number.isNaN(id)) throw new TargetError('invalid', `buffer id must be a number, got ${String(id)}`);
    try {
      return p.release(id);
    } catch (e) {
      mapError(e);
    }
  }

  /** The addon's pool object behind a PoolId (for pool-backed receives); throws not-found like the others. */
  addonPool(pool: PoolId): AddonBufferPool {
    return this.get(pool);
  }

  async poolStats(pool: PoolId): Promise<PoolStats> {
    return this.get(pool).stats();
  }

  async destroyBufferPool(pool: PoolId): Promise<void> {
    this.get(pool);
    // The slab is freed when the last reference goes (a pending bounded wait keeps it until it ends).
    this.pools.delete(pool);
  }

  reset(): void {
    this.pools.clear();
    this.next = 1;
  }

  private get(pool: PoolId): AddonBufferPool {
    const p = this.pools.get(pool);
    if (!p) throw new TargetError('not-found', `no buffer pool with handle ${String(pool)}`);
    return p;
  }
}
