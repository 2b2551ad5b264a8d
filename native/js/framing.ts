// The native target's FramingApi: the C++ codec (native/framing) through the addon, behind the same
// CodecFramingApi the model uses with the TypeScript codec.
import { CodecFramingApi, type Codec } from '../../reference/src/framing/api.ts';
import { NativeFrameDecoder, loadNativeFraming, nativeDecodeBatch, nativeEncode, nativeEncodeBatch, nativeFramingStatus } from '../../reference/src/framing/native.ts';
import type { FramingFault } from '../../reference/src/target.ts';

export const nativeCodec: Codec = {
  newDecoder: (o) => new NativeFrameDecoder(o),
  encode: (frames) => nativeEncode(frames),
  encodeBatch: (frames, o) => nativeEncodeBatch(frames, o),
  decodeBatch: (payload, o) => nativeDecodeBatch(payload, o),
  writeAll: (bytes, script) => {
    const r = loadNativeFraming().writeAll(bytes, script);
    return { ...r, error: r.error as FramingFault | null };
  },
};

/** The native FramingApi, or undefined (with the reason) when the addon has no framing binding. */
export function nativeFramingApi(): CodecFramingApi | undefined {
  return nativeFramingStatus().available ? new CodecFramingApi(nativeCodec) : undefined;
}
