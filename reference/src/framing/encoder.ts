// Encoding frames, and writing bytes out through a writer that may accept part of them or would block
// (FRAMING.md, "Encoding" and "Writing").
import { FramingError, HEADER_SIZE, MAX_FRAME_SIZE, isU16, isU32, writeHeader, type Frame } from './wire.ts';
import { checkMaxSize } from './decoder.ts';

export interface EncodeOptions {
  /** Largest frame allowed, header included: 12..65535 (default 65535). */
  maxSize?: number;
}

/** Throws 'field-out-of-range' or 'payload-too-large' unless `f` can be encoded. Returns its frame size. */
export function checkFrame(f: Frame, index: number, offset: number, maxSize: number): number {
  if (f === null || typeof f !== 'object') throw new FramingError('field-out-of-range', offset, { field: 'frame', index });
  if (!isU16(f.type)) throw new FramingError('field-out-of-range', offset, { field: 'type', index });
  if (!isU32(f.sequence)) throw new FramingError('field-out-of-range', offset, { field: 'sequence', index });
  if (!isU32(f.playerId)) throw new FramingError('field-out-of-range', offset, { field: 'playerId', index });
  if (!(f.payload instanceof Uint8Array)) throw new FramingError('field-out-of-range', offset, { field: 'payload', index });
  const size = HEADER_SIZE + f.payload.length;
  if (size > maxSize) throw new FramingError('payload-too-large', offset, { size, maxSize, index });
  return size;
}

/** Encodes frames back to back. Throws a FramingError (nothing is returned) if any frame is invalid. */
export function encode(frames: readonly Frame[], options: EncodeOptions = {}): Uint8Array {
  const maxSize = options.maxSize === undefined ? MAX_FRAME_SIZE : checkMaxSize(options.maxSize);
  let total = 0;
  for (let i = 0; i < frames.length; i++) total += checkFrame(frames[i], i, total, maxSize);
  const out = new Uint8Array(total);
  let at = 0;
  for (const f of frames) {
    const size = HEADER_SIZE + f.payload.length;
    writeHeader(out, at, size, f.type, f.sequence, f.playerId);
    out.set(f.payload, at + HEADER_SIZE);
    at += size;
  }
  return out;
}

/** Encodes one frame. */
export function encodeFrame(frame: Frame, options?: EncodeOptions): Uint8Array {
  return encode([frame], options);
}

/**
 * A non-blocking writer: accepts a prefix of `bytes` and returns how many bytes it took (1..length), or
 * 'again' when it would block (nothing taken; call again when writable). Returning 0 is an error: a writer
 * that makes no progress would otherwise be retried forever.
 */
export type Writer = (bytes: Uint8Array) => number | 'again';

export interface WriteProgress {
  /** All bytes are written. */
  done: boolean;
  /** Bytes of the buffer written so far; pass it back to writeAll to resume. */
  offset: number;
}

/**
 * Writes bytes[from..] through `writer` until everything is written ({done: true}) or the writer would
 * block ({done: false, offset}: call writeAll(writer, bytes, offset) when it is writable again; nothing is
 * written twice or skipped). Throws FramingError 'write-zero' when the writer accepts 0 bytes and
 * 'write-invalid' when it returns anything but 'again' or an integer in 1..remaining.
 */
export function writeAll(writer: Writer, bytes: Uint8Array, from = 0): WriteProgress {
  if (!Number.isInteger(from) || from < 0 || from > bytes.length) throw new RangeError(`from must be an integer in 0..${bytes.length}, got ${from}`);
  let at = from;
  while (at < bytes.length) {
    const r = writer(at === 0 ? bytes : bytes.subarray(at));
    if (r === 'again') return { done: false, offset: at };
    if (r === 0) throw new FramingError('write-zero', at);
    if (typeof r !== 'number' || !Number.isInteger(r) || r < 0 || r > bytes.length - at) throw new FramingError('write-invalid', at);
    at += r;
  }
  return { done: true, offset: at };
}

/**
 * writeAll for an event-driven writer: on 'again' it awaits `writable()` and resumes where it stopped.
 * Resolves with the byte count; rejects like writeAll.
 */
export async function writeAllAsync(writer: Writer, bytes: Uint8Array, writable: () => Promise<void>): Promise<number> {
  let progress = writeAll(writer, bytes, 0);
  while (!progress.done) {
    await writable();
    progress = writeAll(writer, bytes, progress.offset);
  }
  return progress.offset;
}
