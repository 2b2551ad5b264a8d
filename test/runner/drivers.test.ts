// The driver client against deliberately broken drivers: every one yields the right status and a non-zero
// exit, within the deadlines, and leaves no process behind.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, ROOT, cpspec, survivors, driver, resultOf, statusOf, tempDir } from '../fixtures/drivers/run-cli.ts';

const IDS = 'CP-PORT-001,CP-PORT-002';

describe('driver targets', () => {
  it('a correct driver passes', async () => {
    const r = await cpspec(['run', '--target', driver('good.js'), '--only', IDS, '--timeout', '5000']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(statusOf(r, 'CP-PORT-001')).toBe('pass');
    expect(r.report?.target.info?.name).toBe('mini');
  });

  it('a hanging driver: timeout per case, killed (with its child), run goes on, exit 1', async () => {
    const pidFile = join(tempDir(), 'pids');
    const r = await cpspec(['run', '--target', driver('hang.js', '--grandchild', pidFile), '--only', IDS, '--timeout', '1000']);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(statusOf(r, 'CP-PORT-001')).toBe('timeout');
    expect(statusOf(r, 'CP-PORT-002')).toBe('timeout');
    expect(resultOf(r, 'CP-PORT-001').details).toMatch(/unanswered driver requests: port\.create/);
    // Two cases of 1 s each, plus start-up: well under the safety net.
    expect(r.ms).toBeLessThan(15_000);
    const pids = readFileSync(pidFile, 'utf8').trim().split('\n').map(Number);
    expect(pids).toHaveLength(4); // two drivers (one per case, after the restart), each with a child
    expect(await survivors(pids), 'driver processes that survived the run').toEqual([]);
  });

  it('killing the runner itself (SIGKILL) leaves no driver behind', async () => {
    const pidFile = join(tempDir(), 'pids');
    const child = spawn(process.execPath, [CLI, 'run', '--target', driver('hang.js', '--grandchild', pidFile), '--only', IDS, '--timeout', '30000'], { cwd: ROOT, stdio: 'ignore' });
    const until = performance.now() + 10_000;
    while (!(existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim().split('\n').length >= 2) && performance.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 300)); // the case is now waiting on port.create
    child.kill('SIGKILL');
    const pids = readFileSync(pidFile, 'utf8').trim().split('\n').map(Number);
    expect(await survivors(pids), 'driver processes that outlived the runner').toEqual([]);
  });

  it('a crashing driver: crash with exit code and stderr tail, exit 1', async () => {
    const r = await cpspec(['run', '--target', driver('crash.js'), '--only', IDS, '--timeout', '5000']);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const c = resultOf(r, 'CP-PORT-001');
    expect(c.status).toBe('crash');
    expect(c.message).toMatch(/exited with code 3/);
    expect(c.stderrTail).toContain('about to crash in port.post');
    expect(statusOf(r, 'CP-PORT-002')).toBe('crash'); // restarted, crashed again
  });

  it('a driver killed by a signal (segfault) is a crash', async () => {
    const r = await cpspec(['run', '--target', driver('crash.js', '--signal', 'SIGSEGV'), '--only', 'CP-PORT-001', '--timeout', '5000']);
    expect(r.code).toBe(1);
    expect(resultOf(r, 'CP-PORT-001').message).toMatch(/signal SIGSEGV/);
  });

  it('a driver that prints non-JSON: crash with the offending line', async () => {
    const r = await cpspec(['run', '--target', driver('garbage.js'), '--only', IDS, '--timeout', '5000']);
    expect(r.code).toBe(1);
    const c = resultOf(r, 'CP-PORT-001');
    expect(c.status).toBe('crash');
    expect(c.message).toMatch(/not JSON/);
    expect(c.message).toContain('just a debug print on stdout');
  });

  it('a driver that answers a request twice: crash (protocol error)', async () => {
    const r = await cpspec(['run', '--target', driver('double-answer.js'), '--only', 'CP-PORT-001', '--timeout', '5000']);
    expect(r.code).toBe(1);
    expect(resultOf(r, 'CP-PORT-001').message).toMatch(/not outstanding/);
    expect(statusOf(r, 'CP-PORT-001')).toBe('crash');
  });

  it('a driver that dies right after a reply: crash', async () => {
    const r = await cpspec(['run', '--target', driver('exit-after-reply.js'), '--only', 'CP-PORT-001', '--timeout', '5000']);
    expect(r.code).toBe(1);
    expect(statusOf(r, 'CP-PORT-001')).toBe('crash');
    expect(resultOf(r, 'CP-PORT-001').message).toMatch(/code 9/);
  });

  it('a target that cannot be restarted stops the run with exit 2 after 3 tries', async () => {
    const state = join(tempDir(), 'starts');
    const r = await cpspec(['run', '--target', driver('dies-for-good.js', state), '--only', 'CP-PORT-001,CP-PORT-002,CP-PORT-003,CP-PORT-004,CP-PORT-005', '--timeout', '5000']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.report!.results.map((x) => x.status)).toEqual(['crash', 'crash', 'crash', 'crash', 'crash']);
    expect(resultOf(r, 'CP-PORT-002').message).toMatch(/could not restart the target[\s\S]*start 2 refused/);
    expect(resultOf(r, 'CP-PORT-005').notRun).toBe(true);
    expect(r.report!.harnessError).toMatch(/could not be restarted 3 times/);
  });

  it.each([
    ['bad-hello.js', /does not support protocol 1.*only protocol 7/],
    ['no-probe.js', /does not exist.*with a result.*-32601/],
    ['wrong-probe.js', /with error -32600.*must answer -32601/],
    ['silent.js', /did not answer cpspec\.hello within 1500 ms/],
    ['no-such-file.js', /exited with code 1[\s\S]*Cannot find module/],
  ])('handshake failure (%s) stops the run with exit 2', async (file, message) => {
    const r = await cpspec(['run', '--target', driver(file), '--only', IDS, '--timeout', '1500', '--report', 'console,json,junit']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.report?.verdict).toBe('error');
    expect(r.report?.harnessError).toMatch(message);
    expect(r.ms).toBeLessThan(15_000);
  });

  it('a command that cannot be started is exit 2', async () => {
    const r = await cpspec(['run', '--target', 'driver:/nonexistent/driver --flag', '--only', IDS, '--timeout', '2000']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot start driver '\/nonexistent\/driver'.*ENOENT/);
  });
});
