// Analysis of worker traces (see Trace in target.ts). The concurrency and ordering requirements are
// checked with these functions, the same way for every target.
import { HARNESS_THREAD, TRACE_EVENTS, type Trace, type TraceEventName } from './target.ts';

const EV = TRACE_EVENTS;
const NAMES: TraceEventName[] = Object.keys(TRACE_EVENTS) as TraceEventName[];

export function eventName(code: number): TraceEventName | `unknown(${number})` {
  return NAMES.find((n) => TRACE_EVENTS[n] === code) ?? `unknown(${code})`;
}

export interface TraceEvent {
  t: number;
  thread: number;
  ev: TraceEventName | `unknown(${number})`;
  key: number;
}

/** The i-th event as an object (for messages and logs). */
export function eventAt(trace: Trace, i: number): TraceEvent {
  return { t: trace.t[i], thread: trace.thread[i], ev: eventName(trace.ev[i]), key: trace.key[i] };
}

export function formatEvent(e: TraceEvent): string {
  const who = e.thread === HARNESS_THREAD ? 'harness' : `thread ${e.thread}`;
  const key = e.ev === 'got' || e.ev === 'post' ? ` key=${e.key}` : '';
  return `${(e.t / 1e6).toFixed(3)} ms ${who} ${e.ev}${key}`;
}

/** Checks the trace is well-formed: equal array lengths, known event codes, times sorted, threads in range. */
export function checkWellFormed(trace: Trace): string | undefined {
  const n = trace.t.length;
  if (trace.thread.length !== n || trace.ev.length !== n || trace.key.length !== n) {
    return `trace arrays have different lengths (t ${n}, thread ${trace.thread.length}, ev ${trace.ev.length}, key ${trace.key.length})`;
  }
  for (let i = 0; i < n; i++) {
    if (trace.ev[i] > EV['port-closed']) return `event ${i} has unknown code ${trace.ev[i]}`;
    if (trace.thread[i] >= trace.threads && trace.thread[i] !== HARNESS_THREAD) return `event ${i} names thread ${trace.thread[i]} of ${trace.threads}`;
    if (i > 0 && trace.t[i] < trace.t[i - 1]) return `events ${i - 1} and ${i} are out of time order`;
  }
  return undefined;
}

export interface Interval {
  thread: number;
  start: number;
  end: number;
}

/**
 * The intervals in which each thread counts as running on the port: from its first 'got' after a 'wait'
 * until its next 'wait', 'exit' or 'block-enter'; a 'block-leave' resumes a running thread. A thread whose
 * trace ends while running is running until the last event of the trace.
 */
export function runningIntervals(trace: Trace): Interval[] {
  const n = trace.t.length;
  const end = n > 0 ? trace.t[n - 1] : 0;
  const since = new Map<number, number>(); // thread -> start of the current running interval
  const heldBeforeBlock = new Set<number>(); // threads that were running when they entered a block
  const out: Interval[] = [];
  const stop = (th: number, t: number) => {
    const s = since.get(th);
    if (s !== undefined) {
      out.push({ thread: th, start: s, end: t });
      since.delete(th);
    }
  };
  for (let i = 0; i < n; i++) {
    const th = trace.thread[i];
    const t = trace.t[i];
    switch (trace.ev[i]) {
      case EV.got:
        if (!since.has(th)) since.set(th, t);
        break;
      case EV.wait:
      case EV.exit:
        heldBeforeBlock.delete(th);
        stop(th, t);
        break;
      case EV['block-enter']:
        if (since.has(th)) heldBeforeBlock.add(th);
        stop(th, t);
        break;
      case EV['block-leave']:
        if (heldBeforeBlock.delete(th)) since.set(th, t);
        break;
    }
  }
  for (const th of [...since.keys()]) stop(th, end);
  return out;
}

export interface MaxRunning {
  max: number;
  /** Time at which the maximum was first reached (ns), and the threads running then. */
  at: number;
  threads: number[];
}

/** The largest number of threads running at once. Ends sort before starts at equal times. */
export function maxRunning(trace: Trace, intervals = runningIntervals(trace)): MaxRunning {
  const points: Array<[number, number, number]> = []; // [time, +1/-1, thread]
  for (const iv of intervals) {
    if (iv.end <= iv.start) continue;
    points.push([iv.start, 1, iv.thread], [iv.end, -1, iv.thread]);
  }
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const running = new Set<number>();
  let best: MaxRunning = { max: 0, at: 0, threads: [] };
  for (const [t, d, th] of points) {
    if (d > 0) running.add(th);
    else running.delete(th);
    if (running.size > best.max) best = { max: running.size, at: t, threads: [...running].sort((a, b) => a - b) };
  }
  return best;
}

/** Keys of every event of one kind, in trace order, optionally for one thread. */
export function keysOf(trace: Trace, ev: 'got' | 'post', thread?: number): number[] {
  const code = EV[ev];
  const out: number[] = [];
  for (let i = 0; i < trace.t.length; i++) {
    if (trace.ev[i] === code && (thread === undefined || trace.thread[i] === thread)) out.push(trace.key[i]);
  }
  return out;
}

/** Which thread got each key (first receiver), and keys that were received more than once. */
export function receivers(trace: Trace): { byKey: Map<number, number>; duplicates: number[] } {
  const byKey = new Map<number, number>();
  const duplicates: number[] = [];
  for (let i = 0; i < trace.t.length; i++) {
    if (trace.ev[i] !== EV.got) continue;
    const k = trace.key[i];
    if (byKey.has(k)) duplicates.push(k);
    else byKey.set(k, trace.thread[i]);
  }
  return { byKey, duplicates };
}

/**
 * Compares what was received with what was expected (each key exactly once). Returns a description of the
 * first problems found, or undefined when every expected key was received exactly once and nothing else.
 */
export function checkExactlyOnce(expected: Iterable<number>, received: Iterable<number>, limit = 5): string | undefined {
  const want = new Map<number, number>();
  for (const k of expected) want.set(k, (want.get(k) ?? 0) + 1);
  const extra: number[] = [];
  const dup: number[] = [];
  for (const k of received) {
    const c = want.get(k);
    if (c === undefined) extra.push(k);
    else if (c === 0) dup.push(k);
    else want.set(k, c - 1);
  }
  const lost = [...want].filter(([, c]) => c > 0).map(([k]) => k);
  if (lost.length === 0 && dup.length === 0 && extra.length === 0) return undefined;
  const part = (label: string, ks: number[]) => (ks.length ? `${ks.length} ${label} (e.g. ${ks.slice(0, limit).join(', ')})` : '');
  return [part('lost', lost), part('duplicated', dup), part('never posted', extra)].filter(Boolean).join('; ');
}

/** The last `n` events before (and including) index i, formatted, for failure messages. */
export function contextAround(trace: Trace, at: number, n = 8): string {
  let i = 0;
  while (i < trace.t.length && trace.t[i] <= at) i++;
  const from = Math.max(0, i - n);
  const lines: string[] = [];
  for (let j = from; j < Math.min(trace.t.length, i + 2); j++) lines.push('  ' + formatEvent(eventAt(trace, j)));
  return lines.join('\n');
}

/** Time of a thread's first event of a kind, or undefined. */
export function firstTime(trace: Trace, thread: number, ev: TraceEventName): number | undefined {
  const code = EV[ev];
  for (let i = 0; i < trace.t.length; i++) if (trace.thread[i] === thread && trace.ev[i] === code) return trace.t[i];
  return undefined;
}
