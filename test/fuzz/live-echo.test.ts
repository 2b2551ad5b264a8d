// The live framing fuzz client against echo endpoints on loopback: a correct echo passes; echo servers
// with classic bugs (dropping a byte of a large write, answering only the first segment) are caught and
// the failing scenario is shrunk to a small one.
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { fuzzEcho } from '../../fuzz/framing/live.ts';

const servers: Server[] = [];

async function echoServer(transform: (chunk: Buffer, nth: number, offset: number) => Buffer | null): Promise<number> {
  const server = createServer((s) => {
    let n = 0;
    let offset = 0;
    s.on('data', (chunk: Buffer) => {
      const out = transform(chunk, n++, offset);
      offset += chunk.length;
      if (out && out.length) s.write(out);
    });
    s.on('error', () => s.destroy());
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

afterAll(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
});

describe('live framing fuzz (echo endpoint)', () => {
  test('a correct echo server passes 60 random streams', async () => {
    const port = await echoServer((c) => c);
    const r = await fuzzEcho('127.0.0.1', port, { runs: 60, seed: 11 });
    expect(r.failed, r.error).toBe(false);
    expect(r.runs).toBe(60);
  });

  test('an echo that corrupts the byte at stream offset 100 is caught and shrunk to a stream just past that offset', async () => {
    const port = await echoServer((c, _n, offset) => {
      if (offset > 100 || offset + c.length <= 100) return c;
      const out = Buffer.from(c);
      out[100 - offset] ^= 0xff;
      return out;
    });
    const r = await fuzzEcho('127.0.0.1', port, { runs: 200, seed: 12 });
    expect(r.failed).toBe(true);
    expect(r.error).toMatch(/came back as|did not decode|frames came back|incomplete/);
    // Minimal means just past the corrupted offset: a stream of barely more than 100 bytes.
    const size = r.counterexample!.frames.reduce((n, f) => n + 12 + f.payload.length, 0);
    expect(size).toBeGreaterThan(100);
    expect(size).toBeLessThanOrEqual(130);
  }, 60_000);

  test('an echo that answers only the first segment is caught', async () => {
    const port = await echoServer((c, nth) => (nth === 0 ? c : null));
    const r = await fuzzEcho('127.0.0.1', port, { runs: 100, seed: 13 });
    expect(r.failed).toBe(true);
    expect(r.counterexample!.chunking).not.toEqual([]);
  }, 60_000);
});

describe('cpspec fuzz --echo', () => {
  const root = path.resolve(import.meta.dirname, '..', '..');
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [path.join(root, 'conformance/bin/cpspec.js'), 'fuzz', ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

  test('bad endpoints exit 2', () => {
    expect(cli('--echo', 'nowhere').status).toBe(2);
    expect(cli('--echo', '127.0.0.1:99999').status).toBe(2);
  });

  test('a refused endpoint is a failure (exit 1) that says so', () => {
    // A port nothing listens on: take one from a server that is then closed.
    const probe = spawnSync(process.execPath, ['-e', "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"], { encoding: 'utf8' });
    const r = cli('--echo', `127.0.0.1:${probe.stdout.trim()}`, '--runs', '3', '--seed', '1');
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/ECONNREFUSED|failed/);
  });
});
