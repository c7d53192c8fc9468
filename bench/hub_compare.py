#!/usr/bin/env python3
"""The chat core before and after, side by side: runs two builds of bench/hub/hub_benchmark
(Google Benchmark; no sockets) alternately, run by run, and rewrites the generated block of
bench/HUB.md with the medians (messages/s and deliveries/s per room size and thread count)
and the ratios after/before and 2 threads/1 thread.

    /usr/bin/python3 bench/hub_compare.py --before /tmp/before/build/bench/hub/hub_benchmark

The "before" binary is the benchmark built at an older commit (bench/HUB.md says how); its
benchmark names must match (BM_ChatMessages/<room size>/real_time/threads:<n>)."""

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import REPO  # noqa: E402
from lib import markdown, machine  # noqa: E402

NAME = re.compile(r"BM_ChatMessages/(\d+)/real_time/threads:(\d+)$")


def run_once(binary, min_time, cores):
    argv = ["taskset", "-c", cores, str(binary), f"--benchmark_min_time={min_time}",
            "--benchmark_format=json"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600).stdout
    results = {}
    for b in json.loads(out)["benchmarks"]:
        m = NAME.match(b["name"])
        if m:
            results[(int(m.group(1)), int(m.group(2)))] = (b["items_per_second"],
                                                          b.get("deliveries", 0.0))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="hub_benchmark built at the old commit")
    parser.add_argument("--before-label", default="before", help="its name in the table")
    parser.add_argument("--after", default=str(REPO / "build/bench/hub/hub_benchmark"))
    parser.add_argument("--runs", type=int, default=5, help="runs of each binary (>= 1)")
    parser.add_argument("--min-time", default="1", help="--benchmark_min_time of each run (s)")
    parser.add_argument("--cores", default="0-1", help="taskset -c for both binaries")
    parser.add_argument("--report", default=str(REPO / "bench/HUB.md"))
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    for path in (args.before, args.after):
        if not Path(path).is_file():
            parser.error(f"{path}: no such benchmark binary")

    samples = {"before": {}, "after": {}}
    for run in range(args.runs):
        for label, binary in (("before", args.before), ("after", args.after)):
            print(f"run {run + 1}/{args.runs}: {label}", flush=True)
            for key, value in run_once(binary, args.min_time, args.cores).items():
                samples[label].setdefault(key, []).append(value)

    def med(label, key, i):
        values = samples[label].get(key)
        return statistics.median(v[i] for v in values) if values else None

    rows = []
    for size, threads in sorted(samples["after"]):
        key = (size, threads)
        b, a = med("before", key, 0), med("after", key, 0)
        one_b, one_a = med("before", (size, 1), 0), med("after", (size, 1), 0)
        rows.append([f"{size}", f"{threads}",
                     markdown.num(b / 1e3 if b else None, 0, " k"),
                     markdown.num(a / 1e3 if a else None, 0, " k"),
                     markdown.num(med("after", key, 1) / 1e6 if med("after", key, 1) else None,
                                  1, " M"),
                     markdown.ratio(a, b, decimals=2),
                     markdown.ratio(b, one_b, decimals=2), markdown.ratio(a, one_a, decimals=2)])
    info = machine.machine_info()
    lines = [f"Medians of {args.runs} runs of each, alternated; {info['cpu']}, "
             f"{info['cores']} cores, {info['build_type']}, commit {info['commit']}, "
             f"{info['date']}.", ""]
    lines += markdown.table(
        ["room size", "threads", f"{args.before_label}: msgs/s", "after: msgs/s",
         "after: deliveries/s", "after / before", f"{args.before_label}: vs 1 thread",
         "after: vs 1 thread"], rows)
    lines += ["", "```sh",
              machine.display_command(["/usr/bin/python3", "bench/hub_compare.py", "--before",
                                       args.before, "--runs", str(args.runs), "--min-time",
                                       args.min_time, "--cores", args.cores], False),
              "```"]
    markdown.rewrite_generated(args.report, {"hub-compare": lines})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
