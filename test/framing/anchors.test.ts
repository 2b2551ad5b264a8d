// The framing edge cases of /work/shared/reference/conformance-anchors.md ("Length-prefixed framing"),
// anchors 1-12, as properties of the TypeScript decoder (test/framing/differential.test.ts runs the same
// scenarios against the C++ decoder). Anchors 13-14: io.test.ts; anchor 15: anchor15.test.ts.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  FrameDecoder,
  FramingError,
  HEADER_SIZE,
  MAX_PAYLOAD_SIZE,
  decode,
  encode,
  type Frame,
} from '../../reference/src/framing/index.ts';
import {
  chunkingArb,
  cut,
  frameArb,
  frameOffsets,
  framesArb,
  maxSizeArb,
  plainFrames,
  scenarioArb,
  u32,
} from '../../fuzz/framing/arbitraries.ts';
import { modelOutcome, outcomeOf, runScenario } from '../../fuzz/framing/harness.ts';
import { cleanScenario, modelProperty, roundtripProperty } from '../../fuzz/framing/properties.ts';

const ts = (o: ConstructorParameters<typeof FrameDecoder>[0]) => new FrameDecoder(o);
const RUNS = { numRuns: 300 };

/** Feeds chunks; returns frames per feed and the first error. */
function feedAll(d: FrameDecoder, chunks: Uint8Array[]) {
  const perFeed: Frame[][] = [];
  for (const c of chunks) {
    const r = d.feed(c);
    perFeed.push(r.frames);
    if (r.error) return { perFeed, error: r.error };
  }
  return { perFeed, error: d.end() };
}

describe('framing anchors 1-12 (TypeScript decoder)', () => {
  test('anchor 1: zero-length payload / header-only frames decode as empty payloads (CP-FRAME-002)', () => {
    fc.assert(
      fc.property(fc.array(frameArb({ maxPayload: 0 }), { minLength: 1, maxLength: 20 }), chunkingArb(16), (frames, chunking) => {
        for (const f of frames) expect(f.payload.length).toBe(0);
        const o = outcomeOf(runScenario(ts, cleanScenario(frames, chunking)));
        expect(o.error).toBeNull();
        expect(o.frames).toEqual(plainFrames(frames));
      }),
      RUNS,
    );
    // An empty stream yields nothing, and ends cleanly.
    const d = new FrameDecoder();
    expect(d.feed(new Uint8Array(0))).toEqual({ frames: [], error: null, discarded: [] });
    expect(d.end()).toBeNull();
  });

  test('anchor 2: the length field split across reads (one byte per read, and cut inside the size field)', () => {
    fc.assert(
      fc.property(framesArb({ minFrames: 1, maxFrames: 8, maxPayload: 40 }), (frames) => {
        const bytes = encode(frames);
        // Cut right after the first byte of every size field.
        const cuts = frameOffsets(frames).map((o) => o + 1);
        const chunks: Uint8Array[] = [];
        let prev = 0;
        for (const c of [...cuts, bytes.length]) {
          chunks.push(bytes.subarray(prev, c));
          prev = c;
        }
        const d = new FrameDecoder();
        const { perFeed, error } = feedAll(d, chunks);
        expect(error).toBeNull();
        expect(plainFrames(perFeed.flat())).toEqual(plainFrames(frames));
        // The first feed holds a lone size byte: nothing can come out of it.
        expect(perFeed[0]).toEqual([]);
        // One byte at a time.
        const one = outcomeOf(runScenario(ts, cleanScenario(frames, [1])));
        expect(one).toEqual({ frames: plainFrames(frames), discarded: [], error: null });
      }),
      RUNS,
    );
  });

  test('anchor 3: payload split with pauses between the pieces; nothing is delivered before the last piece', async () => {
    await fc.assert(
      fc.asyncProperty(frameArb({ maxPayload: 300 }), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 8 }), async (frame, sizes) => {
        const bytes = encode([frame]);
        const chunks = cut(bytes, sizes);
        const d = new FrameDecoder();
        let received = 0;
        for (let i = 0; i < chunks.length; i++) {
          await new Promise<void>((r) => setImmediate(r)); // a pause: the next piece arrives later
          const r = d.feed(chunks[i]);
          received += chunks[i].length;
          expect(r.error).toBeNull();
          if (i < chunks.length - 1) {
            expect(r.frames).toEqual([]);
            expect(d.buffered).toBe(received);
          } else {
            expect(plainFrames(r.frames)).toEqual(plainFrames([frame]));
            expect(d.buffered).toBe(0);
          }
        }
        expect(d.end()).toBeNull();
      }),
      { numRuns: 60 },
    );
  });

  test('anchor 4: many frames in one read are all returned by that read, in order', () => {
    fc.assert(
      fc.property(framesArb({ minFrames: 2, maxFrames: 40, maxPayload: 64 }), (frames) => {
        const d = new FrameDecoder();
        const r = d.feed(encode(frames));
        expect(r.error).toBeNull();
        expect(plainFrames(r.frames)).toEqual(plainFrames(frames));
        expect(d.buffered).toBe(0);
      }),
      RUNS,
    );
  });

  test('anchor 5: random chunk boundaries yield exactly the encoded frames (CP-FRAME-001), 1000 frames too', () => {
    fc.assert(roundtripProperty(ts), { numRuns: 500 });
    // SuperSocket's TestBreakRequest: 1000 frames, random breaks.
    fc.assert(
      fc.property(fc.array(frameArb({ maxPayload: 48 }), { minLength: 1000, maxLength: 1000 }), chunkingArb(200), (frames, chunking) => {
        const o = outcomeOf(runScenario(ts, cleanScenario(frames, chunking)));
        expect(o.error).toBeNull();
        expect(o.frames.length).toBe(1000);
        expect(o.frames).toEqual(plainFrames(frames));
      }),
      { numRuns: 5 },
    );
  });

  test('anchor 6: maximum length exceeded is an error at the frame offset; the decoder closes, or discards and recovers', () => {
    fc.assert(
      fc.property(
        framesArb({ maxFrames: 5, maxPayload: 40 }),
        frameArb({ maxPayload: 200 }),
        framesArb({ minFrames: 1, maxFrames: 5, maxPayload: 40 }),
        chunkingArb(),
        (before, big, after, chunking) => {
          const maxSize = HEADER_SIZE + 40;
          fc.pre(big.payload.length > 40);
          const frames = [...before, big, ...after];
          const at = frameOffsets(frames)[before.length];
          const bigSize = HEADER_SIZE + big.payload.length;
          // Close (default): everything before is delivered, then the error, then 'closed'.
          const closing = new FrameDecoder({ maxSize });
          const { perFeed, error } = feedAll(closing, cut(encode(frames), chunking));
          expect(plainFrames(perFeed.flat())).toEqual(plainFrames(before));
          expect(error?.toJSON()).toEqual({ code: 'size-too-large', offset: at, size: bigSize, maxSize });
          expect(closing.closed).toBe(true);
          expect(closing.feed(new Uint8Array([1])).error?.toJSON()).toEqual({ code: 'closed', offset: at });
          // Discard: the oversized frame is skipped without being buffered, the stream recovers.
          const skipping = new FrameDecoder({ maxSize, discardTooLarge: true });
          const got: Frame[] = [];
          const discarded: FramingError[] = [];
          for (const c of cut(encode(frames), chunking)) {
            const r = skipping.feed(c);
            expect(r.error).toBeNull();
            got.push(...r.frames);
            discarded.push(...r.discarded);
            expect(skipping.buffered).toBeLessThanOrEqual(maxSize);
          }
          expect(skipping.end()).toBeNull();
          expect(plainFrames(got)).toEqual(plainFrames([...before, ...after]));
          expect(discarded.map((e) => e.toJSON())).toEqual([{ code: 'size-too-large', offset: at, size: bigSize, maxSize }]);
        },
      ),
      RUNS,
    );
  });

  test('anchor 7: changing the limit at runtime applies to every frame whose size field is not read yet', () => {
    // Scenarios with limit changes between chunks, against the oracle that knows when each size field
    // completed.
    fc.assert(
      fc.property(scenarioArb({ maxFrames: 8, maxPayload: 120 }), (s) => {
        fc.pre(s.limits.length > 0);
        expect(outcomeOf(runScenario(ts, s))).toEqual(modelOutcome(s));
      }),
      { numRuns: 400 },
    );
    // tokio's read_update_max_frame_len_in_flight: the limit drops while a frame is in flight; that frame
    // (size already read) still passes, the next one is checked against the new limit.
    const frames = [
      { type: 1, sequence: 0, playerId: 0, payload: new Uint8Array(50) },
      { type: 1, sequence: 1, playerId: 0, payload: new Uint8Array(50) },
    ];
    const bytes = encode(frames);
    const d = new FrameDecoder();
    expect(d.feed(bytes.subarray(0, 20)).frames).toEqual([]);
    d.setMaxSize(HEADER_SIZE + 10);
    const r = d.feed(bytes.subarray(20));
    expect(r.frames.length).toBe(1);
    expect(r.error?.toJSON()).toEqual({ code: 'size-too-large', offset: 62, size: 62, maxSize: 22 });
    expect(() => d.setMaxSize(11)).toThrow(RangeError);
    expect(() => new FrameDecoder({ maxSize: 65536 })).toThrow(RangeError);
  });

  test('anchor 8: a size below the header (0..11) is an error at its offset; overflowing lengths are rejected by the encoder', () => {
    fc.assert(
      fc.property(framesArb({ maxFrames: 5, maxPayload: 30 }), fc.integer({ min: 0, max: HEADER_SIZE - 1 }), fc.uint8Array({ maxLength: 30 }), chunkingArb(), (before, size, rest, chunking) => {
        const good = encode(before);
        const bytes = new Uint8Array(good.length + 2 + rest.length);
        bytes.set(good);
        bytes[good.length] = size;
        bytes.set(rest, good.length + 2);
        const d = new FrameDecoder();
        const { perFeed, error } = feedAll(d, cut(bytes, chunking));
        expect(plainFrames(perFeed.flat())).toEqual(plainFrames(before));
        expect(error?.toJSON()).toEqual({ code: 'size-too-small', offset: good.length, size });
      }),
      RUNS,
    );
    // Encoder: a payload too large for the u16 size, and fields out of range, are refused.
    const p = (n: number) => new Uint8Array(n);
    expect(encode([{ type: 1, sequence: 0, playerId: 0, payload: p(MAX_PAYLOAD_SIZE) }]).length).toBe(65535);
    const bad: [Frame, string, string][] = [
      [{ type: 1, sequence: 0, playerId: 0, payload: p(MAX_PAYLOAD_SIZE + 1) }, 'payload-too-large', ''],
      [{ type: -1, sequence: 0, playerId: 0, payload: p(0) }, 'field-out-of-range', 'type'],
      [{ type: 65536, sequence: 0, playerId: 0, payload: p(0) }, 'field-out-of-range', 'type'],
      [{ type: 1.5, sequence: 0, playerId: 0, payload: p(0) }, 'field-out-of-range', 'type'],
      [{ type: 1, sequence: 2 ** 32, playerId: 0, payload: p(0) }, 'field-out-of-range', 'sequence'],
      [{ type: 1, sequence: -1, playerId: 0, payload: p(0) }, 'field-out-of-range', 'sequence'],
      [{ type: 1, sequence: 0, playerId: 2 ** 32, payload: p(0) }, 'field-out-of-range', 'playerId'],
      [{ type: 1, sequence: 0, playerId: NaN, payload: p(0) }, 'field-out-of-range', 'playerId'],
    ];
    for (const [f, code, field] of bad) {
      let caught: unknown;
      try {
        encode([{ type: 1, sequence: 0, playerId: 0, payload: p(3) }, f]);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(FramingError);
      expect((caught as FramingError).code).toBe(code);
      expect((caught as FramingError).index).toBe(1);
      expect((caught as FramingError).offset).toBe(15);
      if (field) expect((caught as FramingError).field).toBe(field);
    }
    expect(() => encode([{ type: 1, sequence: 0, playerId: 0, payload: p(20) }], { maxSize: 31 })).toThrow(/exceeds the limit 31/);
  });

  test('anchor 9: the size field includes the 12-byte header', () => {
    fc.assert(
      fc.property(frameArb({ maxPayload: 500 }), (f) => {
        const bytes = encode([f]);
        expect(bytes.length).toBe(HEADER_SIZE + f.payload.length);
        expect(bytes[0] | (bytes[1] << 8)).toBe(HEADER_SIZE + f.payload.length);
        // A peer whose size counts only the payload is misread: its frame comes out 12 bytes short (or is
        // refused as smaller than a header), never as the frame it sent.
        const wrong = bytes.slice();
        wrong[0] = f.payload.length & 0xff;
        wrong[1] = f.payload.length >>> 8;
        const r = decode(wrong);
        if (f.payload.length < HEADER_SIZE) {
          expect(r.frames).toEqual([]);
          expect(r.error?.toJSON()).toEqual({ code: 'size-too-small', offset: 0, size: f.payload.length });
        } else {
          expect(r.frames[0].payload.length).toBe(f.payload.length - HEADER_SIZE);
          expect(r.error !== null || r.frames.length !== 1).toBe(true);
        }
      }),
      RUNS,
    );
  });

  test('anchor 10: little-endian fields of the documented widths (CP-FRAME-003)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), u32(), u32(), fc.uint8Array({ maxLength: 40 }), (type, sequence, playerId, payload) => {
        // Built independently with DataView, little-endian.
        const hand = new Uint8Array(HEADER_SIZE + payload.length);
        const v = new DataView(hand.buffer);
        v.setUint16(0, hand.length, true);
        v.setUint16(2, type, true);
        v.setUint32(4, sequence, true);
        v.setUint32(8, playerId, true);
        hand.set(payload, HEADER_SIZE);
        expect(encode([{ type, sequence, playerId, payload }])).toEqual(hand);
        const r = decode(hand);
        expect(r.error).toBeNull();
        expect(plainFrames(r.frames)).toEqual(plainFrames([{ type, sequence, playerId, payload }]));
        // u32 fields above 2^31 come back unsigned.
        expect(r.frames[0].sequence).toBeGreaterThanOrEqual(0);
        expect(r.frames[0].playerId).toBeGreaterThanOrEqual(0);
      }),
      RUNS,
    );
    // A big-endian peer's size field is misread as a different size.
    const be = new Uint8Array(HEADER_SIZE + 4);
    new DataView(be.buffer).setUint16(0, be.length, false);
    expect(decode(be).error?.toJSON()).toEqual({ code: 'truncated', offset: 0, dangling: 16 });
  });

  test('anchor 11: end of stream inside a frame is "truncated" with the dangling byte count; no half frame (CP-FRAME-006)', () => {
    fc.assert(
      fc.property(framesArb({ minFrames: 1, maxFrames: 8, maxPayload: 60 }), fc.nat(), chunkingArb(), (frames, cutAt, chunking) => {
        const bytes = encode(frames);
        const offsets = frameOffsets(frames);
        const end = cutAt % bytes.length;
        fc.pre(!offsets.includes(end));
        const start = Math.max(...offsets.filter((o) => o < end));
        const d = new FrameDecoder();
        const { perFeed, error } = feedAll(d, cut(bytes.subarray(0, end), chunking));
        const complete = frames.slice(0, offsets.indexOf(start));
        expect(plainFrames(perFeed.flat())).toEqual(plainFrames(complete));
        expect(error?.toJSON()).toEqual({ code: 'truncated', offset: start, dangling: end - start });
        expect(d.closed).toBe(true);
        expect(d.end()?.code).toBe('closed');
      }),
      RUNS,
    );
  });

  test('anchor 12: an unregistered type is an error at its offset (CP-FRAME-007); without a registry any type passes', () => {
    fc.assert(
      fc.property(framesArb({ minFrames: 1, maxFrames: 8, maxPayload: 30 }), fc.nat(), chunkingArb(), (frames, pick, chunking) => {
        const bad = frames[pick % frames.length].type;
        const first = frames.findIndex((f) => f.type === bad);
        const types = new Set(frames.map((f) => f.type).filter((t) => t !== bad));
        const d = new FrameDecoder({ types });
        const { perFeed, error } = feedAll(d, cut(encode(frames), chunking));
        expect(plainFrames(perFeed.flat())).toEqual(plainFrames(frames.slice(0, first)));
        expect(error?.toJSON()).toEqual({ code: 'unknown-type', offset: frameOffsets(frames)[first], type: bad });
        expect(decode(encode(frames)).error).toBeNull();
      }),
      RUNS,
    );
  });

  test('anchors 1-12 together: any corruption, options and chunking match the whole-buffer oracle (CP-FRAME-008)', () => {
    fc.assert(modelProperty(ts), { numRuns: 1500 });
  });
});

describe('decoder details', () => {
  test('frames wholly inside a chunk are views of it (no copy); copy: true copies', () => {
    const bytes = encode([
      { type: 1, sequence: 0, playerId: 0, payload: new Uint8Array([1, 2, 3]) },
      { type: 2, sequence: 0, playerId: 0, payload: new Uint8Array([4]) },
    ]);
    const view = new FrameDecoder().feed(bytes).frames;
    expect(view[0].payload.buffer).toBe(bytes.buffer);
    expect(view[0].payload.byteOffset).toBe(12);
    const copied = new FrameDecoder({ copy: true }).feed(bytes).frames;
    expect(copied[0].payload.buffer).not.toBe(bytes.buffer);
    expect(Array.from(copied[1].payload)).toEqual([4]);
  });

  test('a split frame is assembled once, into memory of its exact size (not a view of any chunk)', () => {
    fc.assert(
      fc.property(frameArb({ maxPayload: 400 }), fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1 }), (f, sizes) => {
        const chunks = cut(encode([f]), sizes);
        fc.pre(chunks.length > 1);
        const d = new FrameDecoder();
        const out = chunks.flatMap((c) => d.feed(c).frames);
        expect(out.length).toBe(1);
        expect(out[0].payload.byteLength).toBe(f.payload.length);
        for (const c of chunks) expect(out[0].payload.buffer).not.toBe(c.buffer);
        expect(Array.from(out[0].payload)).toEqual(Array.from(f.payload));
      }),
      { numRuns: 100 },
    );
  });

  test('wrong-player, offset and closed semantics', () => {
    const frames = [
      { type: 1, sequence: 0, playerId: 7, payload: new Uint8Array(2) },
      { type: 1, sequence: 1, playerId: 8, payload: new Uint8Array(2) },
    ];
    const d = new FrameDecoder({ playerId: 7 });
    const r = d.feed(encode(frames));
    expect(r.frames.length).toBe(1);
    expect(r.error?.toJSON()).toEqual({ code: 'wrong-player', offset: 14, playerId: 8, expected: 7 });
    expect(d.offset).toBe(14);
    expect(d.end()?.toJSON()).toEqual({ code: 'closed', offset: 14 });
    const clean = new FrameDecoder();
    clean.feed(encode(frames));
    expect(clean.offset).toBe(28);
    expect(clean.end()).toBeNull();
    expect(clean.feed(new Uint8Array(1)).error?.toJSON()).toEqual({ code: 'closed', offset: 28 });
    expect(() => new FrameDecoder({ playerId: -1 })).toThrow(RangeError);
    expect(() => new FrameDecoder({ types: [70000] })).toThrow(RangeError);
  });

  test('maxSize arbitrary stays in range', () => {
    fc.assert(fc.property(maxSizeArb(), (m) => m >= HEADER_SIZE && m <= 65535));
  });
});
