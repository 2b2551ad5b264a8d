// The command line: help, version, list, and bad input (exit code 2).
import { describe, expect, it } from 'vitest';
import { cpspec, MINI } from '../fixtures/drivers/run-cli.ts';

describe('cpspec CLI', () => {
  it('prints help and version', async () => {
    const help = await cpspec(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('cpspec run');
    expect(help.stdout).toContain('cpspec list');
    const runHelp = await cpspec(['run', '--help']);
    expect(runHelp.code).toBe(0);
    for (const flag of ['--target', '--only', '--level', '--report', '--out', '--expect', '--update-expectations', '--timeout', '--run-timeout', '--retries', '--scale']) {
      expect(runHelp.stdout).toContain(flag);
    }
    const version = await cpspec(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^cpspec \d+\.\d+\.\d+ \(driver protocol 1\)/);
  });

  it('lists cases without running them', async () => {
    const r = await cpspec(['list']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/CP-PORT-001\s+MUST\s+/);
    const j = await cpspec(['list', '--json', '--only', 'CP-PORT-00*', '--level', 'must']);
    expect(j.code).toBe(0);
    const parsed = JSON.parse(j.stdout) as { requirements: Array<{ id: string; level: string; capabilities: string[]; planned: string | null; title: string }> };
    expect(parsed.requirements.length).toBeGreaterThan(0);
    for (const q of parsed.requirements) {
      expect(q.id).toMatch(/^CP-PORT-00\d$/);
      expect(q.level).toBe('MUST');
      expect(Array.isArray(q.capabilities)).toBe(true);
      expect(typeof q.title).toBe('string');
    }
  });

  it('list shows planned requirements of the fixture suite', async () => {
    const r = await cpspec(['list', '--only', 'CP-PORT-908,CP-CONC-902'], { fixtureSuite: true });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('[planned: issue #99]');
    expect(r.stdout).toContain('[no case yet]');
  });

  it.each([
    [['run', '--bogus'], /unknown option --bogus/],
    [['run', '--target', 'nonsense'], /unknown target 'nonsense'/],
    [['run', '--target', 'driver:'], /needs a command/],
    [['run', '--target', 'driver:"unterminated'], /unterminated double quote/],
    [['run', '--target', 'model:bogus-fault'], /unknown model fault/],
    [['run', '--target', MINI, '--level', 'sometimes'], /--level must be one of/],
    [['run', '--target', MINI, '--report', 'html'], /unknown format 'html'/],
    [['run', '--target', MINI, '--timeout', 'soon'], /--timeout needs an integer/],
    [['run', '--target', MINI, '--retries', '-1'], /--retries/],
    [['run', '--target', MINI, '--only', 'CP-NOPE-001'], /no requirement matches 'CP-NOPE-001'/],
    [['run', '--target', MINI, '--update-expectations'], /needs --expect/],
    [['run', '--target', MINI, '--expect', '/nonexistent/manifest.json'], /does not exist/],
    [['run', 'extra'], /unexpected argument/],
    [['frobnicate'], /unknown command/],
    [['list', '--target', 'model'], /unknown option --target/],
  ])('rejects %j with exit code 2', async (args, message) => {
    const r = await cpspec(args as string[]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});
