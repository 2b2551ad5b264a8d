// send-all over SocketApi: sends a whole buffer in the opt-in partial mode, resubmitting the rest after
// every short completion until everything is sent. What an application written for io_uring/epoll short
// sends does, in one place (CP-PARTIAL-005).
//
// The helper owns no port: the caller says how to wait for one operation's completion (`wait`), because
// only the caller knows what else arrives on its port. portWaiter() gives a simple one for a port that
// carries nothing else.
import { TargetError, type OpId, type Packet, type PortId, type SocketApi, type SocketId, type Target } from './target.ts';

export interface SendAllOptions {
  /** Token of every send submitted (default 0). */
  token?: number;
  /** Waits for the completion of one operation. */
  wait: (op: OpId) => Promise<Packet>;
  /** true (default): partial-mode sends, resubmitting the rest; false: one default-mode send. */
  partial?: boolean;
  /** Called after each completion (for logging and tests). */
  onCompletion?: (p: Packet, offset: number) => void;
}

export interface SendAllResult {
  /** Total bytes sent: data.length. */
  bytes: number;
  /** Sends submitted. */
  sends: number;
  /** Completions with fewer bytes than submitted. */
  shorts: number;
}

/** A send failed: `sent` is the exact prefix of the data that was sent before the failure. */
export class SendAllError extends Error {
  readonly sent: number;
  readonly packet: Packet;
  constructor(sent: number, packet: Packet) {
    super(`send failed with status ${packet.status} (native error ${packet.nativeError}) after ${sent} bytes`);
    this.name = 'SendAllError';
    this.sent = sent;
    this.packet = packet;
  }
}

/** Sends all of data on socket; resolves with the totals, or rejects with SendAllError (prefix sent). */
export async function sendAll(api: SocketApi, socket: SocketId, data: Uint8Array, options: SendAllOptions): Promise<SendAllResult> {
  const token = options.token ?? 0;
  const partial = options.partial ?? true;
  let sent = 0;
  let sends = 0;
  let shorts = 0;
  do {
    const rest = data.subarray(sent);
    const op = await api.send(socket, rest, { token, partial });
    sends++;
    const p = await options.wait(op);
    if (p.bytes > rest.length) {
      throw new TargetError('protocol', `send of ${rest.length} bytes reported ${p.bytes} bytes (more than requested)`);
    }
    options.onCompletion?.(p, sent);
    if (p.status !== 'ok') throw new SendAllError(sent + p.bytes, p);
    if (!partial && p.bytes !== rest.length) {
      throw new TargetError('protocol', `a default-mode send of ${rest.length} bytes completed ok with ${p.bytes} bytes`);
    }
    if (p.bytes === 0 && rest.length > 0) {
      throw new TargetError('protocol', `a send of ${rest.length} bytes completed ok with 0 bytes (no progress)`);
    }
    if (p.bytes < rest.length) shorts++;
    sent += p.bytes;
  } while (sent < data.length);
  return { bytes: sent, sends, shorts };
}

/**
 * A `wait` for a port that carries only this socket's sends: dequeues with a timeout and fails on a
 * missing completion or a packet for another operation.
 */
export function portWaiter(target: Target, port: PortId, timeoutMs = 10_000): (op: OpId) => Promise<Packet> {
  return async (op) => {
    const r = await target.dequeue(port, timeoutMs);
    if (r.kind !== 'packet') throw new TargetError('timeout', `send op ${op}: no completion (${r.kind}) within ${timeoutMs} ms`);
    if (r.packet.op !== op) throw new TargetError('protocol', `send op ${op}: got a packet for op ${String(r.packet.op)} instead`);
    return r.packet;
  };
}
