// runWorkers on the model: a deterministic discrete-event simulation in virtual time (nanoseconds).
//
// One virtual thread per program, all started at t=0 ('start' events in program order). Each thread has
// at most one pending action; actions run in increasing virtual time, and at equal times the harness close
// (closeAfterMs) goes first, then threads in ascending program index. That is the whole tie-break rule;
// the trace is recorded in processing order, which is already sorted by time.
//
// Timing of one thread (cost = opCostNs, 100 ns by default):
// - dequeue at t: 'wait' at t; the dequeue takes effect at t+cost: the thread gives up its slot, then takes
//   packets at once if some are queued and the gate is open ('got' at t+cost; P5), else parks as a waiter
//   (timeout 0: 'timeout' at t+cost). A parked thread released by a post at T records its 'got's at T; one
//   whose timeout expires records 'timeout' at t+cost+timeoutMs*1e6. 'timeout'/'closed' are followed by
//   'exit' at the same instant.
// - post at t: 'post' at t, the packet is queued at t+cost, the next packet of the step is announced then.
// - spin/sleep: the clock advances by us*1000 (the slot is kept). block: 'block-enter' at t (the slot is
//   released, waiters may be released at t), 'block-leave' at t+us*1000 (the slot is taken back if it was
//   held, even if that makes running exceed the concurrency).
// - A post on a closed port is dropped (the 'post' event is still recorded); the worker goes on.
// - The run ends when no action is left, or before the first action later than deadlineMs, or when the
//   trace reaches maxEvents. Threads not done then are `unfinished`: they vanish from the port (slots and
//   waits dropped, no more events), and, as the native harness does at its deadline, the harness closes the
//   port if it is still open ('port-closed' at the deadline, or at the last action's time when the trace
//   limit cut the run). A run whose threads all finish leaves the port open.
// - leftover = packets the harness drained when it closed the port + packets still queued at the end (they
//   stay in the port, visible to later JS dequeues).
import { HARNESS_THREAD, TRACE_EVENTS, type Trace } from '../target.ts';
import type { ModelPort, PortWaiter } from './port.ts';
import { OP_BLOCK, OP_DEQUEUE, OP_POST, type CompiledProgram } from './validate.ts';

const EV_START = TRACE_EVENTS.start;
const EV_WAIT = TRACE_EVENTS.wait;
const EV_GOT = TRACE_EVENTS.got;
const EV_TIMEOUT = TRACE_EVENTS.timeout;
const EV_CLOSED = TRACE_EVENTS.closed;
const EV_BLOCK_ENTER = TRACE_EVENTS['block-enter'];
const EV_BLOCK_LEAVE = TRACE_EVENTS['block-leave'];
const EV_POST = TRACE_EVENTS.post;
const EV_EXIT = TRACE_EVENTS.exit;
const EV_PORT_CLOSED = TRACE_EVENTS['port-closed'];

// Thread phases: what the thread's next action is.
const PH_STEP = 0; // begin the step at pc
const PH_DEQ = 1; // the dequeue takes effect
const PH_POST = 2; // the announced packet is queued
const PH_BLOCK = 3; // leave the blocking region
const PH_PARKED = 4; // parked as a waiter (the pending action, if any, is the timeout)
const PH_DONE = 5;

export interface SimOptions {
  closeAfterMs: number;
  deadlineMs: number;
  opCostNs: number;
  maxEvents: number;
}

class TraceBuffer {
  n = 0;
  t = new Float64Array(1024);
  thread = new Uint16Array(1024);
  ev = new Uint8Array(1024);
  key = new Float64Array(1024);

  push(t: number, thread: number, ev: number, key: number): void {
    const i = this.n;
    if (i === this.t.length) this.grow();
    this.t[i] = t;
    this.thread[i] = thread;
    this.ev[i] = ev;
    this.key[i] = key;
    this.n = i + 1;
  }

  private grow(): void {
    const cap = this.t.length * 2;
    const t = new Float64Array(cap);
    t.set(this.t);
    this.t = t;
    const th = new Uint16Array(cap);
    th.set(this.thread);
    this.thread = th;
    const ev = new Uint8Array(cap);
    ev.set(this.ev);
    this.ev = ev;
    const key = new Float64Array(cap);
    key.set(this.key);
    this.key = key;
  }
}

class WorkerWaiter implements PortWaiter {
  max = 1;
  private readonly sim: Simulation;
  private readonly id: number;
  constructor(sim: Simulation, id: number) {
    this.sim = sim;
    this.id = id;
  }
  wake(): void {
    this.sim.released(this.id);
  }
  abandon(): void {
    this.sim.abandoned(this.id);
  }
}

class Simulation {
  private readonly port: ModelPort;
  private readonly progs: CompiledProgram[];
  private readonly n: number;
  private readonly cost: number;
  private readonly trace = new TraceBuffer();
  private now = 0;
  private drained = 0; // packets returned by the harness close
  private unfinished = 0;

  // Per thread.
  private readonly phase: Uint8Array;
  private readonly pc: Int32Array;
  private readonly iter: Float64Array;
  private readonly postIdx: Int32Array;
  private readonly holds: Uint8Array; // holds a concurrency slot
  private readonly heldBeforeBlock: Uint8Array;
  private readonly waiter: WorkerWaiter[];

  // Indexed binary heap of pending actions; entry n is the harness close.
  private readonly time: Float64Array;
  private readonly heap: Int32Array;
  private readonly pos: Int32Array; // -1 = not in the heap
  private hsize = 0;

  constructor(port: ModelPort, progs: CompiledProgram[], cost: number) {
    this.port = port;
    this.progs = progs;
    const n = (this.n = progs.length);
    this.cost = cost;
    this.phase = new Uint8Array(n);
    this.pc = new Int32Array(n);
    this.iter = new Float64Array(n);
    this.postIdx = new Int32Array(n);
    this.holds = new Uint8Array(n);
    this.heldBeforeBlock = new Uint8Array(n);
    this.waiter = progs.map((_, i) => new WorkerWaiter(this, i));
    this.time = new Float64Array(n + 1);
    this.heap = new Int32Array(n + 1);
    this.pos = new Int32Array(n + 1).fill(-1);
  }

  run(opts: SimOptions): Trace {
    const { n, trace } = this;
    for (let i = 0; i < n; i++) trace.push(0, i, EV_START, 0);
    for (let i = 0; i < n; i++) {
      const p = this.progs[i];
      if (p.localOnly) {
        // Only spin/sleep: nothing to interleave, jump to the end (repeat is finite here).
        this.iter[i] = p.repeat;
        this.time[i] = p.repeat * p.iterNs;
      }
      this.insert(i);
    }
    if (opts.closeAfterMs >= 0) {
      this.time[n] = opts.closeAfterMs * 1e6;
      this.insert(n);
    }
    const deadlineNs = opts.deadlineMs * 1e6;
    const maxEvents = opts.maxEvents;
    let cutAt = deadlineNs;
    try {
      while (this.hsize > 0) {
        const id = this.heap[0];
        const t = this.time[id];
        if (t > deadlineNs) break;
        if (trace.n >= maxEvents) {
          cutAt = this.now;
          break;
        }
        this.now = t;
        if (id === n) {
          this.remove(n);
          this.harnessClose();
        } else {
          this.act(id);
        }
      }
    } finally {
      this.detachAll(cutAt);
    }
    const len = trace.n;
    return {
      threads: n,
      t: trace.t.slice(0, len),
      thread: trace.thread.slice(0, len),
      ev: trace.ev.slice(0, len),
      key: trace.key.slice(0, len),
      unfinished: this.unfinished,
      leftover: this.drained + this.port.size,
    };
  }

  /**
   * Threads not done when the run ends vanish from the port (their slots and waits are dropped); if there
   * are any, the harness closes the port at cutAt (pending JS dequeues then see 'closed').
   */
  private detachAll(cutAt: number): void {
    const port = this.port;
    for (let i = 0; i < this.n; i++) {
      if (this.phase[i] === PH_DONE) continue;
      this.unfinished++;
      if (this.holds[i]) {
        this.holds[i] = 0;
        port.running--;
      }
      if (this.phase[i] === PH_PARKED) port.removeWaiter(this.waiter[i]);
      this.phase[i] = PH_DONE;
    }
    if (port.closed) return;
    if (this.unfinished > 0) {
      this.now = Math.max(cutAt, this.now);
      this.harnessClose();
    } else {
      port.releaseWaiters(); // pending JS dequeues may be served now
    }
  }

  private harnessClose(): void {
    this.trace.push(this.now, HARNESS_THREAD, EV_PORT_CLOSED, 0);
    this.drained += this.port.close().length;
  }

  /** Runs the pending action of thread id (at this.now) and reschedules it. */
  private act(id: number): void {
    const port = this.port;
    const trace = this.trace;
    const now = this.now;
    const prog = this.progs[id];
    switch (this.phase[id]) {
      case PH_STEP: {
        const repeat = prog.repeat;
        if (repeat !== -1 && this.iter[id] >= repeat) {
          this.exit(id);
          return;
        }
        const s = prog.steps[this.pc[id]];
        switch (s.op) {
          case OP_DEQUEUE:
            trace.push(now, id, EV_WAIT, 0);
            this.phase[id] = PH_DEQ;
            this.time[id] = now + this.cost;
            break;
          case OP_POST:
            this.postIdx[id] = 0;
            trace.push(now, id, EV_POST, s.key + this.iter[id] * s.count);
            this.phase[id] = PH_POST;
            this.time[id] = now + this.cost;
            break;
          case OP_BLOCK:
            trace.push(now, id, EV_BLOCK_ENTER, 0);
            this.heldBeforeBlock[id] = this.holds[id];
            this.phase[id] = PH_BLOCK;
            this.time[id] = now + s.durNs;
            if (this.holds[id]) {
              this.holds[id] = 0;
              port.running--;
              this.update(id);
              port.releaseWaiters();
              return;
            }
            break;
          default: {
            // spin, sleep: no side effects, so run through consecutive ones at once (a program with a
            // port or block step reaches one within an iteration; all-local programs never get here).
            const steps = prog.steps;
            let t = now + s.durNs;
            this.advance(id);
            for (;;) {
              if (repeat !== -1 && this.iter[id] >= repeat) break;
              const next = steps[this.pc[id]];
              if (next.op === OP_DEQUEUE || next.op === OP_POST || next.op === OP_BLOCK) break;
              t += next.durNs;
              this.advance(id);
            }
            this.time[id] = t;
          }
        }
        this.update(id);
        return;
      }
      case PH_DEQ: {
        const s = prog.steps[this.pc[id]];
        if (this.holds[id]) {
          this.holds[id] = 0;
          port.running--;
        }
        if (port.closed) {
          trace.push(now, id, EV_CLOSED, 0);
          this.exit(id);
          return;
        }
        if (port.size > 0 && port.gateOpen()) {
          this.take(id, s.max);
          this.update(id);
          port.releaseWaiters();
          return;
        }
        if (s.timeoutMs === 0) {
          trace.push(now, id, EV_TIMEOUT, 0);
          this.exit(id);
          return;
        }
        this.phase[id] = PH_PARKED;
        const w = this.waiter[id];
        w.max = s.max;
        port.addWaiter(w);
        if (s.timeoutMs > 0) {
          this.time[id] = now + s.timeoutMs * 1e6;
          this.update(id);
        } else {
          this.remove(id);
        }
        return;
      }
      case PH_POST: {
        const s = prog.steps[this.pc[id]];
        const k = s.key + this.iter[id] * s.count + this.postIdx[id];
        if (!port.closed) port.post(k, s.bytes, k, 0, 0);
        const next = ++this.postIdx[id];
        if (next < s.count) {
          trace.push(now, id, EV_POST, k + 1);
          this.time[id] = now + this.cost;
        } else {
          this.phase[id] = PH_STEP;
          this.advance(id);
        }
        this.update(id);
        return;
      }
      case PH_BLOCK: {
        trace.push(now, id, EV_BLOCK_LEAVE, 0);
        if (this.heldBeforeBlock[id]) {
          this.heldBeforeBlock[id] = 0;
          this.holds[id] = 1;
          port.running++;
        }
        this.phase[id] = PH_STEP;
        this.advance(id);
        this.update(id);
        return;
      }
      case PH_PARKED: {
        // The timeout expired (a release would have rescheduled the thread first).
        port.removeWaiter(this.waiter[id]);
        trace.push(now, id, EV_TIMEOUT, 0);
        this.exit(id);
        return;
      }
      default:
        this.remove(id);
    }
  }

  /** Takes 1..max packets at this.now for thread id; it then holds a slot and goes on with its next step. */
  private take(id: number, max: number): void {
    const port = this.port;
    const k = max < port.size ? max : port.size;
    for (let i = 0; i < k; i++) this.trace.push(this.now, id, EV_GOT, port.popKey());
    this.holds[id] = 1;
    port.running++;
    this.phase[id] = PH_STEP;
    this.time[id] = this.now;
    this.advance(id);
  }

  /** A parked thread was released by the gate (from inside port.releaseWaiters()). */
  released(id: number): void {
    this.take(id, this.waiter[id].max);
    this.update(id);
  }

  /** The port was closed while thread id waited. */
  abandoned(id: number): void {
    this.trace.push(this.now, id, EV_CLOSED, 0);
    this.exit(id);
  }

  private exit(id: number): void {
    this.trace.push(this.now, id, EV_EXIT, 0);
    this.phase[id] = PH_DONE;
    this.remove(id);
    if (this.holds[id]) {
      this.holds[id] = 0;
      this.port.running--;
      this.port.releaseWaiters();
    }
  }

  /** Moves past the current step (wrapping to the next iteration). */
  private advance(id: number): void {
    const pc = this.pc[id] + 1;
    if (pc === this.progs[id].steps.length) {
      this.pc[id] = 0;
      this.iter[id]++;
    } else {
      this.pc[id] = pc;
    }
  }

  // ---- the heap: ordered by (time, priority); the harness (entry n) comes before every thread ----

  private less(a: number, b: number): boolean {
    const ta = this.time[a];
    const tb = this.time[b];
    if (ta !== tb) return ta < tb;
    const n = this.n;
    return (a === n ? -1 : a) < (b === n ? -1 : b);
  }

  private insert(id: number): void {
    const i = this.hsize++;
    this.heap[i] = id;
    this.pos[id] = i;
    this.siftUp(i);
  }

  /** Reinserts id after its time changed (inserts it if absent). */
  private update(id: number): void {
    const i = this.pos[id];
    if (i < 0) {
      this.insert(id);
      return;
    }
    this.siftUp(i);
    this.siftDown(this.pos[id]);
  }

  private remove(id: number): void {
    const i = this.pos[id];
    if (i < 0) return;
    this.pos[id] = -1;
    const last = --this.hsize;
    if (i === last) return;
    const moved = this.heap[last];
    this.heap[i] = moved;
    this.pos[moved] = i;
    this.siftUp(i);
    this.siftDown(this.pos[moved]);
  }

  private siftUp(i: number): void {
    const heap = this.heap;
    const id = heap[i];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent];
      if (!this.less(id, p)) break;
      heap[i] = p;
      this.pos[p] = i;
      i = parent;
    }
    heap[i] = id;
    this.pos[id] = i;
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const size = this.hsize;
    const id = heap[i];
    for (;;) {
      let c = 2 * i + 1;
      if (c >= size) break;
      if (c + 1 < size && this.less(heap[c + 1], heap[c])) c++;
      const child = heap[c];
      if (!this.less(child, id)) break;
      heap[i] = child;
      this.pos[child] = i;
      i = c;
    }
    heap[i] = id;
    this.pos[id] = i;
  }
}

/** Runs compiled programs on port (validated by the caller) and returns the trace. */
export function simulate(port: ModelPort, programs: CompiledProgram[], opts: SimOptions): Trace {
  return new Simulation(port, programs, opts.opCostNs).run(opts);
}
