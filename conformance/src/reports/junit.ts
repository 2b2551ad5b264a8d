// JUnit XML: one testsuite per area, one testcase per requirement ID. Readable by GitHub Actions test
// reporters and GitLab (failure/error/skipped elements, escaped text, no invalid XML characters).
import type { CaseResult, RunReport } from '../types.ts';

/** Removes characters XML 1.0 forbids (control characters, lone surrogates, U+FFFE/U+FFFF). */
export function xmlSafe(s: string): string {
  return s.replace(/[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function escapeXml(s: string): string {
  return xmlSafe(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Attribute values: also keep newlines (attribute normalisation would fold them into spaces). */
function attr(s: string): string {
  return escapeXml(s).replace(/\n/g, '&#10;').replace(/\r/g, '&#13;').replace(/\t/g, '&#9;');
}

function secs(ms: number): string {
  return (ms / 1000).toFixed(3);
}

function body(r: CaseResult): string {
  const parts: string[] = [r.statement];
  if (r.message) parts.push(r.message);
  if (r.details && r.details !== r.message) parts.push(r.details);
  if (r.log.length) parts.push(`log:\n${r.log.join('\n')}`);
  if (r.stderrTail) parts.push(`stderr (tail):\n${r.stderrTail}`);
  if (r.attempts.length > 1) parts.push(`attempts: ${r.attempts.map((a) => a.status).join(' -> ')}`);
  return parts.join('\n\n');
}

function testcase(r: CaseResult): string {
  const head = `    <testcase classname="cpspec.${attr(r.area)}" name="${attr(`${r.id} [${r.level}] ${r.title}`)}" time="${secs(r.durationMs)}"`;
  const first = (s: string | undefined) => (s ?? '').split('\n')[0];
  let inner = '';
  switch (r.status) {
    case 'fail':
      inner = `<failure type="fail" message="${attr(first(r.message) || 'failed')}">${escapeXml(body(r))}</failure>`;
      break;
    case 'unexpected-pass':
      inner = `<failure type="unexpected-pass" message="${attr(first(r.message))}">${escapeXml(body(r))}</failure>`;
      break;
    case 'timeout':
    case 'crash':
      inner = `<error type="${r.status}" message="${attr(first(r.message) || r.status)}">${escapeXml(body(r))}</error>`;
      break;
    case 'unsupported':
      inner = `<skipped message="${attr(`unsupported: ${first(r.message)}`)}"/>`;
      break;
    case 'planned':
      inner = `<skipped message="${attr(`planned: ${r.planned ?? ''}`)}"/>`;
      break;
    case 'expected-fail':
      inner = `<skipped message="${attr(`expected-fail: ${r.expectation?.reason ?? ''}`)}"/>`;
      break;
    case 'flaky':
      inner = `<system-out>${escapeXml(`flaky: ${r.message ?? ''}\n\n${body(r)}`)}</system-out>`;
      break;
    case 'pass':
      if (r.log.length) inner = `<system-out>${escapeXml(r.log.join('\n'))}</system-out>`;
      break;
  }
  return inner ? `${head}>\n      ${inner}\n    </testcase>` : `${head}/>`;
}

interface Counts {
  tests: number;
  failures: number;
  errors: number;
  skipped: number;
  time: number;
}

function counts(rs: CaseResult[]): Counts {
  const c: Counts = { tests: rs.length, failures: 0, errors: 0, skipped: 0, time: 0 };
  for (const r of rs) {
    c.time += r.durationMs;
    if (r.status === 'fail' || r.status === 'unexpected-pass') c.failures++;
    else if (r.status === 'timeout' || r.status === 'crash') c.errors++;
    else if (r.status === 'unsupported' || r.status === 'planned' || r.status === 'expected-fail') c.skipped++;
  }
  return c;
}

function countAttrs(c: Counts): string {
  return `tests="${c.tests}" failures="${c.failures}" errors="${c.errors}" skipped="${c.skipped}" time="${secs(c.time)}"`;
}

export function junitReport(report: RunReport): string {
  const areas = new Map<string, CaseResult[]>();
  for (const r of report.results) {
    const list = areas.get(r.area) ?? [];
    list.push(r);
    areas.set(r.area, list);
  }
  const info = report.target.info;
  const props = [
    ['cpspec.version', report.runner.version],
    ['cpspec.target', report.target.spec],
    ['target.name', info?.name ?? ''],
    ['target.version', info?.version ?? ''],
    ['target.backend', info?.backend ?? ''],
    ['target.capabilities', info?.capabilities.join(',') ?? ''],
    ['cpspec.level', report.selection.level],
    ['cpspec.verdict', report.verdict],
  ]
    .map(([k, v]) => `      <property name="${attr(k)}" value="${attr(v)}"/>`)
    .join('\n');
  const suites: string[] = [];
  for (const [area, rs] of areas) {
    suites.push(
      `  <testsuite name="cpspec.${attr(area)}" ${countAttrs(counts(rs))} timestamp="${attr(report.startedAt.replace(/\.\d+Z$/, ''))}" hostname="localhost">\n    <properties>\n${props}\n    </properties>\n${rs.map(testcase).join('\n')}\n  </testsuite>`,
    );
  }
  let all = counts(report.results);
  if (report.harnessError) {
    // A run that could not start still yields a readable report with one error.
    suites.push(
      `  <testsuite name="cpspec.harness" tests="1" failures="0" errors="1" skipped="0" time="0.000">\n    <testcase classname="cpspec.harness" name="target could be started" time="0.000">\n      <error type="harness" message="${attr(report.harnessError.split('\n')[0])}">${escapeXml(report.harnessError)}</error>\n    </testcase>\n  </testsuite>`,
    );
    all = { ...all, tests: all.tests + 1, errors: all.errors + 1 };
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="cpspec ${attr(report.target.spec)}" ${countAttrs({ ...all, time: report.durationMs })}>\n${suites.join('\n')}\n</testsuites>\n`;
}
