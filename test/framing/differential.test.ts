// The TypeScript and C++ codecs against each other (through the addon's framing binding): for any frames,
// corruption (flipped size fields, truncation, inserted bytes, garbage), chunking, options (maxSize, type
// registry, player id, discard) and limit changes, both decoders say the same thing, feed by feed, and the
// same goes for batches, the encoder and sequence arithmetic.
//
// Needs the addon built with the framing exports (addon.cpp's init calls InitFraming). Without it every
// test here is skipped, with the reason printed.
import zlib from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  BATCH_HEADER_SIZE,
  FrameDecoder,
  decodeBatch,
  encode,
  encodeBatch,
  seqAfter,
  seqDiff,
  type DecoderOptions,
  type Frame,
} from '../../reference/src/framing/index.ts';
import {
  NativeFrameDecoder,
  nativeAddonPath,
  nativeDecodeBatch,
  nativeDecodeBatchDetailed,
  nativeEncode,
  nativeEncodeBatch,
  nativeFramingStatus,
  nativeSeqAfter,
  nativeSeqDiff,
} from '../../reference/src/framing/native.ts';
import { batchCaseArb, corruptBatch, frameArb, framesArb, plainFrames, u32 } from '../../fuzz/framing/arbitraries.ts';
import { batchOutcome, runScenario } from '../../fuzz/framing/harness.ts';
import { differentialProperty, modelProperty } from '../../fuzz/framing/properties.ts';

const status = nativeFramingStatus();
const skip = !status.available;
if (!status.available) console.warn(`framing differential tests SKIPPED: ${status.reason}`);
else console.info(`framing differential tests: native codec from ${nativeAddonPath()}`);

const ts = (o: DecoderOptions) => new FrameDecoder(o);
const native = (o: DecoderOptions) => new NativeFrameDecoder(o);

function outcome(fn: () => Uint8Array | Frame[]) {
  try {
    const r = fn();
    return r instanceof Uint8Array ? { bytes: Array.from(r) } : { frames: plainFrames(r) };
  } catch (e) {
    const err = e as { name?: string; toJSON?: () => unknown; message?: string };
    if (err.name === 'FramingError' && err.toJSON) return { error: err.toJSON() };
    return { thrown: String(err.message) };
  }
}

describe.skipIf(skip)('framing: TS and C++ codecs agree (differential)', () => {
  test('stream decoders: same frames, same errors, same discards, feed by feed, for any scenario', () => {
    fc.assert(differentialProperty(ts, native), { numRuns: 2500 });
  });

  test('stream decoders: the native decoder also matches the whole-buffer oracle', () => {
    fc.assert(modelProperty(native), { numRuns: 800 });
  });

  test('stream decoders: pure garbage, any chunking', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.integer({ min: 1, max: 20 }), { maxLength: 6 }), fc.boolean(), (garbage, chunking, discard) => {
        const s = {
          frames: [],
          corruption: { kind: 'garbage' as const, bytes: garbage },
          chunking,
          options: { maxSize: 40, registry: undefined, checkPlayer: false, discardTooLarge: discard },
          limits: [],
        };
        expect(runScenario(native, s)).toEqual(runScenario(ts, s));
      }),
      { numRuns: 500 },
    );
  });

  test('batches: same frames or same error for any (corrupted) batch payload and limits', () => {
    fc.assert(
      fc.property(batchCaseArb(), (c) => {
        const payload = corruptBatch(encodeBatch(c.frames, { compress: c.compress, level: c.level }), c.corruption);
        const options = { maxDecompressed: c.maxDecompressed, maxCount: c.maxCount };
        if (options.maxDecompressed === undefined) delete options.maxDecompressed;
        if (options.maxCount === undefined) delete options.maxCount;
        expect(batchOutcome(() => nativeDecodeBatch(payload, options))).toEqual(batchOutcome(() => decodeBatch(payload, options)));
      }),
      { numRuns: 1500 },
    );
  });

  test('batches: random zlib bodies (valid, corrupt, oversized) get the same verdict', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.integer({ min: 0, max: 4000 }), fc.nat(), fc.integer({ min: 0, max: 7 }), (raw, declared, at, bit) => {
        const z = zlib.deflateSync(raw);
        z[at % z.length] ^= 1 << bit;
        const payload = new Uint8Array(BATCH_HEADER_SIZE + z.length);
        payload[0] = 1;
        new DataView(payload.buffer).setUint32(3, declared, true);
        payload.set(z, BATCH_HEADER_SIZE);
        expect(batchOutcome(() => nativeDecodeBatch(payload))).toEqual(batchOutcome(() => decodeBatch(payload)));
      }),
      { numRuns: 600 },
    );
  });

  test('batches: each side decodes what the other encoded', () => {
    fc.assert(
      fc.property(framesArb({ maxFrames: 12, maxPayload: 300 }), fc.boolean(), fc.integer({ min: -1, max: 9 }), (frames, compress, level) => {
        const a = encodeBatch(frames, { compress, level });
        const b = nativeEncodeBatch(frames, { compress, level });
        if (!compress) expect(b).toEqual(a);
        expect(plainFrames(nativeDecodeBatch(a))).toEqual(plainFrames(frames));
        expect(plainFrames(decodeBatch(b))).toEqual(plainFrames(frames));
      }),
      { numRuns: 300 },
    );
  });

  test('batches: the native inflate stops at the declared size (compression bomb)', () => {
    const bomb = zlib.deflateSync(new Uint8Array(64 << 20), { level: 9 });
    for (const declared of [0, 100, 5000, 1 << 20]) {
      const p = new Uint8Array(BATCH_HEADER_SIZE + bomb.length);
      p[0] = 1;
      p[1] = 1;
      new DataView(p.buffer).setUint32(3, declared, true);
      p.set(bomb, BATCH_HEADER_SIZE);
      let inflated = -1;
      try {
        nativeDecodeBatchDetailed(p);
      } catch (e) {
        expect((e as { code: string }).code).toBe('batch-size-mismatch');
        inflated = (e as { inflated: number }).inflated;
      }
      expect(inflated).toBeGreaterThan(declared);
      expect(inflated).toBeLessThanOrEqual(Math.max(declared, 1) + 16384);
    }
  });

  test('encoder: same bytes for valid frames, same error for invalid ones', () => {
    const field = fc.oneof(u32(), fc.constantFrom(-1, 2 ** 32, 65536, 1.5, NaN));
    const maybeBad = fc.record({
      type: fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 0, max: 65535 }) }, { weight: 1, arbitrary: field }),
      sequence: fc.oneof({ weight: 5, arbitrary: u32() }, { weight: 1, arbitrary: field }),
      playerId: fc.oneof({ weight: 5, arbitrary: u32() }, { weight: 1, arbitrary: field }),
      payload: fc.oneof({ weight: 8, arbitrary: fc.uint8Array({ maxLength: 100 }) }, { weight: 1, arbitrary: fc.constant(new Uint8Array(65524)) }),
    });
    fc.assert(
      fc.property(fc.array(maybeBad, { maxLength: 5 }), fc.option(fc.integer({ min: 12, max: 200 }), { nil: undefined }), (frames, maxSize) => {
        const opts = maxSize === undefined ? {} : { maxSize };
        expect(outcome(() => nativeEncode(frames, opts))).toEqual(outcome(() => encode(frames, opts)));
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.array(frameArb({ maxPayload: 100 }), { maxLength: 5 }), fc.boolean(), (frames, nest) => {
        const list = nest && frames.length > 0 ? [...frames.slice(0, -1), { ...frames[frames.length - 1], type: 0xffff }] : frames;
        expect(outcome(() => nativeEncodeBatch(list))).toEqual(outcome(() => encodeBatch(list)));
      }),
      { numRuns: 200 },
    );
  });

  test('sequence arithmetic: same answers', () => {
    fc.assert(
      fc.property(u32(), u32(), (a, b) => {
        expect(nativeSeqDiff(a, b)).toBe(seqDiff(a, b));
        expect(nativeSeqAfter(a, b)).toBe(seqAfter(a, b));
      }),
      { numRuns: 1000 },
    );
  });
});

describe('framing differential: availability', () => {
  test.skipIf(!skip)('the native framing binding is unavailable: the differential tests above were skipped', () => {
    console.warn(`framing differential: ${status.available ? '' : status.reason}`);
    expect(skip).toBe(true);
  });
});
