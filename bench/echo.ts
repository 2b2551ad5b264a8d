// npm run bench:echo — builds (if needed) and runs the native echo benchmark, cpspec-bench-echo
// (native/bench/echo_bench.cpp): echo servers on 127.0.0.1 built on cpspec's epoll and io_uring back-ends
// (inside the benchmark process, on their own threads) against Node's `net` (a separate process,
// bench/echo-node-server.mjs, started here), all driven by the same C++ load client.
//
// usage: node bench/echo.ts [--json] [--reps N] [--quick] [--seconds S]
//   Arguments go to the benchmark binary, plus --node-port and --node-pid with the Node server's port and pid
//   (the binary pins the Node server's threads on the same CPUs as its own servers'; --no-pin turns that off). The table (or JSON with
//   --json) is printed on stdout; build output and progress go to stderr. The target is printed PASS/MISS,
//   never asserted. The Node server is always killed on exit (also on errors, SIGINT and SIGTERM).
//
// The binary: env CPSPEC_BENCH_ECHO if set, else built in build-bench/ (see bench/lib.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT, locateNativeBinary } from './lib.ts';

const LABEL = 'bench:echo';
const children = new Set<ChildProcess>();

function log(msg: string): void {
  process.stderr.write(`${LABEL}: ${msg}\n`);
}

function killAll(signal: NodeJS.Signals = 'SIGTERM'): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill(signal);
  }
}

// Last resort: whatever happens, the children do not outlive us.
process.on('exit', () => killAll('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    log(`${sig}: stopping`);
    killAll('SIGKILL');
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.on('exit', () => children.delete(c));
  return c;
}

/** Starts bench/echo-node-server.mjs and resolves with its port (rejects after 10 s or if it dies first). */
function startNodeServer(): Promise<{ child: ChildProcess; port: number }> {
  const script = path.join(ROOT, 'bench', 'echo-node-server.mjs');
  const child = track(spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] }));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('the Node echo server did not report its port within 10 s')), 10_000);
    const fail = (e: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(e);
    };
    child.on('error', (e) => fail(new Error(`cannot start the Node echo server: ${e.message}`)));
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      fail(new Error(`the Node echo server exited early (${signal ?? `code ${code}`})`));
    child.on('exit', onExit);
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      const port = Number(line.trim());
      if (!Number.isInteger(port) || port <= 0 || port > 65535) {
        fail(new Error(`the Node echo server printed '${line}' instead of a port`));
        return;
      }
      clearTimeout(timer);
      child.off('exit', onExit);
      lines.close();
      resolve({ child, port });
    });
  });
}

function runBinary(bin: string, args: string[]): Promise<number> {
  const child = track(spawn(bin, args, { stdio: 'inherit' }));
  return new Promise((resolve) => {
    child.on('error', (e) => {
      log(`cannot run ${bin}: ${e.message}`);
      resolve(1);
    });
    child.on('exit', (code, signal) => {
      if (signal) log(`${bin} died with ${signal}`);
      resolve(signal ? 1 : (code ?? 1));
    });
  });
}

async function main(): Promise<number> {
  let bin: string;
  try {
    bin = locateNativeBinary({ target: 'cpspec-bench-echo', envVar: 'CPSPEC_BENCH_ECHO', label: LABEL });
  } catch (e) {
    log((e as Error).message);
    return 1;
  }
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) return runBinary(bin, args);

  let server: { child: ChildProcess; port: number };
  try {
    server = await startNodeServer();
  } catch (e) {
    log((e as Error).message);
    return 1;
  }
  try {
    // The pid lets the benchmark pin the Node server's threads exactly like its own servers' (see Placement
    // in native/bench/echo_bench.cpp).
    return await runBinary(bin, [...args, '--node-port', String(server.port), '--node-pid', String(server.child.pid)]);
  } finally {
    killAll();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    log(e instanceof Error ? (e.stack ?? e.message) : String(e));
    killAll('SIGKILL');
    process.exitCode = 1;
  },
);
