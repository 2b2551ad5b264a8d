// The Node baseline for npm run bench:echo: a plain `net` echo server on 127.0.0.1, an ephemeral port.
// Started by bench/echo.ts as a child process; prints its port (one line) on stdout once listening, then
// echoes every byte it receives on every connection (TCP_NODELAY, as the cpspec servers set it). Exits when
// its stdin closes (the parent went away) or on SIGTERM/SIGINT.
//
// usage: node bench/echo-node-server.mjs
import net from 'node:net';

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.on('data', (chunk) => {
    socket.write(chunk);
  });
  socket.on('error', () => socket.destroy()); // a reset client: nothing to report
});

server.on('error', (e) => {
  process.stderr.write(`echo-node-server: ${e.message}\n`);
  process.exit(1);
});

server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  const addr = server.address();
  process.stdout.write(`${typeof addr === 'object' && addr ? addr.port : 0}\n`);
});

const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
