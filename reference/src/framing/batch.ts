// Aggregated batches (FRAMING.md, "Batches"): many frames carried in the payload of one frame of type
// BATCH_TYPE, optionally zlib-compressed, with an explicit count and size that the decoder checks, and a
// decompression bound so that a compression bomb is rejected without being expanded.
//
// Batch payload: u8 flags (bit 0: compressed; other bits must be 0), u16 count, u32 original size (bytes of
// the uncompressed body), then the body: `count` complete frames back to back, zlib-deflated when bit 0 is
// set. All little-endian.
import zlib from 'node:zlib';
import {
  BATCH_HEADER_SIZE,
  BATCH_TYPE,
  FramingError,
  HEADER_SIZE,
  MAX_FRAME_SIZE,
  U16_MAX,
  U32_MAX,
  readU16,
  readU32,
  typeSet,
  writeHeader,
  type Frame,
  type TypeRegistry,
} from './wire.ts';
import { checkFrame } from './encoder.ts';

export const BATCH_FLAG_COMPRESSED = 0x01;
/** Default bound on a batch's (decompressed) body: 1 MiB. */
export const DEFAULT_MAX_DECOMPRESSED = 1 << 20;
/** Inflation proceeds in steps of at most this many output bytes (FRAMING.md, "Decompression"). */
export const INFLATE_STEP_MAX = 16384;
export const INFLATE_STEP_MIN = 64;

export interface EncodeBatchOptions {
  /** zlib-compress the body (default false). */
  compress?: boolean;
  /** zlib level -1 (default, = 6) or 0..9. */
  level?: number;
}

export interface DecodeBatchOptions {
  /** Largest body accepted, after decompression: 0..2^32-1 bytes (default 1 MiB). */
  maxDecompressed?: number;
  /** Largest count accepted: 0..65535 (default 65535). */
  maxCount?: number;
  /** Allowed inner frame types (absent: any type but BATCH_TYPE). */
  types?: TypeRegistry;
}

/**
 * Builds the payload of a batch frame carrying `frames` (send it as a frame of type BATCH_TYPE). Throws
 * FramingError: an invalid inner frame ('field-out-of-range'), a nested batch ('batch-nested'), more than
 * 65535 frames ('batch-too-many') or a batch too large for one frame ('payload-too-large').
 */
export function encodeBatch(frames: readonly Frame[], options: EncodeBatchOptions = {}): Uint8Array {
  const level = options.level ?? -1;
  if (!Number.isInteger(level) || level < -1 || level > 9) throw new RangeError(`level must be an integer in -1..9, got ${String(level)}`);
  if (frames.length > U16_MAX) throw new FramingError('batch-too-many', 1, { count: frames.length, maxCount: U16_MAX });
  let total = 0;
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i];
    const size = checkFrame(f, i, total, MAX_FRAME_SIZE);
    if (f.type === BATCH_TYPE) throw new FramingError('batch-nested', total, { type: f.type, index: i });
    total += size;
  }
  const compressed = options.compress === true;
  let body: Uint8Array;
  let bodyLen = total;
  if (compressed) {
    const raw = new Uint8Array(total);
    writeFrames(raw, 0, frames);
    body = zlib.deflateSync(raw, { level });
    bodyLen = body.length;
  } else {
    body = new Uint8Array(0);
  }
  const payloadLen = BATCH_HEADER_SIZE + bodyLen;
  if (HEADER_SIZE + payloadLen > MAX_FRAME_SIZE) {
    throw new FramingError('payload-too-large', 0, { size: HEADER_SIZE + payloadLen, maxSize: MAX_FRAME_SIZE });
  }
  const out = new Uint8Array(payloadLen);
  out[0] = compressed ? BATCH_FLAG_COMPRESSED : 0;
  out[1] = frames.length & 0xff;
  out[2] = frames.length >>> 8;
  out[3] = total & 0xff;
  out[4] = (total >>> 8) & 0xff;
  out[5] = (total >>> 16) & 0xff;
  out[6] = total >>> 24;
  if (compressed) out.set(body, BATCH_HEADER_SIZE);
  else writeFrames(out, BATCH_HEADER_SIZE, frames);
  return out;
}

function writeFrames(out: Uint8Array, at: number, frames: readonly Frame[]): void {
  for (const f of frames) {
    const size = HEADER_SIZE + f.payload.length;
    writeHeader(out, at, size, f.type, f.sequence, f.playerId);
    out.set(f.payload, at + HEADER_SIZE);
    at += size;
  }
}

/** The step size and output cap of a batch's inflation (shared with the C++ codec; FRAMING.md). */
export function inflatePlan(originalSize: number): { step: number; cap: number } {
  return {
    step: Math.min(Math.max(originalSize + 1, INFLATE_STEP_MIN), INFLATE_STEP_MAX),
    cap: Math.max(originalSize, 1),
  };
}

/**
 * Decodes a batch payload into its frames (views of the payload, or of the decompressed body). Throws a
 * FramingError on any inconsistency (FRAMING.md lists the checks in order). A compressed body is inflated
 * in bounded steps and abandoned as soon as it outgrows its declared size, so memory and time stay bounded
 * by maxDecompressed whatever the input.
 */
export function decodeBatch(payload: Uint8Array, options: DecodeBatchOptions = {}): Frame[] {
  const maxDecompressed = options.maxDecompressed ?? DEFAULT_MAX_DECOMPRESSED;
  if (!Number.isInteger(maxDecompressed) || maxDecompressed < 0 || maxDecompressed > U32_MAX) {
    throw new RangeError(`maxDecompressed must be an integer in 0..4294967295, got ${String(maxDecompressed)}`);
  }
  const maxCount = options.maxCount ?? U16_MAX;
  if (!Number.isInteger(maxCount) || maxCount < 0 || maxCount > U16_MAX) throw new RangeError(`maxCount must be an integer in 0..65535, got ${String(maxCount)}`);
  const types = options.types === undefined ? null : typeSet(options.types);

  if (payload.length < BATCH_HEADER_SIZE) throw new FramingError('batch-truncated', 0, { size: payload.length });
  const flags = payload[0];
  if ((flags & ~BATCH_FLAG_COMPRESSED) !== 0) throw new FramingError('batch-bad-flags', 0, { flags });
  const count = readU16(payload, 1);
  if (count > maxCount) throw new FramingError('batch-too-many', 1, { count, maxCount });
  const originalSize = readU32(payload, 3);
  if (originalSize > maxDecompressed) throw new FramingError('batch-too-large', 3, { size: originalSize, maxSize: maxDecompressed });

  let body: Uint8Array;
  const packed = payload.subarray(BATCH_HEADER_SIZE);
  if ((flags & BATCH_FLAG_COMPRESSED) === 0) {
    if (packed.length !== originalSize) throw new FramingError('batch-size-mismatch', BATCH_HEADER_SIZE, { size: originalSize });
    body = packed;
  } else {
    body = inflateBounded(packed, originalSize);
  }

  const frames: Frame[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    const rem = body.length - at;
    if (rem === 0) throw new FramingError('batch-count-mismatch', at, { count });
    if (rem < HEADER_SIZE) throw new FramingError('batch-frame-truncated', at);
    const size = readU16(body, at);
    if (size < HEADER_SIZE) throw new FramingError('size-too-small', at, { size });
    if (size > rem) throw new FramingError('batch-frame-truncated', at, { size });
    const type = readU16(body, at + 2);
    if (type === BATCH_TYPE) throw new FramingError('batch-nested', at, { type });
    if (types !== null && !types.has(type)) throw new FramingError('unknown-type', at, { type });
    frames.push({ type, sequence: readU32(body, at + 4), playerId: readU32(body, at + 8), payload: body.subarray(at + HEADER_SIZE, at + size) });
    at += size;
  }
  if (at < body.length) throw new FramingError('batch-trailing-bytes', at);
  return frames;
}

function inflateBounded(packed: Uint8Array, originalSize: number): Uint8Array {
  const { step, cap } = inflatePlan(originalSize);
  let result: { buffer: Buffer; engine: zlib.Inflate };
  try {
    // Node inflates in steps of `chunkSize` output bytes with Z_FINISH and stops (throws
    // ERR_BUFFER_TOO_LARGE) as soon as more than maxOutputLength bytes came out: the bomb is never expanded
    // beyond cap + step bytes. native/framing/framing.cpp runs the same loop on zlib directly.
    result = zlib.inflateSync(packed, { chunkSize: step, maxOutputLength: cap, info: true }) as unknown as { buffer: Buffer; engine: zlib.Inflate };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new FramingError('batch-size-mismatch', BATCH_HEADER_SIZE, { size: originalSize });
    }
    throw new FramingError('batch-corrupt', BATCH_HEADER_SIZE);
  }
  const consumed = result.engine.bytesWritten;
  if (consumed < packed.length) throw new FramingError('batch-corrupt', BATCH_HEADER_SIZE + consumed);
  const body = result.buffer;
  if (body.length !== originalSize) throw new FramingError('batch-size-mismatch', BATCH_HEADER_SIZE, { size: originalSize });
  return new Uint8Array(body.buffer, body.byteOffset, body.length);
}
