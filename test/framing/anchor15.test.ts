// Anchor 15 of conformance-anchors.md: what no anchor covers: u32 sequence wraparound (CP-FRAME-010),
// player-id validation, and aggregated + compressed batches with a bounded decompression (CP-FRAME-009).
import zlib from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  BATCH_HEADER_SIZE,
  BATCH_TYPE,
  FrameDecoder,
  FramingError,
  HEADER_SIZE,
  decode,
  decodeBatch,
  encode,
  encodeBatch,
  seqAdd,
  seqAfter,
  seqBefore,
  seqDiff,
  seqNext,
  type Frame,
} from '../../reference/src/framing/index.ts';
import { chunkingArb, cut, frameArb, frameOffsets, framesArb, plainFrames, sequencedFramesArb, u32 } from '../../fuzz/framing/arbitraries.ts';
import { batchOutcome, outcomeOf, runScenario } from '../../fuzz/framing/harness.ts';
import { cleanScenario } from '../../fuzz/framing/properties.ts';

const U32 = 2 ** 32;

function thrown(fn: () => unknown): FramingError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FramingError);
    return e as FramingError;
  }
  throw new Error('expected a FramingError');
}

describe('anchor 15: u32 sequence wraparound (CP-FRAME-010)', () => {
  test('anchor 15: sequence wraparound: a + d is after a for d in 1..2^31-1, modulo 2^32', () => {
    fc.assert(
      fc.property(u32(), fc.integer({ min: 1, max: 2 ** 31 - 1 }), (a, d) => {
        const b = (a + d) % U32;
        expect(seqAfter(b, a)).toBe(true);
        expect(seqAfter(a, b)).toBe(false);
        expect(seqBefore(a, b)).toBe(true);
        expect(seqDiff(b, a)).toBe(d);
        expect(seqDiff(a, b)).toBe(-d);
        expect(seqAdd(a, d)).toBe(b);
      }),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(u32(), (a) => {
        expect(seqAfter(a, a)).toBe(false);
        expect(seqNext(a)).toBe((a + 1) % U32);
        expect(seqAfter(seqNext(a), a)).toBe(true);
        // Exactly half the space apart: neither is after the other.
        const h = (a + 2 ** 31) % U32;
        expect(seqAfter(h, a) || seqAfter(a, h)).toBe(false);
      }),
    );
    expect(seqNext(U32 - 1)).toBe(0);
    expect(seqAfter(0, U32 - 1)).toBe(true);
    expect(seqAfter(U32 - 1, 0)).toBe(false);
  });

  test('anchor 15: sequence wraparound: a stream counting through 2^32-1 -> 0 decodes unchanged and in order', () => {
    fc.assert(
      fc.property(sequencedFramesArb(), chunkingArb(), (frames, chunking) => {
        const o = outcomeOf(runScenario((opts) => new FrameDecoder(opts), cleanScenario(frames, chunking)));
        expect(o.error).toBeNull();
        expect(o.frames).toEqual(plainFrames(frames));
        for (let i = 1; i < o.frames.length; i++) expect(seqAfter(o.frames[i].sequence, o.frames[i - 1].sequence)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe('anchor 15: player-id validation', () => {
  test('anchor 15: player-id validation: a frame of another player is a fatal wrong-player at its offset', () => {
    fc.assert(
      fc.property(u32(), framesArb({ minFrames: 1, maxFrames: 8, maxPayload: 30 }), fc.nat(), u32(), chunkingArb(), (player, base, pick, other, chunking) => {
        fc.pre(other !== player);
        const frames = base.map((f) => ({ ...f, playerId: player }));
        const at = pick % frames.length;
        frames[at] = { ...frames[at], playerId: other };
        const d = new FrameDecoder({ playerId: player });
        const got: Frame[] = [];
        let error: FramingError | null = null;
        for (const c of cut(encode(frames), chunking)) {
          const r = d.feed(c);
          got.push(...r.frames);
          if ((error = r.error)) break;
        }
        expect(plainFrames(got)).toEqual(plainFrames(frames.slice(0, at)));
        expect(error?.toJSON()).toEqual({ code: 'wrong-player', offset: frameOffsets(frames)[at], playerId: other, expected: player });
      }),
      { numRuns: 200 },
    );
  });

  test('anchor 15: player-id validation: the encoder refuses ids outside u32, the decoder option too', () => {
    for (const playerId of [-1, U32, 1.5, NaN, Infinity]) {
      expect(thrown(() => encode([{ type: 1, sequence: 0, playerId, payload: new Uint8Array(0) }])).toJSON()).toEqual({
        code: 'field-out-of-range',
        offset: 0,
        field: 'playerId',
        index: 0,
      });
      expect(() => new FrameDecoder({ playerId })).toThrow(RangeError);
    }
  });
});

describe('anchor 15: aggregated and compressed batches (CP-FRAME-009)', () => {
  const batchFrames = framesArb({ maxFrames: 20, maxPayload: 200 });

  test('anchor 15: batches: any frames round-trip, compressed or not, at any level, and inside a stream', () => {
    fc.assert(
      fc.property(batchFrames, fc.boolean(), fc.integer({ min: -1, max: 9 }), chunkingArb(), (frames, compress, level, chunking) => {
        const payload = encodeBatch(frames, { compress, level });
        expect(payload[0]).toBe(compress ? 1 : 0);
        expect(payload[1] | (payload[2] << 8)).toBe(frames.length);
        expect(new DataView(payload.buffer, payload.byteOffset).getUint32(3, true)).toBe(frames.reduce((n, f) => n + HEADER_SIZE + f.payload.length, 0));
        expect(plainFrames(decodeBatch(payload))).toEqual(plainFrames(frames));
        // Carried as a frame of the reserved type through the stream decoder, then unpacked.
        const stream = encode([{ type: BATCH_TYPE, sequence: 1, playerId: 2, payload }]);
        const d = new FrameDecoder({ types: [BATCH_TYPE] });
        const got = cut(stream, chunking).flatMap((c) => d.feed(c).frames);
        expect(got.length).toBe(1);
        expect(plainFrames(decodeBatch(got[0].payload))).toEqual(plainFrames(frames));
      }),
      { numRuns: 150 },
    );
  });

  test('anchor 15: batches: a count that disagrees with the body is batch-count-mismatch or batch-trailing-bytes', () => {
    fc.assert(
      fc.property(batchFrames, fc.integer({ min: 1, max: 5 }), fc.boolean(), (frames, k, compress) => {
        const payload = encodeBatch(frames, { compress });
        const more = payload.slice();
        more[1] = (frames.length + k) & 0xff;
        more[2] = (frames.length + k) >>> 8;
        const bodyLen = frames.reduce((n, f) => n + HEADER_SIZE + f.payload.length, 0);
        expect(thrown(() => decodeBatch(more)).toJSON()).toEqual({ code: 'batch-count-mismatch', offset: bodyLen, count: frames.length + k });
        if (frames.length > 0) {
          const fewer = payload.slice();
          fewer[1] = (frames.length - 1) & 0xff;
          fewer[2] = (frames.length - 1) >>> 8;
          const last = frameOffsets(frames)[frames.length - 1];
          expect(thrown(() => decodeBatch(fewer)).toJSON()).toEqual({ code: 'batch-trailing-bytes', offset: last });
        }
      }),
      { numRuns: 150 },
    );
  });

  test('anchor 15: batches: a declared size that disagrees with the body is batch-size-mismatch (or batch-too-large above the limit)', () => {
    fc.assert(
      fc.property(batchFrames, fc.integer({ min: -50, max: 50 }), fc.boolean(), (frames, delta, compress) => {
        fc.pre(delta !== 0);
        const payload = encodeBatch(frames, { compress });
        const view = new DataView(payload.buffer, payload.byteOffset);
        const declared = view.getUint32(3, true);
        fc.pre(declared + delta >= 0);
        view.setUint32(3, declared + delta, true);
        expect(thrown(() => decodeBatch(payload)).toJSON()).toEqual({ code: 'batch-size-mismatch', offset: BATCH_HEADER_SIZE, size: declared + delta });
        if (declared + delta > 0) expect(thrown(() => decodeBatch(payload, { maxDecompressed: declared + delta - 1 })).code).toBe('batch-too-large');
      }),
      { numRuns: 150 },
    );
  });

  test('anchor 15: batches: header and body checks, in order', () => {
    const frames = [
      { type: 1, sequence: 0, playerId: 0, payload: new Uint8Array(3) },
      { type: 2, sequence: 0, playerId: 0, payload: new Uint8Array(0) },
    ];
    const plain = encodeBatch(frames);
    const z = encodeBatch(frames, { compress: true });
    const err = (p: Uint8Array, o = {}) => thrown(() => decodeBatch(p, o)).toJSON();
    expect(err(plain.subarray(0, 6))).toEqual({ code: 'batch-truncated', offset: 0, size: 6 });
    expect(err(Uint8Array.of(0x82, ...plain.subarray(1)))).toEqual({ code: 'batch-bad-flags', offset: 0, flags: 0x82 });
    expect(err(plain, { maxCount: 1 })).toEqual({ code: 'batch-too-many', offset: 1, count: 2, maxCount: 1 });
    expect(err(plain, { maxDecompressed: 26 })).toEqual({ code: 'batch-too-large', offset: 3, size: 27, maxSize: 26 });
    expect(err(Uint8Array.of(...z, 0, 0))).toEqual({ code: 'batch-corrupt', offset: z.length });
    expect(err(z.subarray(0, z.length - 1))).toEqual({ code: 'batch-corrupt', offset: BATCH_HEADER_SIZE });
    const flip = z.slice();
    flip[z.length - 1] ^= 1;
    expect(err(flip)).toEqual({ code: 'batch-corrupt', offset: BATCH_HEADER_SIZE });
    const short = plain.slice(0, plain.length - 2);
    new DataView(short.buffer).setUint32(3, 25, true);
    expect(err(short)).toEqual({ code: 'batch-frame-truncated', offset: 15 });
    const cutPayload = plain.slice(0, BATCH_HEADER_SIZE + 14);
    cutPayload[1] = 1;
    new DataView(cutPayload.buffer).setUint32(3, 14, true);
    expect(err(cutPayload)).toEqual({ code: 'batch-frame-truncated', offset: 0, size: 15 });
    const tiny = plain.slice();
    tiny[BATCH_HEADER_SIZE] = 11;
    expect(err(tiny)).toEqual({ code: 'size-too-small', offset: 0, size: 11 });
    const nested = plain.slice();
    nested[BATCH_HEADER_SIZE + 2] = 0xff;
    nested[BATCH_HEADER_SIZE + 3] = 0xff;
    expect(err(nested)).toEqual({ code: 'batch-nested', offset: 0, type: BATCH_TYPE });
    expect(err(plain, { types: [1] })).toEqual({ code: 'unknown-type', offset: 15, type: 2 });
    expect(decodeBatch(encodeBatch([]))).toEqual([]);
    // Encoder side.
    expect(thrown(() => encodeBatch([{ type: BATCH_TYPE, sequence: 0, playerId: 0, payload: new Uint8Array(0) }])).code).toBe('batch-nested');
    const big = [{ type: 1, sequence: 0, playerId: 0, payload: new Uint8Array(40000) }, { type: 1, sequence: 0, playerId: 0, payload: new Uint8Array(40000) }];
    expect(thrown(() => encodeBatch(big)).toJSON()).toEqual({ code: 'payload-too-large', offset: 0, size: 12 + 7 + 80024, maxSize: 65535 });
    expect(decodeBatch(encodeBatch(big, { compress: true })).length).toBe(2);
    expect(() => encodeBatch([], { level: 10 })).toThrow(RangeError);
  });

  test('anchor 15: batches: a compression bomb is rejected without being expanded', () => {
    // 64 MiB of zeros deflate to ~64 KiB: a bomb that fits in one frame.
    const zeros = new Uint8Array(64 << 20);
    const bomb = zlib.deflateSync(zeros, { level: 9 });
    const payload = (declared: number) => {
      const p = new Uint8Array(BATCH_HEADER_SIZE + bomb.length);
      p[0] = 1;
      p[1] = 1;
      new DataView(p.buffer).setUint32(3, declared, true);
      p.set(bomb, BATCH_HEADER_SIZE);
      return p;
    };
    expect(HEADER_SIZE + BATCH_HEADER_SIZE + bomb.length).toBeLessThanOrEqual(65535);
    // Declared honestly: above the limit, refused before inflating anything.
    expect(thrown(() => decodeBatch(payload(zeros.length))).toJSON()).toEqual({ code: 'batch-too-large', offset: 3, size: 64 << 20, maxSize: 1 << 20 });
    // Declared small (a lie): inflation stops just past the declared size. Timed against a full inflate
    // of the same bytes (which the seeds' PacketCompressor would do).
    let t = performance.now();
    zlib.inflateSync(bomb);
    const full = performance.now() - t;
    for (const declared of [0, 100, 5000, 1 << 20]) {
      const before = process.memoryUsage().arrayBuffers;
      t = performance.now();
      expect(thrown(() => decodeBatch(payload(declared))).toJSON()).toEqual({ code: 'batch-size-mismatch', offset: BATCH_HEADER_SIZE, size: declared });
      const took = performance.now() - t;
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20);
      if (declared <= 5000) expect(took).toBeLessThan(full / 4);
    }
  });
});

describe('batch outcome helper', () => {
  test('turns FramingErrors into outcomes', () => {
    expect(batchOutcome(() => decodeBatch(new Uint8Array(3)))).toEqual({ error: { code: 'batch-truncated', offset: 0, size: 3 } });
    expect(batchOutcome(() => decode(new Uint8Array(0)).frames)).toEqual({ frames: [] });
    fc.assert(
      fc.property(frameArb(), (f) => {
        expect(batchOutcome(() => decodeBatch(encodeBatch([f])))).toEqual({ frames: plainFrames([f]) });
      }),
      { numRuns: 50 },
    );
  });
});
