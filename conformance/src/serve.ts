// The driver side of conformance/PROTOCOL.md over any Target: lets an in-process implementation (the
// reference model, a JS port) be checked as an external driver, and is the reference for driver authors.
import type { Readable, Writable } from 'node:stream';
import {
  STATUSES,
  HARNESS_THREAD,
  type Packet,
  type PostOptions,
  type SocketFaults,
  type Status,
  type Target,
  type Trace,
  type WireFrame,
} from '../../reference/src/target.ts';
import { LineTooLongError } from './lines.ts';
import { PROTOCOL_VERSION } from './version.ts';

const ERR = { parse: -32700, request: -32600, method: -32601, params: -32602, target: -32000 } as const;

class RpcFailure extends Error {
  readonly code: number;
  readonly data: unknown;
  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.code = code;
    this.data = data;
  }
}

export interface ServeOptions {
  /** Name and version answered in cpspec.hello (default: the target's info()). */
  name?: string;
  version?: string;
  /** Called when a `shutdown` request was answered (the caller usually exits). */
  onShutdown?: () => void;
}

type Params = Record<string, unknown>;

function int(p: Params, name: string): number {
  const v = p[name];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new RpcFailure(ERR.params, `"${name}" must be a number`);
  return v;
}

function optNum(p: Params, name: string, dflt: number): number {
  return p[name] === undefined ? dflt : int(p, name);
}

function traceToJson(t: Trace): object {
  return {
    threads: t.threads,
    t: Array.from(t.t),
    thread: Array.from(t.thread, (x) => (x === HARNESS_THREAD ? -1 : x)),
    ev: Array.from(t.ev),
    key: Array.from(t.key),
    unfinished: t.unfinished,
    leftover: t.leftover,
  };
}

type PacketJson = Omit<Packet, 'data'> & { data?: string };

/** A packet on the wire: the port fields, plus op, socket, buffer and data (base64) for socket completions. */
function packetJson(p: Packet): PacketJson {
  const j: PacketJson = { key: p.key, bytes: p.bytes, token: p.token, status: p.status, nativeError: p.nativeError };
  if (p.op !== undefined) j.op = p.op;
  if (p.socket !== undefined) j.socket = p.socket;
  if (p.buffer !== undefined) j.buffer = p.buffer;
  if (p.data !== undefined) j.data = Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength).toString('base64');
  return j;
}

function optStr(p: Params, name: string): string | undefined {
  const v = p[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new RpcFailure(ERR.params, `"${name}" must be a string`);
  return v;
}

function optBool(p: Params, name: string): boolean | undefined {
  const v = p[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new RpcFailure(ERR.params, `"${name}" must be a boolean`);
  return v;
}

/**
 * Decodes standard padded base64, or undefined when `s` is not that. Buffer.from skips characters outside
 * the alphabet, so a decoded length short of what the text's length implies means the text was not base64.
 */
function fromBase64(s: string): Buffer | undefined {
  if (s.length % 4 !== 0) return undefined;
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  const b = Buffer.from(s, 'base64');
  if (b.length !== (s.length / 4) * 3 - pad) return undefined;
  if (s.indexOf('-') >= 0 || s.indexOf('_') >= 0) return undefined; // base64url characters Buffer accepts
  return b;
}

/**
 * Splits the request stream into lines on the bytes (a socket.send line can hold megabytes: joining the
 * chunks once per line keeps that linear).
 */
class ByteLines {
  private parts: Buffer[] = [];
  private size = 0;
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  push(chunk: Buffer | string): string[] {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(10, start);
      if (nl < 0) break;
      const piece = buf.subarray(start, nl);
      const whole = this.parts.length === 0 ? piece : Buffer.concat([...this.parts, piece]);
      this.parts = [];
      this.size = 0;
      let line = whole.toString('utf8');
      if (line.endsWith('\r')) line = line.slice(0, -1);
      lines.push(line);
      start = nl + 1;
    }
    if (start < buf.length) {
      const rest = buf.subarray(start);
      this.size += rest.length;
      if (this.size > this.max) {
        this.parts = [];
        this.size = 0;
        throw new LineTooLongError(`line longer than ${this.max} characters without a newline`);
      }
      this.parts.push(rest);
    }
    return lines;
  }
  end(): string | undefined {
    const rest = Buffer.concat(this.parts).toString('utf8');
    this.parts = [];
    this.size = 0;
    return rest.length > 0 ? rest : undefined;
  }
}

/** socket.* over target.sockets (PROTOCOL.md); -32601 when the target has no sockets. */
async function socketMethod(target: Target, method: string, p: Params): Promise<unknown> {
  const s = target.sockets;
  if (!s) throw new RpcFailure(ERR.method, `method not found: ${method} (the target has no sockets)`);
  switch (method) {
    case 'socket.listen': {
      const opts: { key: number; host?: string; bindPort?: number; backlog?: number } = { key: int(p, 'key') };
      const host = optStr(p, 'host');
      if (host !== undefined) opts.host = host;
      if (p.bindPort !== undefined) opts.bindPort = int(p, 'bindPort');
      if (p.backlog !== undefined) opts.backlog = int(p, 'backlog');
      return await s.listen(int(p, 'port'), opts);
    }
    case 'socket.accept':
      return { op: await s.accept(int(p, 'socket'), { token: int(p, 'token'), newKey: int(p, 'newKey') }) };
    case 'socket.connect':
      return await s.connect(int(p, 'port'), { key: int(p, 'key'), token: int(p, 'token'), host: optStr(p, 'host') ?? '127.0.0.1', remotePort: int(p, 'remotePort') });
    case 'socket.recv': {
      const opts: { length: number; token: number; pool?: number } = { length: int(p, 'length'), token: int(p, 'token') };
      if (p.pool !== undefined) opts.pool = int(p, 'pool');
      return { op: await s.recv(int(p, 'socket'), opts) };
    }
    case 'socket.send': {
      const data = p.data;
      const b = typeof data === 'string' ? fromBase64(data) : undefined;
      if (b === undefined) throw new RpcFailure(ERR.params, '"data" must be a base64 string');
      const opts: { token: number; partial?: boolean } = { token: int(p, 'token') };
      const partial = optBool(p, 'partial');
      if (partial !== undefined) opts.partial = partial;
      return { op: await s.send(int(p, 'socket'), new Uint8Array(b.buffer, b.byteOffset, b.byteLength), opts) };
    }
    case 'socket.shutdown': {
      const how = p.how;
      if (how !== 'send' && how !== 'recv' && how !== 'both') throw new RpcFailure(ERR.params, '"how" must be "send", "recv" or "both"');
      await s.shutdown(int(p, 'socket'), how);
      return {};
    }
    case 'socket.close': {
      const abortive = optBool(p, 'abortive');
      await s.close(int(p, 'socket'), abortive === undefined ? {} : { abortive });
      return {};
    }
    case 'socket.cancel':
      return { result: await s.cancel(int(p, 'socket'), p.op === undefined ? undefined : int(p, 'op')) };
    case 'socket.setBuffers': {
      const sizes: { send?: number; recv?: number } = {};
      if (p.send !== undefined) sizes.send = int(p, 'send');
      if (p.recv !== undefined) sizes.recv = int(p, 'recv');
      await s.setBuffers(int(p, 'socket'), sizes);
      return {};
    }
    case 'socket.setFaults': {
      const faults: SocketFaults = {};
      if (p.maxBytesPerCall !== undefined) faults.maxBytesPerCall = int(p, 'maxBytesPerCall');
      if (p.failNth !== undefined) {
        const f = p.failNth as Params;
        if (typeof f !== 'object' || f === null || Array.isArray(f)) throw new RpcFailure(ERR.params, '"failNth" must be an object');
        if (f.call !== 'send' && f.call !== 'recv') throw new RpcFailure(ERR.params, '"failNth.call" must be "send" or "recv"');
        faults.failNth = { call: f.call, n: int(f, 'n'), errno: int(f, 'errno') };
      }
      await s.setFaults(int(p, 'socket'), faults);
      return {};
    }
    case 'socket.limitSessions': {
      if (!s.limitSessions) throw new RpcFailure(ERR.method, 'method not found: socket.limitSessions (the target has no session limits)');
      const opts: { max: number; fullMessage?: Uint8Array } = { max: int(p, 'max') };
      if (p.fullMessage !== undefined) {
        const b = typeof p.fullMessage === 'string' ? fromBase64(p.fullMessage) : undefined;
        if (b === undefined) throw new RpcFailure(ERR.params, '"fullMessage" must be a base64 string');
        opts.fullMessage = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      }
      await s.limitSessions(int(p, 'socket'), opts);
      return {};
    }
    case 'socket.sessionStats':
      if (!s.sessionStats) throw new RpcFailure(ERR.method, 'method not found: socket.sessionStats (the target has no session limits)');
      return await s.sessionStats(int(p, 'socket'));
    default:
      throw new RpcFailure(ERR.method, `method not found: ${method}`);
  }
}

const FRAMING_METHODS = new Set([
  'framing.createDecoder',
  'framing.feed',
  'framing.setMaxSize',
  'framing.end',
  'framing.destroyDecoder',
  'framing.encode',
  'framing.encodeBatch',
  'framing.decodeBatch',
  'framing.writeAll',
]);

function b64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

function bytesParam(p: Params, name: string): Uint8Array {
  const v = p[name];
  const b = typeof v === 'string' ? fromBase64(v) : undefined;
  if (b === undefined) throw new RpcFailure(ERR.params, `"${name}" must be a base64 string`);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function framesParam(p: Params): WireFrame[] {
  if (!Array.isArray(p.frames)) throw new RpcFailure(ERR.params, '"frames" must be an array');
  return p.frames.map((f, i) => {
    if (typeof f !== 'object' || f === null || Array.isArray(f)) throw new RpcFailure(ERR.params, `"frames[${i}]" must be an object`);
    const q = f as Params;
    // Field values are the codec's to judge (it rejects them 'invalid'); only the JSON types are checked here.
    return { type: int(q, 'type'), sequence: int(q, 'sequence'), playerId: int(q, 'playerId'), payload: bytesParam(q, 'payload') };
  });
}

function framesJson(frames: WireFrame[]): object[] {
  return frames.map((f) => ({ type: f.type, sequence: f.sequence, playerId: f.playerId, payload: b64(f.payload) }));
}

/** framing.* over target.framing (PROTOCOL.md, "Framing"); -32601 when the target has no framing. */
async function framingMethod(target: Target, method: string, p: Params): Promise<unknown> {
  const f = target.framing;
  if (!f) throw new RpcFailure(ERR.method, `method not found: ${method} (the target has no framing)`);
  switch (method) {
    case 'framing.createDecoder': {
      const o: { maxSize?: number; types?: number[] } = {};
      if (p.maxSize !== undefined) o.maxSize = int(p, 'maxSize');
      if (p.types !== undefined) {
        if (!Array.isArray(p.types)) throw new RpcFailure(ERR.params, '"types" must be an array');
        o.types = p.types as number[];
      }
      return { decoder: await f.createDecoder(o) };
    }
    case 'framing.feed': {
      const r = await f.feed(int(p, 'decoder'), bytesParam(p, 'data'));
      return { frames: framesJson(r.frames), error: r.error };
    }
    case 'framing.setMaxSize':
      await f.setMaxSize(int(p, 'decoder'), int(p, 'maxSize'));
      return {};
    case 'framing.end':
      return { error: await f.end(int(p, 'decoder')) };
    case 'framing.destroyDecoder':
      await f.destroyDecoder(int(p, 'decoder'));
      return {};
    case 'framing.encode':
      return { data: b64(await f.encode(framesParam(p))) };
    case 'framing.encodeBatch': {
      const o: { compress?: boolean; level?: number } = {};
      const compress = optBool(p, 'compress');
      if (compress !== undefined) o.compress = compress;
      if (p.level !== undefined) o.level = int(p, 'level');
      return { data: b64(await f.encodeBatch(framesParam(p), o)) };
    }
    case 'framing.decodeBatch': {
      const o: { maxDecompressed?: number; maxCount?: number } = {};
      if (p.maxDecompressed !== undefined) o.maxDecompressed = int(p, 'maxDecompressed');
      if (p.maxCount !== undefined) o.maxCount = int(p, 'maxCount');
      const r = await f.decodeBatch(bytesParam(p, 'data'), o);
      return { frames: framesJson(r.frames), error: r.error };
    }
    case 'framing.writeAll': {
      if (!Array.isArray(p.script) || !p.script.every((x) => x === 'again' || (Number.isSafeInteger(x) && (x as number) >= 0))) {
        throw new RpcFailure(ERR.params, '"script" must be an array of byte counts (safe integers >= 0) and "again"');
      }
      const r = await f.writeAll(bytesParam(p, 'data'), p.script as Array<number | 'again'>);
      return { done: r.done, offset: r.offset, error: r.error, written: b64(r.written), resumes: r.resumes };
    }
    default:
      throw new RpcFailure(ERR.method, `method not found: ${method}`);
  }
}

async function dispatch(target: Target, method: string, p: Params): Promise<unknown> {
  switch (method) {
    case 'info':
      return await target.info();
    case 'reset':
      await target.reset();
      return {};
    case 'port.create':
      return { port: await target.createPort(int(p, 'concurrency')) };
    case 'port.post': {
      const status = p.status === undefined ? 'ok' : p.status;
      if (typeof status !== 'string' || !(STATUSES as readonly string[]).includes(status)) throw new RpcFailure(ERR.params, `"status" must be one of ${STATUSES.join(', ')}`);
      const packet: PostOptions = {
        key: int(p, 'key'),
        bytes: optNum(p, 'bytes', 0),
        token: optNum(p, 'token', 0),
        status: status as Status,
        nativeError: optNum(p, 'nativeError', 0),
      };
      await target.post(int(p, 'port'), packet);
      return {};
    }
    case 'port.dequeue': {
      const r = await target.dequeue(int(p, 'port'), int(p, 'timeoutMs'));
      return r.kind === 'packet' ? { kind: 'packet', packet: packetJson(r.packet) } : { kind: r.kind };
    }
    case 'port.dequeueMany': {
      const r = await target.dequeueMany(int(p, 'port'), int(p, 'max'), int(p, 'timeoutMs'));
      return r.kind === 'packets' ? { kind: 'packets', packets: r.packets.map(packetJson) } : { kind: r.kind };
    }
    case 'port.close':
      return { packets: (await target.closePort(int(p, 'port'))).map(packetJson) };
    case 'workers.run': {
      if (!Array.isArray(p.programs)) throw new RpcFailure(ERR.params, '"programs" must be an array');
      const options = p.options === undefined || p.options === null ? undefined : p.options;
      if (options !== undefined && typeof options !== 'object') throw new RpcFailure(ERR.params, '"options" must be an object');
      return traceToJson(await target.runWorkers(int(p, 'port'), p.programs, options as object));
    }
    case 'pool.create':
    case 'pool.acquire':
    case 'pool.release':
    case 'pool.stats':
    case 'pool.destroy': {
      const pools = target.pools;
      if (!pools) throw new RpcFailure(ERR.method, `method not found: ${method} (the target has no pools)`);
      if (method === 'pool.create') return { pool: await pools.createBufferPool({ bufferSize: int(p, 'bufferSize'), count: int(p, 'count') }) };
      if (method === 'pool.acquire') return await pools.acquireBuffer(int(p, 'pool'), optNum(p, 'waitMs', 0));
      if (method === 'pool.release') return { result: await pools.releaseBuffer(int(p, 'pool'), int(p, 'buffer')) };
      if (method === 'pool.stats') return await pools.poolStats(int(p, 'pool'));
      await pools.destroyBufferPool(int(p, 'pool'));
      return {};
    }
    default:
      if (method.startsWith('socket.')) return await socketMethod(target, method, p);
      if (FRAMING_METHODS.has(method)) return await framingMethod(target, method, p);
      throw new RpcFailure(ERR.method, `method not found: ${method}`);
  }
}

function errorObject(e: unknown): { code: number; message: string; data?: unknown } {
  if (e instanceof RpcFailure) return e.data === undefined ? { code: e.code, message: e.message } : { code: e.code, message: e.message, data: e.data };
  const te = e as { code?: unknown; nativeError?: unknown };
  if (e instanceof Error && e.name === 'TargetError' && typeof te.code === 'string') {
    return { code: ERR.target, message: e.message, data: { code: te.code, nativeError: typeof te.nativeError === 'number' ? te.nativeError : 0 } };
  }
  return { code: ERR.target, message: e instanceof Error ? `${e.name}: ${e.message}` : String(e), data: { code: 'internal', nativeError: 0 } };
}

/**
 * Serves `target` on a line-delimited JSON-RPC stream until the input ends or a `shutdown` request is
 * answered. Requests are served concurrently. Resolves when done (after disposing of the target).
 */
export function serveTarget(target: Target, input: Readable, output: Writable, opts: ServeOptions = {}): Promise<void> {
  return new Promise<void>((resolveDone) => {
    const splitter = new ByteLines(64 * 1024 * 1024);
    let finished = false;
    const write = (msg: object) => {
      if (!finished || (msg as { id?: unknown }).id !== undefined) output.write(`${JSON.stringify(msg)}\n`);
    };
    const finish = async () => {
      if (finished) return;
      finished = true;
      input.off('data', onData);
      try {
        await target.dispose();
      } catch {
        /* ending anyway */
      }
      resolveDone();
    };
    const handle = async (line: string) => {
      if (line.trim().length === 0) return;
      let req: unknown;
      try {
        req = JSON.parse(line);
      } catch {
        write({ jsonrpc: '2.0', id: null, error: { code: ERR.parse, message: 'parse error: the line is not JSON' } });
        return;
      }
      const r = req as { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: unknown };
      const id = typeof r === 'object' && r !== null && (typeof r.id === 'number' || typeof r.id === 'string') ? r.id : null;
      if (typeof r !== 'object' || r === null || Array.isArray(r) || r.jsonrpc !== '2.0' || typeof r.method !== 'string' || id === null) {
        write({ jsonrpc: '2.0', id, error: { code: ERR.request, message: 'invalid request' } });
        return;
      }
      const params = r.params === undefined ? {} : r.params;
      if (typeof params !== 'object' || params === null || Array.isArray(params)) {
        write({ jsonrpc: '2.0', id, error: { code: ERR.params, message: 'params must be an object' } });
        return;
      }
      try {
        let result: unknown;
        if (r.method === 'cpspec.hello') {
          const proto = (params as Params).protocol;
          if (proto !== PROTOCOL_VERSION) {
            throw new RpcFailure(ERR.target, `this driver speaks protocol ${PROTOCOL_VERSION}, not ${String(proto)}`, { code: 'unsupported', nativeError: 0 });
          }
          const info = opts.name && opts.version ? undefined : await target.info();
          result = { protocol: PROTOCOL_VERSION, name: opts.name ?? info!.name, version: opts.version ?? info!.version };
        } else if (r.method === 'shutdown') {
          write({ jsonrpc: '2.0', id, result: {} });
          opts.onShutdown?.();
          await finish();
          return;
        } else {
          result = await dispatch(target, r.method, params as Params);
        }
        write({ jsonrpc: '2.0', id, result });
      } catch (e) {
        write({ jsonrpc: '2.0', id, error: errorObject(e) });
      }
    };
    const onData = (chunk: Buffer | string) => {
      let lines: string[];
      try {
        lines = splitter.push(chunk);
      } catch (e) {
        if (e instanceof LineTooLongError) {
          write({ jsonrpc: '2.0', id: null, error: { code: ERR.parse, message: e.message } });
          void finish();
          return;
        }
        throw e;
      }
      for (const l of lines) void handle(l);
    };
    input.on('data', onData);
    input.on('end', () => {
      const rest = splitter.end();
      if (rest !== undefined) void handle(rest);
      void finish();
    });
    input.on('error', () => void finish());
  });
}
