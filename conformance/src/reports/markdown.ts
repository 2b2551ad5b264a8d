// Markdown: a summary and a table, for a pull-request comment.
import { summaryLine, type CaseResult, type CaseStatus, type RunReport } from '../types.ts';

const ICON: Record<CaseStatus, string> = {
  pass: '✅',
  fail: '❌',
  unsupported: '➖',
  'expected-fail': '🟦',
  'unexpected-pass': '❗',
  timeout: '⏱️',
  crash: '💥',
  flaky: '🔁',
  planned: '📝',
};

export function mdCell(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, '<br>').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function note(r: CaseResult): string {
  if (r.status === 'planned') return `planned: ${r.planned ?? ''}`;
  if (r.status === 'expected-fail') return `expected: ${r.expectation?.reason ?? ''}`;
  const m = (r.message ?? '').split('\n')[0];
  return m.length > 160 ? `${m.slice(0, 160)}…` : m;
}

function table(rs: CaseResult[]): string {
  const rows = rs.map(
    (r) => `| ${ICON[r.status]} ${r.status} | \`${r.id}\` | ${r.level} | ${mdCell(r.title)} | ${Math.round(r.durationMs)} ms | ${mdCell(note(r))} |`,
  );
  return ['| status | ID | level | requirement | time | note |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

export function markdownReport(report: RunReport): string {
  const info = report.target.info;
  const verdict = report.verdict === 'pass' ? '✅ PASS' : report.verdict === 'fail' ? '❌ FAIL' : '💥 ERROR';
  const out: string[] = [];
  out.push(`### cpspec conformance: ${verdict}`);
  out.push('');
  out.push(
    info
      ? `Target **${mdCell(info.name)} ${mdCell(info.version)}** (backend \`${info.backend}\`, \`--target ${mdCell(report.target.spec)}\`), cpspec ${report.runner.version}, level ≥ ${report.selection.level}.`
      : `Target \`${mdCell(report.target.spec)}\`, cpspec ${report.runner.version}.`,
  );
  out.push('');
  out.push(`**${summaryLine(report.summary)}** — exit ${report.exitCode}, ${(report.durationMs / 1000).toFixed(1)} s`);
  if (report.harnessError) out.push('', '```', report.harnessError.replace(/```/g, "'''"), '```');
  if (report.runDeadlineReached) out.push('', `⏱️ The whole-run deadline (${report.options.runTimeoutMs} ms) was reached.`);
  for (const w of report.warnings) out.push('', `> ⚠️ ${mdCell(w)}`);
  const problems = report.results.filter((r) => ['fail', 'timeout', 'crash', 'unexpected-pass', 'flaky'].includes(r.status));
  if (problems.length > 0) {
    out.push('', '#### Needs attention', '', table(problems));
  }
  if (report.results.length > 0) {
    out.push('', `<details><summary>All ${report.results.length} cases</summary>`, '', table(report.results), '', '</details>');
  }
  return `${out.join('\n')}\n`;
}
