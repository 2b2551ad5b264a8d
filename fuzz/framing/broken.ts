// Deliberately broken decoders, to prove that the properties catch real framing bugs and shrink them to a
// small counterexample (test/framing/broken.test.ts). Each is a naive buffering decoder that is correct
// except for one off-by-one on the size field. (Not for scenarios with limit changes: it re-reads pending
// headers under the current limit.)
import { FramingError, HEADER_SIZE, MAX_FRAME_SIZE, readU16, readU32, type Frame } from '../../reference/src/framing/wire.ts';
import type { DecoderOptions, FeedResult, StreamDecoder } from '../../reference/src/framing/decoder.ts';
import { CodecFramingApi, tsCodec } from '../../reference/src/framing/api.ts';
import type { Target } from '../../reference/src/target.ts';

export type Bug =
  /** Rejects size == 12 as "smaller than the header" (`<=` for `<`): header-only frames break. */
  | 'header-only-rejected'
  /** Reads the payload as size - 11 bytes (the size field taken as excluding all but one header byte). */
  | 'payload-one-too-long'
  /** No bug: the same naive decoder, correct (a control for the tests). */
  | 'none';

export class BrokenDecoder implements StreamDecoder {
  readonly #bug: Bug;
  readonly #options: DecoderOptions;
  #maxSize: number;
  #buf = new Uint8Array(0);
  #base = 0; // stream offset of #buf[0]
  #skip = 0;
  #skipStart = 0;
  #skipSize = 0;
  #closedAt = -1;

  constructor(bug: Bug, options: DecoderOptions = {}) {
    this.#bug = bug;
    this.#options = options;
    this.#maxSize = options.maxSize ?? MAX_FRAME_SIZE;
  }

  get closed(): boolean {
    return this.#closedAt >= 0;
  }

  setMaxSize(n: number): void {
    this.#maxSize = n;
  }

  feed(chunk: Uint8Array): FeedResult {
    if (this.#closedAt >= 0) return { frames: [], error: new FramingError('closed', this.#closedAt), discarded: [] };
    const joined = new Uint8Array(this.#buf.length + chunk.length);
    joined.set(this.#buf);
    joined.set(chunk, this.#buf.length);
    let buf = joined;
    const frames: Frame[] = [];
    const discarded: FramingError[] = [];
    const fail = (e: FramingError): FeedResult => {
      this.#closedAt = e.offset;
      return { frames, error: e, discarded };
    };
    for (;;) {
      if (this.#skip > 0) {
        const take = Math.min(this.#skip, buf.length);
        this.#skip -= take;
        this.#base += take;
        buf = buf.subarray(take);
        if (this.#skip > 0) break;
      }
      if (buf.length < 2) break;
      const size = readU16(buf, 0);
      const tooSmall = this.#bug === 'header-only-rejected' ? size <= HEADER_SIZE : size < HEADER_SIZE;
      if (tooSmall) return fail(new FramingError('size-too-small', this.#base, { size }));
      if (size > this.#maxSize) {
        const e = new FramingError('size-too-large', this.#base, { size, maxSize: this.#maxSize });
        if (!this.#options.discardTooLarge) return fail(e);
        discarded.push(e);
        this.#skip = size;
        this.#skipStart = this.#base;
        this.#skipSize = size;
        continue;
      }
      if (buf.length < 4) break;
      const type = readU16(buf, 2);
      if (this.#options.types !== undefined && !new Set(this.#options.types).has(type)) return fail(new FramingError('unknown-type', this.#base, { type }));
      if (buf.length < HEADER_SIZE) break;
      const playerId = readU32(buf, 8);
      if (this.#options.playerId !== undefined && playerId !== this.#options.playerId) {
        return fail(new FramingError('wrong-player', this.#base, { playerId, expected: this.#options.playerId }));
      }
      const total = this.#bug === 'payload-one-too-long' ? size + 1 : size;
      if (buf.length < total) break;
      frames.push({ type, sequence: readU32(buf, 4), playerId, payload: buf.slice(HEADER_SIZE, total) });
      buf = buf.subarray(total);
      this.#base += total;
    }
    this.#buf = buf.slice();
    return { frames, error: null, discarded };
  }

  end(): FramingError | null {
    if (this.#closedAt >= 0) return new FramingError('closed', this.#closedAt);
    const held = this.#buf.length;
    if (this.#skip > 0) {
      const e = new FramingError('truncated', this.#skipStart, { dangling: this.#skipSize - this.#skip });
      this.#closedAt = e.offset;
      return e;
    }
    if (held > 0) {
      const e = new FramingError('truncated', this.#base, { dangling: held });
      this.#closedAt = e.offset;
      return e;
    }
    this.#closedAt = this.#base;
    return null;
  }
}

/**
 * A target whose framing codec decodes with a BrokenDecoder (everything else is `inner`'s): what the
 * framing suite of `cpspec fuzz` must catch (test/fuzz/framing.test.ts).
 */
export function brokenFramingTarget(inner: Target, bug: Bug): Target {
  const framing = new CodecFramingApi({ ...tsCodec, newDecoder: (o) => new BrokenDecoder(bug, o) });
  return new Proxy(inner, {
    get(t, prop, receiver) {
      if (prop === 'framing') return framing;
      if (prop === 'reset') {
        return async () => {
          framing.reset();
          await t.reset();
        };
      }
      const v = Reflect.get(t, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}
