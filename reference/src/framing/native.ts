// The C++ framing codec (native/framing) through the addon's `framing` exports (native/addon/framing.cpp),
// behind the TypeScript codec's API: same options, same frames, same FramingErrors.
//
// Which addon: CPSPEC_NATIVE_ADDON=<path> if set, else by CPSPEC_NATIVE_BUILD (release (default), debug,
// asan, tsan) as in native/js/addon.ts: build/Release/cpspec_native.node for a release build.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DecodeBatchOptions, EncodeBatchOptions } from './batch.ts';
import { checkMaxSize, type DecoderOptions, type FeedResult, type StreamDecoder } from './decoder.ts';
import type { EncodeOptions } from './encoder.ts';
import { FramingError, framingErrorFrom, type Frame, type FramingErrorJSON, type TypeRegistry } from './wire.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const LAYOUT: Record<string, string> = {
  release: 'build/Release/cpspec_native.node',
  debug: 'build/Debug/cpspec_native.node',
  asan: 'build-asan/Release/cpspec_native.node',
  tsan: 'build-tsan/Release/cpspec_native.node',
};

interface RawResult {
  frames: Frame[];
  error: FramingErrorJSON | null;
  discarded: FramingErrorJSON[];
}

interface RawDecoder {
  feed(chunk: Uint8Array): RawResult;
  end(): FramingErrorJSON | null;
  setMaxSize(n: number): void;
  readonly closed: boolean;
  readonly offset: number;
  readonly buffered: number;
  readonly maxSize: number;
}

interface RawDecoderOptions {
  maxSize?: number;
  types?: number[];
  playerId?: number;
  discardTooLarge?: boolean;
}

/** The raw binding (exports.framing of the addon). */
export interface NativeFramingBinding {
  Decoder: new (options?: RawDecoderOptions) => RawDecoder;
  encode(frames: readonly Frame[], maxSize?: number): Uint8Array;
  encodeBatch(frames: readonly Frame[], options?: { compress?: boolean; level?: number }): Uint8Array;
  decodeBatch(payload: Uint8Array, options?: { maxDecompressed?: number; maxCount?: number; types?: number[] }): { frames: Frame[]; inflated: number };
  seqDiff(a: number, b: number): number;
  seqAfter(a: number, b: number): boolean;
  benchDecode(chunks: Uint8Array[], reps: number, options?: RawDecoderOptions & { copy?: boolean }): { frames: number; bytes: number; seconds: number; checksum: number };
  /** The C++ write_all against a scripted writer (see FramingApi.writeAll in reference/src/target.ts). */
  writeAll(bytes: Uint8Array, script: Array<number | 'again'>): {
    done: boolean;
    offset: number;
    error: ({ code: string; offset: number } & Record<string, unknown>) | null;
    written: Uint8Array;
    resumes: number;
  };
  errorCodes: string[];
  maxFrameSize: number;
  batchType: number;
}

/** The addon file the framing binding is loaded from. */
export function nativeAddonPath(): string {
  const explicit = process.env.CPSPEC_NATIVE_ADDON;
  if (explicit) return path.resolve(explicit);
  const variant = process.env.CPSPEC_NATIVE_BUILD || 'release';
  const rel = LAYOUT[variant];
  if (!rel) throw new Error(`CPSPEC_NATIVE_BUILD must be one of ${Object.keys(LAYOUT).join(', ')}, got '${variant}'`);
  return path.join(ROOT, rel);
}

let cached: { file: string; binding: NativeFramingBinding } | undefined;

/**
 * Loads the binding. Throws a clear Error when the addon is not built, cannot be loaded, or was built
 * without the framing exports (its module init does not call InitFraming).
 */
export function loadNativeFraming(): NativeFramingBinding {
  const file = nativeAddonPath();
  if (cached?.file === file) return cached.binding;
  if (!existsSync(file)) {
    throw new Error(`native framing: the addon is not built (${file} is missing): run \`npm run build:native\``);
  }
  let addon: { framing?: NativeFramingBinding };
  try {
    addon = createRequire(import.meta.url)(file) as { framing?: NativeFramingBinding };
  } catch (e) {
    throw new Error(`native framing: cannot load ${file}: ${(e as Error).message}`);
  }
  const binding = addon.framing;
  if (binding === undefined || typeof binding.Decoder !== 'function') {
    throw new Error(
      `native framing: the addon at ${file} has no framing exports: its module init (native/addon/addon.cpp) must call ` +
        'InitFraming(env, exports) from native/framing/framing_addon.h; rebuild with `npm run build:native`',
    );
  }
  cached = { file, binding };
  return binding;
}

/** Whether the binding can be loaded, and why not. */
export function nativeFramingStatus(): { available: true } | { available: false; reason: string } {
  try {
    loadNativeFraming();
    return { available: true };
  } catch (e) {
    return { available: false, reason: (e as Error).message };
  }
}

const toError = framingErrorFrom;

// Native errors thrown with codec codes become FramingErrors; argument errors ('invalid') pass through.
function rethrow(e: unknown): never {
  const o = e as { code?: unknown; offset?: unknown };
  if (o !== null && typeof o === 'object' && typeof o.code === 'string' && o.code !== 'invalid' && typeof o.offset === 'number') {
    throw framingErrorFrom(o as FramingErrorJSON);
  }
  throw e;
}

function typesArray(types: TypeRegistry | undefined): number[] | undefined {
  return types === undefined ? undefined : [...types];
}

/** The C++ decoder with FrameDecoder's interface. Payloads are always copies (one per frame). */
export class NativeFrameDecoder implements StreamDecoder {
  readonly #raw: RawDecoder;

  constructor(options: DecoderOptions = {}) {
    if (options.maxSize !== undefined) checkMaxSize(options.maxSize);
    const raw: RawDecoderOptions = {};
    if (options.maxSize !== undefined) raw.maxSize = options.maxSize;
    if (options.types !== undefined) raw.types = typesArray(options.types);
    if (options.playerId !== undefined) raw.playerId = options.playerId;
    if (options.discardTooLarge) raw.discardTooLarge = true;
    this.#raw = new (loadNativeFraming().Decoder)(raw);
  }

  feed(chunk: Uint8Array): FeedResult {
    const r = this.#raw.feed(chunk);
    return { frames: r.frames, error: r.error === null ? null : toError(r.error), discarded: r.discarded.map(toError) };
  }

  end(): FramingError | null {
    const e = this.#raw.end();
    return e === null ? null : toError(e);
  }

  setMaxSize(n: number): void {
    this.#raw.setMaxSize(checkMaxSize(n));
  }

  get closed(): boolean {
    return this.#raw.closed;
  }

  get offset(): number {
    return this.#raw.offset;
  }

  get buffered(): number {
    return this.#raw.buffered;
  }

  get maxSize(): number {
    return this.#raw.maxSize;
  }
}

export function nativeEncode(frames: readonly Frame[], options: EncodeOptions = {}): Uint8Array {
  const b = loadNativeFraming();
  try {
    return b.encode(frames, options.maxSize);
  } catch (e) {
    rethrow(e);
  }
}

export function nativeEncodeBatch(frames: readonly Frame[], options: EncodeBatchOptions = {}): Uint8Array {
  const b = loadNativeFraming();
  try {
    return b.encodeBatch(frames, { compress: options.compress === true, level: options.level ?? -1 });
  } catch (e) {
    rethrow(e);
  }
}

/**
 * decodeBatch in C++. `inflated` is how many bytes zlib produced (also on failure, as error.inflated):
 * what the compression-bomb tests measure.
 */
export function nativeDecodeBatchDetailed(payload: Uint8Array, options: DecodeBatchOptions = {}): { frames: Frame[]; inflated: number } {
  const b = loadNativeFraming();
  const raw: { maxDecompressed?: number; maxCount?: number; types?: number[] } = {};
  if (options.maxDecompressed !== undefined) raw.maxDecompressed = options.maxDecompressed;
  if (options.maxCount !== undefined) raw.maxCount = options.maxCount;
  if (options.types !== undefined) raw.types = typesArray(options.types);
  try {
    return b.decodeBatch(payload, raw);
  } catch (e) {
    const inflated = (e as { inflated?: number }).inflated;
    try {
      rethrow(e);
    } catch (err) {
      if (err instanceof FramingError && inflated !== undefined) (err as FramingError & { inflated?: number }).inflated = inflated;
      throw err;
    }
  }
}

export function nativeDecodeBatch(payload: Uint8Array, options: DecodeBatchOptions = {}): Frame[] {
  return nativeDecodeBatchDetailed(payload, options).frames;
}

export function nativeSeqDiff(a: number, b: number): number {
  return loadNativeFraming().seqDiff(a, b);
}

export function nativeSeqAfter(a: number, b: number): boolean {
  return loadNativeFraming().seqAfter(a, b);
}

/**
 * Decodes the chunk list `reps` times inside C++ (no per-chunk N-API crossing): for benchmarks. copy: each
 * payload is copied into an owning frame (else frames are views, as FrameDecoder's are).
 */
export function nativeBenchDecode(
  chunks: Uint8Array[],
  reps: number,
  options: DecoderOptions = {},
): { frames: number; bytes: number; seconds: number; checksum: number } {
  const raw: RawDecoderOptions & { copy?: boolean } = {};
  if (options.maxSize !== undefined) raw.maxSize = options.maxSize;
  if (options.copy) raw.copy = true;
  return loadNativeFraming().benchDecode(chunks, reps, raw);
}
