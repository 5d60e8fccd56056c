// Node `ws` 8.x echo server for benches/compare.sh: node ws-echo.js PORT [deflate] [--tls CERT KEY]
// (--tls: on Node's https server with that PEM certificate and key).
// No compression unless `node ws-echo.js PORT deflate` (perMessageDeflate with a 64-byte
// threshold, as ringws' --compression-min-bytes; ws' default is 1 KiB), 64 MiB message limit,
// TCP_NODELAY (ws sets it), 127.0.0.1 only.
'use strict';
const { WebSocketServer } = require('ws');
const fs = require('fs');
const https = require('https');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node ws-echo.js PORT');
  process.exit(2);
}
const tlsAt = process.argv.indexOf('--tls');
const server = tlsAt > 0
  ? https.createServer({ cert: fs.readFileSync(process.argv[tlsAt + 1]), key: fs.readFileSync(process.argv[tlsAt + 2]) })
  : null;
const wss = new WebSocketServer({
  ...(server ? { server } : { host: '127.0.0.1', port }),
  perMessageDeflate: process.argv.includes('deflate') ? { threshold: 64 } : false,
  maxPayload: 64 * 1024 * 1024,
  clientTracking: false,
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
const listening = () => console.error(`ws ${require('ws/package.json').version} echo on 127.0.0.1:${port}${server ? ' (TLS)' : ''}`);
if (server) {
  server.listen(port, '127.0.0.1', listening);
} else {
  wss.on('listening', listening);
}
process.on('SIGTERM', () => process.exit(0));
