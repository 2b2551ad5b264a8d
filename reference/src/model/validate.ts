// Argument checks of the model. Every failure is a TargetError('invalid') naming the offending value.
import {
  MAX_TIMEOUT_MS,
  STATUSES,
  TargetError,
  checkTimeout,
  type PostOptions,
  type RunWorkersOptions,
  type Status,
  type WorkerProgram,
} from '../target.ts';

export const MAX_KEY = Number.MAX_SAFE_INTEGER; // keys and tokens: 0..2^53-1
export const MAX_BYTES = 2 ** 32 - 1;
export const MAX_BATCH = 4096;

// Worker program limits (the same as the native side, native/core/workers.h).
export const MAX_PROGRAMS = 256;
export const MAX_STEPS = 64;
export const MAX_STEP_US = 10_000_000; // 10 s
export const MAX_POST_COUNT = 1_000_000;
export const MAX_REPEAT = 100_000_000;

export function invalid(message: string): never {
  throw new TargetError('invalid', message);
}

export function isIntIn(v: unknown, lo: number, hi: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'object' && v !== null) {
    try {
      return JSON.stringify(v);
    } catch {
      return Object.prototype.toString.call(v);
    }
  }
  return String(v);
}

export function checkInt(what: string, v: unknown, lo: number, hi: number): number {
  if (!isIntIn(v, lo, hi)) invalid(`${what} must be an integer in ${lo}..${hi}, got ${describe(v)}`);
  return v;
}

export function checkMax(max: unknown): number {
  return checkInt('max', max, 1, MAX_BATCH);
}

export interface CheckedPacket {
  key: number;
  bytes: number;
  token: number;
  status: Status;
  nativeError: number;
}

export function checkPostOptions(p: unknown): CheckedPacket {
  if (typeof p !== 'object' || p === null) invalid(`packet must be an object, got ${describe(p)}`);
  const o = p as Partial<PostOptions>;
  const key = checkInt('key', o.key, 0, MAX_KEY);
  const bytes = o.bytes === undefined ? 0 : checkInt('bytes', o.bytes, 0, MAX_BYTES);
  const token = o.token === undefined ? 0 : checkInt('token', o.token, 0, MAX_KEY);
  const status = o.status === undefined ? 'ok' : o.status;
  if (!(STATUSES as readonly unknown[]).includes(status)) invalid(`status must be one of ${STATUSES.join(', ')}, got ${describe(status)}`);
  const nativeError = o.nativeError === undefined ? 0 : checkInt('nativeError', o.nativeError, -(2 ** 31), 2 ** 31 - 1);
  return { key, bytes, token, status, nativeError };
}

// ---------------------------------------------------------------------------------------------------------
// Worker programs, compiled to a flat form for the simulation.
// ---------------------------------------------------------------------------------------------------------

export const OP_DEQUEUE = 0;
export const OP_SPIN = 1;
export const OP_SLEEP = 2;
export const OP_BLOCK = 3;
export const OP_POST = 4;

export interface CompiledStep {
  op: number;
  /** dequeue: timeout in ms (-1 infinite). */
  timeoutMs: number;
  /** dequeue: max packets. */
  max: number;
  /** spin/sleep/block: duration in ns. */
  durNs: number;
  /** post: base key, count, bytes. */
  key: number;
  count: number;
  bytes: number;
}

export interface CompiledProgram {
  steps: CompiledStep[];
  /** -1 = until a dequeue sees timeout or closed. */
  repeat: number;
  /** Only spin/sleep steps: the thread never touches the port and records no events but start/exit. */
  localOnly: boolean;
  /** Sum of the spin/sleep durations of one iteration (ns); used for localOnly programs. */
  iterNs: number;
}

/**
 * Checks a program set against the native limits (1..256 programs, 1..64 steps, spin/sleep/block <= 10 s,
 * dequeue max 1..4096, post count 1..1e6, repeat -1 or 0..1e8, repeat -1 needs a dequeue step) and
 * compiles it. `maxEvents` bounds the iterations of a repeat -1 program (for the post key range check).
 */
export function compilePrograms(programs: unknown, maxEvents: number): CompiledProgram[] {
  if (!Array.isArray(programs)) invalid(`programs must be an array, got ${describe(programs)}`);
  if (programs.length < 1 || programs.length > MAX_PROGRAMS) invalid(`programs: 1..${MAX_PROGRAMS} programs, got ${programs.length}`);
  return programs.map((p: unknown, pi: number) => compileProgram(p, pi, maxEvents));
}

function compileProgram(p: unknown, pi: number, maxEvents: number): CompiledProgram {
  const where = `program ${pi}`;
  if (typeof p !== 'object' || p === null) invalid(`${where} must be an object, got ${describe(p)}`);
  const prog = p as Partial<WorkerProgram>;
  const repeat = prog.repeat === undefined ? 1 : prog.repeat;
  if (!(repeat === -1 || isIntIn(repeat, 0, MAX_REPEAT))) invalid(`${where}: repeat must be -1 or an integer in 0..${MAX_REPEAT}, got ${describe(repeat)}`);
  const steps = prog.steps;
  if (!Array.isArray(steps)) invalid(`${where}: steps must be an array, got ${describe(steps)}`);
  if (steps.length < 1 || steps.length > MAX_STEPS) invalid(`${where}: 1..${MAX_STEPS} steps, got ${steps.length}`);
  const out: CompiledStep[] = [];
  let hasDequeue = false;
  let localOnly = true;
  let iterNs = 0;
  for (let si = 0; si < steps.length; si++) {
    const s: unknown = steps[si];
    const at = `${where} step ${si}`;
    if (typeof s !== 'object' || s === null) invalid(`${at} must be an object, got ${describe(s)}`);
    const st = s as Record<string, unknown>;
    const c: CompiledStep = { op: 0, timeoutMs: 0, max: 1, durNs: 0, key: 0, count: 1, bytes: 0 };
    switch (st.op) {
      case 'dequeue': {
        c.op = OP_DEQUEUE;
        try {
          c.timeoutMs = checkTimeout(st.timeoutMs);
        } catch {
          invalid(`${at}: timeoutMs must be an integer in -1..${MAX_TIMEOUT_MS}, got ${describe(st.timeoutMs)}`);
        }
        c.max = st.max === undefined ? 1 : checkInt(`${at}: max`, st.max, 1, MAX_BATCH);
        hasDequeue = true;
        localOnly = false;
        break;
      }
      case 'spin':
      case 'sleep':
      case 'block': {
        c.op = st.op === 'spin' ? OP_SPIN : st.op === 'sleep' ? OP_SLEEP : OP_BLOCK;
        c.durNs = checkInt(`${at}: us`, st.us, 0, MAX_STEP_US) * 1000;
        if (c.op === OP_BLOCK) localOnly = false;
        else iterNs += c.durNs;
        break;
      }
      case 'post': {
        c.op = OP_POST;
        c.key = checkInt(`${at}: key`, st.key, 0, MAX_KEY);
        c.count = st.count === undefined ? 1 : checkInt(`${at}: count`, st.count, 1, MAX_POST_COUNT);
        c.bytes = st.bytes === undefined ? 0 : checkInt(`${at}: bytes`, st.bytes, 0, MAX_BYTES);
        localOnly = false;
        break;
      }
      default:
        invalid(`${at}: unknown op ${describe(st.op)} (dequeue, spin, sleep, block, post)`);
    }
    out.push(c);
  }
  if (repeat === -1 && !hasDequeue) invalid(`${where}: repeat -1 needs a dequeue step (it would never end)`);
  // Keys are key + iteration*count + i and must stay safe integers.
  for (let si = 0; si < out.length; si++) {
    const c = out[si];
    if (c.op !== OP_POST) continue;
    // A repeat -1 program records at least count+1 events per iteration, so maxEvents bounds its iterations.
    const iterations = repeat === -1 ? Math.ceil(maxEvents / (c.count + 1)) + 1 : Math.max(repeat, 1);
    if (c.key + iterations * c.count - 1 > MAX_KEY) {
      invalid(`${where} step ${si}: keys key + iteration*count + i would exceed 2^53-1`);
    }
  }
  return { steps: out, repeat, localOnly, iterNs };
}

export interface CheckedRunOptions {
  closeAfterMs: number;
  deadlineMs: number;
}

export function checkRunOptions(options: unknown): CheckedRunOptions {
  if (options === undefined || options === null) return { closeAfterMs: -1, deadlineMs: 30000 };
  if (typeof options !== 'object') invalid(`options must be an object, got ${describe(options)}`);
  const o = options as RunWorkersOptions;
  const closeAfterMs = o.closeAfterMs === undefined ? -1 : o.closeAfterMs;
  if (!(closeAfterMs === -1 || isIntIn(closeAfterMs, 0, MAX_TIMEOUT_MS))) {
    invalid(`closeAfterMs must be -1 or an integer in 0..${MAX_TIMEOUT_MS}, got ${describe(closeAfterMs)}`);
  }
  const deadlineMs = o.deadlineMs === undefined ? 30000 : checkInt('deadlineMs', o.deadlineMs, 1, MAX_TIMEOUT_MS);
  return { closeAfterMs, deadlineMs };
}
