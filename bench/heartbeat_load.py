#!/usr/bin/python3
"""Heartbeats under a saturated server (issue 21.1): one or more roomcast binaries, each in
the same run under the same load, reporting who the heartbeat terminated and a probe's
round trip. Writes a Markdown table to stdout (bench/HEARTBEATS.md has one).

Load: roomcast-bench fanout, 2,000 clients in rooms of 100, 2 senders per room (40) at
--rate messages/s in total; beside it, in their own processes, 25 idle clients (a room each)
and 20 readers of the busy room-0 that only answer pings, and a probe in a room of its own
that sends a message every 50 ms and times its return. The server runs with
--ping-interval 2s --idle-timeout 4s unless told otherwise.

  /usr/bin/python3 bench/heartbeat_load.py --bin before=/tmp/base/roomcast \\
      --bin after=build/src/roomcast --runs 3
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402  (puts the test harness on sys.path)
from lib import procs, servers  # noqa: E402
from lib.markdown import rewrite_generated, table  # noqa: E402
from roomcast_server import RoomcastServer  # noqa: E402

SUPPORT = str(lib.HARNESS / "heartbeat_load_support.py")


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def metric(server, name):
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.split()[-1])
    return None


def run_once(binary, bench, args):
    """One server under the load; returns a dict of outcomes."""
    flags = ["--ping-interval", args.ping_interval, "--idle-timeout", args.idle_timeout,
             "--history-store", args.history_store, "--log-level", "warn",
             "--rate-limit-address-messages", "0", "--rate-limit-address-signals", "0"]
    with RoomcastServer(*flags, binary=binary) as server:
        load = subprocess.Popen(
            [bench, "--url", f"ws://127.0.0.1:{server.port}/", "-n", str(args.connections),
             "--clients-per-room", "100", "--senders-per-room", "2", "--rates", str(args.rate),
             "--step-seconds", str(args.seconds), "--grace-seconds", "1", "--no-stop",
             "--max-p99-ms", "1000000", "--settle-timeout", "20", "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        time.sleep(args.warmup)  # connect, join, settle; then the steps begin
        watchers = [subprocess.Popen([sys.executable, SUPPORT, str(server.port), role, str(n),
                                      room, str(args.seconds)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    for role, n, room in (("idle", 25, "quiet"), ("reader", 20, "room-0"),
                                          ("probe", 1, "probe"))]
        reports = []
        for w in watchers:
            out, err = w.communicate(timeout=args.seconds + 60)
            if w.returncode != 0:
                raise RuntimeError(f"a watcher failed: {err[-2000:]}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
        try:
            load_out, _ = load.communicate(timeout=args.seconds + 120)
        except subprocess.TimeoutExpired:
            os.killpg(load.pid, signal.SIGKILL)  # the generator and its worker processes
            load_out, _ = load.communicate()
        result = {"idle_timeouts": metric(server, "roomcast_idle_timeouts_total"),
                  "peak_rss_mib": servers.peak_rss_mib(server.proc.pid),
                  "generator_tail": load_out.strip().splitlines()[-6:]}
    # The generator's row for its one step: | 1 | target | sent | expected | received |
    # delivered | deliveries/s | p50 | p90 | p99 | max | server CPU | RSS | generator CPU |
    step = next((line for line in load_out.splitlines() if line.startswith("| 1 |")), None)
    cells = [c.strip() for c in step.strip("|").split("|")] if step else []
    result["sent_per_s"] = cells[2] if cells else "?"
    result["deliveries_per_s"] = cells[6] if cells else "?"
    result["generator_cpu"] = cells[13] if cells else "?"
    by_role = {r["role"]: r for r in reports}
    for role in ("idle", "reader"):
        clients = by_role[role]["clients"]
        result[f"{role}_dropped"] = sum(1 for c in clients if c["ended"] == "dropped")
        result[f"{role}_closed"] = sum(1 for c in clients if c["ended"] == "close")
        result[f"{role}_min_pings"] = min(c["pings"] for c in clients)
    rtts = by_role["probe"]["rtts_ms"]
    result["probe_n"] = len(rtts)
    result["probe_p50_ms"] = statistics.median(rtts) if rtts else float("nan")
    result["probe_p99_ms"] = percentile(rtts, 99)
    result["probe_max_ms"] = max(rtts) if rtts else float("nan")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", action="append", metavar="NAME=PATH")
    parser.add_argument("--bench", default=os.path.join(lib.REPO, "build", "bench", "generator",
                                                        "roomcast-bench"))
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--rate", type=int, default=50000)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=8)
    parser.add_argument("--ping-interval", default="2s")
    parser.add_argument("--idle-timeout", default="4s")
    parser.add_argument("--history-store", default="sqlite")
    parser.add_argument("--json", help="write every run's outcome here")
    parser.add_argument("--aggregate-only", metavar="JSON",
                        help="run nothing: the table of the outcomes a --json run wrote")
    parser.add_argument("--results", type=Path,
                        help="also rewrite the generated:heartbeats-STORE block of this report "
                             "(bench/HEARTBEATS.md), STORE being --history-store")
    args = parser.parse_args()
    if not args.bin and not args.aggregate_only:
        parser.error("--bin NAME=PATH is required (once per binary)")
    if args.aggregate_only:
        with open(args.aggregate_only) as f:
            results = json.load(f)
    else:
        procs.install("heartbeat_load")
        binaries = [b.split("=", 1) for b in args.bin]
        results = []
        for run in range(args.runs):
            for name, path in binaries:  # interleaved, so both see the same machine
                r = run_once(os.path.abspath(path), args.bench, args)
                r.update(name=name, run=run + 1)
                results.append(r)
                print(json.dumps(r), file=sys.stderr, flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
    lines = table(
        ["binary", "run", "idle dropped (of 25)", "readers dropped (of 20)",
         "fewest pings seen (idle / reader)", "idle timeouts (server, all 2,046 clients)",
         "probe p50 ms", "probe p99 ms", "probe max ms", "server peak RSS MiB", "sent msg/s",
         "deliveries/s", "generator CPU (max)"],
        [[r["name"], r["run"], r["idle_dropped"], r["reader_dropped"],
          f"{r['idle_min_pings']} / {r['reader_min_pings']}", f"{r['idle_timeouts']:.0f}",
          f"{r['probe_p50_ms']:.0f}", f"{r['probe_p99_ms']:.0f}", f"{r['probe_max_ms']:.0f}",
          f"{r['peak_rss_mib']:.0f}", r["sent_per_s"], r["deliveries_per_s"],
          r["generator_cpu"]] for r in results])
    print("\n".join(lines))
    if args.results:
        rewrite_generated(args.results, {f"heartbeats-{args.history_store}": lines})
        print(f"heartbeat_load: wrote {args.results}")


if __name__ == "__main__":
    main()
