// The console report: a header, one line per case as it finishes, then failure details and the summary.
import type { TargetInfo } from '../../../reference/src/target.ts';
import { summaryLine, type CaseResult, type CaseStatus, type RunReport } from '../types.ts';
import { RUNNER_NAME, RUNNER_VERSION, PROTOCOL_VERSION } from '../version.ts';

export interface Painter {
  (style: 'red' | 'green' | 'yellow' | 'cyan' | 'dim' | 'bold' | 'magenta', s: string): string;
}

export function painter(stream: NodeJS.WriteStream): Painter {
  const force = process.env.FORCE_COLOR !== undefined && process.env.FORCE_COLOR !== '0';
  const on = force || (stream.isTTY === true && process.env.NO_COLOR === undefined && process.env.TERM !== 'dumb');
  const codes = { red: 31, green: 32, yellow: 33, magenta: 35, cyan: 36, dim: 2, bold: 1 } as const;
  return (style, s) => (on ? `\x1b[${codes[style]}m${s}\x1b[0m` : s);
}

const STYLE: Record<CaseStatus, Parameters<Painter>[0]> = {
  pass: 'green',
  fail: 'red',
  unsupported: 'yellow',
  'expected-fail': 'cyan',
  'unexpected-pass': 'red',
  timeout: 'red',
  crash: 'red',
  flaky: 'magenta',
  planned: 'dim',
};

const WIDTH = Math.max(...Object.keys(STYLE).map((k) => k.length));

function ms(n: number): string {
  return n >= 10_000 ? `${(n / 1000).toFixed(1)} s` : `${Math.round(n)} ms`;
}

/** Makes control characters visible (a driver's output must not drive the terminal). */
export function visible(s: string): string {
  return s.replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function firstLine(s: string | undefined): string {
  return visible((s ?? '').split('\n')[0]);
}

function indent(s: string, pad = '      '): string {
  return visible(s)
    .split('\n')
    .map((l) => pad + l)
    .join('\n');
}

export function headerText(spec: string, info: TargetInfo | null, selected: number, p: Painter, extra: string[] = []): string {
  const lines = [p('bold', `${RUNNER_NAME} ${RUNNER_VERSION}`) + p('dim', ` (driver protocol ${PROTOCOL_VERSION}, node ${process.version})`)];
  if (info) {
    lines.push(`target:       ${info.name} ${info.version} (backend ${info.backend}) ${p('dim', `[--target ${spec}]`)}`);
    lines.push(`capabilities: ${info.capabilities.length > 0 ? info.capabilities.join(', ') : '(none)'}`);
    lines.push(`hardware threads: ${info.hardwareThreads}`);
    for (const n of info.notes ?? []) lines.push(`note:         ${n}`);
  } else {
    lines.push(`target:       ${spec}`);
  }
  lines.push(...extra);
  lines.push(`cases:        ${selected} selected`);
  return `${lines.join('\n')}\n`;
}

export function caseLine(r: CaseResult, p: Painter): string {
  const status = p(STYLE[r.status], r.status.padEnd(WIDTH));
  let tail = p('dim', `(${ms(r.durationMs)})`);
  if (r.status === 'planned') tail = p('dim', `(planned: ${r.planned ?? ''})`);
  else if (r.status === 'unsupported') tail = p('dim', `(${firstLine(r.message)})`);
  else if (r.status === 'expected-fail') tail = p('dim', `(${ms(r.durationMs)}; expected: ${r.expectation?.reason ?? ''})`);
  else if (r.notRun) tail = p('dim', '(not run)');
  return `  ${status}  ${r.id.padEnd(14)} ${r.level.padEnd(6)} ${r.title} ${tail}`;
}

/** One line per area for the planned requirements (scenario not written yet): counted, never hidden. */
export function plannedText(report: RunReport, p: Painter): string {
  const byArea = new Map<string, { n: number; why: string }>();
  for (const r of report.results) {
    if (r.status !== 'planned') continue;
    const area = r.id.split('-')[1];
    const e = byArea.get(area) ?? { n: 0, why: r.planned ?? '' };
    e.n++;
    byArea.set(area, e);
  }
  if (byArea.size === 0) return '';
  const lines = [...byArea].map(([a, e]) => `  ${p('dim', 'planned'.padEnd(WIDTH))}  ${a.padEnd(8)} ${e.n} requirement(s) ${p('dim', `(${e.why}; \`cpspec list --only ${a}\`)`)}`);
  return `${lines.join('\n')}\n`;
}

const DETAILED: readonly CaseStatus[] = ['fail', 'timeout', 'crash', 'unexpected-pass', 'flaky'];

export function detailsText(report: RunReport, p: Painter): string {
  const out: string[] = [];
  for (const r of report.results) {
    if (!DETAILED.includes(r.status) || r.notRun) continue;
    out.push(p(STYLE[r.status], `--- ${r.status}: ${r.id} (${r.level}) ${r.title}`));
    out.push(indent(r.statement, '    '));
    if (r.message) out.push(indent(r.message, '    '));
    if (r.details && r.details !== r.message) out.push(p('dim', indent(r.details)));
    if (r.log.length > 0) {
      out.push('    log:');
      out.push(indent(r.log.join('\n')));
    }
    if (r.stderrTail) {
      out.push('    stderr (tail):');
      out.push(p('dim', indent(r.stderrTail.trimEnd())));
    }
    if (r.attempts.length > 1) out.push(`    attempts: ${r.attempts.map((a) => a.status).join(' → ')}`);
    out.push('');
  }
  return out.length > 0 ? `\n${out.join('\n')}` : '';
}

export function footerText(report: RunReport, p: Painter, paths: string[] = []): string {
  const out: string[] = [];
  const notRun = report.results.filter((r) => r.notRun).length;
  for (const w of report.warnings) out.push(p('yellow', `warning: ${w}`));
  if (report.harnessError) out.push(p('red', `error: ${firstLine(report.harnessError)} (details on stderr)`));
  if (report.runDeadlineReached) out.push(p('red', `the whole-run deadline (--run-timeout ${report.options.runTimeoutMs} ms) was reached; ${notRun} case(s) not run`));
  out.push('');
  out.push(p('bold', summaryLine(report.summary)));
  const mustBad = report.results.filter((r) => r.level === 'MUST' && (r.status === 'fail' || r.status === 'timeout' || r.status === 'crash')).length;
  const otherBad = report.results.filter((r) => r.level !== 'MUST' && (r.status === 'fail' || r.status === 'timeout' || r.status === 'crash')).length;
  const up = report.summary['unexpected-pass'];
  const why: string[] = [];
  if (mustBad) why.push(`${mustBad} MUST requirement(s) not met`);
  if (up) why.push(`${up} unexpected pass(es): update the manifest`);
  if (otherBad) why.push(`${otherBad} SHOULD/MAY requirement(s) not met (not fatal)`);
  const verdict = report.verdict === 'pass' ? p('green', 'PASS') : report.verdict === 'fail' ? p('red', 'FAIL') : p('red', 'ERROR');
  out.push(`${verdict} (exit ${report.exitCode}) in ${(report.durationMs / 1000).toFixed(1)} s${why.length ? `: ${why.join('; ')}` : ''}`);
  for (const f of paths) out.push(p('dim', `report: ${f}`));
  return `${out.join('\n')}\n`;
}
