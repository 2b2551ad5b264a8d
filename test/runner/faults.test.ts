// The reference model, in process and served as a driver, with and without faults. The concurrency, loss
// and duplication faults must be caught by the PORT/CONC/ORDER cases (exit 1).
import { describe, expect, it } from 'vitest';
import { cpspec, serveModel, statusOf } from '../fixtures/drivers/run-cli.ts';

const AREAS = 'CP-PORT,CP-CONC,CP-ORDER';

describe('model targets', () => {
  it('--target model passes CP-PORT-001', async () => {
    const r = await cpspec(['run', '--target', 'model', '--only', 'CP-PORT-001']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(statusOf(r, 'CP-PORT-001')).toBe('pass');
  });

  it('the model served as a driver passes PORT, CONC and ORDER', async () => {
    const r = await cpspec(['run', '--target', serveModel(), '--only', AREAS, '--timeout', '20000']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.report!.summary.pass).toBeGreaterThan(0);
  });

  it.each([
    ['no-concurrency-cap', 'violates the concurrency limit'],
    ['drop-every=3', 'loses packets'],
    ['duplicate-every=3', 'completes operations twice'],
  ])('a driver that %s (%s) fails with exit 1', async (fault) => {
    const r = await cpspec(['run', '--target', serveModel(fault), '--only', AREAS, '--timeout', '20000']);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.report!.summary.fail).toBeGreaterThanOrEqual(1);
  });

  it('the shipped example manifest gates the Wine-like model green', async () => {
    const r = await cpspec(['run', '--target', 'model:no-concurrency-cap,fifo-wake', '--only', AREAS, '--expect', 'conformance/expectations/model-wine-like.json', '--timeout', '20000']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.report!.summary['expected-fail']).toBeGreaterThan(0);
    expect(r.report!.summary['unexpected-pass']).toBe(0);
  });

  it('faults are also available on the in-process model (model:<faults>)', async () => {
    const r = await cpspec(['run', '--target', 'model:drop-every=2', '--only', 'CP-PORT-001', '--timeout', '10000']);
    expect(r.code).toBe(1);
    expect(statusOf(r, 'CP-PORT-001')).toBe('fail');
  });
});
