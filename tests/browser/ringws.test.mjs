// ringws.js on its own, in Node's test runner, with a scripted WebSocket and mocked timers: the
// heartbeat follows the interval the server's welcome gives, an unanswered heartbeat reconnects,
// sends made while disconnected are kept up to 100, the oldest dropped first, a reconnect
// resumes each room from the last offset had (nothing emitted twice), what cannot be
// recovered is told as a gap, a send refused for now goes again with its id until it comes
// back, one lost with its connection goes again after the room recovered (unless the recovery
// brought it), and a lost log (an epoch event) starts the room's offsets again.
//   node --test tests/browser/ringws.test.mjs   (part of tests/run-all.sh)

import { test, mock } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";

/** A WebSocket the test drives: what the client sends is kept; the server's side is scripted. */
class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closedWith = null;
    FakeSocket.all.push(this);
  }
  send(text) {
    if (this.closedWith) throw new Error("send on a closed socket");
    this.sent.push(text);
  }
  close(code, reason) {
    this.closedWith = { code, reason };
  }
  // The server's side.
  receive(text) {
    this.onmessage({ data: text });
  }
  welcome(heartbeat) {
    this.receive(JSON.stringify({ op: "welcome", id: "0.1.1", heartbeat }));
  }
}

globalThis.WebSocket = FakeSocket;
createRequire(import.meta.url)("../../src/app/chat/static/ringws.js");
const { RingwsChat } = globalThis;

function fresh() {
  FakeSocket.all = [];
  mock.timers.reset();
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  const chat = new RingwsChat("ws://test/ws");
  const events = [];
  for (const type of ["open", "close", "reconnecting", "dropped"]) {
    chat.addEventListener(type, (e) => events.push([type, e.detail]));
  }
  return { chat, events, socket: FakeSocket.all[0] };
}

test("the heartbeat runs at the interval the welcome gives, with its strings", () => {
  const { socket } = fresh();
  socket.welcome({ ping: "hb?", pong: "hb!", interval_ms: 5000 });
  mock.timers.tick(4999);
  assert.deepEqual(socket.sent, [], "nothing before the interval");
  mock.timers.tick(1);
  assert.deepEqual(socket.sent, ["hb?"]);
  socket.receive("hb!"); // answered: not a message for the application
  mock.timers.tick(5000);
  assert.deepEqual(socket.sent, ["hb?", "hb?"]);
  assert.equal(socket.closedWith, null);
});

test("an unanswered heartbeat closes the connection and reconnects", () => {
  const { socket, events } = fresh();
  socket.welcome({ ping: "ping", pong: "pong", interval_ms: 1000 });
  mock.timers.tick(1000); // the heartbeat goes out; no answer comes
  mock.timers.tick(9999);
  assert.equal(socket.closedWith, null, "the default answer timeout is 10 s");
  mock.timers.tick(1);
  assert.deepEqual(socket.closedWith, { code: 4000, reason: "heartbeat timeout" });
  const [type, detail] = events.find(([t]) => t === "reconnecting");
  assert.equal(type, "reconnecting");
  mock.timers.tick(detail.delay);
  assert.equal(FakeSocket.all.length, 2, "a new connection");
});

test("sends while disconnected are kept up to 100, the oldest dropped, and go out in order", () => {
  const { chat, events, socket } = fresh();
  chat.join("lobby");
  for (let i = 0; i < 105; i++) chat.send("lobby", `m${i}`);
  const dropped = events.filter(([t]) => t === "dropped").map(([, d]) => d.text);
  assert.deepEqual(dropped, ["m0", "m1", "m2", "m3", "m4"]);
  socket.welcome({ ping: "ping", pong: "pong", interval_ms: 15000 });
  const sent = socket.sent.map((t) => JSON.parse(t));
  assert.deepEqual(sent[0], { op: "join", room: "lobby" }, "rooms first");
  const texts = sent.slice(1).map((m) => m.text);
  assert.equal(texts.length, 100);
  assert.deepEqual(texts[0], "m5");
  assert.deepEqual(texts[99], "m104");
});

test("after a reconnect the rooms are joined and the name set again", () => {
  const { chat, socket } = fresh();
  socket.welcome({ ping: "ping", pong: "pong", interval_ms: 15000 });
  chat.nick("alice");
  chat.join("a");
  chat.join("b");
  chat.leave("a");
  socket.onclose({ code: 1006, reason: "" });
  mock.timers.tick(10000);
  const again = FakeSocket.all[1];
  again.welcome({ ping: "ping", pong: "pong", interval_ms: 15000 });
  assert.deepEqual(
    again.sent.map((t) => JSON.parse(t)),
    [{ op: "nick", name: "alice" }, { op: "join", room: "b" }],
  );
});

test("a reconnect resumes each room from the last offset had, and nothing is emitted twice", () => {
  const { chat, socket } = fresh();
  const got = [];
  const other = [];
  chat.addEventListener("message", (e) => got.push(e.detail.offset));
  for (const type of ["recovered", "gap"]) chat.addEventListener(type, (e) => other.push([type, e.detail]));
  socket.welcome({ ping: "ping", pong: "pong", interval_ms: 15000 });
  chat.join("r");
  assert.deepEqual(JSON.parse(socket.sent[0]), { op: "join", room: "r" }, "no position yet");
  socket.receive(JSON.stringify({ op: "joined", room: "r", online: 1, epoch: "e1", offset: 7 }));
  for (const offset of [8, 9]) socket.receive(JSON.stringify({ op: "message", room: "r", offset, text: "x" }));
  socket.onclose({ code: 1006, reason: "" });
  mock.timers.tick(10000);
  const again = FakeSocket.all[1];
  again.welcome({ ping: "ping", pong: "pong", interval_ms: 15000 });
  assert.deepEqual(JSON.parse(again.sent[0]), { op: "join", room: "r", since: { epoch: "e1", offset: 9 } });
  again.receive(JSON.stringify({ op: "joined", room: "r", online: 1, epoch: "e1", offset: 11, recovered: true }));
  // The missed ones, then one already had (the server may repeat on a join while joined).
  for (const offset of [10, 11, 11, 9, 12]) again.receive(JSON.stringify({ op: "message", room: "r", offset, text: "x" }));
  assert.deepEqual(got, [8, 9, 10, 11, 12], "in order, once each");
  assert.deepEqual(other, [["recovered", { room: "r", epoch: "e1", since: 9, offset: 11 }]]);
});

test("what cannot be recovered, and a jump in offsets, are told as gaps", () => {
  const { chat, socket } = fresh();
  const gaps = [];
  chat.addEventListener("gap", (e) => gaps.push(e.detail));
  socket.welcome({ ping: "ping", pong: "pong", interval_ms: 15000 });
  chat.join("r");
  socket.receive(JSON.stringify({ op: "joined", room: "r", online: 1, epoch: "e1", offset: 3 }));
  socket.receive(JSON.stringify({ op: "message", room: "r", offset: 4 }));
  socket.receive(JSON.stringify({ op: "message", room: "r", offset: 7 })); // 5 and 6 were lost
  assert.deepEqual(gaps, [{ room: "r", epoch: "e1", from: 5, to: 6 }]);
  socket.onclose({ code: 1006, reason: "" });
  mock.timers.tick(10000);
  const again = FakeSocket.all[1];
  again.welcome({ ping: "ping", pong: "pong", interval_ms: 15000 });
  assert.deepEqual(JSON.parse(again.sent[0]).since, { epoch: "e1", offset: 7 });
  // The server restarted: another epoch, its history starts again.
  again.receive(JSON.stringify({ op: "joined", room: "r", online: 1, epoch: "e2", offset: 2, recovered: false }));
  assert.deepEqual(gaps[1], { room: "r", epoch: "e2", from: null, to: 2 });
  const got = [];
  chat.addEventListener("message", (e) => got.push(e.detail.offset));
  again.receive(JSON.stringify({ op: "message", room: "r", offset: 3 }));
  assert.deepEqual(got, [3], "the new epoch's offsets are new");
  // Left: messages still in flight are not for us; joined again, the room resumes from the
  // position this page had (the server sends what it missed since, history permitting).
  chat.leave("r");
  again.receive(JSON.stringify({ op: "message", room: "r", offset: 4 }));
  assert.deepEqual(got, [3]);
  chat.join("r");
  assert.deepEqual(JSON.parse(again.sent.at(-1)), { op: "join", room: "r", since: { epoch: "e2", offset: 3 } });
});

test("a send refused for now (unavailable) goes again later with the same id, until it comes back", () => {
  const { chat, socket } = fresh();
  const retrying = [];
  chat.addEventListener("retrying", (e) => retrying.push(e.detail));
  socket.welcome({ ping: "ping", pong: "pong", interval_ms: 15000 });
  chat.join("r");
  socket.receive(JSON.stringify({ op: "joined", room: "r", online: 1, epoch: "e1", offset: 0 }));
  const id = chat.send("r", "hello");
  const first = JSON.parse(socket.sent.at(-1));
  assert.deepEqual(first, { op: "send", room: "r", text: "hello", id });
  for (let attempt = 1; attempt <= 3; attempt++) {
    socket.receive(JSON.stringify({ op: "error", code: "unavailable", room: "r", id, message: "redis" }));
    assert.equal(retrying.length, attempt);
    const { delay } = retrying.at(-1);
    const before = socket.sent.length;
    mock.timers.tick(delay - 1);
    assert.equal(socket.sent.length, before, "not before its delay");
    mock.timers.tick(1);
    assert.deepEqual(JSON.parse(socket.sent.at(-1)), first, "the same message, the same id");
  }
  assert.ok(retrying[2].delay > retrying[0].delay / 2, "backoff");
  socket.receive(JSON.stringify({ op: "message", room: "r", offset: 1, text: "hello", id }));
  // Come back: a late refusal of the same id is not one of ours any more (an error event).
  const errors = [];
  chat.addEventListener("error", (e) => errors.push(e.detail));
  socket.receive(JSON.stringify({ op: "error", code: "unavailable", room: "r", id, message: "late" }));
  assert.equal(errors.length, 1);
  mock.timers.tick(60000);
  assert.equal(socket.sent.filter((t) => t.includes('"send"')).length, 4, "no more sends");
});

test("a send lost with its connection goes again once the room recovered, unless the recovery brought it", () => {
  const { chat, socket } = fresh();
  socket.welcome({ ping: "ping", pong: "pong", interval_ms: 15000 });
  chat.join("r");
  socket.receive(JSON.stringify({ op: "joined", room: "r", online: 1, epoch: "e1", offset: 4 }));
  const a = chat.send("r", "a"); // reaches the server before the drop
  const b = chat.send("r", "b"); // lost with the connection
  socket.onclose({ code: 1006, reason: "" });
  const c = chat.send("r", "c"); // made while disconnected: queued
  mock.timers.tick(10000);
  const again = FakeSocket.all[1];
  again.welcome({ ping: "ping", pong: "pong", interval_ms: 15000 });
  const sends = () => again.sent.map((t) => JSON.parse(t)).filter((m) => m.op === "send").map((m) => m.id);
  assert.deepEqual(sends(), [c], "the queued one goes at once; the others wait for the recovery");
  again.receive(JSON.stringify({ op: "joined", room: "r", online: 1, epoch: "e1", offset: 5, recovered: true }));
  assert.deepEqual(sends(), [c]);
  again.receive(JSON.stringify({ op: "message", room: "r", offset: 5, text: "a", id: a }));
  mock.timers.tick(0);
  assert.deepEqual(sends(), [c, b], "b did not come with the recovery: sent again");
  assert.ok(!chat.pending.has(a));
});

test("a room whose log was lost (an epoch event) starts again from offset 0, told as a gap", () => {
  const { chat, socket } = fresh();
  const gaps = [];
  chat.addEventListener("gap", (e) => gaps.push(e.detail));
  socket.welcome({ ping: "ping", pong: "pong", interval_ms: 15000 });
  chat.join("r");
  socket.receive(JSON.stringify({ op: "joined", room: "r", online: 1, epoch: "e1", offset: 9 }));
  socket.receive(JSON.stringify({ op: "epoch", room: "r", epoch: "e2", offset: 0 }));
  assert.deepEqual(gaps, [{ room: "r", epoch: "e2", from: null, to: null }]);
  const got = [];
  chat.addEventListener("message", (e) => got.push(e.detail.offset));
  socket.receive(JSON.stringify({ op: "message", room: "r", offset: 1, text: "x" }));
  assert.deepEqual(got, [1], "offset 1 of the new epoch is new");
  assert.deepEqual(chat.positions.get("r"), { epoch: "e2", offset: 1 });
});

test("a token goes in the URL, is asked again for each connection and refreshed when expiring", async () => {
  FakeSocket.all = [];
  mock.timers.reset();
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  let n = 0;
  const chat = new RingwsChat("ws://test/ws", { token: () => "tok-" + ++n });
  await Promise.resolve(); // the token function's promise
  await Promise.resolve();
  const socket = FakeSocket.all[0];
  assert.equal(socket.url, "ws://test/ws?token=tok-1");
  socket.receive(JSON.stringify({ op: "welcome", id: "0.1.1", user: "alice" }));
  assert.equal(chat.user, "alice");
  const joins = socket.sent.map((t) => JSON.parse(t)).filter((m) => m.op === "join");
  assert.deepEqual(joins, [{ op: "join", room: "user:alice" }], "the personal room, by itself");
  socket.receive(JSON.stringify({ op: "expiring", exp: 1800000000 }));
  await Promise.resolve();
  await Promise.resolve();
  assert.deepEqual(JSON.parse(socket.sent.at(-1)), { op: "refresh", token: "tok-2" });
  // Closed (4001: the token expired anyway): the next connection asks for a fresh one.
  socket.onclose({ code: 4001, reason: "token expired" });
  mock.timers.tick(10000);
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(FakeSocket.all[1].url, "ws://test/ws?token=tok-3");
  const fixed = new RingwsChat("ws://test/ws?x=1", { token: "abc" });
  assert.equal(FakeSocket.all.at(-1).url, "ws://test/ws?x=1&token=abc", "a string: at once");
  fixed.close();
  chat.close();
});

test("a direct message is acknowledged by `sent`, and one unacknowledged goes again after a reconnect", () => {
  const { chat, socket } = fresh();
  socket.receive(JSON.stringify({ op: "welcome", id: "0.1.1", user: "bob" }));
  const acked = [];
  chat.addEventListener("sent", (e) => acked.push(e.detail));
  const first = chat.sendTo("alice", "hi");
  const sends = (s) => s.sent.map((t) => JSON.parse(t)).filter((m) => m.op === "send");
  assert.deepEqual(sends(socket), [{ op: "send", room: "user:alice", text: "hi", id: first }]);
  socket.receive(JSON.stringify({ op: "sent", room: "user:alice", offset: 7, id: first }));
  assert.deepEqual(acked, [{ op: "sent", room: "user:alice", offset: 7, id: first, text: "hi" }]);
  assert.ok(!chat.pending.has(first));
  const second = chat.sendTo("alice", "there?"); // lost with the connection
  socket.onclose({ code: 1006, reason: "" });
  mock.timers.tick(10000);
  const again = FakeSocket.all[1];
  again.receive(JSON.stringify({ op: "welcome", id: "0.1.2", user: "bob" }));
  assert.deepEqual(sends(again).map((m) => [m.room, m.id]), [["user:alice", second]]);
});
