#!/usr/bin/env python3
"""Chat members that join a room and never read (benches/soak.sh; standard library only).

    python3 benches/silent.py HOST PORT ROOM COUNT

Holds COUNT WebSocket connections to a ringws chat server, each joined to ROOM, with a small
receive buffer and never a read: the server's queue for each fills, its backpressure policy
drops what does not fit, and its heartbeat closes them (no pong ever comes). A closed one is
opened again. Runs until SIGTERM; prints how many connections it opened in all.
"""

import base64
import os
import select
import signal
import socket
import sys
import time


def frame(text):
    """A masked text frame (client to server)."""
    data = text.encode()
    mask = os.urandom(4)
    head = bytes([0x81])
    if len(data) < 126:
        head += bytes([0x80 | len(data)])
    else:
        head += bytes([0x80 | 126]) + len(data).to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def open_member(host, port, room):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Small, so the kernel's share fills quickly and the server's queue is what holds the rest.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    # The answer's head only: after it, nothing is ever read again.
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace"))
    s.sendall(frame(f'{{"op":"join","room":"{room}"}}'))
    return s


def main():
    host, port, room, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    members, opened = [], 0
    poller = select.poll()
    while not stop:
        while len(members) < count and not stop:
            try:
                s = open_member(host, port, room)
            except OSError as e:
                print(f"silent: {e}", file=sys.stderr)
                time.sleep(1)
                continue
            members.append(s)
            poller.register(s, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
            opened += 1
        # Only to see a member closed by the server (its data stays unread).
        for fd, _ in poller.poll(1000):
            for s in [m for m in members if m.fileno() == fd]:
                poller.unregister(s)
                members.remove(s)
                s.close()
    for s in members:
        s.close()
    print(opened)
    return 0


if __name__ == "__main__":
    sys.exit(main())
