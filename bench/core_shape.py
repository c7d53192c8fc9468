#!/usr/bin/python3
"""Before and after the worker-affine core (issue 13), over sockets: S1 and S2 of
bench/README.md against two roomcast binaries, side by side in one run, interleaved run by run
(before, after, before, after...), and the generated block of bench/CORE.md (its prose is
written by hand).

    S1-t1  S1 idle,    --threads 1, server on --server-cores (0), generator on --generator-cores (1)
    S1-t2  S1 idle,    --threads 2 (the default here), server and generator on --shared-cores
    S2-t1  S2 fan-out, --threads 1, the same cores as S1-t1
    S2-t2  S2 fan-out, --threads 2, server and generator both on --shared-cores (0-1)

`--before` defaults to /work/baseline/roomcast (commit fa1fd79, the one-lock core), `--after`
to build/src/roomcast. Both run from copies taken at the start (a rebuild during the run
changes nothing), with the test harness's default flags (rate limits off) and SQLite history,
as run_scenarios.py runs them. Raw reports, generator output, server logs and manifest.json go
to bench/results/core-STAMP/ (ignored by git), from which --aggregate-only rebuilds the tables.

    /usr/bin/python3 bench/core_shape.py                 # 3 runs of each case and binary (~55 min)
    /usr/bin/python3 bench/core_shape.py --quick         # tiny sizes, checks the script
    /usr/bin/python3 bench/core_shape.py --scenarios S2-t2 --runs 1
    /usr/bin/python3 bench/core_shape.py --aggregate-only bench/results/core-STAMP
"""

import argparse
import copy
import datetime
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import REPO, procs, servers  # noqa: E402
from lib.aggregate import (aggregate_idle, aggregate_ramp, common_step, limited_by,  # noqa: E402
                           load_reports, read_manifest)
from lib.generator import check_arguments, record_run, run_one  # noqa: E402
from lib.machine import display_command, frozen_copy, machine_info  # noqa: E402
from lib.markdown import (notes_block, num, pct, ratio, rewrite_generated,  # noqa: E402
                          sizes_line, table)
from lib.scenarios import SCENARIOS, flags as scenario_flags  # noqa: E402

PROG = "core_shape"
RESULTS = REPO / "bench/CORE.md"
BLOCK = "core-shape"
BINARIES = ("before", "after")
# case: (scenario of lib.scenarios, roomcast --threads, cores: "own" = server and generator on
# cores of their own, "shared" = both on --shared-cores)
CASES = {
    "S1-t1": ("S1", 1, "own"),
    "S1-t2": ("S1", 2, "shared"),
    "S2-t1": ("S2", 1, "own"),
    "S2-t2": ("S2", 2, "shared"),
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", type=Path, default=Path("/work/baseline/roomcast"),
                   help="roomcast before the change (default /work/baseline/roomcast, the "
                        "build of fa1fd79: one Hub behind one lock)")
    p.add_argument("--after", type=Path, default=REPO / "build/src/roomcast",
                   help="roomcast after the change (default build/src/roomcast)")
    p.add_argument("--scenarios", default="S1,S2",
                   help="comma-separated subset of S1, S2 (each: both of its cases), S1-t1, "
                        "S1-t2, S2-t1, S2-t2 (default S1,S2: all four cases)")
    p.add_argument("--runs", type=int, default=3, help="runs per case and binary (>= 1)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and short steps: an end-to-end check of this script")
    p.add_argument("--out", type=Path,
                   help="directory for raw reports and logs (default "
                        "bench/results/core-STAMP/)")
    p.add_argument("--results", type=Path,
                   help="Markdown file whose generated block is rewritten (default "
                        "bench/CORE.md; with --quick, OUT/CORE.md)")
    p.add_argument("--aggregate-only", type=Path, metavar="DIR",
                   help="do not run anything: rebuild the tables from DIR/manifest.json")
    p.add_argument("--server-cores", default="0",
                   help="CPUs of the server in the --threads 1 cases (default 0)")
    p.add_argument("--generator-cores", default="1",
                   help="CPUs of roomcast-bench in the --threads 1 cases (default 1)")
    p.add_argument("--shared-cores", default="0-1",
                   help="CPUs of both server and generator in the --threads 2 case "
                        "(default 0-1)")
    p.add_argument("--generator-processes", type=int, default=0,
                   help="roomcast-bench --processes (default: its own)")
    p.add_argument("--bench", type=Path, default=REPO / "build/bench/generator/roomcast-bench")
    p.add_argument("--max-server-rss-mib", type=int, default=4096,
                   help="kill a server whose RSS grows beyond this; the run is then reported "
                        "as failed")
    p.add_argument("--pause", type=float, default=2.0, help="seconds between runs")
    return p.parse_args(argv)


def chosen_cases(prog, text):
    cases = []
    for part in (s.strip().upper() for s in text.split(",") if s.strip()):
        names = [c for c in CASES if c.upper() == part or CASES[c][0] == part]
        if not names:
            procs.die(prog, f"unknown scenario {part!r} (S1, S2, {', '.join(CASES)})")
        cases += [c for c in names if c not in cases]
    return [c for c in CASES if c in cases]


def case_args(args, case, binary_path):
    """The options lib.generator.run_one and check_arguments read, for one case and binary."""
    _sid, threads, cores = CASES[case]
    a = copy.copy(args)
    a.threads = threads
    a.roomcast = binary_path
    if cores == "shared":
        a.server_cores = a.generator_cores = args.shared_cores
    return a


def starter(a):
    """start(log_path) for run_one: roomcast with --threads a.threads, warnings only, the
    harness's defaults (rate limits off), pinned to a.server_cores."""
    def start(log_path):
        s = servers.start_roomcast(a.roomcast, a.server_cores, log_path,
                                   "--threads", str(a.threads), "--log-level", "warn")
        return s.proc, s.port, s.argv, s.stop
    return start


# --------------------------------------------------------------------------------------------
# CORE.md
# --------------------------------------------------------------------------------------------

def commands(manifest, case):
    """The distinct server and generator commands of a case, with the binaries' own paths
    (not the copies that ran) and PORT/PID placeholders."""
    copies = {b["copy"]: b["source"] for b in [*manifest["binaries"].values(),
                                                 manifest["bench"]]}
    seen = []
    for e in manifest["runs"]:
        if e["scenario"] != case:
            continue
        for key in ("server_command", "generator_command"):
            argv = [copies.get(str(x), x) for x in e.get(key) or []]
            text = display_command(argv, repo=manifest.get("repo")) if argv else ""
            if text and text not in seen:
                seen.append(text)
    return seen


def idle_section(case, entries, aggs):
    sid = CASES[case][0]
    lines = [f"### {case}: {SCENARIOS[sid]['title']}, `--threads {CASES[case][1]}`", "",
             sizes_line(entries), ""]
    join_rate = next((e["report"]["config"]["join_rate"] for es in entries.values()
                      for e in es if e.get("report")), None)
    rows = [("connections established", "conns", 0),
            ("handshakes/s", "hs", 0),
            ("connect time, s", "connect_s", 2),
            (f"joins/s (offered: {num(join_rate)}/s)", "joins", 0),
            ("join time, s", "join_s", 2),
            ("server bytes per connection", "bpc", 0),
            ("server RSS at the end of the hold, MiB", "rss_hold", 1),
            ("server CPU during the hold, s", "cpu_hold", 2),
            ("connections closed by the server", "closed", 0)]
    out = []
    for label, key, dec in rows:
        vals = [aggs[b].get(key) for b in BINARIES]
        if key.startswith("rss"):
            vals = [v / 2**20 if v is not None else None for v in vals]
        out.append([label, *(num(v, dec) for v in vals), ratio(vals[1], vals[0], decimals=2)])
    out.append(["still open after the hold (heartbeats answered)",
                *("n/a" if aggs[b]["all_open"] is None else
                  ("all" if aggs[b]["all_open"] else "**NO**") for b in BINARIES), ""])
    out.append(["reports / runs", *(f"{aggs[b]['reports']} / {len(entries.get(b, []))}"
                                    for b in BINARIES), ""])
    lines += table(["figure (median)", *BINARIES, "after / before"], out)
    return lines + [""] + notes_block(entries, BINARIES)


def ramp_section(case, entries, aggs):
    sid, threads, _cores = CASES[case]
    lines = [f"### {case}: {SCENARIOS[sid]['title']}, `--threads {threads}`", "",
             sizes_line(entries), ""]
    at, rate = common_step(aggs)
    room = next((e["report"]["config"]["clients_per_room"] for es in entries.values()
                 for e in es if e.get("report")), None)

    def row(label, vals, dec=0):
        return [label, *(num(v, dec) for v in vals), ratio(vals[1], vals[0], decimals=2)]

    out = [row("sustained rate, msgs/s (highest passing step)",
               [aggs[b]["rate"] if aggs[b]["reports"] else None for b in BINARIES]),
           row("deliveries/s at it", [aggs[b]["figure"] if aggs[b]["reports"] else None
                                      for b in BINARIES]),
           ["...limited by", *(limited_by(aggs[b]) for b in BINARIES), ""]]
    if at is None:
        out.append(["common step (passed by both in every run that reached it)", "none",
                    "none", ""])
    else:
        common = f"{num(rate)} msgs/s" + (f" ({num(rate * room)} deliveries/s asked)"
                                          if room else "")
        out += [[f"at the common step, {common}:", "", "", ""],
                row("deliveries/s", [at[b]["dps"] for b in BINARIES]),
                row("server CPU per delivery, us", [at[b]["us"] for b in BINARIES], 2),
                row("p50 latency, ms", [at[b]["p50"] for b in BINARIES], 2),
                row("p99 latency, ms", [at[b]["p99"] for b in BINARIES], 2),
                row("server CPU, % of one core", [pct(at[b]["cpu"]) for b in BINARIES]),
                row("generator CPU (busiest worker), % of one core",
                    [pct(at[b]["gencpu"]) for b in BINARIES]),
                ["generator-bound (runs)", *(f"{at[b]['bound']} of {at[b]['runs']}"
                                             for b in BINARIES), ""]]
    out.append(["runs completed / reports / runs",
                *(f"{aggs[b]['complete_runs']} / {aggs[b]['reports']} / "
                  f"{len(entries.get(b, []))}" for b in BINARIES), ""])
    lines += table(["figure (median over runs)", *BINARIES, "after / before"], out)
    lines += ["", "Per step (medians over the runs that reached it): deliveries/s, p99 ms, "
              "server CPU us/delivery, runs passed; *g* marks a step generator-bound in at "
              "least one run.", ""]
    rates = sorted({st["rate"] for b in BINARIES for st in aggs[b]["steps"]})
    rows = []
    for r in rates:
        cells = []
        for b in BINARIES:
            st = next((s for s in aggs[b]["steps"] if s["rate"] == r), None)
            cells.append("n/a" if st is None else
                         f"{num(st['dps'])} / {num(st['p99'], 1)} / {num(st['us'], 2)} / "
                         f"{st['passed']} of {st['runs']}{' *g*' if st['bound'] else ''}")
        rows.append([num(r), *cells])
    lines += table(["msgs/s", *BINARIES], rows)
    return lines + [""] + notes_block(entries, BINARIES)


def summary_rows(case, entries, aggs):
    """The summary table's rows of a case: the figures issue 13 asks not to regress."""
    if CASES[case][0] == "S1":
        return [[case, "bytes per idle connection", num(aggs["before"]["bpc"]),
                 num(aggs["after"]["bpc"]),
                 ratio(aggs["after"]["bpc"], aggs["before"]["bpc"], decimals=2), "lower"],
                [case, "handshakes/s", num(aggs["before"]["hs"]), num(aggs["after"]["hs"]),
                 ratio(aggs["after"]["hs"], aggs["before"]["hs"], decimals=2), "higher"],
                [case, "joins/s", num(aggs["before"]["joins"]), num(aggs["after"]["joins"]),
                 ratio(aggs["after"]["joins"], aggs["before"]["joins"], decimals=2), "higher"]]
    at, rate = common_step(aggs)
    bound = {b: " (generator-bound)" if aggs[b]["bound"] else
             " (top of the ramp)" if aggs[b]["exhausted"] else "" for b in BINARIES}
    rows = [[case, "sustained deliveries/s",
             *(num(aggs[b]["figure"]) + bound[b] for b in BINARIES),
             ratio(aggs["after"]["figure"], aggs["before"]["figure"], decimals=2), "higher"]]
    if at is not None:
        for label, key, dec in (("server CPU us/delivery", "us", 2), ("p99 ms", "p99", 2)):
            rows.append([case, f"{label} at {num(rate)} msgs/s",
                         *(num(at[b][key], dec) for b in BINARIES),
                         ratio(at["after"][key], at["before"][key], decimals=2), "lower"])
    return rows


def write(out_dir, manifest, results_path):
    by = load_reports(out_dir, manifest)
    info = manifest["machine"]
    rel_out = (os.path.relpath(out_dir, REPO) if out_dir.is_relative_to(REPO)
               else str(out_dir))
    lines = [f"Generated by `bench/core_shape.py` from the raw reports in `{rel_out}`; medians "
             f"of {manifest['runs_per_case']} run(s) per case and binary, interleaved run by "
             "run (before, after, before, after...).", ""]
    if manifest["quick"]:
        lines += ["> **Quick run** (`--quick`): tiny sizes that check the script, not the "
                  "server. These are not the scenarios' figures.", ""]
    lines += ["Binaries (copies of these, taken at the start of the run):", ""]
    for b in BINARIES:
        m = manifest["binaries"][b]
        lines.append(f"- {b}: `{m['source']}`, {m['size']:,} bytes, modified {m['mtime']}, "
                     f"sha256 `{m['sha256'][:16]}...`")
    lines += ["", f"Machine: {info['cpu']} ({info['cores']} cores visible), memory "
              f"{info['memory']}, kernel {info['kernel']} ({info['os']}); repository at "
              f"commit {info['commit']}, build type {info['build_type']}; {info['date']}.", ""]
    lines += [f"Cores: `--threads 1` cases, server `taskset -c {manifest['server_cores']}` "
              f"and generator `taskset -c {manifest['generator_cores']}`; `--threads 2`, both "
              f"`taskset -c {manifest['shared_cores']}`.", ""]
    sections = []
    summary = []
    for case in manifest["cases"]:
        entries = by.get(case, {})
        if CASES[case][0] == "S1":
            aggs = {b: aggregate_idle(entries.get(b, [])) for b in BINARIES}
            sections += idle_section(case, entries, aggs)
        else:
            aggs = {b: aggregate_ramp(entries.get(b, [])) for b in BINARIES}
            sections += ramp_section(case, entries, aggs)
        summary += summary_rows(case, entries, aggs)
    lines += ["### Summary: after against before", "",
              "after / before: above 1 is more, below 1 is less; the last column says which "
              "is better. CPU per delivery and p99 are read at the common step: the highest "
              "rate both binaries passed in every run that reached it, so both carried the "
              "same load (a run whose ramp stopped earlier is named in the case's notes).", ""]
    lines += table(["case", "figure (median)", *BINARIES, "after / before", "better"],
                   summary)
    lines += [""] + sections
    lines += ["### Commands", "", "```sh",
              "/usr/bin/python3 " + shlex.join(["bench/core_shape.py", *manifest["argv"]]),
              "```", "", "which runs, per case, run and binary (the free port and the "
              "server's pid filled in by the script; the test harness adds a temporary "
              "`--data-dir`):", ""]
    for case in manifest["cases"]:
        lines += [f"{case}:", "", "```sh", *commands(manifest, case), "```", ""]
    while lines and lines[-1] == "":
        lines.pop()
    rewrite_generated(results_path, {BLOCK: lines}, template=RESULTS)
    return summary


def main(argv):
    args = parse_args(argv)
    procs.install(PROG)
    if args.aggregate_only:
        out_dir = args.aggregate_only.resolve()
        manifest = read_manifest(PROG, out_dir)
    else:
        cases = chosen_cases(PROG, args.scenarios)
        if not cases or args.runs < 1:
            procs.die(PROG, "need at least one scenario and --runs >= 1")
        # Every case's cores with the after binary, the before binary once.
        for case in cases:
            check_arguments(PROG, case_args(args, case, args.after))
        check_arguments(PROG, case_args(args, cases[0], args.before))
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out_dir = (args.out or REPO / "bench/results" /
                   f"core-{stamp}{'-quick' if args.quick else ''}").resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        bin_dir = Path(tempfile.mkdtemp(prefix="roomcast-core-shape-bin-"))
        manifest = {"argv": argv, "quick": args.quick, "cases": cases,
                    "runs_per_case": args.runs, "server_cores": args.server_cores,
                    "generator_cores": args.generator_cores,
                    "shared_cores": args.shared_cores, "repo": str(REPO),
                    "machine": machine_info(), "binaries": {}, "runs": []}
        if manifest["machine"]["build_type"] not in ("Release", "RelWithDebInfo"):
            print(f"{PROG}: warning: build type {manifest['machine']['build_type']}; "
                  "benchmark a Release or RelWithDebInfo build", file=sys.stderr)
        paths = {}
        for b in BINARIES:
            paths[b], ident = frozen_copy(getattr(args, b).resolve(), bin_dir / b)
            manifest["binaries"][b] = {**ident, "copy": str(paths[b])}
        args.bench, ident = frozen_copy(args.bench, bin_dir / "bench")
        manifest["bench"] = {**ident, "copy": str(args.bench)}
        total = len(cases) * args.runs * len(BINARIES)
        done = 0
        try:
            for case in cases:
                sid = CASES[case][0]
                for run in range(1, args.runs + 1):
                    for b in BINARIES:
                        done += 1
                        a = case_args(args, case, paths[b])
                        print(f"{PROG}: [{done}/{total}] {case} run {run} {b}...",
                              file=sys.stderr, flush=True)
                        entry = run_one(a, case, run, b, scenario_flags(sid, a), out_dir,
                                        starter(a))
                        entry.update({"threads": a.threads, "server_cores": a.server_cores,
                                      "generator_cores": a.generator_cores})
                        record_run(PROG, manifest, entry, out_dir)
                        time.sleep(args.pause)
        finally:
            procs.kill_all()
            procs.reap_orphans()
            (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
            shutil.rmtree(bin_dir, ignore_errors=True)

    if args.results:
        results_path = args.results.resolve()
    elif manifest["quick"]:
        results_path = out_dir / "CORE.md"
    else:
        results_path = RESULTS
    summary = write(out_dir, manifest, results_path)
    for row in summary:
        print(f"{row[0]} {row[1]}: before {row[2]}, after {row[3]}, after/before {row[4]}")
    print(f"{PROG}: wrote {results_path}; raw reports in {out_dir}")
    failed = [e for e in manifest["runs"] if not e.get("ok")]
    for e in failed:
        print(f"{PROG}: {e['scenario']} run {e['run']} {e['server']} failed: {e['error']}",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    procs.run_main(PROG, main)
