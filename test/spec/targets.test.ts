// The specification run against the built-in targets as part of the project's own tests, through the
// very CLI users run (`cpspec run --report json`): every executable requirement must pass on the model,
// on the native addon, and on the standalone native driver. One vitest test per requirement and target,
// so a failure names the requirement and carries the runner's message and the case log.
import { spawn } from 'node:child_process';
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

/** Runs the suite through the CLI without blocking the test worker (a blocked worker misses vitest's RPC deadlines). */
async function runSuite(target: string): Promise<{ exitCode: number | null; results: Map<string, CaseResult>; output: string; capabilities: string[] }> {
  const out = mkdtempSync(path.join(tmpdir(), 'cpspec-spec-'));
  const child = spawn(process.execPath, [path.join(root, 'conformance/bin/cpspec.js'), 'run', '--target', target, '--report', 'json', '--out', out], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
  const exitCode = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  clearTimeout(timer);
  const report = JSON.parse(readFileSync(path.join(out, 'cpspec-report.json'), 'utf8')) as {
    results: CaseResult[];
    target: { info?: { capabilities: string[] } };
  };
  return { exitCode, results: new Map(report.results.map((c) => [c.id, c])), output, capabilities: report.target.info?.capabilities ?? [] };
}

interface TargetCase {
  name: string;
  spec: () => string;
  /**
   * Capabilities this target is known not to have yet, each with the reason: requirements needing them
   * must come out `unsupported` (never pass silently, never fail). A listed capability that the target
   * does declare fails the test, so the list cannot go stale.
   */
  lacks: Record<string, string>;
}

const targets: TargetCase[] = [
  { name: 'model', spec: () => 'model', lacks: {} },
  { name: 'native', spec: () => 'native', lacks: {} },
  {
    name: 'driver (native, standalone)',
    spec: () => `driver:${driverPath()}`,
    lacks: {},
  },
];

for (const { name, spec, lacks } of targets) {
  describe(`spec against ${name}`, () => {
    let run: Awaited<ReturnType<typeof runSuite>>;
    beforeAll(async () => {
      run = await runSuite(spec());
    }, 250_000);

    test('the run exits 0', () => {
      expect(run.exitCode, run.output.slice(-4000)).toBe(0);
    });

    test('the capabilities listed as missing are really missing (the list is not stale)', () => {
      for (const cap of Object.keys(lacks)) expect(run.capabilities, `${name} now declares ${cap}: drop it from lacks`).not.toContain(cap);
    });

    for (const r of executable) {
      const missing = r.capabilities.filter((c) => c in lacks);
      const want = missing.length > 0 ? 'unsupported' : 'pass';
      test(`${r.id} ${r.title}${missing.length ? ` (unsupported: ${missing.map((c) => lacks[c]).join('; ')})` : ''}`, () => {
        const c = run.results.get(r.id);
        expect(c, `${r.id} missing from the report`).toBeDefined();
        const why = [c?.message, ...(c?.log ?? []), c?.stderrTail].filter(Boolean).join('\n');
        expect(c?.status, why).toBe(want);
      });
    }
  });
}
