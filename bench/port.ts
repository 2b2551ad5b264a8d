// npm run bench:port — builds (if needed) and runs the native port benchmark, cpspec-bench-port
// (native/bench/port_bench.cpp): cpspec::Port against a naive mutex + condvar + deque queue.
//
// usage: node bench/port.ts [--json] [--reps N] [--quick]
//   Arguments go to the benchmark binary. The table (or JSON with --json) is printed on stdout; build output
//   goes to stderr.
//
// The binary: env CPSPEC_BENCH_PORT if set. Otherwise an optimized build in build-bench/ (cmake
// -DCPSPEC_ADDON=OFF -DCMAKE_BUILD_TYPE=Release), configured on first use and brought up to date on every
// run (a no-op when nothing changed). If cmake is unavailable, an existing build/Release/cpspec-bench-port or
// build/cpspec-bench-port is used.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BUILD_DIR = path.join(ROOT, 'build-bench');
const BIN = process.platform === 'win32' ? 'cpspec-bench-port.exe' : 'cpspec-bench-port';

function log(msg: string): void {
  process.stderr.write(`bench:port: ${msg}\n`);
}

function cmake(args: string[]): { ok: boolean; missing: boolean } {
  const r = spawnSync('cmake', args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.error) return { ok: false, missing: (r.error as NodeJS.ErrnoException).code === 'ENOENT' };
  if (r.status !== 0) {
    process.stderr.write(r.stdout ?? '');
    process.stderr.write(r.stderr ?? '');
    return { ok: false, missing: false };
  }
  return { ok: true, missing: false };
}

function locate(): string {
  const fromEnv = process.env.CPSPEC_BENCH_PORT;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`CPSPEC_BENCH_PORT=${fromEnv} does not exist`);
    return path.resolve(fromEnv);
  }
  const fallbacks = [path.join(ROOT, 'build', 'Release', BIN), path.join(ROOT, 'build', BIN)];
  let built = false;
  let cmakeMissing = false;
  if (!existsSync(path.join(BUILD_DIR, 'CMakeCache.txt'))) {
    log(`configuring ${path.relative(ROOT, BUILD_DIR)}/ (Release, no addon)`);
    const ninja = spawnSync('ninja', ['--version'], { stdio: 'ignore' }).status === 0;
    const r = cmake(['-S', ROOT, '-B', BUILD_DIR, '-DCPSPEC_ADDON=OFF', '-DCMAKE_BUILD_TYPE=Release', ...(ninja ? ['-G', 'Ninja'] : [])]);
    cmakeMissing = r.missing;
  }
  if (!cmakeMissing && existsSync(path.join(BUILD_DIR, 'CMakeCache.txt'))) {
    const r = cmake(['--build', BUILD_DIR, '--target', 'cpspec-bench-port', '--config', 'Release']);
    cmakeMissing = r.missing;
    built = r.ok;
    if (!r.ok && !r.missing) throw new Error('building cpspec-bench-port failed (output above)');
  }
  for (const p of [path.join(BUILD_DIR, BIN), path.join(BUILD_DIR, 'Release', BIN)]) {
    if (built && existsSync(p)) return p;
  }
  for (const p of fallbacks) {
    if (existsSync(p)) {
      log(`cmake unavailable; using the existing ${path.relative(ROOT, p)} (it may be stale)`);
      return p;
    }
  }
  throw new Error(
    cmakeMissing
      ? 'cmake not found and no prebuilt cpspec-bench-port; install cmake or set CPSPEC_BENCH_PORT'
      : 'cpspec-bench-port not found after building',
  );
}

function main(): number {
  let bin: string;
  try {
    bin = locate();
  } catch (e) {
    log((e as Error).message);
    return 1;
  }
  const r = spawnSync(bin, process.argv.slice(2), { stdio: 'inherit' });
  if (r.error) {
    log(`cannot run ${bin}: ${r.error.message}`);
    return 1;
  }
  if (r.signal) {
    log(`${bin} died with ${r.signal}`);
    return 1;
  }
  return r.status ?? 1;
}

process.exitCode = main();
