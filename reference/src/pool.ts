// The reference model of a buffer pool (CP-POOL-001..004, 009), and the pool types a Target exposes.
//
// ModelBufferPool is deterministic and has the same semantics and error codes as the native pool
// (native/pool/buffer_pool.h through native/addon/pool.cpp), so a model-based property can compare them
// result by result (test/pool/, fuzz/pool/):
//   - `count` buffers of bufferSize rounded up to a multiple of 64 bytes; ids are 0..count-1.
//   - acquire() takes the most recently released buffer (LIFO; a fresh pool hands out 0, 1, 2, ...), or
//     returns {kind:'exhausted'} at once. It never blocks.
//   - acquireWait(waitMs) waits up to waitMs for a release (0 = do not wait; there is no infinite wait).
//     Waiters are served oldest first, on a microtask after the release: a synchronous acquire() right after
//     a release can take the buffer first (as on the native pool, where the waiter runs on another thread).
//   - release(id): 'ok', 'double-release' (an id of this pool not in use), or 'foreign' (any number that is
//     not an integer in 0..count-1). A non-number is a programming error: TargetError 'invalid'.
//     Rejected releases change nothing.
//   - stats(): total, inUse, available (= total - inUse), highWater (most in use at once), failedAcquires
//     (acquires that returned exhausted; a timed-out wait counts once).
import { MAX_TIMEOUT_MS, TargetError } from './target.ts';

export const CACHE_LINE = 64;
/** The seeds' size classes (cpspec::pool::kDefaultSizeClasses). */
export const SIZE_CLASSES: readonly number[] = [64, 512, 2048, 8192, 32768];
export const MAX_BUFFERS = 2 ** 30;
export const MAX_BUFFER_SIZE = 2 ** 30;
/** Largest slab (rounded buffer size x count) one pool may allocate. */
export const MAX_POOL_BYTES = 2 ** 36;

export type { AcquireResult, BufferId, BufferPoolOptions, PoolId, PoolStats, PoolTarget, ReleaseResult } from './target.ts';
export { RELEASE_RESULTS } from './target.ts';
import type { AcquireResult, BufferId, BufferPoolOptions, PoolId, PoolStats, PoolTarget, ReleaseResult } from './target.ts';

/**
 * One pool, synchronously: what ModelBufferPool and the addon's BufferPool (native/addon/pool.cpp) both
 * implement. Errors are thrown with `code` 'invalid' (TargetError on the model, Error on the addon).
 */
export interface BufferPoolApi {
  readonly bufferSize: number;
  readonly capacity: number;
  acquire(): AcquireResult;
  /** waitMs 0..2^31-1. */
  acquireWait(waitMs: number): Promise<AcquireResult>;
  release(id: BufferId): ReleaseResult;
  stats(): PoolStats;
  /** '' when consistent, else the first problem (call it when no operation is in flight). */
  audit(): string;
}

/** n rounded up to a multiple of 64 (0 -> 64). */
export function roundBufferSize(n: number): number {
  return n <= 0 ? CACHE_LINE : Math.ceil(n / CACHE_LINE) * CACHE_LINE;
}

/** The index of the smallest class that holds `request` bytes, or -1 when none does. */
export function pickSizeClass(request: number, classes: readonly number[] = SIZE_CLASSES): number {
  for (let i = 0; i < classes.length; i++) if (request <= classes[i]) return i;
  return -1;
}

function isIntIn(v: unknown, lo: number, hi: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
}

/** Validates pool options as the native pool does (TargetError 'invalid'); returns the rounded size. */
export function checkPoolOptions(options: unknown): { bufferSize: number; count: number } {
  if (typeof options !== 'object' || options === null) throw new TargetError('invalid', `pool options must be an object, got ${String(options)}`);
  const { bufferSize, count } = options as Record<string, unknown>;
  if (!isIntIn(bufferSize, 1, MAX_BUFFER_SIZE)) {
    throw new TargetError('invalid', `bufferSize must be an integer in 1..${MAX_BUFFER_SIZE}, got ${String(bufferSize)}`);
  }
  if (!isIntIn(count, 1, MAX_BUFFERS)) throw new TargetError('invalid', `count must be an integer in 1..${MAX_BUFFERS}, got ${String(count)}`);
  const size = roundBufferSize(bufferSize);
  if (size * count > MAX_POOL_BYTES) {
    throw new TargetError('invalid', `pool too large: ${count} x ${size} bytes exceeds ${MAX_POOL_BYTES} bytes`);
  }
  return { bufferSize: size, count };
}

export function checkWaitMs(waitMs: unknown): number {
  if (!isIntIn(waitMs, 0, MAX_TIMEOUT_MS)) {
    throw new TargetError('invalid', `waitMs must be an integer in 0..${MAX_TIMEOUT_MS}, got ${String(waitMs)}`);
  }
  return waitMs;
}

interface Waiter {
  resolve(r: AcquireResult): void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

const FREE = 0;
const IN_USE = 1;

export class ModelBufferPool implements BufferPoolApi {
  readonly bufferSize: number;
  readonly capacity: number;
  /** Free ids; the top (next handed out) is the last element. */
  private readonly free: number[];
  private readonly state: Uint8Array;
  private inUse = 0;
  private highWater = 0;
  private failed = 0;
  /** A pool-backed receive used this pool: buffers come only through receives (native/core/recv_pool.h). */
  bound = false;
  private readonly waiters: Waiter[] = [];
  private serviceQueued = false;
  private destroyed = false;

  constructor(bufferSize: number, count: number) {
    const o = checkPoolOptions({ bufferSize, count });
    this.bufferSize = o.bufferSize;
    this.capacity = o.count;
    this.state = new Uint8Array(o.count);
    this.free = new Array<number>(o.count);
    for (let i = 0; i < o.count; i++) this.free[i] = o.count - 1 - i;
  }

  acquire(): AcquireResult {
    const r = this.take();
    if (r.kind === 'exhausted') this.failed++;
    return r;
  }

  acquireWait(waitMs: number): Promise<AcquireResult> {
    const wait = checkWaitMs(waitMs);
    const r = this.take();
    if (r.kind === 'buffer' || wait === 0 || this.destroyed) {
      if (r.kind === 'exhausted') this.failed++;
      return Promise.resolve(r);
    }
    return new Promise<AcquireResult>((resolve) => {
      const w: Waiter = { resolve, timer: undefined };
      w.timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        const last = this.take();
        if (last.kind === 'exhausted') this.failed++;
        resolve(last);
      }, wait);
      this.waiters.push(w);
    });
  }

  release(id: BufferId): ReleaseResult {
    if (typeof id !== 'number') throw new TargetError('invalid', `release: the buffer id must be a number, got ${typeof id}`);
    if (!Number.isInteger(id) || id < 0 || id >= this.capacity) return 'foreign';
    if (this.state[id] !== IN_USE) return 'double-release';
    this.state[id] = FREE;
    this.inUse--;
    this.free.push(id);
    if (this.waiters.length > 0 && !this.serviceQueued) {
      this.serviceQueued = true;
      queueMicrotask(() => this.serveWaiters());
    }
    return 'ok';
  }

  stats(): PoolStats {
    return {
      total: this.capacity,
      inUse: this.inUse,
      available: this.capacity - this.inUse,
      highWater: this.highWater,
      failedAcquires: this.failed,
    };
  }

  audit(): string {
    const seen = new Uint8Array(this.capacity);
    for (const id of this.free) {
      if (!Number.isInteger(id) || id < 0 || id >= this.capacity) return `free list holds id ${id}`;
      if (seen[id]) return `free list holds buffer ${id} twice`;
      if (this.state[id] !== FREE) return `buffer ${id} is on the free list but in use`;
      seen[id] = 1;
    }
    let freeCount = 0;
    for (let i = 0; i < this.capacity; i++) {
      if (this.state[i] === FREE) {
        freeCount++;
        if (!seen[i]) return `buffer ${i} is free but not on the free list (leaked)`;
      }
    }
    if (this.inUse + freeCount !== this.capacity) return `inUse ${this.inUse} + free ${freeCount} != total ${this.capacity}`;
    if (this.highWater > this.capacity || this.highWater < this.inUse) return `high water ${this.highWater} outside inUse..total`;
    return '';
  }

  /** Whether buffer id is handed out (false for ids not of this pool). */
  isInUse(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.capacity && this.state[id] === IN_USE;
  }

  /** Ends pending waits with 'exhausted' (each counts as a failed acquire); later waits do not wait. */
  destroy(): void {
    this.destroyed = true;
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      this.failed++;
      w.resolve({ kind: 'exhausted' });
    }
  }

  private take(): AcquireResult {
    const id = this.free.pop();
    if (id === undefined) return { kind: 'exhausted' };
    this.state[id] = IN_USE;
    this.inUse++;
    if (this.inUse > this.highWater) this.highWater = this.inUse;
    return { kind: 'buffer', id };
  }

  private serveWaiters(): void {
    this.serviceQueued = false;
    while (this.waiters.length > 0 && this.free.length > 0) {
      const w = this.waiters.shift()!;
      clearTimeout(w.timer);
      w.resolve(this.take());
    }
  }
}

/**
 * The PoolTarget methods over model pools: what the model target (reference/src/model/index.ts) can
 * delegate to. Handles are 1, 2, 3, ... until reset().
 */
export class ModelPools implements PoolTarget {
  private readonly pools = new Map<PoolId, ModelBufferPool>();
  private next = 1;

  async createBufferPool(options: BufferPoolOptions): Promise<PoolId> {
    const o = checkPoolOptions(options);
    const id = this.next++;
    this.pools.set(id, new ModelBufferPool(o.bufferSize, o.count));
    return id;
  }

  async acquireBuffer(pool: PoolId, waitMs = 0): Promise<AcquireResult> {
    const p = this.get(pool);
    if (p.bound) throw new TargetError('invalid', `buffer pool ${pool} serves pool-backed receives: its buffers come only through them`);
    return p.acquireWait(waitMs);
  }

  async releaseBuffer(pool: PoolId, id: BufferId): Promise<ReleaseResult> {
    return this.get(pool).release(id);
  }

  async poolStats(pool: PoolId): Promise<PoolStats> {
    return this.get(pool).stats();
  }

  async destroyBufferPool(pool: PoolId): Promise<void> {
    this.get(pool).destroy();
    this.pools.delete(pool);
  }

  /** For Target.reset(): destroys every pool. */
  reset(): void {
    for (const p of this.pools.values()) p.destroy();
    this.pools.clear();
    this.next = 1;
  }

  /** The pool behind a handle (tests). */
  get(pool: PoolId): ModelBufferPool {
    const p = this.pools.get(pool);
    if (!p) throw new TargetError('not-found', `no buffer pool with handle ${String(pool)}`);
    return p;
  }
}
