// The model's completion port: a FIFO packet queue, a waiter stack released LIFO, and a concurrency gate.
// Shared by the JS-level API (index.ts) and the worker simulation (sim.ts): both work on the same object.
//
// Gate: `running` counts the threads that hold a slot (a virtual worker thread from a successful dequeue
// until it dequeues again, enters a blocking region or exits). A waiter is released only while
// running < concurrency. JS-level dequeues are external threads that exit right after they return: they
// need a free slot to be released but never keep one, so outside runWorkers running is always 0.
import { STATUSES, type Packet, type Status } from '../target.ts';

/** Deterministic faults, used to build deliberately broken targets. */
export interface ModelFaults {
  /** The concurrency gate is ignored (like Wine 8.0): every waiter is released while packets are queued. */
  noConcurrencyCap?: boolean;
  /** Waiters are released FIFO (oldest first) instead of LIFO (like Wine 8.0). */
  fifoWake?: boolean;
  /** Every Nth posted packet (1-based count per port, JS and worker posts together) is silently discarded. */
  dropEvery?: number;
  /** Every Nth posted packet (same count) is queued twice. */
  duplicateEvery?: number;
  /** close() discards the queued packets and returns []. */
  dropOnClose?: boolean;
}

/** Something parked on the port: a pending JS dequeue or a virtual worker thread. */
export interface PortWaiter {
  /** Most packets it takes when released (1 for dequeue, max for dequeueMany). */
  max: number;
  /** Released by the gate: take 1..max packets with port.popKey()/popPacket() (port.size > 0). */
  wake(port: ModelPort): void;
  /** The port was closed while it waited ("abandoned"). */
  abandon(): void;
}

const STATUS_INDEX = new Map<Status, number>(STATUSES.map((s, i) => [s, i]));

export class ModelPort {
  readonly id: number;
  readonly concurrency: number;
  closed = false;
  /** Threads holding a slot (see the file comment). May exceed concurrency after a blocking region. */
  running = 0;
  /** Packets posted so far (the 1-based count the drop/duplicate faults use). */
  posted = 0;
  /** Waiter stack: index 0 is the oldest. */
  waiters: PortWaiter[] = [];

  private readonly noCap: boolean;
  private readonly fifo: boolean;
  private readonly dropEvery: number;
  private readonly dupEvery: number;
  private readonly dropOnClose: boolean;

  // FIFO ring buffer, struct of arrays; capacity is a power of two.
  size = 0;
  private head = 0;
  private mask = 15;
  private qKey = new Float64Array(16);
  private qBytes = new Float64Array(16);
  private qToken = new Float64Array(16);
  private qStatus = new Uint8Array(16);
  private qErr = new Int32Array(16);

  constructor(id: number, concurrency: number, faults: ModelFaults) {
    this.id = id;
    this.concurrency = concurrency;
    this.noCap = faults.noConcurrencyCap === true;
    this.fifo = faults.fifoWake === true;
    this.dropEvery = faults.dropEvery ?? 0;
    this.dupEvery = faults.duplicateEvery ?? 0;
    this.dropOnClose = faults.dropOnClose === true;
  }

  /** May a waiter be released now (or a dequeue be served at once)? */
  gateOpen(): boolean {
    return this.noCap || this.running < this.concurrency;
  }

  /** Posts one packet (the caller checked the port is open), applying the faults, then releases waiters. */
  post(key: number, bytes: number, token: number, status: Status | number, nativeError: number): void {
    const n = ++this.posted;
    if (this.dropEvery > 0 && n % this.dropEvery === 0) return;
    const s = typeof status === 'number' ? status : (STATUS_INDEX.get(status) ?? 0);
    this.push(key, bytes, token, s, nativeError);
    if (this.dupEvery > 0 && n % this.dupEvery === 0) this.push(key, bytes, token, s, nativeError);
    this.releaseWaiters();
  }

  /** Releases waiters (LIFO, or FIFO under fifoWake) while packets are queued and the gate is open. */
  releaseWaiters(): void {
    while (this.size > 0 && this.waiters.length > 0 && (this.noCap || this.running < this.concurrency)) {
      const w = this.fifo ? this.waiters.shift()! : this.waiters.pop()!;
      w.wake(this);
    }
  }

  addWaiter(w: PortWaiter): void {
    this.waiters.push(w);
  }

  /** Removes a waiter that gave up (timeout); returns false if it was not waiting. */
  removeWaiter(w: PortWaiter): boolean {
    const i = this.waiters.lastIndexOf(w);
    if (i < 0) return false;
    this.waiters.splice(i, 1);
    return true;
  }

  /**
   * Closes the port: every waiter is abandoned (in release order: most recent first, or oldest first under
   * fifoWake), and the queued packets are returned FIFO (dropOnClose: discarded, [] returned). A second
   * close returns [].
   */
  close(): Packet[] {
    if (this.closed) return [];
    this.closed = true;
    const ws = this.waiters;
    this.waiters = [];
    if (!this.fifo) ws.reverse();
    for (const w of ws) w.abandon();
    const out: Packet[] = [];
    if (this.dropOnClose) this.clear();
    else while (this.size > 0) out.push(this.popPacket());
    return out;
  }

  popKey(): number {
    const i = this.head;
    this.head = (i + 1) & this.mask;
    this.size--;
    return this.qKey[i];
  }

  popPacket(): Packet {
    const i = this.head;
    this.head = (i + 1) & this.mask;
    this.size--;
    return {
      key: this.qKey[i],
      bytes: this.qBytes[i],
      token: this.qToken[i],
      status: STATUSES[this.qStatus[i]],
      nativeError: this.qErr[i],
    };
  }

  clear(): void {
    this.head = 0;
    this.size = 0;
  }

  private push(key: number, bytes: number, token: number, status: number, nativeError: number): void {
    if (this.size > this.mask) this.grow();
    const i = (this.head + this.size) & this.mask;
    this.qKey[i] = key;
    this.qBytes[i] = bytes;
    this.qToken[i] = token;
    this.qStatus[i] = status;
    this.qErr[i] = nativeError;
    this.size++;
  }

  private grow(): void {
    const cap = (this.mask + 1) * 2;
    const order = (src: Float64Array | Uint8Array | Int32Array, dst: Float64Array | Uint8Array | Int32Array): void => {
      const firstLen = Math.min(this.size, this.mask + 1 - this.head);
      dst.set(src.subarray(this.head, this.head + firstLen), 0);
      dst.set(src.subarray(0, this.size - firstLen), firstLen);
    };
    const k = new Float64Array(cap);
    const b = new Float64Array(cap);
    const t = new Float64Array(cap);
    const s = new Uint8Array(cap);
    const e = new Int32Array(cap);
    order(this.qKey, k);
    order(this.qBytes, b);
    order(this.qToken, t);
    order(this.qStatus, s);
    order(this.qErr, e);
    this.qKey = k;
    this.qBytes = b;
    this.qToken = t;
    this.qStatus = s;
    this.qErr = e;
    this.head = 0;
    this.mask = cap - 1;
  }
}
