// Runs the selected cases in a host process, one at a time, with a deadline on everything it waits for.
import type { TargetInfo } from '../../reference/src/target.ts';
import type { Level, Requirement } from '../../spec/index.ts';
import { manifestMap, TODO_REASON, type Manifest } from './expectations.ts';
import { startHost, type HostProcess } from './host-client.ts';
import type { CaseOutcome } from './host-messages.ts';
import { caseOf, select, suiteWarnings, type Suite } from './suite.ts';
import { parseTargetSpec } from './targets.ts';
import {
  summarize,
  type Attempt,
  type CaseResult,
  type CaseStatus,
  type Expectation,
  type RawStatus,
  type RunReport,
} from './types.ts';
import { PROTOCOL_VERSION, REPORT_SCHEMA_VERSION, RUNNER_NAME, RUNNER_VERSION } from './version.ts';

export interface RunOptions {
  target: string;
  only: string[];
  level: Level;
  timeoutMs: number;
  runTimeoutMs: number | null;
  retries: number;
  scale: number;
  manifest?: Manifest;
  manifestFile?: string;
  command: string[];
}

export interface RunEvents {
  /** The target is up: its info is known. */
  started?(info: TargetInfo, selected: number): void;
  caseDone?(r: CaseResult): void;
}

/** Consecutive failed host restarts after which the run gives up (exit code 2). */
const MAX_RESTART_FAILURES = 3;
/** Extra time, beyond the handshake timeout, for a host to start Node and load the target's modules. */
const HOST_START_SLACK_MS = 10_000;

const FAILING: readonly RawStatus[] = ['fail', 'timeout', 'crash'];

/** Applies an expectation to the attempts of one case: the final status. */
export function decideStatus(attempts: Attempt[], exp: Expectation | undefined): { status: CaseStatus; decisive: Attempt } {
  const last = attempts[attempts.length - 1];
  const firstBad = attempts.find((a) => FAILING.includes(a.status));
  if (exp) {
    if (attempts.some((a) => a.status === exp.status)) {
      const a = attempts.find((x) => x.status === exp.status)!;
      return { status: exp.status === 'unsupported' ? 'unsupported' : 'expected-fail', decisive: a };
    }
    if (last.status === 'pass') return { status: 'unexpected-pass', decisive: last };
    return { status: last.status, decisive: last };
  }
  if (last.status === 'pass' && firstBad) return { status: 'flaky', decisive: firstBad };
  return { status: last.status, decisive: last };
}

function baseResult(req: Requirement): Omit<CaseResult, 'status' | 'rawStatus' | 'durationMs' | 'log' | 'attempts'> {
  return { id: req.id, area: req.area, level: req.level, title: req.title, statement: req.statement, capabilities: req.capabilities.slice() };
}

/** Builds a case result from its attempts and expectation. */
export function finalize(req: Requirement, attempts: Attempt[], exp: Expectation | undefined, notRun = false): CaseResult {
  const { status, decisive } = decideStatus(attempts, exp);
  const r: CaseResult = {
    ...baseResult(req),
    status,
    rawStatus: status === 'flaky' ? 'pass' : decisive.status,
    durationMs: attempts.reduce((s, a) => s + a.durationMs, 0),
    log: decisive.log,
    attempts,
  };
  let message = decisive.message;
  if (exp && status !== 'expected-fail' && !(status === 'unsupported' && exp.status === 'unsupported')) {
    message = status === 'unexpected-pass'
      ? `expected ${exp.status} (${exp.reason}) but it passed: remove the entry from the manifest`
      : `expected ${exp.status} (${exp.reason}) but got ${status}${message ? `: ${message}` : ''}`;
  }
  if (status === 'flaky') message = `failed, then passed on retry ${attempts.length - 1}: ${decisive.message ?? decisive.status}`;
  if (message !== undefined) r.message = message;
  if (decisive.details !== undefined) r.details = decisive.details;
  if (decisive.stderrTail) r.stderrTail = decisive.stderrTail;
  if (exp) r.expectation = { status: exp.status, reason: exp.reason };
  if (notRun) r.notRun = true;
  return r;
}

function plannedResult(req: Requirement, note: string): CaseResult {
  const r: CaseResult = { ...baseResult(req), status: 'planned', rawStatus: 'planned', durationMs: 0, log: [], attempts: [], planned: note };
  return r;
}

/** Exit code and verdict. */
export function verdictOf(results: CaseResult[], runDeadlineReached: boolean, harnessError: string | undefined): { exitCode: 0 | 1 | 2; verdict: RunReport['verdict'] } {
  if (harnessError !== undefined) return { exitCode: 2, verdict: 'error' };
  const fatal = results.some(
    (r) => r.status === 'unexpected-pass' || (r.level === 'MUST' && (r.status === 'fail' || r.status === 'timeout' || r.status === 'crash')),
  );
  return fatal || runDeadlineReached ? { exitCode: 1, verdict: 'fail' } : { exitCode: 0, verdict: 'pass' };
}

export function newReport(opts: RunOptions, suite: Suite, started: Date): RunReport {
  return {
    schema: 'cpspec-report',
    schemaVersion: REPORT_SCHEMA_VERSION,
    runner: { name: RUNNER_NAME, version: RUNNER_VERSION, protocol: PROTOCOL_VERSION, node: process.version },
    command: opts.command,
    startedAt: started.toISOString(),
    finishedAt: started.toISOString(),
    durationMs: 0,
    target: { spec: opts.target, info: null },
    selection: { only: opts.only, level: opts.level, selected: 0 },
    options: { timeoutMs: opts.timeoutMs, runTimeoutMs: opts.runTimeoutMs, retries: opts.retries, scale: opts.scale },
    expectations: opts.manifestFile ? { file: opts.manifestFile, target: opts.manifest?.target, updated: false, needReasons: [] } : null,
    summary: summarize([]),
    verdict: 'pass',
    exitCode: 0,
    runDeadlineReached: false,
    warnings: suite.source === 'spec' ? [] : [`specification loaded from ${suite.source} (CPSPEC_SUITE)`],
    results: [],
  };
}

export async function run(suite: Suite, opts: RunOptions, events: RunEvents = {}): Promise<RunReport> {
  const startedAt = new Date();
  const t0 = performance.now();
  const report = newReport(opts, suite, startedAt);
  const { requirements, warnings } = select(suite, { only: opts.only, level: opts.level });
  report.warnings.push(...warnings, ...suiteWarnings(suite).filter((w) => requirements.some((r) => w.startsWith(`${r.id}:`))));
  report.selection.selected = requirements.length;
  parseTargetSpec(opts.target); // bad specs were rejected by the CLI already; this keeps run() safe on its own
  const expectations = manifestMap(opts.manifest);
  if (opts.manifest?.target && opts.manifest.target !== opts.target) {
    report.warnings.push(`the manifest was written for target '${opts.manifest.target}', this run is '${opts.target}'`);
  }
  const catalogueIds = new Set(suite.catalogue.map((r) => r.id));
  for (const e of opts.manifest?.entries ?? []) {
    if (!catalogueIds.has(e.id)) report.warnings.push(`manifest entry ${e.id} names no requirement in the catalogue`);
    else if (e.reason.trim() === TODO_REASON) report.warnings.push(`manifest entry ${e.id} still needs a reason ("${TODO_REASON}")`);
  }

  const runDeadline = opts.runTimeoutMs === null ? Infinity : t0 + opts.runTimeoutMs;
  const remaining = () => runDeadline - performance.now();
  let runDeadlineReached = false;
  const init = { target: opts.target, suite: suite.source, scale: opts.scale, handshakeTimeoutMs: opts.timeoutMs };

  const finish = (harnessError?: string): RunReport => {
    report.summary = summarize(report.results);
    report.runDeadlineReached = runDeadlineReached;
    if (harnessError !== undefined) report.harnessError = harnessError;
    Object.assign(report, verdictOf(report.results, runDeadlineReached, harnessError));
    report.finishedAt = new Date().toISOString();
    report.durationMs = Math.round(performance.now() - t0);
    return report;
  };

  // First start: a target that cannot be created or fails the handshake stops the run (exit code 2).
  const startDeadline = () => Math.min(opts.timeoutMs + HOST_START_SLACK_MS, Math.max(0, remaining()));
  const first = await startHost(init, startDeadline());
  if (!first.ok) {
    return finish(`${first.message}${first.tail ? `\n--- host output (tail) ---\n${first.tail}` : ''}`);
  }
  let host: HostProcess | null = first.host;
  const info = first.info;
  report.target.info = info;
  events.started?.(info, requirements.length);

  let restartFailures = 0;
  let harnessError: string | undefined;

  const dropHost = async (): Promise<string> => {
    if (!host) return '';
    const h = host;
    host = null;
    await h.kill();
    await h.drained();
    return h.tail();
  };

  /** Starts a host if none is running; returns an error message if that fails. */
  const ensureHost = async (): Promise<string | undefined> => {
    if (host) return undefined;
    const r = await startHost(init, startDeadline());
    if (r.ok) {
      host = r.host;
      restartFailures = 0;
      return undefined;
    }
    restartFailures++;
    return `could not restart the target after the previous case: ${r.message}${r.tail ? `\n${r.tail}` : ''}`;
  };

  const attempt = async (id: string): Promise<Attempt> => {
    for (let tries = 0; ; tries++) {
      if (remaining() <= 0) {
        runDeadlineReached = true;
        return { status: 'timeout', durationMs: 0, message: `not run: the whole-run deadline (--run-timeout ${opts.runTimeoutMs} ms) was reached`, log: [] };
      }
      const startErr = await ensureHost();
      if (startErr !== undefined) return { status: 'crash', durationMs: 0, message: startErr, log: [] };
      const h: HostProcess = host!;
      const caseDeadline = Math.min(opts.timeoutMs, remaining());
      const byRun = caseDeadline < opts.timeoutMs;
      const began = performance.now();
      const r = await h.request({ type: 'run', seq: h.nextSeq(), id }, 'result', caseDeadline);
      const elapsed = performance.now() - began;
      if (r.kind === 'deadline') {
        if (byRun) runDeadlineReached = true;
        // Ask (briefly) what the target was waiting for; a host whose event loop is stuck will not answer.
        const st = await h.request({ type: 'status', seq: h.nextSeq() }, 'status', 250);
        const waiting = st.kind === 'reply' && st.msg.type === 'status' ? st.msg.outstanding : [];
        const tail = await dropHost();
        const why = byRun
          ? `the whole-run deadline (--run-timeout ${opts.runTimeoutMs} ms) was reached while the case ran`
          : `the case did not finish within ${opts.timeoutMs} ms (--timeout); the target was killed and restarted`;
        const a: Attempt = { status: 'timeout', durationMs: elapsed, message: why, log: [] };
        if (waiting.length > 0) a.details = `unanswered driver requests: ${waiting.join('; ')}`;
        else if (st.kind === 'deadline') a.details = 'the host did not answer a status request either (its event loop is blocked)';
        if (tail) a.stderrTail = tail;
        return a;
      }
      if (r.kind === 'exit') {
        const tail = await dropHost();
        const how = r.signal ? `was killed by signal ${r.signal}` : `exited with code ${r.code}`;
        return {
          status: 'crash',
          durationMs: elapsed,
          message: `the host process ${how} during the case${r.fatal ? `: ${r.fatal.split('\n')[0]}` : ''}`,
          ...(r.fatal ? { details: r.fatal } : {}),
          log: [],
          ...(tail ? { stderrTail: tail } : {}),
        };
      }
      const msg = r.msg;
      if (msg.type === 'broken') {
        // The target broke between cases (e.g. its driver died after the last reply): restart, then run.
        report.warnings.push(`before ${id}: the target was broken (${msg.message}); it was restarted`);
        await dropHost();
        if (tries >= 1) return { status: 'crash', durationMs: 0, message: `the target broke before the case could start: ${msg.message}`, log: [], ...(msg.stderrTail ? { stderrTail: msg.stderrTail } : {}) };
        continue;
      }
      if (msg.type !== 'result') {
        await dropHost();
        return { status: 'crash', durationMs: elapsed, message: `internal: the host answered '${msg.type}' to a run request`, log: [] };
      }
      const o: CaseOutcome = msg.outcome;
      const a: Attempt = { status: o.status, durationMs: o.durationMs, log: o.log };
      if (o.message !== undefined) a.message = o.message;
      if (o.details !== undefined) a.details = o.details;
      if (o.stderrTail) a.stderrTail = o.stderrTail;
      if (msg.targetBroken) {
        await dropHost();
        return a;
      }
      // Between cases: reset the target, under a deadline too.
      const resetDeadline = Math.min(opts.timeoutMs, Math.max(0, remaining()));
      const rr = await h.request({ type: 'reset', seq: h.nextSeq() }, 'reset-done', resetDeadline);
      let resetProblem: { status: RawStatus; message: string; tail?: string } | undefined;
      if (rr.kind === 'deadline') {
        if (resetDeadline < opts.timeoutMs) runDeadlineReached = true;
        resetProblem = { status: 'timeout', message: `target.reset() after the case did not finish within ${resetDeadline} ms`, tail: await dropHost() };
      } else if (rr.kind === 'exit') {
        resetProblem = { status: 'crash', message: `the host process ${rr.signal ? `was killed by signal ${rr.signal}` : `exited with code ${rr.code}`} during target.reset()`, tail: await dropHost() };
      } else if (rr.msg.type === 'reset-done' && !rr.msg.ok) {
        resetProblem = { status: rr.msg.status, message: rr.msg.message, tail: rr.msg.stderrTail };
        await dropHost();
      }
      if (resetProblem) {
        if (a.status === 'pass') {
          a.status = resetProblem.status;
          a.message = resetProblem.message;
        } else {
          a.details = `${a.details ? `${a.details}\n` : ''}and then: ${resetProblem.message}`;
        }
        if (resetProblem.tail && !a.stderrTail) a.stderrTail = resetProblem.tail;
      }
      return a;
    }
  };

  try {
    for (const req of requirements) {
      if (harnessError === undefined && remaining() <= 0) runDeadlineReached = true;
      if (harnessError !== undefined || runDeadlineReached) {
        const why = harnessError !== undefined ? 'not run: the target could not be restarted' : `not run: the whole-run deadline (--run-timeout ${opts.runTimeoutMs} ms) was reached`;
        if (req.planned || !caseOf(suite, req.id)) report.results.push(plannedResult(req, req.planned ?? 'no case written yet'));
        else report.results.push(finalize(req, [{ status: harnessError !== undefined ? 'crash' : 'timeout', durationMs: 0, message: why, log: [] }], expectations.get(req.id), true));
        events.caseDone?.(report.results[report.results.length - 1]);
        continue;
      }
      let result: CaseResult;
      if (req.planned) {
        result = plannedResult(req, req.planned);
      } else if (!caseOf(suite, req.id)) {
        result = plannedResult(req, 'no case written yet (and the requirement is not marked planned)');
      } else {
        const exp = expectations.get(req.id);
        const missing = req.capabilities.filter((c) => !info.capabilities.includes(c));
        if (missing.length > 0) {
          result = finalize(req, [{ status: 'unsupported', durationMs: 0, message: `the target does not declare ${missing.map((c) => `'${c}'`).join(', ')}`, log: [] }], exp);
        } else {
          const attempts: Attempt[] = [];
          for (let i = 0; i <= opts.retries; i++) {
            const a = await attempt(req.id);
            attempts.push(a);
            if (!FAILING.includes(a.status)) break;
            if (exp && a.status === exp.status) break;
            if (runDeadlineReached || restartFailures > 0) break;
          }
          result = finalize(req, attempts, exp);
          if (restartFailures >= MAX_RESTART_FAILURES) {
            harnessError = `the target could not be restarted ${restartFailures} times in a row; the run stopped: ${attempts[attempts.length - 1].message ?? ''}`;
          }
        }
      }
      report.results.push(result);
      events.caseDone?.(result);
    }
  } finally {
    const h = host as HostProcess | null;
    if (h) await h.dispose(Math.min(5000, Math.max(1000, remaining())));
  }
  return finish(harnessError);
}
