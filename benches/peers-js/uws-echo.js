// uWebSockets.js (npm @trufflesuite/uws-js-unofficial 20.30) echo server for benches/compare.sh:
// node uws-echo.js PORT [deflate] [--tls CERT KEY] (--tls: uWS.SSLApp with that PEM certificate
// and key, TLS as uWS builds it with BoringSSL). No compression unless `deflate` (then SHARED_COMPRESSOR:
// permessage-deflate without context takeover, one compressor for all, as ringws' shared mode;
// uWS' DEDICATED_COMPRESSOR_* are per connection), 64 MiB message limit, 127.0.0.1 only.
'use strict';
const uWS = require('@trufflesuite/uws-js-unofficial');

const port = Number(process.argv[2]);
const compress = process.argv.includes('deflate');
const tlsAt = process.argv.indexOf('--tls');
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node uws-echo.js PORT');
  process.exit(2);
}
(tlsAt > 0
  ? uWS.SSLApp({ cert_file_name: process.argv[tlsAt + 1], key_file_name: process.argv[tlsAt + 2] })
  : uWS.App())
  .ws('/*', {
    compression: compress ? uWS.SHARED_COMPRESSOR : uWS.DISABLED,
    maxPayloadLength: 64 * 1024 * 1024,
    maxBackpressure: 64 * 1024 * 1024,
    idleTimeout: 0,
    message: (ws, message, isBinary) => {
      // send's third argument asks for compression (it defaults to false).
      ws.send(message, isBinary, compress);
    },
  })
  .listen('127.0.0.1', port, (token) => {
    if (!token) {
      console.error(`uws: cannot listen on 127.0.0.1:${port}`);
      process.exit(1);
    }
    console.error(`uWebSockets.js echo on 127.0.0.1:${port}${tlsAt > 0 ? ' (TLS)' : ''}`);
  });
process.on('SIGTERM', () => process.exit(0));
