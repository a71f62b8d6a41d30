#!/usr/bin/env python3
"""Slow readers for the soak (loadtest/soak.sh): CLIENTS connections at a time, each asking the
edge for an object (half of them cold 4 MiB fills, half hot), with a small receive buffer, reading
READ_BYTES every PERIOD seconds for at most HOLD seconds, then closing and starting over, until
DURATION seconds have passed. Loopback only. Prints one line of totals at the end.

  slow_clients.py --base 127.0.0.1:8080 --clients 20 --duration 1800
"""
import argparse
import asyncio
import random
import socket
import sys
import time


async def one(host, port, path, args, totals):
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock)
    except OSError:
        totals["connect_errors"] += 1
        return
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        await writer.drain()
        deadline = time.monotonic() + args.hold
        while time.monotonic() < deadline:
            data = await asyncio.wait_for(reader.read(args.read_bytes), timeout=args.hold)
            if not data:
                totals["closed_by_edge"] += 1
                return
            totals["bytes"] += len(data)
            await asyncio.sleep(args.period)
        totals["gave_up"] += 1
    except (OSError, asyncio.TimeoutError):
        totals["errors"] += 1
    finally:
        writer.close()


async def worker(i, host, port, args, totals, end):
    n = 0
    while time.monotonic() < end:
        n += 1
        if n % 2:
            path = f"/slowcold/{i}-{n}-{random.getrandbits(32)}.ts?size={4 << 20}&pace=1000"
        else:
            path = "/hot/segment.ts?size=1048576"
        await one(host, port, path, args, totals)
        totals["connections"] += 1


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", default="127.0.0.1:8080")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--hold", type=float, default=20)
    p.add_argument("--read-bytes", type=int, default=16384)
    p.add_argument("--period", type=float, default=0.5)
    args = p.parse_args()
    host, port = args.base.rsplit(":", 1)
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("refusing a non-loopback target")
    totals = dict(connections=0, bytes=0, gave_up=0, closed_by_edge=0, errors=0, connect_errors=0)
    end = time.monotonic() + args.duration
    await asyncio.gather(*(worker(i, host, int(port), args, totals, end) for i in range(args.clients)))
    print("slow clients: " + " ".join(f"{k}={v}" for k, v in totals.items()))


asyncio.run(main())
