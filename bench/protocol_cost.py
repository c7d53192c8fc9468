#!/usr/bin/python3
"""What issue 14's protocol features cost: side by side in one run, interleaved run by run,
against roomcast started the same way for every case (`--app-events` allowing the two events
below; the rest as bench/history_cost.py starts it: the test harness's flags, which turn the
rate limits off, `--threads 1`, `--log-level warn`):

    S2 fan-out (2,000 clients in 20 rooms of 100, one sender per room; 100 ... 4,000 msgs/s)
      chat     chat_message, the stamp as its text (bench/RESULTS.md's S2)
      event    the same text as the durable app event chat_event (stored, numbered, echoed)
      batch    chat_message, every member joined with "batch": true (message_batch)
    game room (50 players in one room, all sending; 1,000 msgs/s: 20 a player a second)
      binary   the chapter's binary position update (0x01 + 3 float32, with the generator's
               stamp: 25 bytes), never echoed
      json     the same update as the ephemeral app event player_moved, no echo

Server pinned to --server-cores (default core 0), roomcast-bench to --generator-cores (core 1).
Rewrites the generated blocks protocol-setup, protocol-s2 and protocol-game of
bench/RESULTS.md (the prose around them is written by hand) and keeps the raw reports in
bench/results/protocol-STAMP/.

    /usr/bin/python3 bench/protocol_cost.py --runs 1     # ~6 min a run
    /usr/bin/python3 bench/protocol_cost.py --quick      # tiny sizes, checks the script
    /usr/bin/python3 bench/protocol_cost.py --aggregate-only bench/results/protocol-STAMP
"""

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import REPO, procs, servers  # noqa: E402
from lib.aggregate import aggregate_ramp, load_reports, read_manifest, step_at  # noqa: E402
from lib.generator import (add_arguments, check_arguments, failed_runs,  # noqa: E402
                           flag_value, new_output, rates_flag, run_interleaved, subset)
from lib.machine import display_command, machine_line  # noqa: E402
from lib.markdown import (JOINT_LIMIT_NOTE, notes_block, num, ratio,  # noqa: E402
                          rewrite_generated, sizes_line, step_cell, table)
from lib.scenarios import SCENARIOS, flags as scenario_flags, override  # noqa: E402

PROG = "protocol_cost"
RESULTS = REPO / "bench/RESULTS.md"
# Every case's server allows both events, so the cases differ only in what the clients send.
APP_EVENTS = "chat_event:durable,player_moved:no-echo"
# case: (scenario of lib.scenarios, roomcast-bench flags of the case)
CASES = {
    "chat": ("S2", []),
    "event": ("S2", ["--message-kind", "event", "--event-type", "chat_event"]),
    "batch": ("S2", ["--batch"]),
    "binary": ("game", ["--message-kind", "binary"]),
    "json": ("game", ["--message-kind", "position", "--event-type", "player_moved",
                      "--no-echo"]),
}
# A handful of S2's steps, not its whole ramp: from a quiet room (5 msgs/s a room, a batch
# holds one message) to full batches (200 msgs/s a room: 10 in 50 ms).
S2_RATES = [100, 500, 1000, 2000, 4000]
S2_RATES_QUICK = [100, 500]
PLAYERS = int(flag_value(SCENARIOS["game"]["full"], "--clients-per-room", 50))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--aggregate-only", type=Path, metavar="DIR",
                   help="do not run anything: rewrite the tables from DIR/manifest.json")
    add_arguments(p)
    p.add_argument("--cases", default=",".join(CASES),
                   help=f"comma-separated subset of {','.join(CASES)}, run in this order")
    p.add_argument("--results", type=Path, default=RESULTS,
                   help="the report whose generated blocks are rewritten (default "
                        "bench/RESULTS.md; with --quick, a copy of it in OUT)")
    args = p.parse_args(argv)
    args.cases = subset(p, "--cases", args.cases, CASES)
    if args.runs < 1:
        p.error("--runs must be 1 or more")
    return args


def case_flags(args, case):
    scenario, extra = CASES[case]
    flags = scenario_flags(scenario, args)
    if scenario == "S2":
        flags = override(flags, {"--rates": rates_flag(S2_RATES_QUICK if args.quick
                                                         else S2_RATES)})
    return flags + extra


def starter(args):
    def start(log_path):
        s = servers.start_roomcast(args.roomcast, args.server_cores, log_path,
                                   "--threads", str(args.threads), "--log-level", "warn",
                                   "--app-events", APP_EVENTS)
        return s.proc, s.port, s.argv, s.stop
    return start


def us_ratio(steps, case, base):
    """CPU per delivery of `case` over `base`'s at one step ("1.10x": 10 % more), n/a where
    either did not pass."""
    a, b = steps.get(case), steps.get(base)
    if not a or not b or a["passed"] < a["runs"] or b["passed"] < b["runs"]:
        return "n/a"
    return ratio(a["us"], b["us"], decimals=2)


def side_by_side(aggs, rates, base, rate_label, label=lambda rate: f"{rate:,.0f}"):
    """Per step, each case's cell (lib.markdown.step_cell, with wire bytes) and each other
    case's CPU per delivery over `base`'s; `label(rate)` names the row."""
    others = [c for c in aggs if c != base] if base in aggs else []
    rows = []
    for rate in rates:
        steps = {case: step_at(agg, rate) for case, agg in aggs.items()}
        rows.append([label(rate)] + [step_cell(s, wire=True) for s in steps.values()] +
                    [us_ratio(steps, c, base) for c in others])
    return table([rate_label, *aggs, *(f"us/delivery {c} / {base}" for c in others)], rows)


def ramp_rates(entries_by_case):
    """The target rates the reports were asked for (a ramp that stopped early still has a row
    for each), in order."""
    return sorted({rate for entries in entries_by_case.values() for e in entries
                   for rate in ((e.get("report") or {}).get("config") or {}).get("rates", [])})


def summary(aggs):
    """Per case: bytes per message sent, wire bytes per delivery and CPU per delivery at its
    first step, the sustained figure and what limited it."""
    rows = []
    for case, agg in aggs.items():
        first = agg["steps"][0] if agg["steps"] else None
        rows.append([case, num(first and first["msg"], 0, " B"),
                     num(first and first["wire"], 1, " B"),
                     num(first and first["us"], 2),
                     num(agg["figure"]) + (" (every step passed: a lower bound)"
                                           if agg["exhausted"] else "")
                     + (" **joint limit**" if agg["bound"] else "")])
    return table(["case", "bytes per message sent", "wire bytes per delivery (first step)",
                  "server us/delivery (first step)", "highest passing step, deliveries/s"],
                 rows)


def write(args, out_dir, manifest, results_path):
    by = load_reports(out_dir, manifest)
    cases = manifest["cases"]
    aggs = {sid: {c: aggregate_ramp(by.get(sid, {}).get(c, []))
                  for c in cases if CASES[c][0] == sid} for sid in ("S2", "game")}
    first = next((e for e in manifest["runs"] if e.get("server_command")), None)
    server_cmd = display_command(first["server_command"]) if first else "n/a"
    legend = ("Each cell: median deliveries/s / p50 / p99 ms / server CPU us per delivery / "
              "bytes on the wire per delivery (WebSocket bytes the generator's clients read, "
              "frame headers included, from the step's first send to its cutoff, divided by "
              "the deliveries: what the server sent for each) / the generator's busiest "
              f"process in % of its core; {JOINT_LIMIT_NOTE}; (failed): under 95 % delivered "
              "or p99 over 250 ms.")
    setup = [
        f"Generated by `bench/protocol_cost.py` from `{out_dir.relative_to(REPO)}`: "
        f"{manifest['runs_per_case']} run(s) per case, interleaved run by run (medians). "
        f"Every case's server: `{server_cmd}` (the test harness's flags: rate limits off, as in "
        "every S2 driver; `--app-events` allows the two events; otherwise the server's "
        "defaults, SQLite history with fsync per group commit). The generator per case "
        "(besides `--url`, `--server-pid`, `--json`):", ""]
    for case in cases:
        entry = next((e for e in manifest["runs"]
                      if e["server"] == case and e.get("generator_command")), None)
        setup.append(f"- {case}: `" + (display_command(entry["generator_command"]) if entry
                                       else shlex.join(case_flags(args, case))) + "`")
    setup += ["", manifest.get("machine") or machine_line(), "",
              "Command: `/usr/bin/python3 " +
              shlex.join(["bench/protocol_cost.py", *manifest["argv"]]) + "`"]
    blocks = {"protocol-setup": setup}
    s2 = aggs["S2"]
    if s2:
        entries = by.get("S2", {})
        blocks["protocol-s2"] = [
            sizes_line(entries), "", *summary(s2), "", legend, "",
            *side_by_side(s2, ramp_rates(entries), "chat", "rate (msgs/s)"), "",
            *notes_block(entries, list(s2))]
    game = aggs["game"]
    if game:
        entries = by.get("game", {})
        blocks["protocol-game"] = [
            sizes_line(entries), "", *summary(game), "",
            "Each cell as in the S2 table above." if s2 else legend, "",
            *side_by_side(game, ramp_rates(entries), "binary", "rate (msgs/s; a player's)",
                          lambda rate: f"{rate:,.0f} ({rate / PLAYERS:g}/s)"), "",
            *notes_block(entries, list(game))]
    rewrite_generated(results_path, blocks, template=RESULTS)
    return aggs


def main(argv):
    args = parse_args(argv)
    procs.install(PROG)
    if args.aggregate_only:
        out_dir = args.aggregate_only.resolve()
        manifest = read_manifest(PROG, out_dir)
        args.quick = manifest.get("quick", False)
        write(args, out_dir, manifest, args.results)
        print(f"{PROG}: wrote {args.results}")
        return 0
    check_arguments(PROG, args)
    out_dir, results_path = new_output("protocol", args.quick, args.results)
    manifest = {"argv": argv, "quick": args.quick, "runs_per_case": args.runs,
                "threads": args.threads, "cases": args.cases, "app_events": APP_EVENTS,
                "machine": machine_line(), "runs": []}
    run_interleaved(PROG, args, manifest, out_dir,
                    [(case, CASES[case][0], case_flags(args, case), starter(args))
                     for case in args.cases])
    aggs = write(args, out_dir, manifest, results_path)
    for sid, by_case in aggs.items():
        for case, agg in by_case.items():
            print(f"{sid} {case}: highest passing step {num(agg['figure'])} deliveries/s")
    print(f"{PROG}: wrote {results_path}; raw reports in {out_dir}")
    return failed_runs(PROG, manifest)


if __name__ == "__main__":
    procs.run_main(PROG, main)
