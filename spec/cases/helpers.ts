// Building blocks shared by the scenario cases. Everything here goes through the Target interface only.
import assert from 'node:assert/strict';
import type { DequeueResult, PortId, RunWorkersOptions, Target, Trace, WorkerProgram } from '../../reference/src/target.ts';
import { checkWellFormed, contextAround, maxRunning } from '../../reference/src/trace.ts';
import type { CaseContext } from '../types.ts';

/** Creates a port, runs fn, and always closes the port. */
export async function withPort<T>(t: Target, concurrency: number, fn: (port: PortId) => Promise<T>): Promise<T> {
  const port = await t.createPort(concurrency);
  try {
    return await fn(port);
  } finally {
    await t.closePort(port).catch(() => undefined);
  }
}

/** n scaled by ctx.scale, never below floor. */
export function scaled(ctx: CaseContext, n: number, floor: number): number {
  return Math.max(floor, Math.round(n * ctx.scale));
}

/** Runs worker programs and checks the trace is well-formed and complete. */
export async function runChecked(t: Target, port: PortId, programs: WorkerProgram[], options: RunWorkersOptions, ctx: CaseContext): Promise<Trace> {
  const trace = await t.runWorkers(port, programs, options);
  const bad = checkWellFormed(trace);
  assert.equal(bad, undefined, `malformed trace: ${bad}`);
  assert.equal(trace.threads, programs.length, 'trace.threads must equal the number of programs');
  assert.equal(trace.unfinished, 0, `${trace.unfinished} worker(s) were still running at the deadline`);
  ctx.log(`trace: ${trace.t.length} events over ${(trace.t.length ? trace.t[trace.t.length - 1] / 1e6 : 0).toFixed(1)} ms`);
  return trace;
}

/** A consumer that dequeues (one at a time, or max at once), does `spinUs` of busy work per dequeue, until it times out. */
export function busyConsumer(spinUs: number, timeoutMs: number, max = 1): WorkerProgram {
  return { steps: [{ op: 'dequeue', timeoutMs, max }, { op: 'spin', us: spinUs }], repeat: -1 };
}

/** A producer posting `count` packets with keys from `key`. */
export function producer(key: number, count: number, delayUs = 0): WorkerProgram {
  const steps: WorkerProgram['steps'] = [];
  if (delayUs > 0) steps.push({ op: 'sleep', us: delayUs });
  steps.push({ op: 'post', key, count });
  return { steps, repeat: 1 };
}

export function range(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => from + i);
}

/** Asserts that at most `limit` threads ran at once, with the trace around the first violation. */
export function assertMaxRunning(trace: Trace, limit: number): number {
  const m = maxRunning(trace);
  assert.ok(
    m.max <= limit,
    `${m.max} threads ran at once (threads ${m.threads.join(', ')}) with a limit of ${limit}, first at ${(m.at / 1e6).toFixed(3)} ms:\n${contextAround(trace, m.at)}`,
  );
  return m.max;
}

/** Resolves with the promise's value, or with 'pending' if it has not settled within ms. */
export async function settledWithin<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'pending'>((resolve) => {
    timer = setTimeout(() => resolve('pending'), ms);
  });
  try {
    return await Promise.race([p, pending]);
  } finally {
    clearTimeout(timer);
  }
}

export function assertPacket(r: DequeueResult, what: string): Extract<DequeueResult, { kind: 'packet' }>['packet'] {
  assert.equal(r.kind, 'packet', `${what}: expected a packet, got ${JSON.stringify(r)}`);
  return (r as Extract<DequeueResult, { kind: 'packet' }>).packet;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
