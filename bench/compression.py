#!/usr/bin/python3
"""What permessage-deflate costs and saves (issue 15): the S2 fan-out (2,000 clients in 20 rooms
of 100, one sender per room, the generator's own short chat text: a delivered chat_message is
about 200 bytes of JSON) against roomcast --compression off, shared and dedicated, side by side
and interleaved run by run, with roomcast-bench --deflate (it offers permessage-deflate as
Chromium does and inflates what it gets; against `off` the server declines); then S1 (idle
connections) with and without deflate negotiated.

    S2-tN-MODE   S2 with roomcast --threads N --compression MODE (off, shared, dedicated), and
                 off-batch, shared-batch: the generator joins with "batch": true
    S1-plain     S1 against --compression shared, the generator offers no deflate
    S1-shared    S1 against --compression shared, every connection negotiated deflate
    S1-dedicated S1 against --compression dedicated, every connection negotiated deflate

--threads 1 puts the server on core 0 and the generator on core 1; the default thread count
(--threads 0: one per CPU, 2 here) puts both on cores 0-1 (so it shows the default
configuration's cost, not scaling). Per mode it reports WebSocket bytes received per delivery
(frame headers and payloads, as on the wire, TCP/IP headers not counted), server CPU per
delivery, deliveries/s, p50/p99, at every step and in summary at 1,000 and 3,000 msgs/s; steps
where the generator was the limit are marked.

Rewrites the generated blocks of bench/COMPRESSION.md (prose by hand) and keeps the raw reports
in bench/results/compression-STAMP/.

    /usr/bin/python3 bench/compression.py                  # 2 runs of each case (~20 min)
    /usr/bin/python3 bench/compression.py --quick          # tiny: checks the script
    /usr/bin/python3 bench/compression.py --aggregate-only bench/results/compression-STAMP
"""

import argparse
import copy
import datetime
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import REPO, procs, servers  # noqa: E402
from lib.aggregate import (aggregate_idle, aggregate_ramp, load_reports, median,  # noqa: E402
                           read_manifest)
from lib.generator import (add_arguments, check_arguments, rates_flag, record_run,  # noqa: E402
                           run_one)
from lib.machine import display_command, machine_info  # noqa: E402
from lib.markdown import notes_block, num, ratio, rewrite_generated, sizes_line, table  # noqa: E402

PROG = "compression"
RESULTS = REPO / "bench/COMPRESSION.md"
# S2 mode: (roomcast --compression, roomcast-bench flags besides --deflate). The -batch modes
# join with "batch": true (docs/protocol.md, Batches): up to --batch-size (10) messages of a room
# in one message_batch, compressed once as a whole.
S2_MODES = {"off": ("off", []), "shared": ("shared", []), "dedicated": ("dedicated", []),
            "off-batch": ("off", ["--batch"]), "shared-batch": ("shared", ["--batch"])}
MODES = tuple(S2_MODES)
# The summary tables' steps: the lowest, which every mode passes, and one where the rooms send
# often enough for batches of several messages (150 msgs/s a room: ~7 in 50 ms).
SUMMARY_RATES = [1000, 3000]
RATES_FULL = [1000, 3000, 6000, 10000, 20000]
S2_FULL = ["--scenario", "fanout", "--connections", "2000", "--clients-per-room", "100",
           "--senders-per-room", "1", "--rates", rates_flag(RATES_FULL), "--step-seconds", "3",
           "--settle-timeout", "30", "--no-stop"]
S2_QUICK = ["--scenario", "fanout", "--connections", "400", "--clients-per-room", "100",
            "--senders-per-room", "1", "--rates", "500,2000", "--step-seconds", "2",
            "--settle-timeout", "30", "--no-stop"]
S1_FULL = ["--scenario", "idle", "--connections", "5000", "--clients-per-room", "100",
           "--join-rate", "100000", "--hold-seconds", "5", "--connect-timeout", "30",
           "--settle-timeout", "30"]
S1_QUICK = ["--scenario", "idle", "--connections", "500", "--clients-per-room", "100",
            "--join-rate", "100000", "--hold-seconds", "2", "--connect-timeout", "30",
            "--settle-timeout", "30"]
# S1 case: (server --compression, generator offers deflate)
S1_CASES = {"S1-plain": ("shared", False), "S1-shared": ("shared", True),
            "S1-dedicated": ("dedicated", True)}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.add_argument("--thread-counts", default="1,0",
                   help="roomcast --threads of the S2 cases (0: its default, one per CPU); "
                        "default 1,0. (--threads is not read here; S1 runs with 1)")
    p.add_argument("--shared-cores", default="0-1",
                   help="CPUs of both server and generator when --threads is not 1")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--no-s1", action="store_true", help="S2 only")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path)
    p.add_argument("--results", type=Path)
    p.add_argument("--aggregate-only", type=Path, metavar="DIR")
    return p.parse_args(argv)


def case_list(args):
    """[(case, server --compression, server --threads, generator flags)] in run order."""
    cases = []
    for threads in (int(t) for t in args.thread_counts.split(",")):
        for mode, (server_mode, extra) in S2_MODES.items():
            cases.append((f"S2-t{threads}-{mode}", server_mode, threads,
                          (S2_QUICK if args.quick else S2_FULL) + ["--deflate"] + extra))
    if not args.no_s1:
        for case, (mode, offer) in S1_CASES.items():
            cases.append((case, mode, 1, (S1_QUICK if args.quick else S1_FULL) +
                          (["--deflate"] if offer else [])))
    return cases


def run_case(args, case, mode, threads, flags, run_index, out_dir):
    a = copy.copy(args)
    if threads != 1:
        a.server_cores = a.generator_cores = args.shared_cores

    def start(log_path):
        s = servers.start_roomcast(a.roomcast, a.server_cores, log_path, "--threads",
                                   str(threads), "--compression", mode, "--log-level", "warn")
        return s.proc, s.port, s.argv, s.stop

    entry = run_one(a, case.split("-")[0], run_index, case, flags, out_dir, start)
    entry["scenario"] = case  # one "scenario" per case, so load_reports keeps them apart
    return entry


# --------------------------------------------------------------------------------------------
# COMPRESSION.md
# --------------------------------------------------------------------------------------------

def step_median(entries, rate, key):
    """Median over runs of key(step) at a target rate (None where key gives None)."""
    values = []
    for e in entries:
        for step in (e["report"] or {}).get("steps", []):
            if step["target_rate"] == rate:
                values.append(key(step))
    return median(values)


def wire_bytes(step):
    return step.get("wire_bytes_per_delivery") or None


def sent_share(step):
    return step["sent_rate"] / step["target_rate"] if step["target_rate"] else None


def generator_note(st, sent):
    """*g*: a generator process above 90% of a core; *behind*: it sent under 95% of the rate
    asked (on this shared machine it falls behind before its CPU share says so)."""
    notes = (["*g*"] if st["bound"] else []) + (["*behind*"] if sent is not None and
                                                 sent < 0.95 else [])
    return f"{num(100 * st['gencpu'])}%" + (" " + " ".join(notes) if notes else "")


def s2_lines(by, threads):
    names = {m: f"S2-t{threads}-{m}" for m in MODES}
    entries = {m: next(iter(by.get(names[m], {}).values()), []) for m in MODES}
    present = [m for m in MODES if entries[m]]
    if not present:
        return []
    aggs = {m: aggregate_ramp(entries[m]) for m in present}
    label = "--threads 1 (server core 0, generator core 1)" if threads == 1 else \
        f"--threads {threads or 'default (one per CPU)'} (server and generator on cores 0-1)"
    lines = [f"#### S2, {label}", ""]
    for rate in SUMMARY_RATES:
        steps = {m: next((st for st in aggs[m]["steps"] if st["rate"] == rate), None)
                 for m in present}
        if not all(steps.values()):
            continue
        off = steps.get("off") or {"us": None}
        b_off = step_median(entries["off"], rate, wire_bytes) if "off" in steps else None
        rows = []
        for m in present:
            st = steps[m]
            b = step_median(entries[m], rate, wire_bytes)
            rows.append([m, num(b, 1), ratio(b, b_off, higher_better=False, decimals=2),
                         num(st["us"], 3), ratio(st["us"], off["us"], decimals=2),
                         num(st["dps"]), num(st["p50"], 2), num(st["p99"], 2),
                         generator_note(st, step_median(entries[m], rate, sent_share)),
                         f"{st['passed']}/{st['runs']}"])
        lines += [f"At {rate:,.0f} msgs/s ({100 * rate:,.0f} deliveries/s asked); medians over "
                  "the runs:", ""]
        lines += table(["mode", "wire B/delivery", "fewer bytes than off", "server CPU "
                        "us/delivery", "CPU vs off", "deliveries/s", "p50 ms", "p99 ms",
                        "generator CPU (max process)", "passed"], rows)
        lines.append("")
    rows = []
    for m in present:
        for st in aggs[m]["steps"]:
            rows.append([m, num(st["rate"]), num(step_median(entries[m], st["rate"], wire_bytes), 1),
                         num(st["us"], 3), num(st["dps"]), num(st["p50"], 2), num(st["p99"], 2),
                         f"{num(100 * (st['cpu'] or 0))}%",
                         generator_note(st, step_median(entries[m], st["rate"], sent_share)),
                         f"{st['passed']}/{st['runs']}"])
    lines += ["Every step (medians; *g*: a generator process above 90% of a core in at least one "
              "run; *behind*: the generator sent under 95% of the rate asked: such a step "
              "measures the generator, not the server):", ""]
    lines += table(["mode", "msgs/s asked", "wire B/delivery", "server CPU us/delivery",
                    "deliveries/s", "p50 ms", "p99 ms", "server CPU", "generator CPU",
                    "passed"], rows)
    return lines + [""]


def s1_lines(by):
    rows = []
    base = None
    for case in S1_CASES:
        entries = next(iter(by.get(case, {}).values()), [])
        if not entries:
            continue
        agg = aggregate_idle(entries)
        deflate = [(e["report"] or {}).get("health", {}).get("deflate_connections")
                   for e in entries]
        base = agg["bpc"] if case == "S1-plain" else base
        rows.append([case, num(agg["bpc"]), ratio(agg["bpc"], base, decimals=2),
                     ", ".join(num(d) for d in deflate), num(agg["conns"]),
                     "yes" if agg["all_open"] else "no"])
    if not rows:
        return []
    return ["#### S1: bytes per idle connection (server RSS joined minus before, per "
            "connection; medians)", ""] + table(
        ["case", "bytes/connection", "vs plain", "connections with deflate (per run)",
         "connections", "all open at end"], rows) + [""]


def commands_lines(manifest):
    seen = []
    for e in manifest["runs"]:
        for key in ("server_command", "generator_command"):
            if e.get(key):
                text = "    " + display_command(e[key], repo=manifest.get("repo"))
                if text not in seen:
                    seen.append(text)
    return ["Commands as run (PORT, PID and REPORT.json stand for each run's own):", ""] + seen


def render(out_dir, manifest, results_path):
    by = load_reports(out_dir, manifest)
    m = manifest["machine"]
    lines = [f"Run {manifest['started']} on {m['cpu']} ({m['cores']} cores, {m['memory']}), "
             f"commit {m['commit']}, {m['build_type']} build; raw output in "
             f"`{display_command([str(out_dir)], repo=manifest.get('repo')).strip()}`, "
             f"{manifest['runs_per_case']} run(s) of each case, interleaved.", ""]
    s2 = [e for e in manifest["runs"] if e["scenario"].startswith("S2")]
    s1 = [e for e in manifest["runs"] if e["scenario"].startswith("S1")]
    for label, group in (("S2", s2), ("S1", s1)):
        if group:
            lines += [sizes_line({label: [e for e in group if e.get("report")]}).replace(
                "As run:", f"{label} as run:"), ""]
    for threads in manifest["thread_counts"]:
        lines += s2_lines(by, threads)
    lines += s1_lines(by)
    names = sorted({e["scenario"] for e in manifest["runs"]})
    lines += notes_block({n: next(iter(by.get(n, {}).values()), []) for n in names}, names)
    lines += commands_lines(manifest)
    rewrite_generated(results_path, {"compression": lines})
    print("\n".join(lines))


def main(argv):
    args = parse_args(argv)
    procs.install(PROG)
    if args.aggregate_only:
        out_dir = args.aggregate_only.resolve()
        manifest = read_manifest(PROG, out_dir)
        render(out_dir, manifest, args.results or RESULTS)
        return 0
    check_arguments(PROG, args)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = (args.out or REPO / f"bench/results/compression-{stamp}").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = case_list(args)
    manifest = {"machine": machine_info(), "started": stamp, "repo": str(REPO),
                "runs_per_case": args.runs, "quick": args.quick,
                "thread_counts": [int(t) for t in args.thread_counts.split(",")], "runs": []}
    for run_index in range(1, args.runs + 1):
        for case, mode, threads, flags in cases:
            print(f"{PROG}: run {run_index}/{args.runs}: {case}", file=sys.stderr, flush=True)
            entry = run_case(args, case, mode, threads, flags, run_index, out_dir)
            record_run(PROG, manifest, entry, out_dir)
            time.sleep(1)
    results = args.results or (out_dir / "COMPRESSION.md" if args.quick else RESULTS)
    if args.quick and not results.exists():
        results.write_text(RESULTS.read_text())
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    render(out_dir, manifest, results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
