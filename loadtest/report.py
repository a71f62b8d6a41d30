#!/usr/bin/env python3
"""Helpers for compare.sh (stdlib only).

  report.py row  --k6 K6.json --origin STATS.json --cpu-start A --cpu-end B --clk-tck T
                 --scenario S --proxy P --warm-requests W [--origin-ms MS]   -> one JSON line
  report.py cpu-delta START_FILE END_FILE CLK_TCK                            -> CPU seconds
  report.py table ROWS.jsonl                                                 -> markdown tables
"""
import json
import os
import sys


def cpu_delta(start_file, end_file, clk_tck):
    """Files hold lines 'pid ticks'. Sum of (end - start) over the pids alive at the end
    (a pid born during the run counts from 0); pids gone at the end are ignored."""
    def load(f):
        d = {}
        for line in open(f):
            p = line.split()
            if len(p) == 2:
                d[p[0]] = int(p[1])
        return d

    a, b = load(start_file), load(end_file)
    ticks = sum(v - a.get(p, 0) for p, v in b.items())
    return ticks / float(clk_tck)


def arg(argv, name, default=None):
    if name in argv:
        return argv[argv.index(name) + 1]
    return default


def row(argv):
    k6 = json.load(open(arg(argv, "--k6")))
    origin = json.load(open(arg(argv, "--origin")))
    cpu_s = float(arg(argv, "--cpu-s", "0"))
    warm = int(arg(argv, "--warm-requests", "0"))
    herd_warm = int(arg(argv, "--k6-warm-requests", "0"))
    origin_ms = arg(argv, "--origin-ms")
    r = {
        "scenario": arg(argv, "--scenario"),
        "proxy": arg(argv, "--proxy"),
        "duration_s": k6["duration_s"],
        "requests": k6["requests"],
        "rps": k6["rps"],
        "p50_ms": k6["p50_ms"],
        "p99_ms": k6["p99_ms"],
        "max_ms": k6["max_ms"],
        "gbit_s": k6["bytes_per_s"] * 8 / 1e9,
        "non200": k6["non200"],
        "transport_errors": k6["transport_errors"],
        "xcache_hit": k6["xcache_hit"],
        "xcache_miss": k6["xcache_miss"],
        "xcache_other": k6["xcache_other"],
        "origin_fetches": origin["prefix_requests"],
        "origin_objects": origin["prefix_distinct"],
        "proxy_cpu_s": cpu_s,
        "other_cpu_s": float(arg(argv, "--other-cpu-s", "0")),
        "rss_mib": float(arg(argv, "--rss-mib")) if arg(argv, "--rss-mib") else None,
    }
    # Requests for the measured objects: k6's (minus its own warm-up requests) + ours.
    object_requests = k6["requests"] - herd_warm + warm
    r["object_requests"] = object_requests
    r["fetches_per_object"] = (r["origin_fetches"] / r["origin_objects"]) if r["origin_objects"] else None
    r["origin_hit_ratio"] = (1 - r["origin_fetches"] / object_requests) if object_requests else None
    r["req_per_cpu_s"] = (k6["requests"] / cpu_s) if cpu_s > 0 else None
    if origin_ms:
        om = float(origin_ms)
        r["origin_ms"] = om
        for k in ("herd_total_p50_ms", "herd_total_p99_ms", "herd_total_max_ms", "herd_ttfb_p50_ms",
                  "herd_start_skew_p99_ms", "herd_start_skew_max_ms", "herd_late_starts", "herd_clients", "herd_waves"):
            r[k] = k6.get(k)
        r["herd_max_over_origin"] = k6["herd_total_max_ms"] / om
        r["herd_p99_over_origin"] = k6["herd_total_p99_ms"] / om
        r["herd_p50_over_origin"] = k6["herd_total_p50_ms"] / om
    for k, v in k6.items():
        if k.startswith("vod_"):
            r[k] = v
    metrics = arg(argv, "--edge-metrics")
    if metrics and os.path.exists(metrics):
        r.update(disk_hits(metrics))
    print(json.dumps(r))


def disk_hits(metrics_path):
    """The edge's disk-tier hits from its /metrics: count and p50 / p99 in ms, interpolated in
    the buckets of foyer's `foyer_storage_op_duration{op="hit"}` (the disk tier's lookup that
    found the object: read and decode, without the HTTP answer)."""
    buckets, count = [], 0.0
    for line in open(metrics_path):
        if not line.startswith("foyer_storage_op_duration") or 'op="hit"' not in line:
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith("foyer_storage_op_duration_bucket"):
            le = name.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(value)))
        elif name.startswith("foyer_storage_op_duration_count"):
            count = float(value)
    if not count or not buckets:
        return {"disk_hits": count}
    buckets.sort()

    def q(p):
        target, prev_le, prev_n = p * count, 0.0, 0.0
        for le, n in buckets:
            if n >= target:
                if le == float("inf"):
                    return prev_le * 1000
                frac = (target - prev_n) / (n - prev_n) if n > prev_n else 1.0
                return (prev_le + (le - prev_le) * frac) * 1000
            prev_le, prev_n = le, n
        return prev_le * 1000

    return {"disk_hits": count, "disk_hit_p50_ms": q(0.5), "disk_hit_p99_ms": q(0.99)}


def f(v, fmt):
    return "-" if v is None else format(v, fmt)


def table(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    out = []
    out.append(
        "| scenario | proxy | req/s | p50 ms | p99 ms | Gbit/s | non-200 / errors | X-Cache HIT % "
        "| origin fetches / objects | fetches per object | origin-side hit % | proxy CPU s | req per CPU-s | other CPU s | RSS MiB |"
    )
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        n = r["xcache_hit"] + r["xcache_miss"] + r["xcache_other"]
        out.append(
            "| {scenario} | {proxy} | {rps} | {p50} | {p99} | {gb} | {bad} | {xh} | {of} / {oo} | {fpo} | {hit} | {cpu} | {rpc} | {oth} | {rss} |".format(
                scenario=r["scenario"], proxy=r["proxy"], rps=f(r["rps"], ".0f"), p50=f(r["p50_ms"], ".2f"),
                p99=f(r["p99_ms"], ".2f"), gb=f(r["gbit_s"], ".2f"),
                bad=f"{r['non200']} / {r['transport_errors']}",
                xh=f(100 * r["xcache_hit"] / n if n else None, ".1f"),
                of=r["origin_fetches"], oo=r["origin_objects"], fpo=f(r["fetches_per_object"], ".2f"),
                hit=f(100 * r["origin_hit_ratio"] if r["origin_hit_ratio"] is not None else None, ".1f"),
                cpu=f(r["proxy_cpu_s"], ".2f"), rpc=f(r["req_per_cpu_s"], ".0f"), oth=f(r.get("other_cpu_s"), ".2f"),
                rss=f(r.get("rss_mib"), ".0f"),
            )
        )
    herd = [r for r in rows if "herd_max_over_origin" in r]
    if herd:
        out.append("")
        out.append("Cold herd (each client's total time = request issued to last byte; origin's own response time measured directly):")
        out.append("")
        out.append(
            "| proxy | clients x waves | origin ms | client p50 ms | client p99 ms | client max ms | p50 / origin | p99 / origin "
            "| max / origin | fetches per object | wave start skew p99 / max ms |"
        )
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in herd:
            out.append(
                "| {p} | {c} x {w} | {om} | {a} | {b} | {c2} | {x50} | {x99} | {xm} | {fpo} | {s1} / {s2} |".format(
                    p=r["proxy"], c=r["herd_clients"], w=r["herd_waves"], om=f(r["origin_ms"], ".0f"),
                    a=f(r["herd_total_p50_ms"], ".0f"), b=f(r["herd_total_p99_ms"], ".0f"), c2=f(r["herd_total_max_ms"], ".0f"),
                    x50=f(r["herd_p50_over_origin"], ".2f"), x99=f(r["herd_p99_over_origin"], ".2f"),
                    xm=f(r["herd_max_over_origin"], ".2f"), fpo=f(r["fetches_per_object"], ".2f"),
                    s1=f(r["herd_start_skew_p99_ms"], ".0f"), s2=f(r["herd_start_skew_max_ms"], ".0f"),
                )
            )
    disk = [r for r in rows if r.get("disk_hits")]
    if disk:
        out.append("")
        out.append("Edge disk-tier hits (foyer's `foyer_storage_op_duration{op=\"hit\"}`: the disk lookup that found the object, read and decode):")
        out.append("")
        out.append("| scenario | proxy | disk hits | p50 ms | p99 ms |")
        out.append("|---|---|---:|---:|---:|")
        for r in disk:
            out.append(f"| {r['scenario']} | {r['proxy']} | {r['disk_hits']:.0f} | {f(r.get('disk_hit_p50_ms'), '.2f')} | {f(r.get('disk_hit_p99_ms'), '.2f')} |")
    vod = [r for r in rows if "vod_sessions_completed" in r]
    if vod:
        out.append("")
        out.append("| proxy | sessions | failures | segments | startup p50 / p99 ms | segment p99 ms | rebuffers |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for r in vod:
            out.append(
                f"| {r['proxy']} | {r['vod_sessions_completed']} | {r['vod_session_failures']} | {r['vod_segments']} "
                f"| {r['vod_startup_p50_ms']:.0f} / {r['vod_startup_p99_ms']:.0f} | {r['vod_segment_p99_ms']:.1f} | {r['vod_rebuffers']} |"
            )
    print("\n".join(out))


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "row":
        row(sys.argv[2:])
    elif cmd == "cpu-delta":
        print(f"{cpu_delta(sys.argv[2], sys.argv[3], sys.argv[4]):.3f}")
    elif cmd == "table":
        table(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
