#!/usr/bin/python3
"""What the heartbeat costs the deliveries of a server with many connections: 18,000 clients
in rooms of 100 (spread over two generator processes, each under the 20,000 open files a
process may have here), one sender per room, at 100 and 200 messages/s in all (10,000 and
20,000 deliveries/s), against roomcast builds given with --bin NAME=PATH, each with its
default heartbeat (a ping every 15 s) and, as the floor, one of them with pings made rare
(--rare NAME: --ping-interval 1000s). Memory mode, --threads 1, server on core 0 and the
generator on core 1, runs interleaved. Prints one Markdown row per run and step (p50, p99 and
the worst delivery in ms, server CPU seconds in the 20 s step) and the medians per build; the
raw reports go to bench/results/ping-spread-STAMP/ (ignored by git).

    /usr/bin/python3 bench/ping_spread.py --bin aligned=/tmp/aligned/build-release/src/roomcast \\
        --bin now=build-release/src/roomcast --rare now --runs 3
"""

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import procs, servers  # noqa: E402
from lib.aggregate import load_reports  # noqa: E402
from lib.generator import add_arguments, failed_runs, new_output, run_interleaved  # noqa: E402

PROG = "ping_spread"
FLAGS = ["--scenario", "fanout", "--connections", "18000", "--processes", "2",
         "--clients-per-room", "100", "--senders-per-room", "1", "--rates", "100,200",
         "--step-seconds", "20", "--join-rate", "20000", "--settle-timeout", "60"]
RARE = ["--ping-interval", "1000s", "--idle-timeout", "2000s"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", action="append", required=True, metavar="NAME=PATH",
                   help="a roomcast build to run (repeatable)")
    p.add_argument("--rare", metavar="NAME", help="also run this build with pings made rare")
    p.add_argument("--runs", type=int, default=3)
    add_arguments(p)
    args = p.parse_args(argv)
    args.bins = dict(b.split("=", 1) for b in args.bin)
    if args.rare and args.rare not in args.bins:
        p.error(f"--rare {args.rare}: not one of --bin's names")
    return args


def starter(args, binary, extra):
    def start(log_path):
        s = servers.start_roomcast(binary, args.server_cores, log_path, "--threads",
                                   str(args.threads), "--log-level", "warn",
                                   "--history-store", "memory", *extra)
        return s.proc, s.port, s.argv, s.stop
    return start


def main(argv):
    args = parse_args(argv)
    procs.install(PROG)
    out_dir, _ = new_output("ping-spread", False, None)
    cases = [(name, "many", FLAGS, starter(args, path, [])) for name, path in args.bins.items()]
    if args.rare:
        cases.append((f"{args.rare}-pings-rare", "many", FLAGS,
                      starter(args, args.bins[args.rare], RARE)))
    manifest = {"argv": argv, "runs_per_mode": args.runs, "runs": []}
    run_interleaved(PROG, args, manifest, out_dir, cases)
    rows = {}
    print("| build | run | deliveries/s | p50 ms | p99 ms | worst ms | server CPU s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    load_reports(out_dir, manifest)  # each entry's "report"
    for entry in manifest["runs"]:
        for step in (entry["report"] or {}).get("steps", []):
            lat = step["latency_ms"]
            key = (entry["server"], step["deliveries_per_second"])
            rows.setdefault(key, []).append((lat["p50"], lat["p99"], lat["max"],
                                            step["server_cpu_seconds"]))
            print(f"| {entry['server']} | {entry['run']} | {step['deliveries_per_second']:,.0f} "
                  f"| {lat['p50']:.2f} | {lat['p99']:.2f} | {lat['max']:.1f} "
                  f"| {step['server_cpu_seconds']:.2f} |")
    print("\nMedians:\n")
    print("| build | deliveries/s | p50 ms | p99 ms | worst ms | server CPU s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (name, rate), values in rows.items():
        med = [statistics.median(v[i] for v in values) for i in range(4)]
        print(f"| {name} | {rate:,.0f} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.1f} "
              f"| {med[3]:.2f} |")
    print(f"\n{PROG}: raw reports in {out_dir}", file=sys.stderr)
    return failed_runs(PROG, manifest)


if __name__ == "__main__":
    procs.run_main(PROG, main)
