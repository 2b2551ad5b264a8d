// Every case status and the exit-code rules, on the fixture suite (CPSPEC_SUITE) and the mini target.
import { describe, expect, it } from 'vitest';
import { cpspec, MINI, resultOf, statusOf } from '../fixtures/drivers/run-cli.ts';

const run = (only: string, ...extra: string[]) =>
  cpspec(['run', '--target', MINI, '--only', only, '--timeout', '1500', ...extra], { fixtureSuite: true });

describe('case statuses', () => {
  it('reports each status and goes on after a timeout and a host crash', async () => {
    const r = await run('CP-PORT-9*,CP-CONC-9*');
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const expected: Record<string, string> = {
      'CP-PORT-901': 'pass',
      'CP-PORT-902': 'fail',
      'CP-PORT-903': 'fail',
      'CP-PORT-904': 'timeout',
      'CP-PORT-905': 'crash',
      'CP-PORT-906': 'unsupported',
      'CP-PORT-907': 'unsupported',
      'CP-PORT-908': 'planned',
      'CP-PORT-909': 'fail', // no retries: its first attempt fails
      'CP-PORT-910': 'unsupported',
      'CP-PORT-911': 'fail',
      'CP-PORT-912': 'timeout',
      'CP-CONC-901': 'pass', // runs after the timeouts and the crash
      'CP-CONC-902': 'planned',
    };
    for (const [id, status] of Object.entries(expected)) expect(statusOf(r, id), id).toBe(status);
    expect(resultOf(r, 'CP-PORT-905').message).toMatch(/signal SIGSEGV/);
    expect(resultOf(r, 'CP-PORT-905').stderrTail).toContain('crashing the host now');
    expect(resultOf(r, 'CP-PORT-907').message).toMatch(/does not declare 'sockets'/);
    expect(resultOf(r, 'CP-PORT-908').planned).toBe('issue #99');
    expect(resultOf(r, 'CP-PORT-911').message).toMatch(/unhandled promise rejection.*dropped on the floor/);
    expect(resultOf(r, 'CP-PORT-902').log[0]).toContain('about to compare');
    expect(r.report!.warnings.join('\n')).toMatch(/CP-CONC-902: no case implements/);
    // Console: summary line starts with exactly "N passed, N failed".
    expect(r.stdout).toMatch(/^2 passed, 4 failed, 3 unsupported, 0 expected-fail, 0 unexpected-pass, 2 timeout, 1 crash, 0 flaky, 2 planned$/m);
    expect(r.ms).toBeLessThan(20_000);
  });

  it('--retries turns fail-then-pass into flaky (not fatal)', async () => {
    const r = await run('CP-PORT-901,CP-PORT-909', '--retries', '2');
    expect(r.code, r.stdout).toBe(0);
    const f = resultOf(r, 'CP-PORT-909');
    expect(f.status).toBe('flaky');
    expect(f.attempts.map((a) => a.status)).toEqual(['fail', 'pass']);
  });

  it('SHOULD failures and MAY timeouts are reported but not fatal', async () => {
    const r = await run('CP-PORT-901,CP-PORT-903,CP-PORT-912');
    expect(r.code, r.stdout).toBe(0);
    expect(statusOf(r, 'CP-PORT-903')).toBe('fail');
    expect(statusOf(r, 'CP-PORT-912')).toBe('timeout');
    expect(r.stdout).toMatch(/SHOULD\/MAY requirement\(s\) not met \(not fatal\)/);
  });

  it('--level must leaves out SHOULD and MAY', async () => {
    const r = await run('CP-PORT-901,CP-PORT-903,CP-PORT-912', '--level', 'must');
    expect(r.code).toBe(0);
    expect(r.report!.results.map((x) => x.id)).toEqual(['CP-PORT-901']);
  });

  it('the whole-run deadline stops the run: the rest is timeout (not run), exit 1', async () => {
    const r = await cpspec(['run', '--target', MINI, '--only', 'CP-PORT-901,CP-PORT-904,CP-CONC-901', '--timeout', '10000', '--run-timeout', '1500'], { fixtureSuite: true });
    expect(r.code).toBe(1);
    expect(statusOf(r, 'CP-PORT-901')).toBe('pass');
    expect(statusOf(r, 'CP-PORT-904')).toBe('timeout');
    expect(resultOf(r, 'CP-CONC-901').notRun).toBe(true);
    expect(r.report!.runDeadlineReached).toBe(true);
    expect(r.ms).toBeLessThan(8_000);
  });

  it('a target that cannot be created is exit 2', async () => {
    const r = await cpspec(['run', '--target', 'module:/nonexistent/target.ts', '--only', 'CP-PORT-001']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot load target module/);
  });
});
