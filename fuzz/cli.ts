// `cpspec fuzz`: model-based fuzzing of a target's completion port, with a time or run budget, a progress
// line, seed/path replay, and runnable JSON repros of every failure (saved under --save, default
// .cpspec/fuzz-failures/; copy one into fuzz/corpus/ to make it a permanent regression test).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import type { Target } from '../reference/src/target.ts';
import { portScenarioArb, runPortScenario, type PortScenario } from './port.ts';

export interface Repro {
  schema: 'cpspec-fuzz-repro/1';
  suite: 'port';
  target: string;
  seed: number;
  path: string;
  error: string;
  /** Corpus entries say why they are kept. */
  why?: string;
  scenario: PortScenario;
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
}

export interface FuzzResult {
  runs: number;
  failed: boolean;
  seed: number;
  repro?: Repro;
  reproFile?: string;
  interrupted: boolean;
}

/** Parses 60s, 2m, 500ms, or a bare number of seconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim());
  if (!m) throw new Error(`cannot read the duration '${s}' (use e.g. 500ms, 60s, 2m)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!);
}

/** Runs the port fuzzer against one target. The target is created once and reset between runs. */
export async function fuzzPort(o: FuzzOptions): Promise<FuzzResult> {
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
    o.progress?.(`fuzz ${o.target}: ${runs} runs, ${(runs / Math.max(secs, 0.001)).toFixed(0)} runs/s, 0 failures${left}`);
  };
  try {
    const prop = fc.asyncProperty(portScenarioArb, async (scenario) => {
      runs++;
      report(false);
      try {
        await runPortScenario(target, scenario);
      } finally {
        await target.reset();
      }
    });
    const params: fc.Parameters<[PortScenario]> = { seed, numRuns: o.runs ?? (o.timeMs !== undefined ? Number.MAX_SAFE_INTEGER : 200) };
    if (o.timeMs !== undefined) params.interruptAfterTimeLimit = o.timeMs;
    if (o.path !== undefined) params.path = o.path;
    const details = await fc.check(prop, params);
    report(true);
    if (!details.failed) return { runs, failed: false, seed, interrupted: details.interrupted };
    const scenario = details.counterexample![0];
    const repro: Repro = {
      schema: 'cpspec-fuzz-repro/1',
      suite: 'port',
      target: o.target,
      seed: details.seed,
      path: details.counterexamplePath ?? '',
      error: errorText(details.errorInstance),
      scenario,
    };
    mkdirSync(o.saveDir, { recursive: true });
    const file = path.join(o.saveDir, `port-${details.seed}-${(details.counterexamplePath ?? '0').replace(/:/g, '_')}.json`);
    writeFileSync(file, `${JSON.stringify(repro, null, 2)}\n`);
    return { runs, failed: true, seed, repro, reproFile: file, interrupted: false };
  } finally {
    await target.dispose().catch(() => undefined);
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function readRepro(file: string): Repro {
  const r = JSON.parse(readFileSync(file, 'utf8')) as Repro;
  if (r?.schema !== 'cpspec-fuzz-repro/1' || r.suite !== 'port' || !Array.isArray(r.scenario?.ops)) {
    throw new Error(`${file} is not a cpspec fuzz repro (schema cpspec-fuzz-repro/1, suite port)`);
  }
  return r;
}

/** Replays a repro's scenario against a target: resolves if every invariant holds, rejects otherwise. */
export async function replay(target: Target, repro: Repro): Promise<void> {
  try {
    await runPortScenario(target, repro.scenario);
  } finally {
    await target.reset().catch(() => undefined);
  }
}

/** The minimal repro, formatted for a terminal: one op per line. */
export function formatScenario(s: PortScenario): string {
  return s.ops.map((op, i) => `  ${String(i).padStart(3)}  ${JSON.stringify(op)}`).join('\n');
}
