// Wire constants, the frame type and the typed error of the framing codec. See FRAMING.md for the format.

/** Bytes in a frame header: u16 size, u16 type, u32 sequence, u32 player id, little-endian, packed. */
export const HEADER_SIZE = 12;
/** The largest frame the u16 size field can describe (header included). */
export const MAX_FRAME_SIZE = 0xffff;
/** The largest payload a frame can carry. */
export const MAX_PAYLOAD_SIZE = MAX_FRAME_SIZE - HEADER_SIZE;
/** The frame type reserved for aggregated batches (batch.ts). */
export const BATCH_TYPE = 0xffff;
export const U16_MAX = 0xffff;
export const U32_MAX = 0xffffffff;

/** One decoded or to-be-encoded frame. Its size field is derived: HEADER_SIZE + payload.length. */
export interface Frame {
  /** u16 */
  type: number;
  /** u32; wraps (sequence.ts) */
  sequence: number;
  /** u32 */
  playerId: number;
  payload: Uint8Array;
}

/** Every error code of the codec (FRAMING.md, "Errors"). */
export const ERROR_CODES = [
  // stream decoder
  'size-too-small',
  'size-too-large',
  'unknown-type',
  'wrong-player',
  'truncated',
  'closed',
  // encoder and writer
  'field-out-of-range',
  'payload-too-large',
  'write-zero',
  'write-invalid',
  // batches
  'batch-truncated',
  'batch-bad-flags',
  'batch-too-many',
  'batch-too-large',
  'batch-corrupt',
  'batch-size-mismatch',
  'batch-count-mismatch',
  'batch-frame-truncated',
  'batch-nested',
  'batch-trailing-bytes',
] as const;
export type FramingErrorCode = (typeof ERROR_CODES)[number];

/** Details an error may carry besides its code and offset (which fields depends on the code). */
export interface FramingErrorDetails {
  /** The offending size field (size-*, batch-*: the declared size). */
  size?: number;
  /** The limit in force (size-too-large: the frame limit; batch-too-large: maxDecompressed). */
  maxSize?: number;
  /** unknown-type, batch-nested: the type field. */
  type?: number;
  /** truncated: bytes of the unfinished frame received before end(). */
  dangling?: number;
  /** wrong-player: the player id found. */
  playerId?: number;
  /** wrong-player: the player id expected. */
  expected?: number;
  /** batch-bad-flags: the flags byte. */
  flags?: number;
  /** batch-too-many, batch-count-mismatch: the count field. */
  count?: number;
  /** batch-too-many: the limit. */
  maxCount?: number;
  /** field-out-of-range: which field ('type', 'sequence', 'playerId', 'payload', ...). */
  field?: string;
  /** encoder errors: index of the offending frame in the input. */
  index?: number;
}

/**
 * A typed framing error. `offset` is an absolute byte offset whose base depends on the code (FRAMING.md):
 * stream errors: the stream offset of the offending frame's header; writer errors: bytes written so far;
 * batch errors: offset in the batch payload (header, compression) or in the batch body (inner frames).
 */
export class FramingError extends Error implements FramingErrorDetails {
  readonly code: FramingErrorCode;
  readonly offset: number;
  size?: number;
  maxSize?: number;
  type?: number;
  dangling?: number;
  playerId?: number;
  expected?: number;
  flags?: number;
  count?: number;
  maxCount?: number;
  field?: string;
  index?: number;

  constructor(code: FramingErrorCode, offset: number, details: FramingErrorDetails = {}, message?: string) {
    super(message ?? describe(code, offset, details));
    this.name = 'FramingError';
    this.code = code;
    this.offset = offset;
    for (const [k, v] of Object.entries(details)) {
      if (v !== undefined) (this as Record<string, unknown>)[k] = v;
    }
  }

  /** The code, offset and details as a plain object (what the differential tests compare). */
  toJSON(): FramingErrorJSON {
    const o: FramingErrorJSON = { code: this.code, offset: this.offset };
    for (const k of DETAIL_KEYS) {
      const v = this[k];
      if (v !== undefined) (o as unknown as Record<string, unknown>)[k] = v;
    }
    return o;
  }
}

export type FramingErrorJSON = { code: FramingErrorCode; offset: number } & FramingErrorDetails;

export const DETAIL_KEYS = ['size', 'maxSize', 'type', 'dangling', 'playerId', 'expected', 'flags', 'count', 'maxCount', 'field', 'index'] as const;

/** A FramingError from a plain { code, offset, ...details } object (e.g. from the native binding). */
export function framingErrorFrom(o: FramingErrorJSON): FramingError {
  const details: FramingErrorDetails = {};
  for (const k of DETAIL_KEYS) {
    const v = (o as unknown as Record<string, unknown>)[k];
    if (v !== undefined) (details as Record<string, unknown>)[k] = v;
  }
  return new FramingError(o.code, o.offset, details);
}

function describe(code: FramingErrorCode, offset: number, d: FramingErrorDetails): string {
  switch (code) {
    case 'size-too-small': return `frame at offset ${offset}: size ${d.size} is smaller than the ${HEADER_SIZE}-byte header`;
    case 'size-too-large': return `frame at offset ${offset}: size ${d.size} exceeds the limit ${d.maxSize}`;
    case 'unknown-type': return `frame at offset ${offset}: type ${d.type} is not registered`;
    case 'wrong-player': return `frame at offset ${offset}: player id ${d.playerId}, expected ${d.expected}`;
    case 'truncated': return `stream ended inside the frame at offset ${offset} (${d.dangling} bytes of it received)`;
    case 'closed': return `the decoder is closed (stream stopped at offset ${offset})`;
    case 'field-out-of-range': return `frame ${d.index}: ${d.field} is out of range`;
    case 'payload-too-large': return `frame ${d.index}: size ${d.size} exceeds the limit ${d.maxSize}`;
    case 'write-zero': return `the writer accepted 0 bytes after ${offset} bytes`;
    case 'write-invalid': return `the writer returned an invalid count after ${offset} bytes`;
    case 'batch-truncated': return `batch payload shorter than its ${BATCH_HEADER_SIZE}-byte header`;
    case 'batch-bad-flags': return `batch flags 0x${(d.flags ?? 0).toString(16)} have unknown bits`;
    case 'batch-too-many': return `batch count ${d.count} exceeds the limit ${d.maxCount}`;
    case 'batch-too-large': return `batch size ${d.size} exceeds the limit ${d.maxSize}`;
    case 'batch-corrupt': return `batch body is not a valid zlib stream (at payload offset ${offset})`;
    case 'batch-size-mismatch': return `batch body does not have the declared size ${d.size}`;
    case 'batch-count-mismatch': return `batch body ends after fewer than the declared ${d.count} frames`;
    case 'batch-frame-truncated': return `batch frame at body offset ${offset} runs past the end of the body`;
    case 'batch-nested': return `batch frame at body offset ${offset} is itself a batch`;
    case 'batch-trailing-bytes': return `batch body has bytes after its last frame (at body offset ${offset})`;
  }
}

/** Bytes before the body of a batch payload: u8 flags, u16 count, u32 original size. */
export const BATCH_HEADER_SIZE = 7;

/** Writes a frame header at `at`. The caller has validated the fields. */
export function writeHeader(out: Uint8Array, at: number, size: number, type: number, sequence: number, playerId: number): void {
  out[at] = size & 0xff;
  out[at + 1] = size >>> 8;
  out[at + 2] = type & 0xff;
  out[at + 3] = type >>> 8;
  out[at + 4] = sequence & 0xff;
  out[at + 5] = (sequence >>> 8) & 0xff;
  out[at + 6] = (sequence >>> 16) & 0xff;
  out[at + 7] = sequence >>> 24;
  out[at + 8] = playerId & 0xff;
  out[at + 9] = (playerId >>> 8) & 0xff;
  out[at + 10] = (playerId >>> 16) & 0xff;
  out[at + 11] = playerId >>> 24;
}

export function readU16(b: Uint8Array, at: number): number {
  return b[at] | (b[at + 1] << 8);
}

export function readU32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

/** A set of allowed frame types (the registry). */
export type TypeRegistry = ReadonlySet<number> | Iterable<number>;

/** Validates a registry and snapshots it (later changes to the caller's set do not affect a decoder). */
export function typeSet(types: TypeRegistry): Set<number> {
  const s = new Set<number>();
  for (const ty of types) {
    if (!isU16(ty)) throw new RangeError(`type registry: ${String(ty)} is not an integer in 0..65535`);
    s.add(ty);
  }
  return s;
}

export function isU16(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= U16_MAX;
}

export function isU32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= U32_MAX;
}
