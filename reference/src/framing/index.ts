// The packet framing codec (TypeScript reference). Wire format and errors: FRAMING.md. The C++ twin is in
// native/framing; ./native.ts wraps it behind this same API.
export {
  BATCH_HEADER_SIZE,
  BATCH_TYPE,
  ERROR_CODES,
  FramingError,
  HEADER_SIZE,
  MAX_FRAME_SIZE,
  MAX_PAYLOAD_SIZE,
  framingErrorFrom,
  type Frame,
  type FramingErrorCode,
  type FramingErrorDetails,
  type FramingErrorJSON,
  type TypeRegistry,
} from './wire.ts';
export { FrameDecoder, decode, type DecoderOptions, type FeedResult, type StreamDecoder } from './decoder.ts';
export { encode, encodeFrame, writeAll, writeAllAsync, type EncodeOptions, type WriteProgress, type Writer } from './encoder.ts';
export {
  BATCH_FLAG_COMPRESSED,
  DEFAULT_MAX_DECOMPRESSED,
  INFLATE_STEP_MAX,
  INFLATE_STEP_MIN,
  decodeBatch,
  encodeBatch,
  inflatePlan,
  type DecodeBatchOptions,
  type EncodeBatchOptions,
} from './batch.ts';
export { seqAdd, seqAfter, seqBefore, seqDiff, seqNext } from './sequence.ts';
