// Bun echo server for benches/compare.sh: bun bun-echo.js PORT [deflate] [--tls CERT KEY]
// (--tls: Bun.serve's tls option with that PEM certificate and key).
// Bun.serve websocket, no compression unless `bun bun-echo.js PORT deflate` (Bun's
// perMessageDeflate: true), 64 MiB message limit, 127.0.0.1 only.
const port = Number(process.argv[2]);
const compress = process.argv.includes('deflate');
const tlsAt = process.argv.indexOf('--tls');
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: bun bun-echo.js PORT');
  process.exit(2);
}
Bun.serve({
  hostname: '127.0.0.1',
  port,
  ...(tlsAt > 0
    ? { tls: { cert: Bun.file(process.argv[tlsAt + 1]), key: Bun.file(process.argv[tlsAt + 2]) } }
    : {}),
  fetch(req, server) {
    if (server.upgrade(req)) return undefined;
    return new Response('websocket only', { status: 426 });
  },
  websocket: {
    perMessageDeflate: compress,
    maxPayloadLength: 64 * 1024 * 1024,
    backpressureLimit: 64 * 1024 * 1024,
    idleTimeout: 0,
    message(ws, message) {
      // send's second argument asks for compression (it defaults to false).
      ws.send(message, compress);
    },
  },
});
console.error(`Bun ${Bun.version} echo on 127.0.0.1:${port}${tlsAt > 0 ? ' (TLS)' : ''}`);
process.on('SIGTERM', () => process.exit(0));
