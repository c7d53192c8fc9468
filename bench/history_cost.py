#!/usr/bin/python3
"""What history costs: the S2 fan-out ramp (2,000 clients in 20 rooms of 100, one sender per
room) against roomcast three ways, side by side in one run, interleaved run by run:

    memory         --history-store memory   history in memory only, nothing on disk
    sqlite-normal  --history-sync normal    SQLite, WAL, no fsync per commit
    sqlite-full    (the default)            SQLite, WAL, fsync per group commit

and, as the reference for memory mode (issue 19), uWebSockets with no history at all:

    uws            bench/baselines/uws-chat-server.js (uWebSockets.js, pub/sub per room)

and, to measure a change side by side with the code before it, the default on another build:

    baseline       the default flags, on the binary --baseline-roomcast names

With --ids every message carries an "id" as the browser library's do (acked, and looked up
among the resends the store keeps).

Same machine set-up as bench/run_scenarios.py (server pinned to one core, roomcast-bench to
the other; the storage thread shares the server's core). Rewrites the generated blocks of
bench/HISTORY.md (its prose is written by hand) and keeps the raw reports in
bench/results/history-STAMP/ (ignored by git).

    /usr/bin/python3 bench/history_cost.py            # 2 runs per mode (~25 min)
    /usr/bin/python3 bench/history_cost.py --quick    # tiny sizes, checks the script
    /usr/bin/python3 bench/history_cost.py --aggregate-only bench/results/history-STAMP

Issue 19's comparison (the default against memory mode, in bench/RESULTS.md's blocks
history-setup and history-cost):

    /usr/bin/python3 bench/history_cost.py --modes memory,sqlite-full \
        --results bench/RESULTS.md --block-prefix history-
"""

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import REPO, procs, servers  # noqa: E402
from lib.aggregate import aggregate_ramp, load_reports, read_manifest, step_at  # noqa: E402
from lib.generator import (add_arguments, check_arguments, failed_runs,  # noqa: E402
                           new_output, run_interleaved, subset)
from lib.machine import machine_line  # noqa: E402
from lib.markdown import JOINT_LIMIT_NOTE, num, rewrite_generated, step_cell  # noqa: E402
from lib.generator import rates_flag  # noqa: E402
from lib.scenarios import S2_RATES_FULL, flags as scenario_flags, override  # noqa: E402

PROG = "history_cost"
RESULTS = REPO / "bench/HISTORY.md"
MODES = {
    "memory": ["--history-store", "memory"],
    "sqlite-normal": ["--history-sync", "normal"],
    "sqlite-full": [],
    "uws": None,  # not roomcast: the uWebSockets baseline
    "baseline": [],  # the default, on --baseline-roomcast
    "baseline-memory": ["--history-store", "memory"],  # memory mode, on --baseline-roomcast
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--aggregate-only", type=Path, metavar="DIR",
                   help="do not run anything: rewrite the tables from DIR/manifest.json")
    add_arguments(p)
    p.add_argument("--modes", default=",".join(m for m in MODES if not m.startswith("baseline")),
                   help=f"comma-separated subset of {','.join(MODES)}, run in this order")
    p.add_argument("--baseline-roomcast", type=Path, metavar="PATH",
                   help="the roomcast binary of mode baseline (e.g. a build of the commit "
                        "before a change)")
    p.add_argument("--rates", type=lambda text: [int(r) for r in text.split(",")],
                   metavar="R,R,...",
                   help="only these steps of the ramp, msgs/s (e.g. 100,200,500,1000: the "
                        "low rates, where the modes differ, with more runs in the same time); "
                        "the sustained figure then means the highest of them passed")
    p.add_argument("--ids", action="store_true",
                   help="every message carries an \"id\" (roomcast-bench --ids)")
    p.add_argument("--block-prefix", default="",
                   help="prefix of the generated blocks' names (setup, cost) in --results")
    p.add_argument("--results", type=Path, default=RESULTS,
                   help="the report whose generated blocks are rewritten (default "
                        "bench/HISTORY.md; with --quick, a copy of it in OUT)")
    args = p.parse_args(argv)
    args.modes = subset(p, "--modes", args.modes, MODES)
    if (any(m.startswith("baseline") for m in args.modes) and not args.aggregate_only
            and args.baseline_roomcast is None):
        p.error("modes baseline and baseline-memory need --baseline-roomcast PATH")
    return args


def write(args, out_dir, manifest, results_path):
    argv = manifest["argv"]
    by = load_reports(out_dir, manifest).get("S2", {})
    by_mode = {mode: aggregate_ramp(by.get(mode, [])) for mode in args.modes}
    rates = args.rates or (S2_RATES_FULL if not args.quick
                           else [100, 500, 1000, 2000, 4000, 8000, 16000])
    described = {"memory": "in memory only (`--history-store memory`)",
                 "sqlite-normal": "in SQLite without fsync per commit (`--history-sync normal`)",
                 "sqlite-full": "in SQLite with fsync per group commit (the default, no flag)",
                 "uws": "none, on uWebSockets (`bench/baselines/uws-chat-server.js`)",
                 "baseline": "as the default, on the baseline binary "
                             f"(`{manifest.get('baseline_roomcast')}`)",
                 "baseline-memory": "in memory only, on the baseline binary "
                                    f"(`{manifest.get('baseline_roomcast')}`)"}
    modes = [described[m] for m in args.modes]
    setup = [
        "The S2 fan-out ramp of `bench/RESULTS.md` (2,000 clients in 20 rooms of 100, one "
        "sender per room, rates in messages/s, 100 deliveries per message) against roomcast with "
        "history " + (", ".join(modes[:-1]) + " and " if len(modes) > 1 else "") + modes[-1] +
        ". "
        + ("One worker thread; the storage thread shares the server's core. " if args.threads == 1
           else f"`--threads {args.threads}`; the storage thread shares the server's cores. ")
        + f"Medians of {args.runs} runs per mode, interleaved. Generated by "
        f"`bench/history_cost.py` from `{out_dir.relative_to(REPO)}`."
        + (" Every message carries an `id` (`roomcast-bench --ids`), as the browser "
           "library's do." if manifest.get("ids") else ""), "",
        manifest.get("machine") or machine_line()]
    cost = [
        "| mode | sustained deliveries/s | p99 at 100,000/s | server us/delivery at 50,000/s "
        "| at 500,000/s | at the top | server CPU at the top |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode, agg in by_mode.items():
        at50 = step_at(agg, 500)
        at100 = step_at(agg, 1000)
        at500 = step_at(agg, 5000)
        top = agg["steps"][-1] if agg["steps"] else None
        cost.append(
            f"| {mode} | {num(agg['figure'])}{' (generator-bound)' if agg['bound'] else ''} "
            f"| {num(at100 and at100['p99'], 1, ' ms')} "
            f"| {num(at50 and at50['us'], 2)} | {num(at500 and at500['us'], 2)} "
            f"| {num(top and top['us'], 2)} "
            f"| {num(top and top['cpu'] and 100 * top['cpu'], 0, ' %')} |")
    if "memory" in by_mode and "sqlite-full" in by_mode:
        cost += ["", *targets(by_mode["sqlite-full"], by_mode["memory"])]
    cost += ["", "Per step (median deliveries/s, p50 / p99 ms, server us per delivery, the "
             f"generator's busiest process in % of its core; {JOINT_LIMIT_NOTE}):", "",
             "| rate (msgs/s) | " + " | ".join(by_mode) + " |",
             "| --- | " + " | ".join("---" for _ in by_mode) + " |"]
    for rate in rates:
        cells = [step_cell(step_at(agg, rate)) for agg in by_mode.values()]
        cost.append(f"| {rate:,} | " + " | ".join(cells) + " |")
    cost += ["", "Command: `/usr/bin/python3 " + shlex.join(["bench/history_cost.py", *argv]) +
             "`"]
    rewrite_generated(results_path, {args.block_prefix + "setup": setup,
                                     args.block_prefix + "cost": cost},
                      template=args.results if args.results.exists() else RESULTS)
    return by_mode


def targets(default, memory):
    """Issue 19's targets for the default (SQLite, fsync per group) against memory mode."""
    def ratio(a, b):
        return a / b if a is not None and b else None

    def verdict(value, limit, higher_is_better=False):
        if value is None:
            return "n/a"
        met = value >= limit if higher_is_better else value <= limit
        return f"{num(value, 2)} ({'met' if met else 'not met'})"

    us = ratio((step_at(default, 500) or {}).get("us"), (step_at(memory, 500) or {}).get("us"))
    p99 = ratio((step_at(default, 1000) or {}).get("p99"),
                (step_at(memory, 1000) or {}).get("p99"))
    top = ratio(default["figure"], memory["figure"])
    return ["| issue 19 target (default / memory) | limit | measured |",
            "| --- | --- | --- |",
            f"| server CPU per delivery at 50,000 deliveries/s | <= 1.15 | {verdict(us, 1.15)} |",
            f"| p99 at 100,000 deliveries/s | <= 2 | {verdict(p99, 2.0)} |",
            f"| max sustained | >= 0.90 | {verdict(top, 0.90, higher_is_better=True)} |"]


def starter(args, mode):
    def start(log_path):
        if MODES[mode] is None:
            proc, port, argv = servers.start_node_baseline("node", args.server_cores, log_path,
                                                           script=servers.UWS_BASELINE)
            return proc, port, argv, None
        binary = args.baseline_roomcast if mode.startswith("baseline") else args.roomcast
        s = servers.start_roomcast(binary, args.server_cores, log_path,
                                   "--threads", str(args.threads), "--log-level", "warn",
                                   *MODES[mode])
        return s.proc, s.port, s.argv, s.stop
    return start


def main(argv):
    args = parse_args(argv)
    procs.install(PROG)
    if args.aggregate_only:
        out_dir = args.aggregate_only.resolve()
        manifest = read_manifest(PROG, out_dir)
        args.quick = manifest.get("quick", out_dir.name.endswith("-quick"))
        args.runs = manifest.get("runs_per_mode", max(e["run"] for e in manifest["runs"]))
        args.threads = manifest.get("threads", 1)
        args.modes = manifest.get("modes", list(MODES))
        args.block_prefix = manifest.get("block_prefix", "")
        args.rates = manifest.get("rates")
        write(args, out_dir, manifest, args.results)
        print(f"history_cost: wrote {args.results}")
        return 0
    check_arguments(PROG, args)
    out_dir, results_path = new_output("history", args.quick, args.results)
    manifest = {"argv": argv, "quick": args.quick, "runs_per_mode": args.runs,
                "threads": args.threads, "modes": args.modes,
                "block_prefix": args.block_prefix, "machine": machine_line(), "runs": [],
                "ids": args.ids, "rates": args.rates,
                "baseline_roomcast": args.baseline_roomcast and str(args.baseline_roomcast)}
    flags = scenario_flags("S2", args) + (["--ids"] if args.ids else [])
    if args.rates:
        flags = override(flags, {"--rates": rates_flag(args.rates)})
    run_interleaved(PROG, args, manifest, out_dir,
                    [(mode, "S2", flags, starter(args, mode)) for mode in args.modes])
    by_mode = write(args, out_dir, manifest, results_path)
    for mode, agg in by_mode.items():
        print(f"{mode}: sustained {num(agg['figure'])} deliveries/s")
    print(f"history_cost: wrote {results_path}; raw reports in {out_dir}")
    return failed_runs(PROG, manifest)


if __name__ == "__main__":
    procs.run_main(PROG, main)
