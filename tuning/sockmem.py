#!/usr/bin/env python3
"""Measures what idle and busy TCP sockets cost the kernel on this host (tuning/README.md).

    tuning/sockmem.py [--pairs N]

Opens N loopback connections (2N sockets: the accepted ends are what a server holds) and reads
/proc/net/sockstat (TCP "mem": pages charged against net.ipv4.tcp_mem) and /proc/meminfo
("Slab") at each step: connected and idle; one unread 100-byte message queued on every
connection; after reading it; one unread 1000-byte message. Needs 2N + 16 descriptors
(RLIMIT_NOFILE). No root. Slab is host-wide: run it on a quiet host, and more than once.
"""
import argparse
import re
import resource
import socket
import sys
import time


def sample():
    with open("/proc/net/sockstat") as f:
        m = re.search(r"TCP: inuse \d+ orphan \d+ tw \d+ alloc (\d+) mem (\d+)", f.read())
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(m.group(1)), int(m.group(2)), int(info["Slab"].split()[0]) * 1024


def settle():
    time.sleep(0.5)
    return sample()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4000, help="connections (default 4000)")
    n = parser.parse_args().pairs
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 2 * n + 16:
        sys.exit(f"sockmem: RLIMIT_NOFILE is {soft}, {2 * n + 16} needed: use --pairs {(soft - 16) // 2}")
    page = resource.getpagesize()

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    base = settle()
    clients, servers = [], []
    for _ in range(n):
        clients.append(socket.create_connection(("127.0.0.1", port)))
        servers.append(listener.accept()[0])
    idle = settle()
    sockets = idle[0] - base[0]
    print(f"{n} loopback connections, {sockets} sockets, page {page} B")
    print(f"idle:     tcp_mem {idle[1] - base[1]:+d} pages; "
          f"slab +{(idle[2] - base[2]) // max(sockets, 1)} B per socket")

    for c in clients:
        c.send(b"x" * 100)
    queued = settle()
    print(f"one unread 100 B message per connection:  tcp_mem +{queued[1] - idle[1]} pages "
          f"= {(queued[1] - idle[1]) * page // n} B per connection")
    for s in servers:
        s.recv(4096)
    drained = settle()
    print(f"read again:  tcp_mem {drained[1] - idle[1]:+d} pages against idle")
    for c in clients:
        c.send(b"x" * 1000)
    queued = settle()
    print(f"one unread 1000 B message per connection: tcp_mem +{queued[1] - drained[1]} pages "
          f"= {(queued[1] - drained[1]) * page // n} B per connection")


if __name__ == "__main__":
    main()
