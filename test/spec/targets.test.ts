// The specification run against the built-in targets as part of the project's own tests, through the
// very CLI users run (`cpspec run --report json`): every executable requirement must pass on the model,
// on the native addon, and on the standalone native driver. One vitest test per requirement and target,
// so a failure names the requirement and carries the runner's message and the case log.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { catalogue } from '../../spec/index.ts';
import { driverPath } from '../driver/locate.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const executable = catalogue.filter((r) => !r.planned);

interface CaseResult {
  id: string;
  status: string;
  message?: string;
  log: string[];
  stderrTail?: string;
}

function runSuite(target: string): { exitCode: number | null; results: Map<string, CaseResult>; output: string } {
  const out = mkdtempSync(path.join(tmpdir(), 'cpspec-spec-'));
  const r = spawnSync(process.execPath, [path.join(root, 'conformance/bin/cpspec.js'), 'run', '--target', target, '--report', 'json', '--out', out], {
    cwd: root,
    encoding: 'utf8',
    timeout: 240_000,
  });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const report = JSON.parse(readFileSync(path.join(out, 'cpspec-report.json'), 'utf8')) as { results: CaseResult[] };
  return { exitCode: r.status, results: new Map(report.results.map((c) => [c.id, c])), output };
}

const targets: Array<[string, () => string]> = [
  ['model', () => 'model'],
  ['native', () => 'native'],
  ['driver (native, standalone)', () => `driver:${driverPath()}`],
];

for (const [name, spec] of targets) {
  describe(`spec against ${name}`, () => {
    let run: ReturnType<typeof runSuite>;
    beforeAll(() => {
      run = runSuite(spec());
    }, 250_000);

    test('the run exits 0', () => {
      expect(run.exitCode, run.output.slice(-4000)).toBe(0);
    });

    for (const r of executable) {
      test(`${r.id} ${r.title}`, () => {
        const c = run.results.get(r.id);
        expect(c, `${r.id} missing from the report`).toBeDefined();
        const why = [c?.message, ...(c?.log ?? []), c?.stderrTail].filter(Boolean).join('\n');
        expect(c?.status, why).toBe('pass');
      });
    }
  });
}
