// Result types shared by the runner, the reports and the expectation manifests.
import type { TargetInfo } from '../../reference/src/target.ts';
import type { Level } from '../../spec/index.ts';

/** What one attempt of one case produced. */
export type RawStatus = 'pass' | 'fail' | 'unsupported' | 'timeout' | 'crash';

/** Final status of a case in a report. */
export const CASE_STATUSES = [
  'pass',
  'fail',
  'unsupported',
  'expected-fail',
  'unexpected-pass',
  'timeout',
  'crash',
  'flaky',
  'planned',
] as const;
export type CaseStatus = (typeof CASE_STATUSES)[number];

/** Statuses an expectation manifest entry may name. */
export const EXPECTABLE = ['fail', 'timeout', 'crash', 'unsupported'] as const;
export type ExpectedStatus = (typeof EXPECTABLE)[number];

export const LEVELS: readonly Level[] = ['MUST', 'SHOULD', 'MAY'];

export interface Attempt {
  status: RawStatus;
  durationMs: number;
  message?: string;
  /** Stack trace or other detail of a failure. */
  details?: string;
  log: string[];
  /** Tail of the host's / driver's stderr, for crashes and timeouts. */
  stderrTail?: string;
}

export interface Expectation {
  id: string;
  status: ExpectedStatus;
  reason: string;
}

export interface CaseResult {
  id: string;
  area: string;
  level: Level;
  title: string;
  statement: string;
  capabilities: string[];
  status: CaseStatus;
  /** Status of the attempt that decided the case (before expectations were applied). */
  rawStatus: RawStatus | 'planned';
  durationMs: number;
  message?: string;
  details?: string;
  log: string[];
  stderrTail?: string;
  /** Issue that will bring the case, for planned requirements. */
  planned?: string;
  expectation?: { status: ExpectedStatus; reason: string };
  /** Every attempt, in order (more than one with --retries). */
  attempts: Attempt[];
  /** The case was never started (whole-run deadline reached first). */
  notRun?: boolean;
}

export type Summary = Record<CaseStatus, number> & { total: number };

export interface RunReport {
  schema: 'cpspec-report';
  schemaVersion: number;
  runner: { name: string; version: string; protocol: number; node: string };
  command: string[];
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  target: { spec: string; info: TargetInfo | null };
  selection: { only: string[]; level: Level; selected: number };
  options: { timeoutMs: number; runTimeoutMs: number | null; retries: number; scale: number };
  expectations: { file: string; target?: string; updated: boolean; needReasons: string[] } | null;
  summary: Summary;
  /** pass: exit 0; fail: exit 1; error: the harness or target could not run (exit 2). */
  verdict: 'pass' | 'fail' | 'error';
  exitCode: 0 | 1 | 2;
  harnessError?: string;
  runDeadlineReached: boolean;
  warnings: string[];
  results: CaseResult[];
}

export function emptySummary(): Summary {
  const s = { total: 0 } as Summary;
  for (const k of CASE_STATUSES) s[k] = 0;
  return s;
}

export function summarize(results: CaseResult[]): Summary {
  const s = emptySummary();
  for (const r of results) {
    s[r.status]++;
    s.total++;
  }
  return s;
}

/** The summary line: always starts with exactly `N passed, N failed`. */
export function summaryLine(s: Summary): string {
  return [
    `${s.pass} passed`,
    `${s.fail} failed`,
    `${s.unsupported} unsupported`,
    `${s['expected-fail']} expected-fail`,
    `${s['unexpected-pass']} unexpected-pass`,
    `${s.timeout} timeout`,
    `${s.crash} crash`,
    `${s.flaky} flaky`,
    `${s.planned} planned`,
  ].join(', ');
}

/** Error for bad command lines and unusable inputs: exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The harness or the target could not run: exit code 2. */
export class HarnessError extends Error {
  override name = 'HarnessError';
}
