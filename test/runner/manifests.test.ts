// Expectation manifests: expected failures, unexpected passes, rewriting, validation.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cpspec, driver, MINI, statusOf, tempDir } from '../fixtures/drivers/run-cli.ts';

const CORRUPT = driver('good.js', '--corrupt-token');
const GOOD = driver('good.js');
const IDS = 'CP-PORT-001,CP-PORT-003';

function manifest(entries: unknown[], target = 'test'): string {
  const file = join(tempDir(), 'expect.json');
  writeFileSync(file, JSON.stringify({ target, entries }));
  return file;
}

describe('expectation manifests', () => {
  it('an expected failure is expected-fail and exits 0', async () => {
    const file = manifest([{ id: 'CP-PORT-001', status: 'fail', reason: 'tokens are corrupted on purpose' }]);
    const r = await cpspec(['run', '--target', CORRUPT, '--only', IDS, '--expect', file]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(statusOf(r, 'CP-PORT-001')).toBe('expected-fail');
    expect(r.report!.results[0].expectation?.reason).toBe('tokens are corrupted on purpose');
  });

  it('an unexpected pass fails the run', async () => {
    const file = manifest([{ id: 'CP-PORT-001', reason: 'was broken once' }]);
    const r = await cpspec(['run', '--target', GOOD, '--only', IDS, '--expect', file]);
    expect(r.code).toBe(1);
    expect(statusOf(r, 'CP-PORT-001')).toBe('unexpected-pass');
  });

  it('a different failure than expected is reported as itself', async () => {
    const file = manifest([{ id: 'CP-PORT-904', status: 'crash', reason: 'expected a crash' }]);
    const r = await cpspec(['run', '--target', MINI, '--only', 'CP-PORT-904', '--timeout', '1000', '--expect', file], { fixtureSuite: true });
    expect(r.code).toBe(1);
    expect(statusOf(r, 'CP-PORT-904')).toBe('timeout');
    expect(r.report!.results[0].message).toMatch(/expected crash/);
  });

  it('--update-expectations rewrites the manifest, keeps reasons, asks for new ones', async () => {
    const file = manifest([
      { id: 'CP-PORT-002', status: 'fail', reason: 'kept reason' },
      { id: 'CP-PORT-003', status: 'fail', reason: 'stale: it passes now' },
      { id: 'CP-ORDER-001', status: 'fail', reason: 'not selected: left alone' },
    ]);
    const r = await cpspec(['run', '--target', CORRUPT, '--only', 'CP-PORT-001,CP-PORT-002,CP-PORT-003', '--expect', file, '--update-expectations']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/need(s)? a reason.*CP-PORT-001/);
    const m = JSON.parse(readFileSync(file, 'utf8')) as { target: string; entries: Array<{ id: string; status: string; reason: string }> };
    expect(m.entries).toEqual([
      { id: 'CP-ORDER-001', status: 'fail', reason: 'not selected: left alone' },
      { id: 'CP-PORT-001', status: 'fail', reason: 'TODO: explain' },
      { id: 'CP-PORT-002', status: 'fail', reason: 'kept reason' },
    ]);
    expect(r.report!.expectations?.needReasons).toEqual(['CP-PORT-001']);
    expect(statusOf(r, 'CP-PORT-001')).toBe('expected-fail');
    // The rewritten manifest now gates the same run green.
    const again = await cpspec(['run', '--target', CORRUPT, '--only', 'CP-PORT-001,CP-PORT-002,CP-PORT-003', '--expect', file]);
    expect(again.code).toBe(0);
  });

  it('--update-expectations creates a missing manifest', async () => {
    const file = join(tempDir(), 'new.json');
    const r = await cpspec(['run', '--target', CORRUPT, '--only', 'CP-PORT-001', '--expect', file, '--update-expectations']);
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(file, 'utf8')).entries).toHaveLength(1);
  });

  it.each([
    [[{ id: 'CP-PORT-001', status: 'fail' }], /needs a non-empty "reason"/],
    [[{ id: 'CP-PORT-001', status: 'fail', reason: '   ' }], /needs a non-empty "reason"/],
    [[{ id: 'CP-PORT-001', status: 'flaky', reason: 'x' }], /"status" must be one of/],
    [[{ id: 'port-1', reason: 'x' }], /must be a requirement ID/],
    [[{ id: 'CP-PORT-001', reason: 'x' }, { id: 'CP-PORT-001', reason: 'y' }], /listed twice/],
    [[{ id: 'CP-PORT-001', reason: 'x', why: 'typo' }], /unknown field "why"/],
  ])('rejects an invalid manifest (%j) with exit 2', async (entries, message) => {
    const file = manifest(entries);
    const r = await cpspec(['run', '--target', GOOD, '--only', 'CP-PORT-001', '--expect', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('rejects a manifest that is not JSON', async () => {
    const file = join(tempDir(), 'bad.json');
    writeFileSync(file, '{ entries: [ }');
    const r = await cpspec(['run', '--target', GOOD, '--expect', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not valid JSON/);
  });

  it('the shipped manifests are valid', async () => {
    const { readdirSync } = await import('node:fs');
    const { validateManifest } = await import('../../conformance/src/expectations.ts');
    const dir = new URL('../../conformance/expectations/', import.meta.url);
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.json'))) {
      const raw = JSON.parse(readFileSync(new URL(f, dir), 'utf8'));
      expect(validateManifest(raw, f).problems, f).toEqual([]);
    }
  });
});
