// Model-based fuzzing of the completion port through the Target interface.
//
// A scenario is a plain JSON list of operations (so a failure is a runnable repro as it stands). The
// executor runs it against a target and checks, after every step, invariants that hold whatever the
// timing of the target's threads:
//   - a poll (dequeue with timeout 0) on a port returns the oldest undelivered packet, except that pending
//     waiters on that port may be taking older ones at the same moment: at most (pending waiters) older
//     packets may still be undelivered, and a timeout is allowed only when every undelivered packet can be
//     in flight to a waiter;
//   - no packet is ever delivered twice, and nothing is delivered that was not posted;
//   - close hands back undelivered packets in posting order.
// At the end every port is closed and every waiter must settle (a packet or 'closed') within a deadline;
// then every posted packet must have been delivered exactly once (polls, waiters, or close). This is the
// model's FIFO/exactly-once semantics stated as an oracle that tolerates legitimate races, so the same
// scenarios run on the deterministic model and on real threads.
import fc from 'fast-check';
import type { DequeueResult, Packet, Target } from '../reference/src/target.ts';

export type PortOp =
  | { op: 'create'; concurrency: number }
  | { op: 'post'; port: number; status?: 'ok' | 'eof' | 'reset' }
  | { op: 'poll'; port: number }
  | { op: 'pollMany'; port: number; max: number }
  | { op: 'wait'; port: number }
  | { op: 'close'; port: number };

export interface PortScenario {
  suite: 'port';
  ops: PortOp[];
}

/** Thrown when an invariant breaks: carries the step so the repro can point at it. */
export class InvariantError extends Error {
  readonly step: number;
  constructor(step: number, message: string) {
    super(`step ${step}: ${message}`);
    this.name = 'InvariantError';
    this.step = step;
  }
}

const opArb: fc.Arbitrary<PortOp> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ op: fc.constant('create' as const), concurrency: fc.integer({ min: 0, max: 4 }) }) },
  {
    weight: 6,
    arbitrary: fc.record(
      { op: fc.constant('post' as const), port: fc.nat(3), status: fc.constantFrom('ok' as const, 'eof' as const, 'reset' as const) },
      { requiredKeys: ['op', 'port'] },
    ),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('poll' as const), port: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('pollMany' as const), port: fc.nat(3), max: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('wait' as const), port: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('close' as const), port: fc.nat(3) }) },
);

/** Scenarios always start with a port. */
export const portScenarioArb: fc.Arbitrary<PortScenario> = fc
  .tuple(fc.integer({ min: 0, max: 4 }), fc.array(opArb, { maxLength: 40 }))
  .map(([c, ops]) => ({ suite: 'port' as const, ops: [{ op: 'create' as const, concurrency: c }, ...ops] }));

interface PortState {
  id: number;
  /** Effective concurrency (0 resolved to the target's hardware threads). */
  concurrency: number;
  closed: boolean;
  /** Posted and not yet seen delivered, in posting order (keys are global and increasing). */
  undelivered: number[];
  pendingWaiters: number;
}

const SETTLE_MS = 5000;

function withDeadline<T>(p: Promise<T>, ms: number, what: string, step: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new InvariantError(step, `${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Runs a scenario against a target. Resolves when every invariant held; rejects with an InvariantError
 * (or the target's own error) otherwise. Ports are created fresh and closed at the end.
 */
export async function runPortScenario(t: Target, scenario: PortScenario, opTimeoutMs = 5000): Promise<void> {
  const ports: PortState[] = [];
  const delivered = new Set<number>();
  const posted = new Set<number>();
  const waiters: Array<Promise<void>> = [];
  let nextKey = 1;
  let failure: InvariantError | undefined;
  let hardwareThreads: number | undefined;

  const deliver = (step: number, port: PortState, p: Packet, via: string) => {
    if (!posted.has(p.key)) throw new InvariantError(step, `${via} delivered key ${p.key}, which was never posted`);
    if (delivered.has(p.key)) throw new InvariantError(step, `${via} delivered key ${p.key} a second time`);
    const i = port.undelivered.indexOf(p.key);
    if (i < 0) throw new InvariantError(step, `${via} delivered key ${p.key} on port ${port.id}, where it was not posted`);
    delivered.add(p.key);
    port.undelivered.splice(i, 1);
    return i; // how many older packets were still undelivered
  };

  // `waiters` is the number of waiters pending when the poll was issued: they may have taken packets (and
  // held the concurrency slot) while it ran, even if their results reached us before the poll's.
  const checkPolled = (step: number, port: PortState, r: DequeueResult, via: string, waiters: number) => {
    if (r.kind === 'packet') {
      const older = deliver(step, port, r.packet, via);
      if (older > waiters) {
        throw new InvariantError(step, `${via} returned key ${r.packet.key} while ${older} older packet(s) were undelivered and only ${waiters} waiter(s) could be taking them (FIFO)`);
      }
    } else if (r.kind === 'timeout') {
      // A waiter released with a packet runs (holds a slot) until its thread leaves, so a poll may also
      // time out while as many waiters as the concurrency allows could be running.
      const gateMayBeFull = waiters >= port.concurrency;
      if (!port.closed && port.undelivered.length > waiters && !gateMayBeFull) {
        throw new InvariantError(step, `${via} timed out with ${port.undelivered.length} packet(s) queued, ${waiters} waiter(s) and concurrency ${port.concurrency}`);
      }
    } else if (!port.closed) {
      throw new InvariantError(step, `${via} said closed on an open port`);
    }
  };

  const call = <T>(p: Promise<T>, what: string, step: number) => withDeadline(p, opTimeoutMs, what, step);

  for (let step = 0; step < scenario.ops.length; step++) {
    if (failure) throw failure;
    const op = scenario.ops[step];
    if (op.op === 'create') {
      const id = await call(t.createPort(op.concurrency), 'createPort', step);
      hardwareThreads ??= (await call(t.info(), 'info', step)).hardwareThreads;
      ports.push({ id, concurrency: op.concurrency || hardwareThreads, closed: false, undelivered: [], pendingWaiters: 0 });
      continue;
    }
    if (ports.length === 0) continue;
    const port = ports[op.port % ports.length];
    switch (op.op) {
      case 'post': {
        const key = nextKey++;
        // Recorded before the call: a target may hand it to a waiter before post() returns.
        posted.add(key);
        port.undelivered.push(key);
        try {
          await call(t.post(port.id, { key, token: key, status: op.status ?? 'ok' }), 'post', step);
          if (port.closed) throw new InvariantError(step, `post to closed port ${port.id} succeeded`);
        } catch (e) {
          if (e instanceof InvariantError) throw e;
          if (!port.closed) throw new InvariantError(step, `post to open port ${port.id} failed: ${(e as Error).message}`);
          posted.delete(key);
          port.undelivered.splice(port.undelivered.indexOf(key), 1);
        }
        break;
      }
      case 'poll': {
        const waiters = port.pendingWaiters;
        checkPolled(step, port, await call(t.dequeue(port.id, 0), 'dequeue(0)', step), 'poll', waiters);
        break;
      }
      case 'pollMany': {
        const waiters = port.pendingWaiters;
        const r = await call(t.dequeueMany(port.id, op.max, 0), 'dequeueMany(0)', step);
        if (r.kind === 'packets') {
          if (r.packets.length < 1 || r.packets.length > op.max) throw new InvariantError(step, `batch of ${r.packets.length} with max ${op.max}`);
          for (const p of r.packets) checkPolled(step, port, { kind: 'packet', packet: p }, 'pollMany', waiters);
        } else checkPolled(step, port, r, 'pollMany', waiters);
        break;
      }
      case 'wait': {
        const s = step;
        port.pendingWaiters++;
        const w = t.dequeue(port.id, -1).then(
          (r) => {
            port.pendingWaiters--;
            if (r.kind === 'packet') deliver(s, port, r.packet, 'waiter');
            else if (r.kind === 'timeout') throw new InvariantError(s, 'an infinite wait timed out');
          },
          (e) => {
            port.pendingWaiters--;
            throw e;
          },
        );
        waiters.push(w.catch((e) => {
          failure ??= e instanceof InvariantError ? e : new InvariantError(s, `waiter failed: ${(e as Error).message}`);
        }));
        // Let the target register the waiter before the next step where it can (async targets).
        await new Promise((r) => setImmediate(r));
        break;
      }
      case 'close': {
        const left = await call(t.closePort(port.id), 'closePort', step);
        const wasClosed = port.closed;
        port.closed = true;
        if (wasClosed && left.length > 0) throw new InvariantError(step, `a second close handed back ${left.length} packet(s)`);
        const keys = left.map((p) => p.key);
        for (let i = 1; i < keys.length; i++) {
          if (keys[i] < keys[i - 1]) throw new InvariantError(step, `close handed back packets out of posting order: ${keys.join(', ')}`);
        }
        for (const p of left) deliver(step, port, p, 'close');
        break;
      }
    }
  }
  // The end: close every port, let every waiter settle, and account for every packet.
  const end = scenario.ops.length;
  for (const port of ports) {
    if (port.closed) continue;
    const left = await call(t.closePort(port.id), 'closePort (end)', end);
    port.closed = true;
    for (const p of left) deliver(end, port, p, 'close (end)');
  }
  await withDeadline(Promise.all(waiters), SETTLE_MS, 'settling the waiters after close', end);
  if (failure) throw failure;
  const lost = [...posted].filter((k) => !delivered.has(k));
  if (lost.length > 0) {
    throw new InvariantError(end, `${lost.length} posted packet(s) were never delivered (keys ${lost.slice(0, 8).join(', ')}): lost by the port`);
  }
}
