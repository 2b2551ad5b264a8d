// fast-check arbitraries for the framing codec, shared by the property tests (test/framing) and the fuzzers.
//
// A Scenario is everything one decoding run depends on: the frames, how their encoding is corrupted, how
// the byte stream is cut into chunks, the decoder options and when the size limit changes. Shrinking goes
// towards fewer frames, empty payloads, no corruption, one chunk and default options.
import fc from 'fast-check';
import { BATCH_TYPE, HEADER_SIZE, MAX_FRAME_SIZE, U32_MAX, type Frame } from '../../reference/src/framing/wire.ts';
import type { DecoderOptions } from '../../reference/src/framing/decoder.ts';

export const u16 = (): fc.Arbitrary<number> => fc.integer({ min: 0, max: 0xffff });
export const u32 = (): fc.Arbitrary<number> =>
  fc.oneof(fc.integer({ min: 0, max: U32_MAX }), fc.constantFrom(0, 1, 0x7fffffff, 0x80000000, U32_MAX - 1, U32_MAX));

/** Payload bytes: mostly short (0..64), sometimes empty, sometimes up to `max` bytes. */
export function payloadArb(max = 1024): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 2, arbitrary: fc.constant(new Uint8Array(0)) },
    { weight: 6, arbitrary: fc.uint8Array({ maxLength: Math.min(64, max) }) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: Math.min(64, max), maxLength: max }) },
  );
}

export interface FrameArbOptions {
  /** Largest payload (default 1024). */
  maxPayload?: number;
  /** Types to draw from (default: a few small types plus any u16 except BATCH_TYPE). */
  types?: readonly number[];
  /** Fixed player id. */
  playerId?: number;
}

export function frameArb(options: FrameArbOptions = {}): fc.Arbitrary<Frame> {
  const type = options.types
    ? fc.constantFrom(...options.types)
    : fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 8 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: BATCH_TYPE - 1 }) });
  return fc.record({
    type,
    sequence: u32(),
    playerId: options.playerId === undefined ? u32() : fc.constant(options.playerId),
    payload: payloadArb(options.maxPayload ?? 1024),
  });
}

export function framesArb(options: FrameArbOptions & { minFrames?: number; maxFrames?: number } = {}): fc.Arbitrary<Frame[]> {
  return fc.array(frameArb(options), { minLength: options.minFrames ?? 0, maxLength: options.maxFrames ?? 12 });
}

/** A frame list whose sequence numbers count up from `start` (wrapping modulo 2^32). */
export function sequencedFramesArb(maxFrames = 20): fc.Arbitrary<Frame[]> {
  return fc
    .tuple(fc.oneof(u32(), fc.integer({ min: U32_MAX - 20, max: U32_MAX })), fc.array(frameArb({ maxPayload: 32 }), { maxLength: maxFrames }))
    .map(([start, frames]) => frames.map((f, i) => ({ ...f, sequence: (start + i) % 2 ** 32 })));
}

/**
 * How to cut a stream: chunk sizes used in turn, cycling; [] is one chunk (everything at once), [1] is one
 * byte at a time.
 */
export type Chunking = number[];

export function chunkingArb(maxChunk = 64): fc.Arbitrary<Chunking> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant<Chunking>([]) },
    { weight: 1, arbitrary: fc.constant<Chunking>([1]) },
    { weight: 6, arbitrary: fc.array(fc.integer({ min: 1, max: maxChunk }), { minLength: 1, maxLength: 16 }) },
  );
}

/** Cuts `bytes` into chunks (views) following `chunking`. An empty stream gives no chunks. */
export function cut(bytes: Uint8Array, chunking: Chunking): Uint8Array[] {
  if (bytes.length === 0) return [];
  if (chunking.length === 0) return [bytes];
  const out: Uint8Array[] = [];
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const n = Math.min(chunking[i % chunking.length], bytes.length - at);
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

/** Ways to damage an encoded stream. Positions are taken modulo the stream length (or the frame count). */
export type Corruption =
  | { kind: 'none' }
  | { kind: 'size'; frame: number; size: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'garbage'; bytes: Uint8Array };

export function corruptionArb(): fc.Arbitrary<Corruption> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant({ kind: 'none' as const }) },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant('size' as const),
        frame: fc.nat(),
        size: fc.oneof(fc.integer({ min: 0, max: HEADER_SIZE - 1 }), fc.integer({ min: HEADER_SIZE, max: 200 }), u16()),
      }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('garbage' as const), bytes: fc.uint8Array({ maxLength: 80 }) }) },
  );
}

/** Byte offsets where each frame of an encoded stream starts. */
export function frameOffsets(frames: readonly Frame[]): number[] {
  const out: number[] = [];
  let at = 0;
  for (const f of frames) {
    out.push(at);
    at += HEADER_SIZE + f.payload.length;
  }
  return out;
}

/** Applies a corruption to an encoding of `frames` (returns a new array; the input is not modified). */
export function corrupt(bytes: Uint8Array, frames: readonly Frame[], c: Corruption): Uint8Array {
  switch (c.kind) {
    case 'none':
      return bytes;
    case 'size': {
      if (frames.length === 0) return bytes;
      const at = frameOffsets(frames)[c.frame % frames.length];
      const out = bytes.slice();
      out[at] = c.size & 0xff;
      out[at + 1] = c.size >>> 8;
      return out;
    }
    case 'truncate':
      return bytes.length === 0 ? bytes : bytes.slice(0, c.at % bytes.length);
    case 'flip': {
      if (bytes.length === 0) return bytes;
      const out = bytes.slice();
      out[c.at % out.length] ^= 1 << c.bit;
      return out;
    }
    case 'insert': {
      const at = c.at % (bytes.length + 1);
      const out = new Uint8Array(bytes.length + c.bytes.length);
      out.set(bytes.subarray(0, at));
      out.set(c.bytes, at);
      out.set(bytes.subarray(at), at + c.bytes.length);
      return out;
    }
    case 'garbage':
      return c.bytes;
  }
}

/** A limit change: before feeding chunk `beforeChunk`, call setMaxSize(maxSize). */
export interface LimitChange {
  beforeChunk: number;
  maxSize: number;
}

export const maxSizeArb = (): fc.Arbitrary<number> =>
  fc.oneof(fc.constant(MAX_FRAME_SIZE), fc.integer({ min: HEADER_SIZE, max: HEADER_SIZE + 80 }), fc.integer({ min: HEADER_SIZE, max: MAX_FRAME_SIZE }));

/** Options drawn for a scenario; `types` and `playerId` are derived from the frames so that they matter. */
export interface OptionChoice {
  maxSize: number | undefined;
  /** Registry: undefined (none), or the frames' types minus the one at index `dropType` (when given). */
  registry: { dropType: number | null } | undefined;
  /** Expect the first frame's player id (if any frame). */
  checkPlayer: boolean;
  discardTooLarge: boolean;
}

export function optionChoiceArb(): fc.Arbitrary<OptionChoice> {
  return fc.record({
    maxSize: fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: maxSizeArb() }),
    registry: fc.oneof(
      { weight: 3, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.record({ dropType: fc.option(fc.nat(), { nil: null }) }) },
    ),
    checkPlayer: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    discardTooLarge: fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  });
}

export function resolveOptions(choice: OptionChoice, frames: readonly Frame[]): DecoderOptions {
  const o: DecoderOptions = {};
  if (choice.maxSize !== undefined) o.maxSize = choice.maxSize;
  if (choice.registry !== undefined) {
    const types = new Set(frames.map((f) => f.type));
    if (choice.registry.dropType !== null && frames.length > 0) types.delete(frames[choice.registry.dropType % frames.length].type);
    o.types = types;
  }
  if (choice.checkPlayer && frames.length > 0) o.playerId = frames[0].playerId;
  if (choice.discardTooLarge) o.discardTooLarge = true;
  return o;
}

export interface Scenario {
  frames: Frame[];
  corruption: Corruption;
  chunking: Chunking;
  options: OptionChoice;
  limits: LimitChange[];
}

export function scenarioArb(opts: { maxFrames?: number; maxPayload?: number; withLimits?: boolean } = {}): fc.Arbitrary<Scenario> {
  return fc.record({
    frames: framesArb({ maxFrames: opts.maxFrames ?? 10, maxPayload: opts.maxPayload ?? 300 }),
    corruption: corruptionArb(),
    chunking: chunkingArb(),
    options: optionChoiceArb(),
    limits: opts.withLimits === false
      ? fc.constant([])
      : fc.array(fc.record({ beforeChunk: fc.integer({ min: 0, max: 40 }), maxSize: maxSizeArb() }), { maxLength: 3 }),
  });
}

/** Frames in a form that compares with toEqual across implementations (payloads as plain arrays). */
export function plainFrames(frames: readonly Frame[]): { type: number; sequence: number; playerId: number; payload: number[] }[] {
  return frames.map((f) => ({ type: f.type, sequence: f.sequence, playerId: f.playerId, payload: Array.from(f.payload) }));
}

// ---- batches ---------------------------------------------------------------------------------------------

/** Ways to damage a batch payload. Offsets are taken modulo the payload length. */
export type BatchCorruption =
  | { kind: 'none' }
  | { kind: 'flags'; flags: number }
  | { kind: 'count'; delta: number }
  | { kind: 'original'; delta: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'append'; bytes: Uint8Array }
  | { kind: 'body'; bytes: Uint8Array };

export function batchCorruptionArb(): fc.Arbitrary<BatchCorruption> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant({ kind: 'none' as const }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('flags' as const), flags: fc.integer({ min: 0, max: 255 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('count' as const), delta: fc.integer({ min: -3, max: 3 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('original' as const), delta: fc.oneof(fc.integer({ min: -20, max: 20 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 })) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('body' as const), bytes: fc.uint8Array({ maxLength: 64 }) }) },
  );
}

export interface BatchCase {
  frames: Frame[];
  compress: boolean;
  level: number;
  corruption: BatchCorruption;
  maxDecompressed: number | undefined;
  maxCount: number | undefined;
}

export function batchCaseArb(): fc.Arbitrary<BatchCase> {
  return fc.record({
    frames: framesArb({ maxFrames: 8, maxPayload: 200 }),
    compress: fc.boolean(),
    level: fc.integer({ min: -1, max: 9 }),
    corruption: batchCorruptionArb(),
    maxDecompressed: fc.option(fc.integer({ min: 0, max: 3000 }), { nil: undefined, freq: 3 }),
    maxCount: fc.option(fc.integer({ min: 0, max: 10 }), { nil: undefined, freq: 3 }),
  });
}

/** Applies a batch corruption (a new array; the input is not modified). */
export function corruptBatch(payload: Uint8Array, c: BatchCorruption): Uint8Array {
  const out = payload.slice();
  const u16At = (at: number) => out[at] | (out[at + 1] << 8);
  const u32At = (at: number) => (out[at] | (out[at + 1] << 8) | (out[at + 2] << 16) | (out[at + 3] << 24)) >>> 0;
  switch (c.kind) {
    case 'none':
      return out;
    case 'flags':
      out[0] = c.flags;
      return out;
    case 'count': {
      const v = (u16At(1) + c.delta + 0x10000) & 0xffff;
      out[1] = v & 0xff;
      out[2] = v >>> 8;
      return out;
    }
    case 'original': {
      const v = (u32At(3) + c.delta + 2 ** 32) % 2 ** 32;
      new DataView(out.buffer, out.byteOffset).setUint32(3, v, true);
      return out;
    }
    case 'truncate':
      return out.slice(0, c.at % (out.length + 1));
    case 'flip':
      out[c.at % out.length] ^= 1 << c.bit;
      return out;
    case 'append': {
      const r = new Uint8Array(out.length + c.bytes.length);
      r.set(out);
      r.set(c.bytes, out.length);
      return r;
    }
    case 'body': {
      const r = new Uint8Array(7 + c.bytes.length);
      r.set(out.subarray(0, 7));
      r.set(c.bytes, 7);
      return r;
    }
  }
}
