// The native target's sockets on the io_uring back-end (native/uring): the same suite as the epoll back-end
// (native-sockets.shared.ts), plus the choice of the default `native` target and its fallback to epoll when
// io_uring cannot run (CPSPEC_DISABLE_URING=1 makes the setup fail as a seccomp denial of io_uring_setup would).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { TargetError } from '../../reference/src/target.ts';
import { createNativeTarget } from '../../native/js/target.ts';
import { nativeSocketSuite } from './native-sockets.shared.ts';

nativeSocketSuite('uring');

const root = path.resolve(import.meta.dirname, '../..');

/** info() of the default native target in a fresh Node process with the given extra environment. */
function defaultInfo(env: Record<string, string>): { backend: string; notes: string[]; sockets: boolean } {
  const script = `
    import { createNativeTarget } from ${JSON.stringify(path.join(root, 'native/js/target.ts'))};
    const t = await createNativeTarget();
    const i = await t.info();
    let sockets = false;
    try { const p = await t.createPort(0); const l = await t.sockets.listen(p, { key: 1 }); sockets = l.socket > 0; } catch {}
    await t.dispose();
    process.stdout.write(JSON.stringify({ backend: i.backend, notes: i.notes, sockets }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (r.status !== 0) throw new Error(`child failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as { backend: string; notes: string[]; sockets: boolean };
}

describe('native target back-end choice', () => {
  test('the default native target is uring here, and says so', () => {
    const i = defaultInfo({ CPSPEC_DISABLE_URING: '' });
    expect(i.backend).toBe('uring');
    expect(i.sockets).toBe(true);
    expect(i.notes.join('\n')).toMatch(/io_uring/);
  });

  test('CPSPEC_DISABLE_URING=1: the default target falls back to epoll and says why', () => {
    const i = defaultInfo({ CPSPEC_DISABLE_URING: '1' });
    expect(i.backend).toBe('epoll');
    expect(i.sockets).toBe(true);
    expect(i.notes).toContain('io_uring unavailable: io_uring_setup: EPERM (CPSPEC_DISABLE_URING=1); using epoll');
  });

  test("CPSPEC_DISABLE_URING=1: backend 'uring' is rejected with 'unsupported' carrying why", async () => {
    const old = process.env.CPSPEC_DISABLE_URING;
    process.env.CPSPEC_DISABLE_URING = '1';
    try {
      const p = createNativeTarget({ backend: 'uring' });
      await expect(p).rejects.toBeInstanceOf(TargetError);
      await expect(p).rejects.toMatchObject({ code: 'unsupported', message: expect.stringMatching(/io_uring_setup: EPERM/) });
    } finally {
      if (old === undefined) delete process.env.CPSPEC_DISABLE_URING;
      else process.env.CPSPEC_DISABLE_URING = old;
    }
  });

  test('an unknown back-end is unsupported', async () => {
    await expect(createNativeTarget({ backend: 'kqueue' })).rejects.toMatchObject({ code: 'unsupported' });
  });
});
