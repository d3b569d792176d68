#!/usr/bin/env python3
"""Parsing and reporting for the side-by-side peers harness (benches/peers/run.sh).

What it does:
  parse.py wrk OUT                 -> one JSON object from `wrk --latency` output
  parse.py h2load OUT LOG          -> one JSON object from h2load output + its --log-file
  parse.py render TEMPLATE OUT K=V..  -> copy TEMPLATE to OUT replacing each @K@ with V
  parse.py report RAW MACHINE DIR  -> median of rounds per (scenario, peer): markdown tables with
                                      ratio lines on stdout, and results.{md,csv,json} in DIR

Only the standard library; no network.
"""

import csv
import json
import math
import re
import statistics
import sys

NOISE_PCT = 5.0   # foreign CPU on a benchmark core above this makes a run suspect
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def duration_ms(text):
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text.strip())
    if not match:
        return None
    return float(match.group(1)) * UNITS_MS[match.group(2)]


def parse_wrk(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    out = {"tool": "wrk", "requests": 0, "rps": None, "p50_ms": None, "p99_ms": None,
           "errors": 0, "non_2xx": 0}
    match = re.search(r"^\s*(\d+) requests in", text, re.M)
    if match:
        out["requests"] = int(match.group(1))
    match = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M)
    if match:
        out["rps"] = float(match.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        match = re.search(r"^\s*" + pct + r"(?:\.000)?%\s+(\S+)", text, re.M)
        if match:
            out[key] = duration_ms(match.group(1))
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if match:
        out["errors"] = sum(int(g) for g in match.groups())
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if match:
        out["non_2xx"] = int(match.group(1))
    return out


def percentile(sorted_values, pct):
    if not sorted_values:
        return None
    # nearest rank
    rank = max(0, min(len(sorted_values) - 1, math.ceil(pct / 100.0 * len(sorted_values)) - 1))
    return sorted_values[rank]


def parse_h2load(path, log_path):
    text = open(path, encoding="utf-8", errors="replace").read()
    out = {"tool": "h2load", "requests": 0, "rps": None, "p50_ms": None, "p99_ms": None,
           "errors": 0, "non_2xx": 0}
    match = re.search(r"finished in [0-9.]+\w*, ([0-9.]+) req/s", text)
    if match:
        out["rps"] = float(match.group(1))
    match = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    if match:
        out["requests"] = int(match.group(4))
        out["errors"] = int(match.group(6)) + int(match.group(7))
    match = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if match:
        out["non_2xx"] = int(match.group(3)) + int(match.group(4))
    # h2load prints only min/max/mean/sd; percentiles come from the per-request log
    # (start_us, status, duration_us), successful responses only.
    durations = []
    try:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            for line in log:
                fields = line.split("\t")
                if len(fields) >= 3 and fields[1].startswith("2"):
                    durations.append(int(fields[2]) / 1000.0)
    except FileNotFoundError:
        pass
    durations.sort()
    out["p50_ms"] = percentile(durations, 50)
    out["p99_ms"] = percentile(durations, 99)
    return out


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def max_of(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


def fmt(value, digits):
    return "n/a" if value is None else f"{value:,.{digits}f}"


def ratio(a, b):
    if a is None or b in (None, 0):
        return "n/a"
    return f"{a / b:.2f}"


def report(raw_path, machine_path, out_dir):
    rows = [json.loads(line) for line in open(raw_path, encoding="utf-8") if line.strip()]
    machine = json.load(open(machine_path, encoding="utf-8"))
    scenarios, peers = [], []
    for row in rows:
        if row["scenario"] not in scenarios:
            scenarios.append(row["scenario"])
        if row["peer"] not in peers:
            peers.append(row["peer"])
    summary = []
    for scenario in scenarios:
        for peer in peers:
            runs = [r for r in rows if r["scenario"] == scenario and r["peer"] == peer]
            if not runs:
                continue
            good = [r for r in runs if not r.get("failed")]
            requests = sum(r["requests"] for r in good)
            summary.append({
                "scenario": scenario, "peer": peer, "rounds": len(good),
                "failed_rounds": len(runs) - len(good),
                "rps": median([r["rps"] for r in good]),
                "p50_ms": median([r["p50_ms"] for r in good]),
                "p99_ms": median([r["p99_ms"] for r in good]),
                "peak_rss_mib": median([r["peak_rss_kib"] / 1024.0 if r["peak_rss_kib"] else None
                                        for r in good]),
                "cpu_s_per_100k": median([r["cpu_s_per_100k"] for r in good]),
                "errors": sum(r["errors"] + r["non_2xx"] for r in good),
                "origin_pct": (100.0 * sum(r["origin_requests"] for r in good) / requests
                               if requests else None),
                "origin_connections": median([r.get("origin_connections") for r in good]),
                "foreign_pct_proxy_cpu": max_of([r.get("foreign_pct_proxy_cpu") for r in good]),
                "foreign_pct_load_cpu": max_of([r.get("foreign_pct_load_cpu") for r in good]),
                "busy_pct_proxy_cpu": median([r.get("busy_pct_proxy_cpu") for r in good]),
                "busy_pct_load_cpu": median([r.get("busy_pct_load_cpu") for r in good]),
                "not_hitting_rounds": sum(1 for r in good if r.get("not_hitting")),
                "walk_rps": median([r.get("walk_rps") for r in good]),
                "cache_mb": max_of([r.get("cache_mb") for r in good]),
            })

    lines = ["# Sluice side-by-side peers", ""]
    lines.append(f"Machine: {machine.get('cpu_model')} x{machine.get('nproc')}, "
                 f"kernel {machine.get('kernel')}; {machine.get('date')}")
    lines.append("Versions: " + "; ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items()))
    lines.append(f"Settings: {machine.get('settings')}")
    lines.append(f"Load average at start {machine.get('loadavg_start')}, "
                 f"at end {open('/proc/loadavg').read().split()[:3]}.")
    lines.append("Median of rounds. Proxy pinned to one CPU; load generator and origin on the "
                 "other. errors = socket errors + 4xx/5xx; to origin = requests that reached the "
                 "origin, per request served; origin conns = connections the origin accepted during the run "
                 "(upstream reuse: low is good).")
    lines.append("")
    for scenario in scenarios:
        lines.append(f"## {scenario}")
        lines.append("")
        lines.append("| peer | req/s | p50 ms | p99 ms | peak RSS MiB | CPU s/100k req "
                     "| errors | to origin | origin conns |")
        lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        by_peer = {}
        for s in summary:
            if s["scenario"] != scenario:
                continue
            by_peer[s["peer"]] = s
            lines.append(f"| {s['peer']} | {fmt(s['rps'], 0)} | {fmt(s['p50_ms'], 2)} | "
                         f"{fmt(s['p99_ms'], 2)} | {fmt(s['peak_rss_mib'], 1)} | "
                         f"{fmt(s['cpu_s_per_100k'], 2)} | {s['errors']} | "
                         f"{fmt(s['origin_pct'], 0)}% | {fmt(s['origin_connections'], 0)} |"
                         + (f" ({s['failed_rounds']} round(s) failed)" if s["failed_rounds"] else "")
                         + (f" (NOT HITTING in {s['not_hitting_rounds']} round(s))"
                            if s["not_hitting_rounds"] else ""))
        lines.append("")
        lines.append("- cores busy, proxy/load: " + ", ".join(
            f"{p} {fmt(s['busy_pct_proxy_cpu'], 0)}%/{fmt(s['busy_pct_load_cpu'], 0)}%"
            for p, s in by_peer.items()) + " (a load core near 100% with a proxy core well "
            "below means the client side limits req/s; compare CPU s/100k req then)")
        noisy = [f"{p} {fmt(s['foreign_pct_proxy_cpu'], 0)}%/{fmt(s['foreign_pct_load_cpu'], 0)}%"
                 for p, s in by_peer.items()
                 if max(s["foreign_pct_proxy_cpu"] or 0, s["foreign_pct_load_cpu"] or 0) > NOISE_PCT]
        if noisy:
            lines.append("- WARNING, other processes used the benchmark's cores (proxy core/load "
                         "core, worst round): " + ", ".join(noisy) + "; these numbers are not "
                         "comparable")
            lines.append("")
        walks = [f"{p} {fmt(s['walk_rps'], 0)}/s" for p, s in by_peer.items() if s["walk_rps"]]
        if walks:
            lines.append("- warm-up walk (every object once, all misses): " + ", ".join(walks)
                         + f"; cache budget {by_peer[next(iter(by_peer))]['cache_mb']} MiB")
        sluice = by_peer.get("sluice")
        if sluice:
            for other in by_peer:
                if other == "sluice":
                    continue
                peer = by_peer[other]
                lines.append(f"- sluice/{other}: req/s {ratio(sluice['rps'], peer['rps'])}, "
                             f"CPU/req {ratio(sluice['cpu_s_per_100k'], peer['cpu_s_per_100k'])}")
            bare = by_peer.get("sluice_nometrics")
            if bare and bare["rps"] and sluice["rps"] and bare["cpu_s_per_100k"]:
                lines.append(f"- cost of per-request metrics and the sampler (sluice against "
                             f"sluice_nometrics): {100 * (1 - sluice['rps'] / bare['rps']):.1f}% "
                             f"of req/s, {100 * (sluice['cpu_s_per_100k'] / bare['cpu_s_per_100k'] - 1):.1f}% "
                             f"more CPU per request")
            lines.append("")
    lines.extend(object_count_lines(summary))
    markdown = "\n".join(lines)
    print(markdown)
    with open(f"{out_dir}/results.md", "w", encoding="utf-8") as f:
        f.write(markdown + "\n")
    with open(f"{out_dir}/results.csv", "w", newline="", encoding="utf-8") as f:
        fields = ["scenario", "peer", "round", "failed", "tool", "requests", "rps", "p50_ms",
                  "p99_ms", "peak_rss_kib", "cpu_seconds", "cpu_s_per_100k", "errors", "non_2xx",
                  "origin_requests", "origin_connections", "load_tool_cpu_seconds",
                  "foreign_pct_proxy_cpu", "foreign_pct_load_cpu", "busy_pct_proxy_cpu",
                  "busy_pct_load_cpu"]
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    with open(f"{out_dir}/results.json", "w", encoding="utf-8") as f:
        json.dump({"machine": machine, "summary": summary, "runs": rows}, f, indent=2)


def object_count_lines(summary):
    """The objs-N ratio: hit throughput with the most stored objects over that with the fewest."""
    objs = {}
    for s in summary:
        match = re.fullmatch(r"objs-(\d+)", s["scenario"])
        if match:
            objs.setdefault(s["peer"], {})[int(match.group(1))] = s
    pairs = {p: (by_n[min(by_n)], by_n[max(by_n)], min(by_n), max(by_n))
             for p, by_n in objs.items() if len(by_n) >= 2}
    if not pairs:
        return []
    lines = ["## Object count", "",
             "| peer | objects | req/s | objects | req/s | req/s ratio | CPU/req ratio |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for peer, (few, many, n_few, n_many) in pairs.items():
        lines.append(f"| {peer} | {n_few:,} | {fmt(few['rps'], 0)} | {n_many:,} | "
                     f"{fmt(many['rps'], 0)} | {ratio(many['rps'], few['rps'])} | "
                     f"{ratio(many['cpu_s_per_100k'], few['cpu_s_per_100k'])} |")
    lines.append("")
    lines.append("- req/s ratio = many / few (1.00: no slowdown; the target is at least 0.90)")
    lines.append("")
    return lines


def render(template, out, pairs):
    text = open(template, encoding="utf-8").read()
    for pair in pairs:
        key, _, value = pair.partition("=")
        text = text.replace("@" + key + "@", value)
    left = re.findall(r"@[A-Z0-9_]+@", text)
    if left:
        sys.stderr.write(f"render {template}: unreplaced {sorted(set(left))}\n")
        return 1
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "wrk":
        print(json.dumps(parse_wrk(argv[2])))
    elif len(argv) >= 4 and argv[1] == "h2load":
        print(json.dumps(parse_h2load(argv[2], argv[3])))
    elif len(argv) >= 4 and argv[1] == "render":
        return render(argv[2], argv[3], argv[4:])
    elif len(argv) >= 5 and argv[1] == "report":
        report(argv[2], argv[3], argv[4])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
