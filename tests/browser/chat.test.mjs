// The chat page in a real browser: two pages in one room see each other's messages; the server
// is killed and started again, and the pages reconnect and re-join by themselves; a page that
// goes offline while the other talks gets every message it missed, once each, in order; two
// users signed in with tokens exchange direct messages; the page served over https talks over
// wss:// (the test certificate in tests/data/tls, which the browser is told to accept).
// Run by tests/browser/run.sh (RINGWS_BIN: the server binary, RINGWS_PORT: a free port).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { createHmac } from "node:crypto";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const BIN = process.env.RINGWS_BIN;
const PORT = Number(process.env.RINGWS_PORT);
const URL = `http://127.0.0.1:${PORT}/`;
const SHOTS = process.env.RINGWS_SCREENSHOTS; // a folder for screenshots, if set

function listening() {
  return new Promise((resolve) => {
    const s = net.connect(PORT, "127.0.0.1", () => { s.destroy(); resolve(true); });
    s.on("error", () => resolve(false));
  });
}

async function until(what, check, ms = 10000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startServer(extra = []) {
  await until("the port to be free", async () => !(await listening()));
  const server = spawn(BIN, ["--mode", "chat", "--listen", `127.0.0.1:${PORT}`, "--workers", "2", ...extra], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  await until("the server to listen", listening);
  return server;
}

async function stopServer(server) {
  const exited = new Promise((r) => server.once("exit", r));
  server.kill("SIGKILL"); // as a crash: no close frames
  await exited;
  await until("the port to be free", async () => !(await listening()));
}

const connected = () => document.getElementById("status").className === "up";
const disconnected = () => document.getElementById("status").className === "down";

function launch() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** The sum of a counter's samples over its labels, from a /metrics text. */
function total(metrics, name) {
  return metrics.split("\n")
    .filter((l) => l.startsWith(`ringws_${name}_total{`))
    .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

async function sees(page, text) {
  await page.locator(".msg .text", { hasText: text }).first().waitFor({ timeout: 10000 });
}

test("two pages chat in one room, and reconnect and re-join after a server restart", async () => {
  assert.ok(BIN && PORT, "RINGWS_BIN and RINGWS_PORT must be set (tests/browser/run.sh)");
  let server = await startServer();
  const browser = await launch();
  try {
    const a = await (await browser.newContext()).newPage();
    const b = await (await browser.newContext()).newPage();
    for (const page of [a, b]) {
      await page.goto(URL);
      await page.waitForFunction(connected);
    }
    await a.fill("#name", "alice");
    await a.dispatchEvent("#name", "change");
    // Both joined #lobby on load; each sees the other's message, with the sender's name.
    await b.locator("#rooms li", { hasText: "2 online" }).waitFor({ timeout: 10000 });
    await say(a, "hello from a");
    await sees(b, "hello from a");
    assert.match(await b.locator(".msg", { hasText: "hello from a" }).first().innerText(), /alice/);
    await say(b, "hello from b");
    await sees(a, "hello from b");
    if (SHOTS) await b.screenshot({ path: `${SHOTS}/chat-before-restart.png` });

    // The server dies and comes back: the pages notice, reconnect with backoff, re-join.
    await stopServer(server);
    await a.waitForFunction(disconnected);
    await b.waitForFunction(disconnected);
    server = await startServer();
    await a.waitForFunction(connected, null, { timeout: 15000 });
    await b.waitForFunction(connected, null, { timeout: 15000 });
    await say(b, "after the restart");
    await sees(a, "after the restart");
    await say(a, "still here");
    await sees(b, "still here");
    // The name was set again on the new connection too.
    assert.match(await b.locator(".msg", { hasText: "still here" }).first().innerText(), /alice/);
    // Chromium offers permessage-deflate and chat mode accepts it: the messages above went
    // compressed both ways (and were read, so compression works end to end in a browser).
    const metrics = await (await fetch(`http://127.0.0.1:${PORT}/metrics`)).text();
    assert.ok(total(metrics, "compressed_in") > 0, "the browser sent compressed messages");
    assert.ok(total(metrics, "compressed_out") > 0, "the server sent compressed messages");
    if (SHOTS) await a.screenshot({ path: `${SHOTS}/chat-after-restart.png` });
  } finally {
    await browser.close();
    await stopServer(server);
  }
});

test("a page that was offline shows every message it missed, once each, in order", async () => {
  // Text heartbeats every second: the page notices the dead connection within ~11 s.
  const server = await startServer(["--text-heartbeat", "ping:pong", "--ping-interval", "2s"]);
  const browser = await launch();
  try {
    const a = await (await browser.newContext()).newPage();
    const bContext = await browser.newContext();
    const b = await bContext.newPage();
    for (const page of [a, b]) {
      await page.goto(URL);
      await page.waitForFunction(connected);
    }
    await b.locator("#rooms li", { hasText: "2 online" }).waitFor({ timeout: 10000 });
    await say(a, "before");
    await sees(b, "before");
    await bContext.setOffline(true);
    await b.waitForFunction(disconnected, null, { timeout: 20000 });
    for (let i = 1; i <= 20; i++) await say(a, `missed ${i}`);
    await sees(a, "missed 20");
    await bContext.setOffline(false);
    await b.waitForFunction(connected, null, { timeout: 20000 });
    await sees(b, "missed 20");
    await say(a, "after");
    await sees(b, "after");
    const texts = await b.locator(".msg .text").allInnerTexts();
    const expected = ["before", ...Array.from({ length: 20 }, (_, i) => `missed ${i + 1}`), "after"];
    assert.deepEqual(texts, expected, "every message once, in order");
    const offsets = await b.locator(".msg").evaluateAll((ps) => ps.map((p) => Number(p.dataset.offset)));
    assert.deepEqual(offsets, expected.map((_, i) => i + 1));
    assert.ok(await b.locator(".note", { hasText: "missed message(s) follow" }).count() > 0, "told it recovered");
    if (SHOTS) await b.screenshot({ path: `${SHOTS}/chat-recovered.png` });
  } finally {
    await browser.close();
    await stopServer(server);
  }
});

/** An HS256 JWT for `sub`, signed with `secret` (what the application behind the chat makes). */
function jwt(sub, name, secret) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, name, exp: Math.floor(Date.now() / 1000) + 600 })}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

test("two users signed in with tokens exchange direct messages", async () => {
  const secret = "the browser test's secret, 32+ bytes";
  const server = await startServer(["--jwt-secret", secret]);
  const browser = await launch();
  try {
    const alice = await (await browser.newContext()).newPage();
    const bob = await (await browser.newContext()).newPage();
    const stranger = await (await browser.newContext()).newPage();
    await alice.goto(`${URL}#token=${jwt("alice", "Alice", secret)}`);
    await bob.goto(`${URL}#token=${jwt("bob", "Bob", secret)}`);
    for (const page of [alice, bob]) await page.waitForFunction(connected);
    assert.match(await alice.locator("#status").innerText(), /connected as alice/);
    // Without a token the page cannot connect (401 at the upgrade).
    await stranger.goto(URL);
    await stranger.locator("#status", { hasText: "reconnecting" }).waitFor({ timeout: 10000 });
    // Alice opens a conversation with Bob and writes; Bob sees it appear and answers.
    await alice.fill("#room", "@bob");
    await alice.press("#room", "Enter");
    await say(alice, "hi bob, only you see this");
    await sees(alice, "hi bob, only you see this"); // acknowledged (the `sent` event)
    await bob.locator("#rooms li[data-room='@alice']").click({ timeout: 10000 });
    await sees(bob, "hi bob, only you see this");
    assert.match(await bob.locator(".msg", { hasText: "only you see this" }).innerText(), /Alice/);
    await say(bob, "hi alice");
    await sees(alice, "hi alice");
    if (SHOTS) await alice.screenshot({ path: `${SHOTS}/chat-direct-messages.png` });
  } finally {
    await browser.close();
    await stopServer(server);
  }
});

test("the page served over https chats over wss://", async () => {
  // (`URL` here is the page's address: the constructor is globalThis.URL.)
  const tls = (file) => fileURLToPath(new globalThis.URL(`../data/tls/${file}`, import.meta.url));
  const server = await startServer(["--tls-cert", tls("cert.pem"), "--tls-key", tls("key.pem")]);
  const browser = await launch();
  try {
    // The test certificate is self-signed: the contexts accept it (as --ignore-certificate-errors).
    const a = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
    const bContext = await browser.newContext({ ignoreHTTPSErrors: true });
    const b = await bContext.newPage();
    const https = `https://127.0.0.1:${PORT}/`;
    for (const page of [a, b]) {
      await page.goto(https);
      await page.waitForFunction(connected);
    }
    await b.locator("#rooms li", { hasText: "2 online" }).waitFor({ timeout: 10000 });
    await say(a, "over tls");
    await sees(b, "over tls");
    await say(b, "and back");
    await sees(a, "and back");
    // The pages' WebSockets went through the workers' TLS (no plaintext port exists), compressed.
    const metrics = await (await bContext.request.get(`${https}metrics`)).text();
    assert.ok(total(metrics, "tls_handshakes") >= 2, "a TLS handshake per page (and its fetches)");
    assert.ok(total(metrics, "compressed_in") > 0, "the browser sent compressed messages");
    if (SHOTS) await a.screenshot({ path: `${SHOTS}/chat-over-wss.png` });
  } finally {
    await browser.close();
    await stopServer(server);
  }
});
