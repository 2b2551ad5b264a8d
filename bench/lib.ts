// Finding (and building when needed) the native executables the benches and some tests run. The same
// approach as bench/port.ts, for any CMake target:
//
//   1. env `envVar` if set (must exist);
//   2. otherwise an optimized build in build-bench/ (cmake -DCPSPEC_ADDON=OFF -DCMAKE_BUILD_TYPE=Release),
//      configured on first use and brought up to date on every call (a no-op when nothing changed);
//   3. if cmake is unavailable, an existing build/Release/<target> or build/<target> (possibly stale).
//
// Build output goes to stderr (or is collected, with `quiet`); nothing is printed on stdout.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BENCH_BUILD_DIR = path.join(ROOT, 'build-bench');

export interface LocateOptions {
  /** CMake target / executable name, e.g. 'cpspec-bench-pool'. */
  target: string;
  /** Environment variable that names a prebuilt executable, e.g. 'CPSPEC_BENCH_POOL'. */
  envVar: string;
  /** Prefix of progress messages on stderr, e.g. 'bench:pool'. */
  label: string;
  /** Build directory (default build-bench/). */
  buildDir?: string;
  /** Collect cmake's output instead of writing it to stderr (it goes into the error on failure). */
  quiet?: boolean;
}

function exe(name: string): string {
  return process.platform === 'win32' ? `${name}.exe` : name;
}

/** Returns the path of the executable, building it if needed; throws an Error saying why not. */
export function locateNativeBinary(opts: LocateOptions): string {
  const log = (msg: string) => {
    if (!opts.quiet) process.stderr.write(`${opts.label}: ${msg}\n`);
  };
  const fromEnv = process.env[opts.envVar];
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`${opts.envVar}=${fromEnv} does not exist`);
    return path.resolve(fromEnv);
  }
  const buildDir = opts.buildDir ?? BENCH_BUILD_DIR;
  const bin = exe(opts.target);
  let output = '';
  const cmake = (args: string[]): { ok: boolean; missing: boolean } => {
    const r = spawnSync('cmake', args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    if (r.error) return { ok: false, missing: (r.error as NodeJS.ErrnoException).code === 'ENOENT' };
    if (r.status !== 0) {
      output += (r.stdout ?? '') + (r.stderr ?? '');
      if (!opts.quiet) process.stderr.write((r.stdout ?? '') + (r.stderr ?? ''));
      return { ok: false, missing: false };
    }
    return { ok: true, missing: false };
  };

  let built = false;
  let cmakeMissing = false;
  if (!existsSync(path.join(buildDir, 'CMakeCache.txt'))) {
    log(`configuring ${path.relative(ROOT, buildDir) || buildDir}/ (Release, no addon)`);
    const ninja = spawnSync('ninja', ['--version'], { stdio: 'ignore' }).status === 0;
    cmakeMissing = cmake(['-S', ROOT, '-B', buildDir, '-DCPSPEC_ADDON=OFF', '-DCMAKE_BUILD_TYPE=Release', ...(ninja ? ['-G', 'Ninja'] : [])]).missing;
  }
  if (!cmakeMissing && existsSync(path.join(buildDir, 'CMakeCache.txt'))) {
    const r = cmake(['--build', buildDir, '--target', opts.target, '--config', 'Release']);
    cmakeMissing = r.missing;
    built = r.ok;
    if (!r.ok && !r.missing) throw new Error(`building ${opts.target} failed${opts.quiet ? `:\n${output.slice(-4000)}` : ' (output above)'}`);
  }
  if (built) {
    for (const p of [path.join(buildDir, bin), path.join(buildDir, 'Release', bin)]) if (existsSync(p)) return p;
  }
  for (const p of [path.join(ROOT, 'build', 'Release', bin), path.join(ROOT, 'build', bin)]) {
    if (existsSync(p)) {
      log(`cmake unavailable; using the existing ${path.relative(ROOT, p)} (it may be stale)`);
      return p;
    }
  }
  throw new Error(
    cmakeMissing
      ? `cmake not found and no prebuilt ${opts.target}; install cmake or set ${opts.envVar}`
      : `${opts.target} not found after building`,
  );
}

/** Runs a located executable with the given arguments, inheriting stdio; returns the exit code to use. */
export function runInherit(bin: string, args: string[], label: string): number {
  const r = spawnSync(bin, args, { stdio: 'inherit' });
  if (r.error) {
    process.stderr.write(`${label}: cannot run ${bin}: ${r.error.message}\n`);
    return 1;
  }
  if (r.signal) {
    process.stderr.write(`${label}: ${bin} died with ${r.signal}\n`);
    return 1;
  }
  return r.status ?? 1;
}
