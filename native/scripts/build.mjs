#!/usr/bin/env node
// Builds the native code (port core, addon, driver, tests, benchmarks) with cmake-js. Works offline: the
// addon compiles against node-api-headers (package.json has binary.napi_versions), nothing is downloaded.
//
//   node native/scripts/build.mjs [--variant release|debug|asan|tsan] [--no-addon] [--jobs N] [--clean]
//
// Layout (what native/js/addon.ts loads; CPSPEC_NATIVE_BUILD=<variant> selects it):
//   release  build/       addon build/Release/cpspec_native.node
//   debug    build/       addon build/Debug/cpspec_native.node          (cmake-js --debug)
//   asan     build-asan/  addon build-asan/Release/cpspec_native.node   (-DCPSPEC_SANITIZE=address: ASan+UBSan)
//   tsan     build-tsan/  addon build-tsan/Release/cpspec_native.node   (-DCPSPEC_SANITIZE=thread)
// Executables (cpspec-driver, cpspec-NAME-test, cpspec-bench-NAME) go to the top of the build directory,
// e.g. build-asan/cpspec-core-test. release and debug share build/ (switching reconfigures and rebuilds).
// --no-addon configures with -DCPSPEC_ADDON=OFF (no Node headers needed). Only targets whose sources exist
// are built.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const VARIANTS = {
  release: { dir: 'build', config: 'Release', sanitize: '' },
  debug: { dir: 'build', config: 'Debug', sanitize: '' },
  asan: { dir: 'build-asan', config: 'Release', sanitize: 'address' },
  tsan: { dir: 'build-tsan', config: 'Release', sanitize: 'thread' },
};

// The targets CMakeLists.txt defines, with the sources each needs (relative to the repository root):
// native/test/NAME_test.cpp -> cpspec-NAME-test, native/bench/NAME_bench.cpp -> cpspec-bench-NAME.
function targetList() {
  const list = [
    { name: 'cpspec_core', sources: ['native/core/port.cpp', 'native/core/workers.cpp'] },
    { name: 'cpspec-driver', sources: ['native/driver/main.cpp', 'native/driver/json.cpp'] },
  ];
  const each = (dir, suffix, name) => {
    if (!existsSync(path.join(root, dir))) return;
    for (const f of readdirSync(path.join(root, dir)).sort()) {
      if (f.endsWith(suffix)) list.push({ name: name(f.slice(0, -suffix.length)), sources: [`${dir}/${f}`] });
    }
  };
  each('native/test', '_test.cpp', (n) => `cpspec-${n}-test`);
  each('native/bench', '_bench.cpp', (n) => `cpspec-bench-${n}`);
  list.push({ name: 'cpspec_native', sources: ['native/addon/addon.cpp'], addon: true });
  return list;
}

function fail(msg) {
  console.error(`build: ${msg}`);
  process.exit(1);
}

function usage() {
  console.log('usage: node native/scripts/build.mjs [--variant release|debug|asan|tsan] [--no-addon] [--jobs N] [--clean]');
}

function parseArgs(argv) {
  const opts = { variant: 'release', addon: true, jobs: os.availableParallelism?.() ?? os.cpus().length, clean: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const eq = a.indexOf('=');
      if (eq >= 0) return a.slice(eq + 1);
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--variant' || a.startsWith('--variant=')) opts.variant = value();
    else if (a === '--jobs' || a === '-j' || a.startsWith('--jobs=')) opts.jobs = Number(value());
    else if (a === '--no-addon') opts.addon = false;
    else if (a === '--clean') opts.clean = true;
    else if (a === '--help' || a === '-h') {
      usage();
      process.exit(0);
    } else fail(`unknown argument '${a}' (try --help)`);
  }
  if (!(opts.variant in VARIANTS)) fail(`unknown variant '${opts.variant}': use release, debug, asan or tsan`);
  if (!Number.isInteger(opts.jobs) || opts.jobs < 1) fail(`--jobs must be a positive integer`);
  return opts;
}

function run(cmd, args, env) {
  console.log(`> ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (r.error) {
    if (r.error.code === 'ENOENT') fail(`'${cmd}' was not found on PATH`);
    fail(`could not run ${cmd}: ${r.error.message}`);
  }
  if (r.status !== 0) fail(`${cmd} ${args[0] ?? ''} failed (exit ${r.status ?? r.signal})`);
}

function have(cmd) {
  const r = spawnSync(cmd, ['--version'], { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

const opts = parseArgs(process.argv.slice(2));
const v = VARIANTS[opts.variant];
const out = path.join(root, v.dir);

if (!have('cmake')) fail('cmake is not installed (need cmake >= 3.20; on Debian: apt-get install cmake ninja-build g++)');
// CMakeLists.txt runs `node` to find node-addon-api: make sure it is this node.
const env = { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}` };

let cmakeJs;
try {
  cmakeJs = path.join(path.dirname(createRequire(import.meta.url).resolve('cmake-js/package.json')), 'bin', 'cmake-js');
} catch {
  fail('cmake-js is not installed: run npm install');
}

if (opts.clean && existsSync(out)) {
  console.log(`removing ${path.relative(root, out)}/`);
  rmSync(out, { recursive: true, force: true });
}

const configure = [cmakeJs, 'configure', '--out', out, '--CDCPSPEC_SANITIZE=' + v.sanitize, '--CDCPSPEC_ADDON=' + (opts.addon ? 'ON' : 'OFF')];
if (v.config === 'Debug') configure.push('--debug');
run(process.execPath, configure, env);

const targets = [];
const skipped = [];
for (const t of targetList()) {
  if (t.addon && !opts.addon) continue;
  const missing = t.sources.filter((s) => !existsSync(path.join(root, s)));
  if (missing.length) skipped.push(`${t.name} (missing ${missing.join(', ')})`);
  else targets.push(t.name);
}
run('cmake', ['--build', out, '--config', v.config, '--parallel', String(opts.jobs), '--target', ...targets], env);

console.log(`\nbuilt (${opts.variant}) in ${path.relative(root, out)}/: ${targets.join(', ')}`);
if (opts.addon) console.log(`addon: ${path.relative(root, path.join(out, v.config, 'cpspec_native.node'))}`);
if (skipped.length) console.log(`skipped: ${skipped.join('; ')}`);
