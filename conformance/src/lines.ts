// Newline-delimited text framing shared by the driver client and the driver server.
import { StringDecoder } from 'node:string_decoder';

export class LineTooLongError extends Error {}

/**
 * Splits a byte stream into lines (without the trailing "\n" or "\r\n"), decoding UTF-8 across chunk
 * boundaries. A line longer than maxLineChars is an error (a peer that never sends a newline must not make
 * us buffer without limit).
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private buffered = '';
  private readonly maxLineChars: number;

  constructor(maxLineChars = 256 * 1024 * 1024) {
    this.maxLineChars = maxLineChars;
  }

  /** Feeds a chunk; returns the complete lines it finished. Throws LineTooLongError. */
  push(chunk: Buffer | string): string[] {
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const lines: string[] = [];
    let start = 0;
    let data = this.buffered + text;
    for (;;) {
      const nl = data.indexOf('\n', start);
      if (nl < 0) break;
      let line = data.slice(start, nl);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      lines.push(line);
      start = nl + 1;
    }
    data = data.slice(start);
    if (data.length > this.maxLineChars) {
      this.buffered = '';
      throw new LineTooLongError(`line longer than ${this.maxLineChars} characters without a newline`);
    }
    this.buffered = data;
    return lines;
  }

  /** What is left after the stream ended (a last line without a newline), or undefined. */
  end(): string | undefined {
    const rest = this.buffered + this.decoder.end();
    this.buffered = '';
    return rest.length > 0 ? rest : undefined;
  }
}

/** Keeps the last `limit` bytes written to it (a stderr tail). */
export class TailBuffer {
  private buf: Buffer = Buffer.alloc(0);
  private dropped = false;
  private readonly limit: number;

  constructor(limit = 4096) {
    this.limit = limit;
  }

  write(chunk: Buffer | string): void {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.buf = Buffer.concat([this.buf, b]);
    if (this.buf.length > this.limit * 2) {
      this.buf = Buffer.from(this.buf.subarray(this.buf.length - this.limit));
      this.dropped = true;
    }
  }

  text(): string {
    let kept = this.buf;
    let cut = this.dropped;
    if (kept.length > this.limit) {
      kept = kept.subarray(kept.length - this.limit);
      cut = true;
    }
    // Start at a character boundary: skip a leading partial UTF-8 sequence.
    let i = 0;
    while (cut && i < kept.length && i < 4 && (kept[i] & 0xc0) === 0x80) i++;
    return (cut ? '…' : '') + kept.subarray(i).toString('utf8');
  }

  get empty(): boolean {
    return this.buf.length === 0;
  }
}

/** Shortens a string for messages. */
export function clip(s: string, max = 300): string {
  return s.length <= max ? s : `${s.slice(0, max)}… (${s.length} chars)`;
}
