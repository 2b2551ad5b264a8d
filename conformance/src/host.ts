// The host process: creates the target and runs cases on request from the runner over Node IPC. The runner
// (parent) owns every deadline; the host may be killed at any time and must leave no driver behind.
import { TargetError, type Target, type TargetInfo } from '../../reference/src/target.ts';
import type { CaseContext, SpecCase } from '../../spec/index.ts';
import type { CaseOutcome, FromHost, ToHost } from './host-messages.ts';
import { caseOf, loadSuite, type Suite } from './suite.ts';
import { createTarget, parseTargetSpec, targetFailure, targetSettle } from './targets.ts';

/** A case's log is kept in reports: bound it. */
const MAX_LOG_LINES = 1000;
const MAX_LINE_CHARS = 4000;

function clipLine(s: string): string {
  return s.length <= MAX_LINE_CHARS ? s : `${s.slice(0, MAX_LINE_CHARS)}… (${s.length} chars)`;
}

class UnsupportedSignal extends Error {
  override name = 'Unsupported';
}

const processes = new Set<number>();
let target: Target | undefined;
let info: TargetInfo | undefined;
let suite: Suite | undefined;
let scale = 1;
/** Errors nobody handled while a case ran (they fail the case). */
let strayErrors: string[] | undefined;

function send(m: FromHost): void {
  try {
    process.send?.(m);
  } catch {
    /* the runner is gone: 'disconnect' ends us */
  }
}

function killChildren(): void {
  const t = target as { killNow?: () => void } | undefined;
  t?.killNow?.();
  for (const pid of processes) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

process.on('exit', killChildren);
process.on('disconnect', () => {
  // The runner is gone (perhaps killed with SIGKILL): take the driver and everything it started with us.
  // The runner started this host as the leader of its own process group, so the group is ours alone.
  killChildren();
  try {
    process.kill(-process.pid, 'SIGKILL');
  } catch {
    process.exit(0);
  }
});
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.on(sig, () => {
    killChildren();
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}
process.on('unhandledRejection', (reason) => {
  const text = describe(reason);
  if (strayErrors) strayErrors.push(`unhandled promise rejection: ${text}`);
  else process.stderr.write(`cpspec host: unhandled promise rejection outside a case: ${text}\n`);
});
process.on('uncaughtException', (err) => {
  if (strayErrors) {
    strayErrors.push(`uncaught exception: ${describe(err)}`);
    return;
  }
  send({ type: 'fatal', message: `uncaught exception in the host: ${describe(err)}` });
  process.stderr.write(`cpspec host: uncaught exception: ${describe(err)}\n`);
  killChildren();
  setTimeout(() => process.exit(70), 50);
});

function describe(e: unknown): string {
  if (e instanceof Error) return e.stack ?? `${e.name}: ${e.message}`;
  try {
    return JSON.stringify(e) ?? String(e);
  } catch {
    return String(e);
  }
}

/** The stack frames of an error without the message the report already shows, cut at the host's frames. */
function stackFrames(e: unknown): string | undefined {
  if (!(e instanceof Error) || typeof e.stack !== 'string') return undefined;
  let stack = e.stack;
  const at = stack.indexOf(e.message);
  if (e.message.length > 0 && at >= 0) stack = stack.slice(at + e.message.length);
  const frames = stack.split('\n').filter((l) => /^\s+at /.test(l));
  const mine = frames.findIndex((l) => l.includes('/conformance/src/host.ts'));
  const kept = (mine >= 0 ? frames.slice(0, mine) : frames).filter((l) => !l.includes('node:internal/'));
  return kept.length > 0 ? kept.map((l) => l.trim()).join('\n') : undefined;
}

function isTargetError(e: unknown): e is TargetError {
  return e instanceof TargetError || (e instanceof Error && e.name === 'TargetError' && typeof (e as { code?: unknown }).code === 'string');
}

function messageOf(e: unknown): string {
  if (e instanceof Error) {
    const code = isTargetError(e) ? ` [${e.code}]` : '';
    return `${e.name}${code}: ${e.message}`;
  }
  return `thrown value: ${describe(e)}`;
}

async function init(m: Extract<ToHost, { type: 'init' }>): Promise<void> {
  scale = m.scale;
  try {
    suite = await loadSuite(m.suite);
    const spec = parseTargetSpec(m.target);
    target = await createTarget(spec, {
      handshakeTimeoutMs: m.handshakeTimeoutMs,
      stderrSink: process.stderr,
      onProcess: (pid) => {
        processes.add(pid);
        send({ type: 'process', pid });
      },
    });
    info = await target.info();
    send({ type: 'ready', info });
  } catch (e) {
    const msg = e instanceof Error && /^(HandshakeError|TargetCreateError|UsageError)$/.test(e.name) ? e.message : messageOf(e);
    send({ type: 'init-error', message: msg });
  }
}

async function runCase(seq: number, id: string): Promise<void> {
  const t = target!;
  const broken = targetFailure(t);
  if (broken) {
    send({ type: 'broken', seq, message: broken.message, stderrTail: broken.stderrTail });
    return;
  }
  const c: SpecCase | undefined = caseOf(suite!, id);
  const log: string[] = [];
  let droppedLines = 0;
  const outcome = (o: Omit<CaseOutcome, 'log' | 'durationMs'>, durationMs: number): CaseOutcome => ({ ...o, log, durationMs });
  if (!c) {
    send({ type: 'result', seq, targetBroken: false, outcome: outcome({ status: 'fail', message: `no case implements ${id}` }, 0) });
    return;
  }
  const ctx: CaseContext = {
    info: info!,
    scale,
    log: (line: string) => {
      if (log.length < MAX_LOG_LINES) log.push(clipLine(String(line)));
      else droppedLines++;
    },
    unsupported: (reason: string): never => {
      throw new UnsupportedSignal(reason);
    },
  };
  strayErrors = [];
  const started = performance.now();
  let error: unknown;
  let threw = false;
  try {
    await c.run(t, ctx);
  } catch (e) {
    threw = true;
    error = e;
  }
  // Let rejections of promises the case dropped surface before judging it.
  await new Promise((r) => setImmediate(r));
  const durationMs = performance.now() - started;
  const stray = strayErrors;
  strayErrors = undefined;
  if (targetFailure(t)) await targetSettle(t);
  const failure = targetFailure(t);
  let o: CaseOutcome;
  if (failure) {
    const own = threw && !(isTargetError(error) && (error.code === 'crash' || error.code === 'protocol'));
    o = outcome({ status: 'crash', message: failure.message, stderrTail: failure.stderrTail, details: own ? messageOf(error) : undefined }, durationMs);
  } else if (threw && error instanceof UnsupportedSignal) {
    o = outcome({ status: 'unsupported', message: error.message }, durationMs);
  } else if (threw && isTargetError(error) && error.code === 'unsupported') {
    o = outcome({ status: 'unsupported', message: `the target rejected an operation as unsupported: ${error.message}` }, durationMs);
  } else if (threw && isTargetError(error) && (error.code === 'crash' || error.code === 'protocol')) {
    o = outcome({ status: 'crash', message: messageOf(error), details: stackFrames(error) }, durationMs);
  } else if (threw) {
    o = outcome({ status: 'fail', message: messageOf(error), details: stackFrames(error) }, durationMs);
  } else if (stray.length > 0) {
    o = outcome({ status: 'fail', message: `the case passed, but errors nobody handled occurred while it ran: ${stray[0].split('\n')[0]}`, details: stray.join('\n\n') }, durationMs);
  } else {
    o = outcome({ status: 'pass' }, durationMs);
  }
  if (stray.length > 0 && (threw || failure)) for (const s of stray) log.push(s);
  if (droppedLines > 0) log.push(`… ${droppedLines} more log line(s) dropped (the log keeps ${MAX_LOG_LINES})`);
  send({ type: 'result', seq, outcome: o, targetBroken: failure !== undefined });
}

async function reset(seq: number): Promise<void> {
  const t = target!;
  try {
    await t.reset();
    if (targetFailure(t)) await targetSettle(t);
    const failure = targetFailure(t);
    if (failure) send({ type: 'reset-done', seq, ok: false, status: 'crash', message: `during target.reset(): ${failure.message}`, stderrTail: failure.stderrTail });
    else send({ type: 'reset-done', seq, ok: true });
  } catch (e) {
    if (targetFailure(t)) await targetSettle(t);
    const failure = targetFailure(t);
    if (failure) send({ type: 'reset-done', seq, ok: false, status: 'crash', message: `during target.reset(): ${failure.message}`, stderrTail: failure.stderrTail });
    else send({ type: 'reset-done', seq, ok: false, status: 'fail', message: `target.reset() after the case failed: ${messageOf(e)}` });
  }
}

async function dispose(seq: number): Promise<void> {
  try {
    await target?.dispose();
  } catch {
    /* reported by nobody: we are ending anyway */
  }
  send({ type: 'disposed', seq });
  killChildren();
  setTimeout(() => process.exit(0), 20);
}

process.on('message', (m: ToHost) => {
  switch (m.type) {
    case 'init':
      void init(m);
      break;
    case 'run':
      void runCase(m.seq, m.id);
      break;
    case 'reset':
      void reset(m.seq);
      break;
    case 'dispose':
      void dispose(m.seq);
      break;
    case 'status': {
      const t = target as { outstanding?: () => string[] } | undefined;
      send({ type: 'status', seq: m.seq, outstanding: typeof t?.outstanding === 'function' ? t.outstanding() : [] });
      break;
    }
  }
});

if (!process.send) {
  process.stderr.write('cpspec host: this is started by the cpspec runner (needs an IPC channel)\n');
  process.exit(2);
}
