// The FramingApi of the target interface over a codec: the model serves it with the TypeScript codec, the
// native target with the C++ one (native/js/framing.ts). Codec errors become FramingFault data; bad
// arguments become TargetError('invalid').
import { TargetError, type DecoderId, type FramingApi, type FramingFault, type WireFrame } from '../target.ts';
import { decodeBatch, encodeBatch, type DecodeBatchOptions, type EncodeBatchOptions } from './batch.ts';
import { FrameDecoder, type DecoderOptions, type StreamDecoder } from './decoder.ts';
import { encode, writeAll, type Writer } from './encoder.ts';
import { FramingError, HEADER_SIZE, MAX_FRAME_SIZE, type Frame } from './wire.ts';

export interface ScriptedWrite {
  done: boolean;
  offset: number;
  error: FramingFault | null;
  written: Uint8Array;
  resumes: number;
}

export interface Codec {
  newDecoder(options: DecoderOptions): StreamDecoder;
  encode(frames: readonly Frame[]): Uint8Array;
  encodeBatch(frames: readonly Frame[], options: EncodeBatchOptions): Uint8Array;
  /** Throws FramingError. */
  decodeBatch(payload: Uint8Array, options: DecodeBatchOptions): Frame[];
  writeAll(bytes: Uint8Array, script: Array<number | 'again'>): ScriptedWrite;
}

function fault(e: FramingError): FramingFault {
  return e.toJSON() as unknown as FramingFault;
}

function asFrames(frames: unknown): Frame[] {
  if (!Array.isArray(frames)) throw new TargetError('invalid', 'frames must be an array');
  return frames as Frame[];
}

/** The TypeScript codec's scripted writeAll (the C++ one is bound in native/addon/framing.cpp). */
export function tsWriteAll(bytes: Uint8Array, script: Array<number | 'again'>): ScriptedWrite {
  const chunks: Uint8Array[] = [];
  let next = 0;
  const writer: Writer = (data) => {
    if (next >= script.length) return 'again';
    const k = script[next++];
    if (k === 'again' || k === 0) return k;
    const n = Math.min(k, data.length);
    chunks.push(data.slice(0, n));
    return n;
  };
  let resumes = 0;
  const out = (done: boolean, offset: number, error: FramingFault | null): ScriptedWrite => ({
    done,
    offset,
    error,
    written: Buffer.concat(chunks),
    resumes,
  });
  try {
    let p = writeAll(writer, bytes, 0);
    while (!p.done && next < script.length) {
      resumes++;
      p = writeAll(writer, bytes, p.offset);
    }
    return out(p.done, p.offset, null);
  } catch (e) {
    if (e instanceof FramingError) return out(false, e.offset, fault(e));
    throw e;
  }
}

export const tsCodec: Codec = {
  newDecoder: (o) => new FrameDecoder(o),
  encode: (frames) => encode(frames),
  encodeBatch: (frames, o) => encodeBatch(frames, o),
  decodeBatch: (payload, o) => decodeBatch(payload, o),
  writeAll: tsWriteAll,
};

function checkScript(script: unknown): Array<number | 'again'> {
  if (!Array.isArray(script) || !script.every((x) => x === 'again' || (Number.isInteger(x) && x >= 0))) {
    throw new TargetError('invalid', 'script must be an array of byte counts (>= 0) and "again"');
  }
  return script;
}

function checkBytes(b: unknown, what: string): Uint8Array {
  if (!(b instanceof Uint8Array)) throw new TargetError('invalid', `${what} must be a Uint8Array`);
  return b;
}

function checkMaxSize(n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < HEADER_SIZE || n > MAX_FRAME_SIZE) {
    throw new TargetError('invalid', `maxSize must be an integer in ${HEADER_SIZE}..${MAX_FRAME_SIZE}, got ${String(n)}`);
  }
  return n;
}

export class CodecFramingApi implements FramingApi {
  private readonly codec: Codec;
  private readonly decoders = new Map<DecoderId, StreamDecoder>();
  private next = 1;

  constructor(codec: Codec) {
    this.codec = codec;
  }

  async createDecoder(options: { maxSize?: number; types?: number[] } = {}): Promise<DecoderId> {
    const o: DecoderOptions = {};
    if (options.maxSize !== undefined) o.maxSize = checkMaxSize(options.maxSize);
    if (options.types !== undefined) {
      if (!Array.isArray(options.types) || !options.types.every((t) => Number.isInteger(t) && t >= 0 && t <= 0xffff)) {
        throw new TargetError('invalid', 'types must be an array of u16 frame types');
      }
      o.types = options.types;
    }
    const id = this.next++;
    this.decoders.set(id, this.codec.newDecoder(o));
    return id;
  }

  async feed(decoder: DecoderId, chunk: Uint8Array): Promise<{ frames: WireFrame[]; error: FramingFault | null }> {
    const r = this.get(decoder).feed(checkBytes(chunk, 'chunk'));
    return { frames: r.frames, error: r.error ? fault(r.error) : null };
  }

  async setMaxSize(decoder: DecoderId, maxSize: number): Promise<void> {
    this.get(decoder).setMaxSize(checkMaxSize(maxSize));
  }

  async end(decoder: DecoderId): Promise<FramingFault | null> {
    const e = this.get(decoder).end();
    return e ? fault(e) : null;
  }

  async destroyDecoder(decoder: DecoderId): Promise<void> {
    this.get(decoder);
    this.decoders.delete(decoder);
  }

  async encode(frames: WireFrame[]): Promise<Uint8Array> {
    try {
      return this.codec.encode(asFrames(frames));
    } catch (e) {
      throw invalid(e);
    }
  }

  async encodeBatch(frames: WireFrame[], options: { compress?: boolean; level?: number } = {}): Promise<Uint8Array> {
    try {
      return this.codec.encodeBatch(asFrames(frames), options);
    } catch (e) {
      throw invalid(e);
    }
  }

  async decodeBatch(payload: Uint8Array, options: { maxDecompressed?: number; maxCount?: number } = {}): Promise<{ frames: WireFrame[]; error: FramingFault | null }> {
    try {
      return { frames: this.codec.decodeBatch(checkBytes(payload, 'payload'), options), error: null };
    } catch (e) {
      if (e instanceof FramingError) return { frames: [], error: fault(e) };
      throw invalid(e);
    }
  }

  async writeAll(bytes: Uint8Array, script: Array<number | 'again'>): Promise<ScriptedWrite> {
    return this.codec.writeAll(checkBytes(bytes, 'bytes'), checkScript(script));
  }

  reset(): void {
    this.decoders.clear();
    this.next = 1;
  }

  private get(id: DecoderId): StreamDecoder {
    const d = this.decoders.get(id);
    if (!d) throw new TargetError('invalid', `no decoder with handle ${String(id)}`);
    return d;
  }
}

function invalid(e: unknown): TargetError {
  if (e instanceof TargetError) return e;
  const msg = e instanceof FramingError ? `${e.code} at offset ${e.offset}: ${e.message}` : e instanceof Error ? e.message : String(e);
  return new TargetError('invalid', msg);
}
