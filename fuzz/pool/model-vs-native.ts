// Model-based property for the buffer pool (CP-POOL-001..004, 009): random acquire / release sequences,
// foreign and double releases included, run on the TS model (reference/src/pool.ts) and on the native
// pool, compared result by result. After every step the native pool must also satisfy:
//   - never more than N buffers out, and never the same buffer out twice (tracked from its own answers);
//   - conservation: inUse + available == total, highWater <= total;
//   - its own audit (free list vs state bytes vs counters) is clean;
//   - results and stats identical to the model's.
//
// Native back-ends (either or both):
//   serve  `cpspec-pool-test --serve` (native/test/pool_test.cpp): one process per scenario, all commands
//          at once on stdin, one reply line per command (no Node in the loop: the pool code runs exactly
//          as the C++ tests and the sanitizer builds run it);
//   addon  the addon's BufferPool (native/addon/pool.cpp), step by step.
//
// As a script (a longer fuzzing run than the vitest property):
//   node fuzz/pool/model-vs-native.ts [--runs N] [--seed S] [--addon path/to/addon.node] [--no-serve]
// The serve binary is CPSPEC_POOL_TEST or built in build-bench/ (bench/lib.ts).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { ModelBufferPool, type AcquireResult, type BufferPoolApi, type PoolStats, type ReleaseResult } from '../../reference/src/pool.ts';

/** An abstract step; release targets are resolved against the model's state when the scenario runs. */
export type PoolOp =
  | { op: 'acquire' }
  | { op: 'acquire-wait'; waitMs: number }
  /** Releases the pick-th (mod count) buffer currently out, or acquires when none is. */
  | { op: 'release-held'; pick: number }
  /** Releases an id released before (or never acquired): double-release. */
  | { op: 'release-free'; pick: number }
  /** Releases something that is not an id of this pool. */
  | { op: 'release-foreign'; value: number };

export interface PoolScenario {
  bufferSize: number;
  count: number;
  ops: PoolOp[];
}

/** What a step did, as both sides report it. */
export type StepResult = { kind: 'acquire'; result: AcquireResult } | { kind: 'release'; id: number; result: ReleaseResult };

export interface Step {
  result: StepResult;
  stats: PoolStats;
  audit: string;
}

/** Numbers that are never ids of a pool of `count` buffers (as JS numbers and as the harness prints them). */
export function foreignValues(count: number): number[] {
  return [-1, count, count + 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53, 0.5, count - 0.5, -0.5, Number.NaN, Infinity, -Infinity, 1e21];
}

export function poolScenario(maxOps = 120): fc.Arbitrary<PoolScenario> {
  return fc
    .record({
      bufferSize: fc.oneof(fc.constantFrom(1, 63, 64, 65, 512, 8192, 32768), fc.integer({ min: 1, max: 40000 })),
      count: fc.integer({ min: 1, max: 8 }),
    })
    .chain(({ bufferSize, count }) =>
      fc.record({
        bufferSize: fc.constant(bufferSize),
        count: fc.constant(count),
        ops: fc.array(
          fc.oneof(
            { weight: 5, arbitrary: fc.constant<PoolOp>({ op: 'acquire' }) },
            { weight: 1, arbitrary: fc.constantFrom(0, 1, 2).map((waitMs): PoolOp => ({ op: 'acquire-wait', waitMs })) },
            { weight: 4, arbitrary: fc.nat(64).map((pick): PoolOp => ({ op: 'release-held', pick })) },
            { weight: 1, arbitrary: fc.nat(64).map((pick): PoolOp => ({ op: 'release-free', pick })) },
            {
              weight: 1,
              arbitrary: fc.constantFrom(...foreignValues(count)).map((value): PoolOp => ({ op: 'release-foreign', value })),
            },
          ),
          { minLength: 1, maxLength: maxOps, size: 'max' },
        ),
      }),
    );
}

/** A concrete command: what both sides execute. */
export type Command = { op: 'acquire'; waitMs: number } | { op: 'release'; id: number };

/**
 * Runs the scenario on the model, resolving abstract ops into concrete commands. Returns the commands
 * and the model's steps.
 */
export async function runModel(s: PoolScenario): Promise<{ commands: Command[]; steps: Step[] }> {
  const pool = new ModelBufferPool(s.bufferSize, s.count);
  const commands: Command[] = [];
  const steps: Step[] = [];
  const everAcquired = new Set<number>();
  for (const o of s.ops) {
    let cmd: Command;
    const out: number[] = [];
    for (let i = 0; i < s.count; i++) if (pool.isInUse(i)) out.push(i);
    if (o.op === 'acquire') {
      cmd = { op: 'acquire', waitMs: 0 };
    } else if (o.op === 'acquire-wait') {
      cmd = { op: 'acquire', waitMs: o.waitMs };
    } else if (o.op === 'release-held') {
      cmd = out.length > 0 ? { op: 'release', id: out[o.pick % out.length] } : { op: 'acquire', waitMs: 0 };
    } else if (o.op === 'release-free') {
      const free: number[] = [];
      for (let i = 0; i < s.count; i++) if (!pool.isInUse(i)) free.push(i);
      // Prefer ids that were out before (a true double release); a never-acquired id is one too.
      const again = free.filter((i) => everAcquired.has(i));
      const from = again.length > 0 ? again : free;
      cmd = from.length > 0 ? { op: 'release', id: from[o.pick % from.length] } : { op: 'release', id: s.count };
    } else {
      cmd = { op: 'release', id: o.value };
    }
    commands.push(cmd);
    let result: StepResult;
    if (cmd.op === 'acquire') {
      const r = cmd.waitMs === 0 ? pool.acquire() : await pool.acquireWait(cmd.waitMs);
      if (r.kind === 'buffer') everAcquired.add(r.id);
      result = { kind: 'acquire', result: r };
    } else {
      result = { kind: 'release', id: cmd.id, result: pool.release(cmd.id) };
    }
    steps.push({ result, stats: pool.stats(), audit: pool.audit() });
  }
  return { commands, steps };
}

/** The harness's spelling of a JS number (String(n); the harness treats anything but digits as foreign). */
function idText(id: number): string {
  return String(id);
}

/** Runs the commands through `cpspec-pool-test --serve`. Throws if the harness misbehaves. */
export function runServe(bin: string, s: PoolScenario, commands: Command[]): Step[] {
  const lines = [`new ${s.bufferSize} ${s.count}`];
  for (const c of commands) {
    lines.push(c.op === 'acquire' ? `acquire ${c.waitMs}` : `release ${idText(c.id)}`, 'stats', 'audit');
  }
  const r = spawnSync(bin, ['--serve'], { input: lines.join('\n') + '\n', encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${bin} --serve exited with ${r.status ?? r.signal}: ${r.stderr}`);
  const out = r.stdout.split('\n');
  if (!out[0]?.startsWith('ok ')) throw new Error(`harness: 'new' answered '${out[0]}'`);
  const steps: Step[] = [];
  for (let i = 0; i < commands.length; i++) {
    const c = commands[i];
    const [reply, statsLine, audit] = [out[1 + 3 * i], out[2 + 3 * i], out[3 + 3 * i]];
    if (reply === undefined || statsLine === undefined || audit === undefined) throw new Error(`harness: missing replies at step ${i}`);
    let result: StepResult;
    if (c.op === 'acquire') {
      const m = /^buffer (\d+)$/.exec(reply);
      if (m) result = { kind: 'acquire', result: { kind: 'buffer', id: Number(m[1]) } };
      else if (reply === 'exhausted') result = { kind: 'acquire', result: { kind: 'exhausted' } };
      else throw new Error(`harness: acquire answered '${reply}'`);
    } else {
      if (reply !== 'ok' && reply !== 'double-release' && reply !== 'foreign') throw new Error(`harness: release answered '${reply}'`);
      result = { kind: 'release', id: c.id, result: reply };
    }
    const f = statsLine.split(' ');
    if (f[0] !== 'stats' || f.length !== 6) throw new Error(`harness: stats answered '${statsLine}'`);
    const [total, inUse, available, highWater, failedAcquires] = f.slice(1).map(Number);
    steps.push({ result, stats: { total, inUse, available, highWater, failedAcquires }, audit: audit === 'ok' ? '' : audit });
  }
  return steps;
}

/** Runs the commands on a pool object with the BufferPoolApi shape (the addon's BufferPool). */
export async function runApi(pool: BufferPoolApi, commands: Command[]): Promise<Step[]> {
  const steps: Step[] = [];
  for (const c of commands) {
    let result: StepResult;
    if (c.op === 'acquire') {
      result = { kind: 'acquire', result: c.waitMs === 0 ? pool.acquire() : await pool.acquireWait(c.waitMs) };
    } else {
      result = { kind: 'release', id: c.id, result: pool.release(c.id) };
    }
    steps.push({ result, stats: pool.stats(), audit: pool.audit() });
  }
  return steps;
}

function show(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x));
}

/**
 * Checks the native steps on their own (the invariants) and against the model's. Returns the first
 * problem, or undefined.
 */
export function compareSteps(count: number, commands: Command[], model: Step[], native: Step[]): string | undefined {
  const out = new Set<number>();
  for (let i = 0; i < commands.length; i++) {
    const n = native[i];
    const m = model[i];
    const at = `step ${i} (${show(commands[i])})`;
    if (!n) return `${at}: no native result`;
    if (n.result.kind === 'acquire' && n.result.result.kind === 'buffer') {
      const id = n.result.result.id;
      if (!Number.isInteger(id) || id < 0 || id >= count) return `${at}: native handed out id ${id} of a pool of ${count}`;
      if (out.has(id)) return `${at}: native handed out buffer ${id}, which is already out (CP-POOL-001)`;
      out.add(id);
    }
    if (n.result.kind === 'release' && n.result.result === 'ok') {
      if (!out.has(n.result.id)) return `${at}: native accepted the release of ${n.result.id}, which was not out (CP-POOL-004)`;
      out.delete(n.result.id);
    }
    if (n.result.kind === 'release' && n.result.result !== 'ok' && out.has(n.result.id)) {
      return `${at}: native rejected the release of buffer ${n.result.id}, which was out (${n.result.result})`;
    }
    const s = n.stats;
    if (out.size > count || s.inUse > count) return `${at}: more than ${count} buffers out (CP-POOL-001): ${show(s)}`;
    if (s.inUse + s.available !== s.total || s.total !== count) return `${at}: conservation broken (CP-POOL-002): ${show(s)}`;
    if (s.inUse !== out.size) return `${at}: native reports inUse ${s.inUse}, but ${out.size} buffers are out`;
    if (s.highWater > count || s.highWater < s.inUse) return `${at}: high water out of bounds: ${show(s)}`;
    if (n.audit !== '') return `${at}: native audit: ${n.audit}`;
    if (show(n.result) !== show(m.result)) return `${at}: native ${show(n.result)} but model ${show(m.result)}`;
    if (show(n.stats) !== show(m.stats)) return `${at}: native stats ${show(n.stats)} but model ${show(m.stats)}`;
    if (m.audit !== '') return `${at}: model audit: ${m.audit}`;
  }
  return undefined;
}

/** A constructor with the addon's BufferPool shape. */
export type BufferPoolCtor = new (bufferSize: number, count: number) => BufferPoolApi;

/** One property run: model vs each back-end given. Throws on the first mismatch. */
export async function checkScenario(s: PoolScenario, backends: { serve?: string; addon?: BufferPoolCtor }): Promise<void> {
  const { commands, steps } = await runModel(s);
  if (backends.serve) {
    const problem = compareSteps(s.count, commands, steps, runServe(backends.serve, s, commands));
    if (problem) throw new Error(`serve: ${problem}`);
  }
  if (backends.addon) {
    const problem = compareSteps(s.count, commands, steps, await runApi(new backends.addon(s.bufferSize, s.count), commands));
    if (problem) throw new Error(`addon: ${problem}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Script
// ---------------------------------------------------------------------------------------------------------

async function main(argv: string[]): Promise<number> {
  let runs = 2000;
  let seed: number | undefined;
  let addonPath: string | undefined;
  let serve = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--runs') runs = Number(argv[++i]);
    else if (a === '--seed') seed = Number(argv[++i]);
    else if (a === '--addon') addonPath = argv[++i];
    else if (a === '--no-serve') serve = false;
    else {
      process.stderr.write('usage: node fuzz/pool/model-vs-native.ts [--runs N] [--seed S] [--addon path.node] [--no-serve]\n');
      return 2;
    }
  }
  const backends: { serve?: string; addon?: BufferPoolCtor } = {};
  if (serve) {
    const { locateNativeBinary } = await import('../../bench/lib.ts');
    backends.serve = locateNativeBinary({ target: 'cpspec-pool-test', envVar: 'CPSPEC_POOL_TEST', label: 'fuzz:pool' });
  }
  if (addonPath) {
    const mod = createRequire(import.meta.url)(path.resolve(addonPath)) as { BufferPool?: BufferPoolCtor };
    if (typeof mod.BufferPool !== 'function') throw new Error(`${addonPath} does not export BufferPool`);
    backends.addon = mod.BufferPool;
  }
  if (!backends.serve && !backends.addon) {
    process.stderr.write('fuzz:pool: nothing to compare the model with\n');
    return 2;
  }
  const t0 = Date.now();
  await fc.assert(
    fc.asyncProperty(poolScenario(200), (s) => checkScenario(s, backends)),
    { numRuns: runs, seed, verbose: 1 },
  );
  process.stdout.write(
    `fuzz:pool: ${runs} scenarios, model == native (${[backends.serve && 'serve', backends.addon && 'addon'].filter(Boolean).join(' + ')}) in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
  );
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
