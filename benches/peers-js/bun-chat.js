// Bun chat server for benches/broadcast.sh: bun bun-chat.js PORT
// The ringws chat protocol's pub/sub subset, JSON text frames:
//   → {"op":"join","room":R}            ← {"op":"joined","room":R,"online":N}  (ws.subscribe)
//   → {"op":"send","room":R,"text":T}   ← {"op":"message","room":R,"text":T,"ts":ms} to every
//                                          subscriber of R, the sender included (server.publish)
//   anything else                       ← {"op":"error","code":...,"message":...}
// Rooms are 1-64 of [A-Za-z0-9._-], texts at most 4096 bytes, as ringws's defaults.
// Limits, chosen so that the server never drops or closes under the benchmark's load:
// maxPayloadLength 64 KiB (ringws's default message limit); backpressureLimit 16 MiB per socket
// (Bun drops a publication for a subscriber whose send buffer is above it: far beyond what a
// subscriber that keeps reading ever holds here), closeOnBackpressureLimit off; no compression;
// idleTimeout 0. 127.0.0.1 only.
const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: bun bun-chat.js PORT');
  process.exit(2);
}
const ROOM = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_TEXT = 4096;

const error = (ws, code, message) => ws.send(JSON.stringify({ op: 'error', code, message }));

const server = Bun.serve({
  hostname: '127.0.0.1',
  port,
  fetch(req, server) {
    if (server.upgrade(req)) return undefined;
    return new Response('websocket only', { status: 426 });
  },
  websocket: {
    perMessageDeflate: false,
    maxPayloadLength: 64 * 1024,
    backpressureLimit: 16 * 1024 * 1024,
    closeOnBackpressureLimit: false,
    idleTimeout: 0,
    message(ws, message) {
      if (typeof message !== 'string') return error(ws, 'binary', 'requests are JSON text frames');
      let req;
      try {
        req = JSON.parse(message);
      } catch {
        return error(ws, 'bad_json', 'not JSON');
      }
      const room = req && req.room;
      if (typeof room !== 'string' || !ROOM.test(room)) return error(ws, 'bad_room', 'bad room');
      switch (req.op) {
        case 'join':
          ws.subscribe(room);
          ws.send(JSON.stringify({ op: 'joined', room, online: server.subscriberCount(room) }));
          return;
        case 'send': {
          const text = req.text;
          if (typeof text !== 'string') return error(ws, 'missing_field', "'text' is missing");
          if (Buffer.byteLength(text) > MAX_TEXT) return error(ws, 'too_long', 'text too long');
          if (!ws.isSubscribed(room)) return error(ws, 'not_joined', 'join the room first');
          server.publish(room, JSON.stringify({ op: 'message', room, text, ts: Date.now() }));
          return;
        }
        default:
          return error(ws, 'unknown_op', 'unknown op');
      }
    },
  },
});
console.error(`Bun ${Bun.version} chat on 127.0.0.1:${port}`);
process.on('SIGTERM', () => process.exit(0));
