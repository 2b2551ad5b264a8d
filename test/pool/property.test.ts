// Model-based property (fuzz/pool/model-vs-native.ts): random acquire / release sequences, foreign and
// double releases included, on the TS model and the native pool, compared after every step; the native
// pool must also keep the invariants of CP-POOL-001, 002, 004 and 009 on its own.
//
// Native back-ends: the serve harness (cpspec-pool-test --serve; CPSPEC_POOL_TEST or built in
// build-bench/) and the addon's BufferPool (CPSPEC_POOL_ADDON, or the project addon once its init calls
// InitPool). A back-end that is not available is reported as skipped, with the reason in the test name.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ModelBufferPool, type BufferPoolApi, type ReleaseResult } from '../../reference/src/pool.ts';
import { checkScenario, compareSteps, poolScenario, runApi, runModel, type PoolScenario } from '../../fuzz/pool/model-vs-native.ts';
import { findPoolAddon, findPoolTestBinary } from '../../fuzz/pool/native.ts';

const serve = findPoolTestBinary();
const addon = await findPoolAddon();
const RUNS = Number(process.env.CPSPEC_POOL_RUNS ?? 150);

describe('buffer pool: model vs native', () => {
  test.skipIf(!serve.ok)(`serve harness${serve.ok ? '' : ` (skipped: ${serve.why})`}`, async () => {
    if (!serve.ok) return;
    await fc.assert(
      fc.asyncProperty(poolScenario(), (s) => checkScenario(s, { serve: serve.value })),
      { numRuns: RUNS },
    );
  });

  test.skipIf(!addon.ok)(`addon${addon.ok ? '' : ` (skipped: ${addon.why})`}`, async () => {
    if (!addon.ok) return;
    await fc.assert(
      fc.asyncProperty(poolScenario(), (s) => checkScenario(s, { addon: addon.value.addon.BufferPool })),
      { numRuns: RUNS },
    );
  });
});

// The property must have teeth: pools with the seeds' bugs are caught.
describe('the property catches broken pools', () => {
  // A model pool that accepts double releases (the seeds' mutex pool: no in_use check on release).
  class AcceptsDoubleRelease extends ModelBufferPool {
    override release(id: number): ReleaseResult {
      const r = super.release(id);
      return r === 'double-release' ? 'ok' : r;
    }
  }
  // A pool that hands out a buffer twice once in a while (the seeds' lock-free pool's ABA outcome).
  class HandsOutTwice implements BufferPoolApi {
    private readonly inner: ModelBufferPool;
    private n = 0;
    constructor(size: number, count: number) {
      this.inner = new ModelBufferPool(size, count);
    }
    get bufferSize() {
      return this.inner.bufferSize;
    }
    get capacity() {
      return this.inner.capacity;
    }
    acquire() {
      const r = this.inner.acquire();
      if (r.kind === 'exhausted' && ++this.n % 2 === 0) return { kind: 'buffer' as const, id: 0 };
      return r;
    }
    acquireWait(waitMs: number) {
      return this.inner.acquireWait(waitMs);
    }
    release(id: number) {
      return this.inner.release(id);
    }
    stats() {
      return this.inner.stats();
    }
    audit() {
      return this.inner.audit();
    }
  }

  async function findsProblem(make: (s: PoolScenario) => BufferPoolApi): Promise<string | undefined> {
    const r = await fc.check(
      fc.asyncProperty(poolScenario(), async (s) => {
        const { commands, steps } = await runModel(s);
        return compareSteps(s.count, commands, steps, await runApi(make(s), commands)) === undefined;
      }),
      { numRuns: 300, seed: 42 },
    );
    return r.failed ? String(r.counterexample?.[0] ? JSON.stringify(r.counterexample[0]).slice(0, 200) : 'failed') : undefined;
  }

  test('a pool that accepts a double release', async () => {
    expect(await findsProblem((s) => new AcceptsDoubleRelease(s.bufferSize, s.count))).toBeDefined();
  });

  test('a pool that hands one buffer to two owners', async () => {
    expect(await findsProblem((s) => new HandsOutTwice(s.bufferSize, s.count))).toBeDefined();
  });

  test('the model against itself finds nothing', async () => {
    expect(await findsProblem((s) => new ModelBufferPool(s.bufferSize, s.count))).toBeUndefined();
  });
});
