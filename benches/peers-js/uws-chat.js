// uWebSockets.js (npm @trufflesuite/uws-js-unofficial 20.30) chat server for benches/broadcast.sh:
// node uws-chat.js PORT. The ringws chat protocol's pub/sub subset, JSON text frames:
//   → {"op":"join","room":R}            ← {"op":"joined","room":R,"online":N}  (ws.subscribe)
//   → {"op":"send","room":R,"text":T}   ← {"op":"message","room":R,"text":T,"ts":ms} to every
//                                          subscriber of R, the sender included (app.publish)
//   anything else                       ← {"op":"error","code":...,"message":...}
// Rooms are 1-64 of [A-Za-z0-9._-], texts at most 4096 bytes, as ringws's defaults.
// Limits, chosen so that the server never drops or closes under the benchmark's load:
// maxPayloadLength 64 KiB (ringws's default message limit); maxBackpressure 16 MiB per socket
// (uWS skips a subscriber whose send buffer is above it: far beyond what a subscriber that keeps
// reading ever holds here), closeOnBackpressureLimit off; no compression; idleTimeout 0.
// 127.0.0.1 only.
'use strict';
const uWS = require('@trufflesuite/uws-js-unofficial');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node uws-chat.js PORT');
  process.exit(2);
}
const ROOM = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_TEXT = 4096;

const error = (ws, code, message) => ws.send(JSON.stringify({ op: 'error', code, message }), false);

const app = uWS.App();
app
  .ws('/*', {
    compression: uWS.DISABLED,
    maxPayloadLength: 64 * 1024,
    maxBackpressure: 16 * 1024 * 1024,
    closeOnBackpressureLimit: false,
    idleTimeout: 0,
    message: (ws, message, isBinary) => {
      if (isBinary) return error(ws, 'binary', 'requests are JSON text frames');
      let req;
      try {
        req = JSON.parse(Buffer.from(message).toString('utf8'));
      } catch {
        return error(ws, 'bad_json', 'not JSON');
      }
      const room = req && req.room;
      if (typeof room !== 'string' || !ROOM.test(room)) return error(ws, 'bad_room', 'bad room');
      switch (req.op) {
        case 'join':
          ws.subscribe(room);
          ws.send(JSON.stringify({ op: 'joined', room, online: app.numSubscribers(room) }), false);
          return;
        case 'send': {
          const text = req.text;
          if (typeof text !== 'string') return error(ws, 'missing_field', "'text' is missing");
          if (Buffer.byteLength(text) > MAX_TEXT) return error(ws, 'too_long', 'text too long');
          if (!ws.isSubscribed(room)) return error(ws, 'not_joined', 'join the room first');
          app.publish(room, JSON.stringify({ op: 'message', room, text, ts: Date.now() }), false);
          return;
        }
        default:
          return error(ws, 'unknown_op', 'unknown op');
      }
    },
  })
  .listen('127.0.0.1', port, (token) => {
    if (!token) {
      console.error(`uws: cannot listen on 127.0.0.1:${port}`);
      process.exit(1);
    }
    console.error(`uWebSockets.js chat on 127.0.0.1:${port}`);
  });
process.on('SIGTERM', () => process.exit(0));
