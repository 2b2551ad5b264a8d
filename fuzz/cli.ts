// `cpspec fuzz`: model-based fuzzing of a target, suite by suite (port: fuzz/port.ts; sockets and pools:
// fuzz/sockets.ts; framing through the target's FramingApi: fuzz/framing/target.ts), with a time or run
// budget, a progress line, seed/path replay, and runnable JSON repros of every failure (saved under --save,
// default .cpspec/fuzz-failures/; copy one into fuzz/corpus/ with a `why` to make it a permanent
// regression test, replayed by test/fuzz/corpus.test.ts).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import type { Target, TargetInfo } from '../reference/src/target.ts';
import { portScenarioArb, runPortScenario, type PortScenario } from './port.ts';
import { allowancesFor, KNOWN_DEVIATIONS, runSocketScenario, socketScenarioArb, type SocketScenario } from './sockets.ts';
import {
  formatFramingScenario,
  framingScenarioArb,
  framingScenarioFromJSON,
  framingScenarioToJSON,
  runFramingScenario,
  type FramingScenario,
  type FramingScenarioJSON,
} from './framing/target.ts';

export const SUITES = ['port', 'sockets', 'framing'] as const;
export type Suite = (typeof SUITES)[number];

/** A scenario as it is written in a repro (framing bytes as number arrays). */
export type ScenarioJSON = PortScenario | SocketScenario | FramingScenarioJSON;

export interface Repro {
  schema: 'cpspec-fuzz-repro/1';
  suite: Suite;
  target: string;
  seed: number;
  path: string;
  error: string;
  /** Corpus entries say why they are kept. */
  why?: string;
  scenario: ScenarioJSON;
}

export interface FuzzOptions {
  target: string;
  makeTarget: () => Promise<Target>;
  runs?: number;
  timeMs?: number;
  seed?: number;
  /** fast-check replay path (with seed). */
  path?: string;
  saveDir: string;
  /** Writes progress lines (stderr). */
  progress?: (line: string) => void;
  now?: () => number;
  /** sockets: how long the end waits without a completion before declaring the pending ones lost (ms). */
  quietMs?: number;
}

export interface FuzzResult {
  suite: Suite;
  runs: number;
  failed: boolean;
  seed: number;
  repro?: Repro;
  reproFile?: string;
  interrupted: boolean;
  /** Set when the suite could not run on this target (nothing was run). */
  skipped?: string;
  /** Known deviations of the target the suite tolerated (printed, never silent). */
  notes: string[];
}

interface SuiteDef<S> {
  arb: fc.Arbitrary<S>;
  /** Why the suite cannot run on this target, or undefined. */
  unavailable(t: Target, info: TargetInfo): string | undefined;
  run(t: Target, s: S, info: TargetInfo, o: { quietMs?: number }): Promise<unknown>;
  toJSON(s: S): ScenarioJSON;
  fromJSON(j: unknown): S;
  format(s: S): string;
  notes(info: TargetInfo): string[];
}

const formatOps = (ops: readonly object[]) => ops.map((op, i) => `  ${String(i).padStart(3)}  ${JSON.stringify(op)}`).join('\n');

function opsScenario<S extends { suite: string; ops: unknown[] }>(suite: S['suite'], j: unknown): S {
  const o = j as S;
  if (typeof o !== 'object' || o === null || o.suite !== suite || !Array.isArray(o.ops) || !o.ops.every((x) => typeof x === 'object' && x !== null && typeof (x as { op?: unknown }).op === 'string')) {
    throw new Error(`not a ${suite} scenario: needs suite "${suite}" and ops [{op, ...}]`);
  }
  return o;
}

const DEFS: { [K in Suite]: SuiteDef<K extends 'port' ? PortScenario : K extends 'sockets' ? SocketScenario : FramingScenario> } = {
  port: {
    arb: portScenarioArb,
    unavailable: () => undefined,
    run: (t, s) => runPortScenario(t, s),
    toJSON: (s) => s,
    fromJSON: (j) => opsScenario<PortScenario>('port', j),
    format: (s) => formatOps(s.ops),
    notes: () => [],
  },
  sockets: {
    arb: socketScenarioArb,
    unavailable: (t, info) => (t.sockets && info.capabilities.includes('sockets') ? undefined : 'the target has no sockets (capability sockets)'),
    run: (t, s, info, o) => runSocketScenario(t, s, { allow: allowancesFor(info.name), ...(o.quietMs === undefined ? {} : { quietMs: o.quietMs }) }),
    toJSON: (s) => s,
    fromJSON: (j) => opsScenario<SocketScenario>('sockets', j),
    format: (s) => formatOps(s.ops),
    notes: (info) => (KNOWN_DEVIATIONS[info.name] ?? []).map((d) => `known deviation of ${info.name} tolerated (${d.allow}): ${d.why}`),
  },
  framing: {
    arb: framingScenarioArb,
    unavailable: (t, info) => (t.framing && info.capabilities.includes('framing') ? undefined : 'the target has no framing codec (capability framing)'),
    run: (t, s) => runFramingScenario(t, s),
    toJSON: (s) => framingScenarioToJSON(s),
    fromJSON: (j) => framingScenarioFromJSON(j),
    format: (s) => formatFramingScenario(s),
    notes: () => [],
  },
};

function def(suite: Suite): SuiteDef<unknown> {
  return DEFS[suite] as unknown as SuiteDef<unknown>;
}

/** Parses 60s, 2m, 500ms, or a bare number of seconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim());
  if (!m) throw new Error(`cannot read the duration '${s}' (use e.g. 500ms, 60s, 2m)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!);
}

/** Parses --suite: one of the suites, or all (default). */
export function parseSuites(s: string | undefined): Suite[] {
  if (s === undefined || s === 'all') return [...SUITES];
  const list = s.split(',').map((x) => x.trim());
  for (const x of list) if (!(SUITES as readonly string[]).includes(x)) throw new Error(`unknown fuzz suite '${x}' (use ${SUITES.join(', ')} or all)`);
  return list as Suite[];
}

/** Runs one suite against one target. The target is created once and reset between runs. */
export async function fuzzSuite(suite: Suite, o: FuzzOptions): Promise<FuzzResult> {
  const d = def(suite);
  const now = o.now ?? (() => Date.now());
  const start = now();
  const seed = o.seed ?? (Date.now() ^ Math.floor(Math.random() * 0x7fffffff));
  const target = await o.makeTarget();
  let runs = 0;
  let lastProgress = start;
  const report = (final: boolean) => {
    const t = now();
    if (!final && t - lastProgress < 1000) return;
    lastProgress = t;
    const secs = (t - start) / 1000;
    const left = o.timeMs !== undefined ? `, ${Math.max(0, (o.timeMs - (t - start)) / 1000).toFixed(0)} s left` : o.runs !== undefined ? `, ${o.runs - runs} runs left` : '';
    o.progress?.(`fuzz ${o.target} [${suite}]: ${runs} runs, ${(runs / Math.max(secs, 0.001)).toFixed(0)} runs/s, 0 failures${left}`);
  };
  try {
    const info = await target.info();
    const why = d.unavailable(target, info);
    if (why !== undefined) return { suite, runs: 0, failed: false, seed, interrupted: false, skipped: why, notes: [] };
    const prop = fc.asyncProperty(d.arb, async (scenario) => {
      runs++;
      report(false);
      try {
        await d.run(target, scenario, info, { quietMs: o.quietMs });
      } finally {
        await target.reset();
      }
    });
    const params: fc.Parameters<[unknown]> = { seed, numRuns: o.runs ?? (o.timeMs !== undefined ? Number.MAX_SAFE_INTEGER : 200) };
    if (o.timeMs !== undefined) params.interruptAfterTimeLimit = o.timeMs;
    if (o.path !== undefined) params.path = o.path;
    const details = await fc.check(prop, params);
    report(true);
    const notes = d.notes(info);
    if (!details.failed) return { suite, runs, failed: false, seed, interrupted: details.interrupted, notes };
    const repro: Repro = {
      schema: 'cpspec-fuzz-repro/1',
      suite,
      target: o.target,
      seed: details.seed,
      path: details.counterexamplePath ?? '',
      error: errorText(details.errorInstance),
      scenario: d.toJSON(details.counterexample![0]),
    };
    const file = saveRepro(o.saveDir, repro);
    return { suite, runs, failed: true, seed, repro, reproFile: file, interrupted: false, notes };
  } finally {
    await target.dispose().catch(() => undefined);
  }
}

/** The port suite (kept for callers of the first fuzzer). */
export function fuzzPort(o: FuzzOptions): Promise<FuzzResult> {
  return fuzzSuite('port', o);
}

/** Writes a repro as `<suite>-<seed>-<path>.json` in dir; returns the file. */
export function saveRepro(dir: string, repro: Repro): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${repro.suite}-${repro.seed}-${(repro.path || '0').replace(/:/g, '_')}.json`);
  writeFileSync(file, `${JSON.stringify(repro, null, 2)}\n`);
  return file;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function readRepro(file: string): Repro {
  const r = JSON.parse(readFileSync(file, 'utf8')) as Repro;
  if (r?.schema !== 'cpspec-fuzz-repro/1' || !(SUITES as readonly string[]).includes(r.suite)) {
    throw new Error(`${file} is not a cpspec fuzz repro (schema cpspec-fuzz-repro/1, suite ${SUITES.join(' | ')})`);
  }
  try {
    def(r.suite).fromJSON(r.scenario);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  return r;
}

/** Replays a repro's scenario against a target: resolves if every invariant holds, rejects otherwise. */
export async function replay(target: Target, repro: Repro): Promise<void> {
  const d = def(repro.suite);
  const scenario = d.fromJSON(repro.scenario);
  try {
    const info = await target.info();
    const why = d.unavailable(target, info);
    if (why !== undefined) throw new Error(`cannot replay a ${repro.suite} repro: ${why}`);
    await d.run(target, scenario, info, {});
  } finally {
    await target.reset().catch(() => undefined);
  }
}

/** The minimal repro, formatted for a terminal: one op per line (framing: one line per part). */
export function formatScenario(s: ScenarioJSON): string {
  const suite = (s as { suite?: unknown }).suite;
  if (suite === 'framing') return formatFramingScenario(framingScenarioFromJSON(s));
  return formatOps((s as PortScenario | SocketScenario).ops);
}
