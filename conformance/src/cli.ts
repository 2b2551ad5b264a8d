// The cpspec command line: `cpspec run`, `cpspec list`, --help, --version.
import { resolve } from 'node:path';
import { parseArgs, bool, intFlag, list, numFlag, str, type FlagSpec, type Parsed } from './args.ts';
import { loadManifest, manifestMap, updatedManifest, writeManifest, type Manifest } from './expectations.ts';
import { killAllHosts } from './host-client.ts';
import { REPORT_FORMATS, writeReports, type ReportFormat } from './reports/index.ts';
import { caseLine, detailsText, footerText, headerText, painter, plannedText, visible } from './reports/console.ts';
import { finalize, run, verdictOf, type RunOptions } from './runner.ts';
import { caseOf, loadSuite, parseLevel, select, suiteWarnings } from './suite.ts';
import { createTarget, parseTargetSpec, TARGET_FORMS, MODEL_FAULTS } from './targets.ts';
import { summarize, HarnessError, UsageError, type RunReport } from './types.ts';
import { PROTOCOL_VERSION, RUNNER_NAME, RUNNER_VERSION } from './version.ts';

const SELECTION_FLAGS: FlagSpec[] = [
  { name: 'only', kind: 'list' },
  { name: 'level', kind: 'string' },
  { name: 'help', kind: 'boolean' },
];

const RUN_FLAGS: FlagSpec[] = [
  ...SELECTION_FLAGS,
  { name: 'target', kind: 'string' },
  { name: 'report', kind: 'list' },
  { name: 'out', kind: 'string' },
  { name: 'expect', kind: 'string' },
  { name: 'update-expectations', kind: 'boolean' },
  { name: 'timeout', kind: 'string' },
  { name: 'run-timeout', kind: 'string' },
  { name: 'retries', kind: 'string' },
  { name: 'scale', kind: 'string' },
];

const LIST_FLAGS: FlagSpec[] = [...SELECTION_FLAGS, { name: 'json', kind: 'boolean' }];

const FUZZ_FLAGS: FlagSpec[] = [
  { name: 'target', kind: 'string' },
  { name: 'time', kind: 'string' },
  { name: 'runs', kind: 'string' },
  { name: 'seed', kind: 'string' },
  { name: 'path', kind: 'string' },
  { name: 'replay', kind: 'string' },
  { name: 'save', kind: 'string' },
  { name: 'echo', kind: 'string' },
  { name: 'suite', kind: 'string' },
  { name: 'help', kind: 'boolean' },
];

const FUZZ_HELP = `Usage: cpspec fuzz [options]

Model-based fuzzing of a target, in suites of random JSON scenarios with invariants checked after every
step and at the end:
  port      port creation, posts, polls, batch polls, waiting dequeues and closes (FIFO allowing for
            waiters in flight, nothing delivered twice or unposted, close hands back the rest in order;
            every waiter settles, every packet delivered exactly once)
  sockets   listen/connect/accept/send/recv (zero-length probes too)/shutdown/close (graceful and
            abortive)/cancel between sockets of the target, buffer pools (acquire, release: held,
            double, foreign; stats) and pool-backed receives: every operation completes exactly once,
            received bytes are a prefix of the bytes sent, in order, pools conserve buffers, a pooled
            receive is pool-exhausted only when the pool could be empty, nothing leaks at the end
  framing   streams cut, corrupted and limit-changed through the target's framing codec, checked
            against the whole-buffer oracle of FRAMING.md
A failure is shrunk to a minimal scenario, printed, and saved as a runnable JSON repro.

  --target T          as for cpspec run (default native)
  --suite S           port, sockets, framing, a comma-separated list, or all (default all); suites the
                      target cannot run are skipped with the reason
  --time D            time budget, split between the suites: 60s, 2m, 500ms
  --runs N            number of scenarios per suite (default 200 when no --time)
  --seed S            seed (printed by every run); with --path, replays one failing run
  --path P            fast-check replay path (printed with a failure)
  --replay FILE       replays a saved repro (or a corpus file) against the target (its suite is in the file)
  --save DIR          where failures are saved (default .cpspec/fuzz-failures)
  --echo HOST:PORT    instead: framing fuzz against a live echo endpoint (random frame streams written
                      with random segmentation; what comes back must decode to exactly what was sent)

Exit codes: 0 no failure; 1 a failure was found (or a replay failed); 2 bad options, no target, or no
selected suite can run on the target.
`;

const MAIN_HELP = `${RUNNER_NAME} ${RUNNER_VERSION}: conformance suite for completion-port I/O

Usage:
  cpspec run  [options]    run the selected cases against a target
  cpspec list [options]    list the selected cases without running them
  cpspec fuzz [options]    model-based fuzzing of a target (port, sockets and pools, framing)
  cpspec <command> --help  options of a command
  cpspec --version

Exit codes: 0 every selected MUST requirement passed (or is expected to fail); 1 failures (a MUST
failed, timed out or crashed; an expected failure passed; the run deadline was reached); 2 the harness
or the target could not run (bad options, target not available, driver handshake failed).
`;

const SELECTION_HELP = `  --only IDS          comma-separated IDs, areas (PORT or CP-PORT) or globs (CP-PORT-00*); may repeat
  --level LEVEL       minimum level: must (MUST only), should (MUST+SHOULD), may (all; default)`;

const RUN_HELP = `Usage: cpspec run [options]

Runs each selected case in a separate host process that creates the target; a case that hangs is killed
at its deadline (timeout), one that kills the host or the driver is reported (crash), and the run goes on.

Target:
  --target T          ${TARGET_FORMS.join('\n                      ')}

Selection:
${SELECTION_HELP}

Running:
  --timeout MS        deadline per case (default 30000); also bounds the driver handshake
  --run-timeout MS    deadline for the whole run (cases not reached are reported timeout, exit 1)
  --retries N         rerun a failing case up to N times; a case that then passes is 'flaky' (default 0)
  --scale X           workload scale passed to cases, e.g. 0.2 for slow targets (default 1)

Expectations:
  --expect FILE       apply an expectation manifest (conformance/expectations/<name>.json)
  --update-expectations
                      rewrite FILE from this run (known reasons are kept; new entries need one)

Reports:
  --report LIST       comma-separated: console, json, junit, md (default console)
  --out DIR           directory for json/junit/md files (default reports/)

Model faults (model:<faults> and bin/serve-model.js --fault):
  ${MODEL_FAULTS.join('\n  ')}

Statuses: pass, fail, unsupported, expected-fail, unexpected-pass, timeout, crash, flaky, planned.
`;

const LIST_HELP = `Usage: cpspec list [options]

Lists the selected requirements (ID, level, title, capabilities, planned) without running anything.

${SELECTION_HELP}
  --json              machine-readable output
`;

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const defaultIo: Io = {
  out: (s) => {
    process.stdout.write(s);
  },
  err: (s) => {
    process.stderr.write(s);
  },
};

async function listCommand(p: Parsed, io: Io): Promise<number> {
  if (bool(p, 'help')) {
    io.out(LIST_HELP);
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument '${p.positionals[0]}' for 'list'`);
  const level = parseLevel(str(p, 'level') ?? 'may');
  const suite = await loadSuite();
  const { requirements, warnings } = select(suite, { only: list(p, 'only'), level });
  const rows = requirements.map((r) => ({
    id: r.id,
    area: r.area,
    level: r.level,
    title: r.title,
    statement: r.statement,
    capabilities: r.capabilities,
    sources: r.sources,
    planned: r.planned ?? null,
    hasCase: caseOf(suite, r.id) !== undefined,
  }));
  if (bool(p, 'json')) {
    io.out(`${JSON.stringify({ runner: { name: RUNNER_NAME, version: RUNNER_VERSION }, level, count: rows.length, requirements: rows, warnings }, null, 2)}\n`);
    return 0;
  }
  const pad = (s: string, n: number) => s.padEnd(n);
  const idW = Math.max(2, ...rows.map((r) => r.id.length));
  const titleW = Math.min(60, Math.max(5, ...rows.map((r) => r.title.length)));
  io.out(`${pad('ID', idW)}  ${pad('LEVEL', 6)}  ${pad('TITLE', titleW)}  CAPABILITIES\n`);
  for (const r of rows) {
    const state = r.planned ? `  [planned: ${r.planned}]` : r.hasCase ? '' : '  [no case yet]';
    io.out(`${pad(r.id, idW)}  ${pad(r.level, 6)}  ${pad(r.title, titleW)}  ${r.capabilities.join(', ') || '-'}${state}\n`);
  }
  const planned = rows.filter((r) => r.planned || !r.hasCase).length;
  io.out(`${rows.length} requirement(s), ${rows.length - planned} with a case, ${planned} planned\n`);
  for (const w of [...warnings, ...suiteWarnings(suite)]) io.err(`warning: ${w}\n`);
  return 0;
}

function parseReports(p: Parsed): ReportFormat[] {
  const r = list(p, 'report');
  if (r.length === 0) return ['console'];
  for (const f of r) {
    if (!(REPORT_FORMATS as readonly string[]).includes(f)) throw new UsageError(`--report: unknown format '${f}' (formats: ${REPORT_FORMATS.join(', ')})`);
  }
  return [...new Set(r)] as ReportFormat[];
}

/** Re-applies a (rewritten) manifest to finished results. */
function reapply(report: RunReport, manifest: Manifest, reqs: Map<string, import('../../spec/index.ts').Requirement>): void {
  const exp = manifestMap(manifest);
  report.results = report.results.map((r) => (r.status === 'planned' || r.attempts.length === 0 ? r : finalize(reqs.get(r.id)!, r.attempts, exp.get(r.id), r.notRun)));
  report.summary = summarize(report.results);
  Object.assign(report, verdictOf(report.results, report.runDeadlineReached, report.harnessError));
}

async function runCommand(p: Parsed, argv: string[], io: Io): Promise<number> {
  if (bool(p, 'help')) {
    io.out(RUN_HELP);
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument '${p.positionals[0]}' for 'run' (options start with --)`);
  const target = str(p, 'target') ?? 'native';
  parseTargetSpec(target);
  const level = parseLevel(str(p, 'level') ?? 'may');
  const reports = parseReports(p);
  const outDir = resolve(str(p, 'out') ?? 'reports');
  const timeoutMs = intFlag(p, 'timeout', 30_000, 1, 2 ** 31 - 1);
  const runTimeout = str(p, 'run-timeout') === undefined ? null : intFlag(p, 'run-timeout', 0, 1, 2 ** 31 - 1);
  const retries = intFlag(p, 'retries', 0, 0, 100);
  const scale = numFlag(p, 'scale', 1, 0, 1000);
  const expectFile = str(p, 'expect');
  const update = bool(p, 'update-expectations');
  if (update && !expectFile) throw new UsageError('--update-expectations needs --expect FILE (the manifest to rewrite)');
  const manifestFile = expectFile ? resolve(expectFile) : undefined;
  const manifest = manifestFile ? loadManifest(manifestFile, update) : undefined;
  const suite = await loadSuite();
  select(suite, { only: list(p, 'only'), level }); // reject bad selections before starting anything

  const opts: RunOptions = {
    target,
    only: list(p, 'only'),
    level,
    timeoutMs,
    runTimeoutMs: runTimeout,
    retries,
    scale,
    command: argv,
  };
  if (manifest) opts.manifest = manifest;
  if (manifestFile) opts.manifestFile = manifestFile;

  const consoleOn = reports.includes('console');
  const paint = painter(process.stdout);
  const extra: string[] = [];
  if (manifestFile) extra.push(`expectations: ${manifestFile} (${manifest?.entries.length ?? 0} entries)`);
  const report = await run(suite, opts, {
    started(info, selected) {
      if (consoleOn) io.out(`${headerText(target, info, selected, paint, extra)}\n`);
    },
    caseDone(r) {
      // Planned requirements are listed once, grouped, below; `cpspec list` names each one.
      if (consoleOn && r.status !== 'planned') io.out(`${caseLine(r, paint)}\n`);
    },
  });
  if (consoleOn) io.out(plannedText(report, paint));

  if (update && manifestFile && manifest && report.harnessError === undefined) {
    const target = report.target.info ? `${report.target.spec}` : report.target.spec;
    const { manifest: next, needReasons } = updatedManifest(manifest, report.results, target);
    writeManifest(manifestFile, next);
    const reqs = new Map(suite.catalogue.map((r) => [r.id, r]));
    reapply(report, next, reqs);
    report.expectations = { file: manifestFile, target: next.target, updated: true, needReasons };
    io.err(`updated ${manifestFile}: ${next.entries.length} entr${next.entries.length === 1 ? 'y' : 'ies'}\n`);
    if (needReasons.length > 0) {
      io.err(`${needReasons.length} new entr${needReasons.length === 1 ? 'y needs' : 'ies need'} a reason (replace "TODO: explain"): ${needReasons.join(', ')}\n`);
    }
  }

  const paths = writeReports(report, reports, outDir);
  if (consoleOn) {
    if (report.results.length > 0) io.out(detailsText(report, paint));
    io.out(footerText(report, paint, paths));
  }
  if (report.harnessError !== undefined) io.err(`cpspec: error: ${visible(report.harnessError)}\n`);
  return report.exitCode;
}

async function fuzzCommand(p: Parsed, io: Io): Promise<number> {
  if (bool(p, 'help')) {
    io.out(FUZZ_HELP);
    return 0;
  }
  const echo = str(p, 'echo');
  if (echo !== undefined) return await echoFuzz(p, echo, io);
  const fuzz = await import('../../fuzz/cli.ts');
  const target = str(p, 'target') ?? 'native';
  const spec = parseTargetSpec(target);
  const makeTarget = () => createTarget(spec, { handshakeTimeoutMs: 10_000 });
  const replayFile = str(p, 'replay');
  if (replayFile) {
    let repro;
    try {
      repro = fuzz.readRepro(replayFile);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const t = await makeTarget();
    try {
      await fuzz.replay(t, repro);
      io.out(`replay ${replayFile} against ${target}: pass\n`);
      return 0;
    } catch (e) {
      io.out(`replay ${replayFile} against ${target}: FAIL\n  ${(e as Error).message}\n${fuzz.formatScenario(repro.scenario)}\n`);
      return 1;
    } finally {
      await t.dispose().catch(() => undefined);
    }
  }
  const time = str(p, 'time');
  const runs = str(p, 'runs');
  const seed = str(p, 'seed');
  let timeMs: number | undefined;
  let suites: ReturnType<typeof fuzz.parseSuites>;
  try {
    timeMs = time === undefined ? undefined : fuzz.parseDuration(time);
    suites = fuzz.parseSuites(str(p, 'suite'));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const num = (v: string | undefined, what: string) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw new UsageError(`--${what} must be an integer, got '${v}'`);
    return n;
  };
  const runsN = num(runs, 'runs');
  const seedN = num(seed, 'seed');
  const tty = Boolean((process.stderr as { isTTY?: boolean }).isTTY);
  let last = 0;
  const deadline = timeMs === undefined ? undefined : Date.now() + timeMs;
  let failed = 0;
  let skipped = 0;
  for (let i = 0; i < suites.length; i++) {
    const suite = suites[i];
    // The time budget is split between the suites still to run (a skipped suite leaves its share to the rest).
    const share = deadline === undefined ? undefined : Math.max(1, Math.floor((deadline - Date.now()) / (suites.length - i)));
    const result = await fuzz.fuzzSuite(suite, {
      target,
      makeTarget,
      runs: runsN,
      timeMs: share,
      seed: seedN,
      path: str(p, 'path'),
      saveDir: resolve(str(p, 'save') ?? '.cpspec/fuzz-failures'),
      progress: (line) => {
        // A rewritten line on a terminal; every 5 s in CI logs.
        if (tty) io.err(`\r${line}   `);
        else if (Date.now() - last >= 5000) {
          last = Date.now();
          io.err(`${line}\n`);
        }
      },
    });
    if (tty && result.skipped === undefined) io.err('\n');
    for (const n of result.notes) io.out(`note: ${n}\n`);
    if (result.skipped !== undefined) {
      skipped++;
      io.out(`fuzz ${target} [${suite}]: skipped: ${result.skipped}\n`);
      continue;
    }
    if (!result.failed) {
      io.out(`fuzz ${target} [${suite}]: ${result.runs} runs, no failure (seed ${result.seed})\n`);
      continue;
    }
    failed++;
    const r = result.repro!;
    io.out(
      `fuzz ${target} [${suite}]: FAILURE after ${result.runs} runs\n  ${r.error}\n  seed ${r.seed}, path ${r.path}\n  minimal scenario:\n${fuzz.formatScenario(r.scenario)}\n  repro: ${result.reproFile}\n  replay: cpspec fuzz --target ${/\s/.test(target) ? `'${target}'` : target} --replay ${result.reproFile}\n`,
    );
  }
  if (failed > 0) return 1;
  if (skipped === suites.length) {
    io.err(`cpspec: no selected fuzz suite can run on ${target}\n`);
    return 2;
  }
  return 0;
}

async function echoFuzz(p: Parsed, endpoint: string, io: Io): Promise<number> {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(endpoint);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new UsageError(`--echo needs HOST:PORT, got '${endpoint}'`);
  const host = m[1].replace(/^\[|\]$/g, '');
  const { parseDuration } = await import('../../fuzz/cli.ts');
  const { fuzzEcho } = await import('../../fuzz/framing/live.ts');
  const int = (name: string) => {
    const v = str(p, name);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new UsageError(`--${name} must be a whole number, got '${v}'`);
    return Number(v);
  };
  const time = str(p, 'time');
  let timeMs: number | undefined;
  try {
    timeMs = time === undefined ? undefined : parseDuration(time);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const r = await fuzzEcho(host, Number(m[2]), { runs: int('runs'), timeMs, seed: int('seed'), path: str(p, 'path') });
  if (!r.failed) {
    io.out(`fuzz echo ${endpoint}: ${r.runs} streams, no failure (seed ${r.seed})\n`);
    return 0;
  }
  io.out(
    `fuzz echo ${endpoint}: FAILURE after ${r.runs} streams\n  ${r.error}\n  seed ${r.seed}, path ${r.path}\n  minimal scenario: ` +
      `${JSON.stringify(r.counterexample, (k, v) => (v instanceof Uint8Array ? Array.from(v) : v))}\n`,
  );
  return 1;
}

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
  try {
    const [cmd, ...rest] = argv;
    if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      io.out(MAIN_HELP);
      return cmd === undefined ? 2 : 0;
    }
    if (cmd === '--version' || cmd === '-V' || cmd === 'version') {
      io.out(`${RUNNER_NAME} ${RUNNER_VERSION} (driver protocol ${PROTOCOL_VERSION})\n`);
      return 0;
    }
    if (cmd === 'run') return await runCommand(parseArgs(rest, RUN_FLAGS, 'run'), argv, io);
    if (cmd === 'list') return await listCommand(parseArgs(rest, LIST_FLAGS, 'list'), io);
    if (cmd === 'fuzz') return await fuzzCommand(parseArgs(rest, FUZZ_FLAGS, 'fuzz'), io);
    throw new UsageError(`unknown command '${cmd}' (commands: run, list, fuzz; see cpspec --help)`);
  } catch (e) {
    if (e instanceof UsageError || e instanceof HarnessError) {
      io.err(`cpspec: ${e.message}\n`);
      return 2;
    }
    io.err(`cpspec: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    return 2;
  }
}

/** Entry point for bin/cpspec.js: kills every host on every exit path, then exits with the code. */
export function cli(): void {
  process.on('exit', killAllHosts);
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.on(sig, () => {
      killAllHosts();
      process.stderr.write(`\ncpspec: interrupted (${sig}); hosts and drivers killed\n`);
      process.exit(code);
    });
  }
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  });
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Flush stdout before exiting; do not wait for stray handles.
      process.stdout.write('', () => process.exit(code));
    },
    (e: unknown) => {
      process.stderr.write(`cpspec: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exit(2);
    },
  );
}
