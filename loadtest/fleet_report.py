#!/usr/bin/env python3
"""The tables of loadtest/fleet.sh, from the files it leaves in its temp folder.

  <tmp>/nodes               lines "name pid http_port" (shields and edges)
  <tmp>/cpu0, <tmp>/cpu1    lines "name ticks" (utime + stime) before and after the run
  <tmp>/<name>/metrics.txt  each node's /metrics after the run (fresh processes: the run's counts)
  <tmp>/origin.json         origin.py's /stats?prefix=/fleet/
  <tmp>/k6.json             fleet.js's summary

Hit ratio of a node = content requests it answered from its cache (X-Cache HIT or STALE) /
content requests it answered. Origin fetches per object = origin requests / distinct objects.
"""

import argparse
import json
import os
import re

SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} (\S+)$")


def samples(text, name):
    """(labels dict, value) of every sample of metric `name`."""
    out = []
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and m.group(1) == name:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            out.append((labels, float(m.group(3))))
    return out


def ticks(path):
    with open(path) as f:
        return {name: int(t) for name, t in (line.split() for line in f if line.strip())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--clk-tck", type=int, default=100)
    ap.add_argument("--busy-ticks", type=int, default=0, help="whole-machine busy ticks during the run")
    a = ap.parse_args()

    with open(os.path.join(a.tmp, "nodes")) as f:
        nodes = [line.split() for line in f if line.strip()]
    cpu0, cpu1 = ticks(os.path.join(a.tmp, "cpu0")), ticks(os.path.join(a.tmp, "cpu1"))
    with open(os.path.join(a.tmp, "origin.json")) as f:
        origin = json.load(f)
    with open(os.path.join(a.tmp, "k6.json")) as f:
        k6 = json.load(f)
    dur = k6["duration_s"] or 1.0
    shields = {f"127.0.0.1:{port}": name for name, _, port in nodes if name.startswith("shield")}

    rows = []
    for name, _, _ in nodes:
        with open(os.path.join(a.tmp, name, "metrics.txt")) as f:
            text = f.read()
        content = [(l, v) for l, v in samples(text, "edge_requests_total") if l.get("kind") == "content"]
        total = sum(v for _, v in content)
        hits = sum(v for l, v in content if l.get("cache") in ("HIT", "STALE"))
        errors = sum(v for l, v in content if not l.get("status", "").startswith("2"))
        up = {}
        for l, v in samples(text, "edge_upstream_requests_total"):
            key = shields.get(l.get("node", ""), "origin")
            up[key] = up.get(key, 0) + v
        cpu_s = (cpu1.get(name, 0) - cpu0.get(name, 0)) / a.clk_tck
        rows.append((name, total, hits, errors, up, cpu_s))

    fetches = origin["prefix_requests"]
    distinct = origin["prefix_distinct"] or 1
    print(
        f"Players: {k6['requests']:.0f} requests in {dur:.1f} s ({k6['rps']:.0f}/s), "
        f"p50 {k6['p50_ms']:.1f} ms, p99 {k6['p99_ms']:.1f} ms, non-200 {k6['non200']:.0f}, "
        f"transport errors {k6['transport_errors']:.0f}."
    )
    print()
    per = sorted(origin["paths"].values())
    twice = sum(1 for n in per if n > 1)
    print(
        f"Origin: {fetches} fetches of {distinct} distinct objects = **{fetches / distinct:.2f} fetches/object** "
        f"fleet-wide ({twice} objects fetched more than once; most fetches of one object: {per[-1] if per else 0}); "
        f"fleet offload {100 * (1 - fetches / max(k6['requests'], 1)):.1f} % of player requests."
    )
    print()
    names = sorted(set(shields.values()))
    print("| node | content requests | hit ratio | non-2xx | upstream requests | CPU s | requests / CPU s |")
    print("|---|---:|---:|---:|---|---:|---:|")
    node_cpu = 0.0
    for name, total, hits, errors, up, cpu_s in rows:
        node_cpu += cpu_s
        spread = ", ".join(f"{k} {up[k]:.0f}" for k in names + ["origin"] if k in up) or "-"
        ratio = f"{100 * hits / total:.1f} %" if total else "-"
        rate = f"{total / cpu_s:.0f}" if cpu_s > 0 else "-"
        print(f"| {name} | {total:.0f} | {ratio} | {errors:.0f} | {spread} | {cpu_s:.2f} | {rate} |")
    origin_cpu = (cpu1.get("origin", 0) - cpu0.get("origin", 0)) / a.clk_tck
    busy = a.busy_ticks / a.clk_tck
    print()
    print(
        f"CPU during the run: edge processes {node_cpu:.2f} s, origin.py {origin_cpu:.2f} s, "
        f"everything else (k6 and other work on the machine) {max(busy - node_cpu - origin_cpu, 0):.2f} s, "
        f"of {busy:.2f} busy CPU-seconds in {dur:.1f} s."
    )


if __name__ == "__main__":
    main()
