/*
 * ringws.js: a small browser client for the ringws chat protocol. No dependencies, no build.
 *
 *   const chat = new RingwsChat("ws://" + location.host + "/ws");
 *   chat.addEventListener("message", (e) => show(e.detail));   // {room, from, name, ts, seq, offset, text, online}
 *   chat.join("lobby");
 *   chat.send("lobby", "hello");
 *
 * It keeps the connection alive: a text heartbeat (the strings and interval the server gives in
 * its welcome), a reconnect with exponential backoff and jitter when the connection drops or
 * the heartbeat goes unanswered, the rooms re-joined and the name set again after each
 * reconnect, and sends made while disconnected queued (bounded: the oldest are dropped first).
 *
 * No message is missed across a reconnect where the server keeps history: the client remembers
 * each room's position (the epoch and the last offset it has) and re-joins with `since`; the
 * server sends what was missed, in order, before anything live. A message already seen (same
 * epoch, offset not above the position) is not emitted twice. When the server cannot fill a
 * gap (its history changed epoch or no longer goes back that far), or offsets jump (messages
 * lost to a full queue), a `gap` event says so; the page can fetch `history`.
 *
 * No message sent is lost either: each send carries an id, and is kept until it comes back as
 * a message. One the server refuses for now (`unavailable`: in a cluster whose Redis is
 * unreachable) is sent again later with the same id, with backoff; one sent on a connection
 * that dropped before it came back is sent again once the room has recovered, unless the
 * recovery brought it (in a cluster the server also keeps a message sent twice with one id
 * once, for two minutes).
 *
 * Identity (a server started with --jwt-secret or --jwt-public-key): `token` in the options is
 * the connection token, or a function that returns one (or a promise of one), asked again for
 * every connection and when the server says the token is expiring (then sent as `refresh`). A
 * connection with a user joins its personal room (`user:<id>`) by itself: direct messages to
 * the user arrive there as `message` events (with the sender's `user`); `sendTo(user, text)`
 * sends one, answered by a `sent` event ({room, offset, id, text}) instead of a message.
 *
 * Events (CustomEvent, the payload in `detail`): open (the welcome), message, joined, left,
 * presence, history (a page asked for with `history()`), recovered ({room, epoch, since,
 * offset}: everything after `since` follows, in order), gap ({room, epoch, from, to}: messages
 * `from`..`to` cannot be given; `to` is null when unknown), error (a request the server
 * refused), close ({code, reason}), reconnecting ({attempt, delay}), dropped (a queued send
 * lost to the bound), retrying ({id, room, text, attempt, delay}: a send refused for now goes
 * again after `delay`), epoch ({room, epoch}: the room's log was lost and starts again; a gap
 * event follows).
 */
(function (global) {
  "use strict";

  const DEFAULTS = {
    minDelay: 250, // first reconnect delay, ms
    maxDelay: 10000, // reconnect delay cap, ms
    heartbeatMs: 20000, // until the server's welcome says otherwise
    pongTimeoutMs: 10000, // no answer this long after a heartbeat: reconnect
    maxQueue: 100, // sends kept while disconnected
    maxPending: 1000, // sends kept until they come back as messages
    ping: "ping",
    pong: "pong",
    token: null, // a token, or a function returning one (or a promise of one)
    personalRoom: true, // join user:<id> when the server names the user
  };

  class RingwsChat extends EventTarget {
    constructor(url, options) {
      super();
      this.url = url;
      this.opts = Object.assign({}, DEFAULTS, options || {});
      this.rooms = new Set(); // the rooms to be in, re-joined after every reconnect
      this.positions = new Map(); // room -> {epoch, offset}: the last message had, for `since`
      this.queue = []; // requests made while not connected
      this.pending = new Map(); // id -> {room, text, sentOn, tries}: sends not yet come back
      this.awaiting = new Map(); // room -> the offset its recovery ends at
      this.generation = 0; // connections welcomed so far
      this.idPrefix = Math.random().toString(36).slice(2, 10);
      this.nextId = 0;
      this.attempt = 0;
      this.closed = false;
      this.ready = false; // connected and welcomed
      this.name = null;
      this.id = null;
      this.user = null; // the user id the server gives (a connection with a token)
      this.ws = null;
      this.heartbeat = null;
      this.pongTimer = null;
      this.connect();
    }

    emit(type, detail) {
      this.dispatchEvent(new CustomEvent(type, { detail: detail }));
    }

    // The connection token: a string, or what the `token` function gives (a fresh one for each
    // connection); undefined without one.
    token() {
      const t = this.opts.token;
      return typeof t === "function" ? Promise.resolve().then(t) : t;
    }

    connect() {
      const token = this.token();
      if (token && typeof token.then === "function") {
        token.then((t) => { if (!this.closed) this.open(t); }, () => this.scheduleReconnect());
      } else {
        this.open(token);
      }
    }

    open(token) {
      let ws;
      let url = this.url;
      if (token) url += (url.indexOf("?") < 0 ? "?" : "&") + "token=" + encodeURIComponent(token);
      try {
        ws = new WebSocket(url);
      } catch (e) {
        this.scheduleReconnect();
        return;
      }
      this.ws = ws;
      ws.onmessage = (e) => this.onFrame(ws, e.data);
      ws.onclose = (e) => this.onClose(ws, e);
      ws.onerror = () => {}; // a close event follows
    }

    onFrame(ws, data) {
      if (ws !== this.ws || typeof data !== "string") return;
      this.alive();
      if (data === this.opts.pong) return;
      let msg;
      try {
        msg = JSON.parse(data);
      } catch (e) {
        return;
      }
      if (msg.op === "welcome") return this.onWelcome(msg);
      if (msg.op === "joined") this.onJoined(msg);
      if (msg.op === "message" && !this.onMessage(msg)) return;
      if (msg.op === "error" && msg.code === "unavailable" && this.retry(msg)) return;
      if (msg.op === "epoch") this.onEpoch(msg);
      if (msg.op === "sent") this.onSent(msg);
      if (msg.op === "expiring") this.refresh();
      this.emit(msg.op, msg);
      if (msg.op === "joined" && !this.awaiting.has(msg.room)) this.recoveredAll(msg.room);
    }

    // A direct message went out: it will not come back as a message (the sender is not in the
    // recipient's room).
    onSent(msg) {
      const entry = msg.id !== undefined && this.pending.get(msg.id);
      if (entry) {
        msg.text = entry.text;
        this.pending.delete(msg.id);
      }
    }

    // The token expires soon: a new one, if the `token` option can give one.
    refresh() {
      if (typeof this.opts.token !== "function") return;
      const ws = this.ws;
      this.token().then((t) => {
        if (t && ws === this.ws && this.ready) this.raw({ op: "refresh", token: t });
      }, () => {});
    }

    // The room's log was lost: offsets start again.
    onEpoch(msg) {
      const had = this.positions.get(msg.room);
      this.positions.set(msg.room, { epoch: msg.epoch, offset: 0 });
      if (had) this.emit("gap", { room: msg.room, epoch: msg.epoch, from: null, to: null });
    }

    // A send refused for now: again later, with the same id (true: it was one of ours).
    retry(msg) {
      const entry = msg.id !== undefined && this.pending.get(msg.id);
      if (!entry) return false;
      entry.tries += 1;
      const cap = Math.min(this.opts.maxDelay, this.opts.minDelay * Math.pow(2, entry.tries - 1));
      const delay = Math.round(cap / 2 + (Math.random() * cap) / 2);
      this.emit("retrying", { id: msg.id, room: entry.room, text: entry.text, attempt: entry.tries, delay: delay });
      setTimeout(() => {
        if (this.closed || this.pending.get(msg.id) !== entry) return;
        this.sendPending(msg.id, entry);
      }, delay);
      return true;
    }

    sendPending(id, entry) {
      entry.sentOn = this.ready ? this.generation : this.generation + 1;
      this.request({ op: "send", room: entry.room, text: entry.text, id: id });
    }

    // The room has everything up to where it was when joined: what was sent on an earlier
    // connection and has not come back was lost with it, and goes again.
    recoveredAll(room) {
      this.awaiting.delete(room);
      for (const [id, entry] of this.pending) {
        if (entry.room === room && entry.sentOn < this.generation) this.sendPending(id, entry);
      }
    }

    // Where the room is on the server: resumed from our position, or started from its end.
    onJoined(msg) {
      if (msg.epoch === undefined) return; // a server without history
      const had = this.positions.get(msg.room);
      if (msg.recovered === true && had) {
        this.emit("recovered", { room: msg.room, epoch: msg.epoch, since: had.offset, offset: msg.offset });
        // The missed messages follow and move the position on.
        if (had.offset < msg.offset) this.awaiting.set(msg.room, msg.offset);
        return;
      }
      if (msg.recovered === false && had) {
        const sameEpoch = had.epoch === msg.epoch;
        this.emit("gap", {
          room: msg.room,
          epoch: msg.epoch,
          from: sameEpoch ? had.offset + 1 : null,
          to: msg.offset > 0 ? msg.offset : null,
        });
      }
      this.positions.set(msg.room, { epoch: msg.epoch, offset: msg.offset });
    }

    // Whether a message is new (emitted) or one already had (dropped); notes jumps as gaps.
    onMessage(msg) {
      if (msg.id !== undefined && this.pending.has(msg.id) && this.pending.get(msg.id).room === msg.room) {
        this.pending.delete(msg.id);
      }
      if (typeof msg.offset !== "number") return true;
      const pos = this.positions.get(msg.room);
      if (!pos || !this.rooms.has(msg.room)) return this.rooms.has(msg.room);
      if (msg.offset <= pos.offset) return false;
      if (msg.offset > pos.offset + 1) {
        this.emit("gap", { room: msg.room, epoch: pos.epoch, from: pos.offset + 1, to: msg.offset - 1 });
      }
      pos.offset = msg.offset;
      const end = this.awaiting.get(msg.room);
      if (end !== undefined && msg.offset >= end) setTimeout(() => this.recoveredAll(msg.room), 0);
      return true;
    }

    onWelcome(msg) {
      this.id = msg.id;
      if (msg.user !== undefined && msg.user !== this.user) {
        if (this.user !== null) this.rooms.delete("user:" + this.user);
        this.user = msg.user;
        if (this.opts.personalRoom) this.rooms.add("user:" + msg.user);
      }
      if (msg.heartbeat) {
        this.opts.ping = msg.heartbeat.ping;
        this.opts.pong = msg.heartbeat.pong;
        this.opts.heartbeatMs = msg.heartbeat.interval_ms;
      }
      this.ready = true;
      this.attempt = 0;
      this.generation += 1;
      this.awaiting.clear();
      if (this.name !== null) this.raw({ op: "nick", name: this.name });
      for (const room of this.rooms) this.raw(this.joinRequest(room));
      const queued = this.queue;
      this.queue = [];
      for (const text of queued) this.ws.send(text);
      // Direct messages sent on an earlier connection that were not acknowledged go again (they
      // never come back as messages, so no room's recovery can bring them).
      for (const [id, entry] of this.pending) {
        if (entry.direct && entry.sentOn < this.generation) this.sendPending(id, entry);
      }
      this.startHeartbeat();
      this.emit("open", msg);
    }

    // Any frame from the server proves the connection is alive.
    alive() {
      clearTimeout(this.pongTimer);
      this.pongTimer = null;
    }

    startHeartbeat() {
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => {
        if (!this.ready) return;
        this.ws.send(this.opts.ping);
        if (this.pongTimer === null) {
          this.pongTimer = setTimeout(() => {
            // No answer: the path is dead (a sleeping laptop, a dropped NAT entry).
            this.ws.close(4000, "heartbeat timeout");
            this.onClose(this.ws, { code: 4000, reason: "heartbeat timeout" });
          }, this.opts.pongTimeoutMs);
        }
      }, this.opts.heartbeatMs);
    }

    onClose(ws, e) {
      if (ws !== this.ws) return; // an old connection, already replaced
      this.ws = null;
      this.ready = false;
      clearInterval(this.heartbeat);
      this.alive();
      this.emit("close", { code: e.code, reason: e.reason });
      if (!this.closed) this.scheduleReconnect();
    }

    scheduleReconnect() {
      const cap = Math.min(this.opts.maxDelay, this.opts.minDelay * Math.pow(2, this.attempt));
      const delay = Math.round(cap / 2 + (Math.random() * cap) / 2); // "equal jitter"
      this.attempt += 1;
      this.emit("reconnecting", { attempt: this.attempt, delay: delay });
      setTimeout(() => {
        if (!this.closed) this.connect();
      }, delay);
    }

    // Sends now if welcomed; otherwise queues (bounded).
    request(obj) {
      const text = JSON.stringify(obj);
      if (this.ready) {
        this.ws.send(text);
        return;
      }
      if (this.queue.length >= this.opts.maxQueue) {
        const dropped = JSON.parse(this.queue.shift());
        if (dropped.id !== undefined) this.pending.delete(dropped.id);
        this.emit("dropped", dropped);
      }
      this.queue.push(text);
    }

    raw(obj) {
      this.ws.send(JSON.stringify(obj));
    }

    joinRequest(room) {
      const pos = this.positions.get(room);
      return pos ? { op: "join", room: room, since: { epoch: pos.epoch, offset: pos.offset } } : { op: "join", room: room };
    }

    join(room) {
      this.rooms.add(room);
      if (this.ready) this.raw(this.joinRequest(room));
    }

    leave(room) {
      this.rooms.delete(room);
      // The position is kept: joined again later, the room resumes where this page was (what
      // the history still holds), or says it cannot.
      if (this.ready) this.raw({ op: "leave", room: room });
    }

    // A page of the room's history: up to `limit` messages before offset `before` (the latest
    // if omitted), answered by a `history` event.
    history(room, before, limit) {
      const req = { op: "history", room: room };
      if (before !== undefined && before !== null) req.before = before;
      if (limit !== undefined) req.limit = limit;
      this.request(req);
    }

    // Sends `text` to `room`; returns the message's id (the message event carries it back).
    send(room, text) {
      const id = this.idPrefix + "-" + this.nextId++;
      if (this.pending.size >= this.opts.maxPending) {
        const [oldest, entry] = this.pending.entries().next().value;
        this.pending.delete(oldest);
        this.emit("dropped", { op: "send", room: entry.room, text: entry.text, id: oldest });
      }
      const entry = { room: room, text: text, sentOn: 0, tries: 0 };
      this.pending.set(id, entry);
      this.sendPending(id, entry);
      return id;
    }

    // A direct message to `user` (a server with tokens); returns its id, which the `sent` event
    // carries back.
    sendTo(user, text) {
      const id = this.send("user:" + user, text);
      this.pending.get(id).direct = true;
      return id;
    }

    nick(name) {
      this.name = name;
      if (this.ready) this.raw({ op: "nick", name: name });
    }

    close() {
      this.closed = true;
      clearInterval(this.heartbeat);
      if (this.ws) this.ws.close(1000, "bye");
    }
  }

  global.RingwsChat = RingwsChat;
})(typeof window !== "undefined" ? window : globalThis);
