// reference/src/framing/native.ts: loading the binding (and the clear error when the addon lacks it), and
// the native decoder's API beside FrameDecoder's.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { FramingError, encode } from '../../reference/src/framing/index.ts';
import { NativeFrameDecoder, loadNativeFraming, nativeBenchDecode, nativeFramingStatus } from '../../reference/src/framing/native.ts';

const status = nativeFramingStatus();
if (!status.available) console.warn(`native framing API tests SKIPPED: ${status.reason}`);

function withAddon<T>(file: string, fn: () => T): T {
  const saved = process.env.CPSPEC_NATIVE_ADDON;
  process.env.CPSPEC_NATIVE_ADDON = file;
  try {
    return fn();
  } finally {
    if (saved === undefined) delete process.env.CPSPEC_NATIVE_ADDON;
    else process.env.CPSPEC_NATIVE_ADDON = saved;
  }
}

describe('loading the native framing binding', () => {
  test('a missing addon, or one without the framing exports, is a clear error', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cpspec-framing-addon-'));
    try {
      expect(() => withAddon(path.join(dir, 'missing.node'), loadNativeFraming)).toThrow(/addon is not built .*npm run build:native/);
      const fake = path.join(dir, 'fake.cjs');
      writeFileSync(fake, 'module.exports = { version: "0.1.0" };');
      expect(() => withAddon(fake, loadNativeFraming)).toThrow(/no framing exports.*InitFraming\(env, exports\)/);
      expect(withAddon(fake, nativeFramingStatus)).toEqual({ available: false, reason: expect.stringMatching(/InitFraming/) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!status.available)('the native decoder API', () => {
  test('feed/end/setMaxSize/closed/offset/buffered like FrameDecoder', () => {
    const bytes = encode([
      { type: 1, sequence: 2, playerId: 3, payload: new Uint8Array([9, 8, 7]) },
      { type: 4, sequence: 5, playerId: 6, payload: new Uint8Array(30) },
    ]);
    const d = new NativeFrameDecoder({ maxSize: 100 });
    expect(d.maxSize).toBe(100);
    const r = d.feed(bytes.subarray(0, 20));
    expect(r.error).toBeNull();
    expect(r.frames).toEqual([{ type: 1, sequence: 2, playerId: 3, payload: new Uint8Array([9, 8, 7]) }]);
    expect(d.buffered).toBe(5);
    d.setMaxSize(20);
    expect(() => d.setMaxSize(11)).toThrow(RangeError);
    const r2 = d.feed(bytes.subarray(20));
    expect(r2.frames.length).toBe(1);
    expect(d.offset).toBe(bytes.length);
    expect(d.end()).toBeNull();
    expect(d.closed).toBe(true);
    const closed = d.feed(new Uint8Array(1)).error;
    expect(closed).toBeInstanceOf(FramingError);
    expect(closed?.toJSON()).toEqual({ code: 'closed', offset: bytes.length });
  });

  test('errors come back as FramingErrors with the same details', () => {
    const d = new NativeFrameDecoder({ types: new Set([1]) });
    const r = d.feed(encode([{ type: 2, sequence: 0, playerId: 0, payload: new Uint8Array(0) }]));
    expect(r.error).toBeInstanceOf(FramingError);
    expect(r.error?.toJSON()).toEqual({ code: 'unknown-type', offset: 0, type: 2 });
    expect(() => new NativeFrameDecoder({ maxSize: 5 })).toThrow(RangeError);
  });

  test('benchDecode decodes a pre-chunked stream inside C++', () => {
    const frames = Array.from({ length: 100 }, (_, i) => ({ type: 1, sequence: i, playerId: 0, payload: new Uint8Array(64) }));
    const bytes = encode(frames);
    const chunks = [bytes.subarray(0, 1000), bytes.subarray(1000, 1001), bytes.subarray(1001)];
    const r = nativeBenchDecode(chunks, 3);
    expect(r.frames).toBe(300);
    expect(r.bytes).toBe(bytes.length * 3);
    expect(r.seconds).toBeGreaterThan(0);
    expect(() => nativeBenchDecode([bytes.subarray(0, 5)], 1)).toThrow(expect.objectContaining({ code: 'truncated' }));
  });

  test('the binding exposes the same error codes as the TS codec', async () => {
    const { ERROR_CODES } = await import('../../reference/src/framing/wire.ts');
    expect(loadNativeFraming().errorCodes).toEqual([...ERROR_CODES]);
  });
});
