#!/usr/bin/python3
"""The S1, S2 and S3 driver: runs the benchmark scenarios of bench/README.md against roomcast
and the Node baseline and rewrites the generated blocks of bench/RESULTS.md (tables, targets,
commands, machine) plus latency plots; the prose of RESULTS.md is written by hand.

For each scenario, for each run, for each server (interleaved: roomcast, node, roomcast, node):
start the server pinned to --server-core on a free loopback port, wait for /healthz, run
roomcast-bench pinned to --generator-core with --json and --server-pid, stop the server
(SIGTERM, SIGKILL after 5 s). Raw JSON, generator output and server logs stay in the --out
directory (with a manifest.json; bench/results/ is ignored by git), from which
--aggregate-only can rebuild the tables later.

Usage (from anywhere; paths are relative to the repository):
    /usr/bin/python3 bench/run_scenarios.py                      # full: S1,S2,S3 x 2 runs
    /usr/bin/python3 bench/run_scenarios.py --quick              # tiny sizes, checks the script
    /usr/bin/python3 bench/run_scenarios.py --aggregate-only bench/results/20260101-120000

Standard library + matplotlib (Debian python3-matplotlib) only.
"""

import argparse
import datetime
import json
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import REPO, procs, servers as srv  # noqa: E402
from lib.aggregate import (aggregate_idle, aggregate_ramp, limited_by, load_reports,  # noqa: E402
                           median, read_manifest)
from lib.generator import (add_arguments, check_arguments, flag_value,  # noqa: E402
                           record_run, run_one)
from lib.machine import display_command, machine_info  # noqa: E402
from lib.markdown import (notes_block, num, pct, ratio, rewrite_generated,  # noqa: E402
                          sizes_line, status)
from lib.scenarios import SCENARIOS, flags as scenario_flags  # noqa: E402

PROG = "run_scenarios"
SERVERS = ("roomcast", "node")
SCENARIO_IDS = ("S1", "S2", "S3")
RESULTS = REPO / "bench/RESULTS.md"

# The targets (roomcast, one worker thread on one core).
TARGET_S2_RATIO = 10.0
TARGET_S2_DELIVERIES = 850_000
TARGET_S2_P99_MS = 25.0
TARGET_S2_P99_AT = 100_000
UWS_US_PER_DELIVERY = 9.0  # uWebSockets reference: ~9 us of server CPU per delivery at 50k/s
TARGET_S1_BYTES = 700
TARGET_S1_HANDSHAKES = 20_000
TARGET_S3_JOIN_S = 10.0

# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------

def starter(args, server, extra_flags=()):
    """start(log_path) for lib.generator.run_one: roomcast (--threads args.threads, warnings
    only, the test harness's defaults: rate limits off) or the Node baseline, pinned to
    args.server_cores."""
    def start(log_path):
        if server == "node":
            proc, port, argv = srv.start_node_baseline(args.node, args.server_cores, log_path)
            return proc, port, argv, None
        s = srv.start_roomcast(args.roomcast, args.server_cores, log_path,
                               "--threads", str(args.threads), "--log-level", "warn",
                               *extra_flags)
        return s.proc, s.port, s.argv, s.stop
    return start


# --------------------------------------------------------------------------------------------
# RESULTS.md
# --------------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------

def plot_ramp(path, title, aggregates):
    try:
        import matplotlib
    except ImportError:  # checked before a run; --aggregate-only keeps the plots it finds
        print(f"{PROG}: warning: matplotlib is missing, {path} not redrawn", file=sys.stderr)
        return path.exists()
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    colors = {"roomcast": "#1f77b4", "node": "#d62728"}
    drawn = False
    for server, agg in aggregates.items():
        points = [s for s in agg["steps"] if s["dps"] and s["p50"] is not None]
        if not points:
            continue
        drawn = True
        xs = [s["dps"] for s in points]
        color = colors.get(server, None)
        ax.plot(xs, [max(s["p50"], 0.01) for s in points], "-o", color=color, markersize=4,
                label=f"{server} p50")
        ax.plot(xs, [max(s["p99"], 0.01) for s in points], "--s", color=color, markersize=4,
                label=f"{server} p99")
        failed = [s for s in points if s["passed"] * 2 < s["runs"]]  # failed in most runs
        if failed:
            ax.plot([s["dps"] for s in failed], [max(s["p99"], 0.01) for s in failed], "x",
                    color="black", markersize=9, markeredgewidth=2)
    if not drawn:
        plt.close(fig)
        return False
    ax.plot([], [], "x", color="black", markersize=9, markeredgewidth=2, label="step failed")
    ax.axhline(250, color="grey", linewidth=0.8, linestyle=":")
    ax.annotate("250 ms: step fails above", xy=(1, 250), xycoords=("axes fraction", "data"),
                xytext=(-4, 3), textcoords="offset points", ha="right", fontsize=7,
                color="grey")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("deliveries/s")
    ax.set_ylabel("latency, ms")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------------------------
# RESULTS.md
# --------------------------------------------------------------------------------------------

def write_results(out_dir, manifest, results_path, plot_dir):
    by = load_reports(out_dir, manifest)
    quick = manifest["quick"]
    servers = manifest["servers"]
    info = manifest["machine"]
    rel_out = os.path.relpath(out_dir, results_path.parent)
    blocks = {}
    lines = blocks["setup"] = [
        f"Generated by `bench/run_scenarios.py` from the raw reports in `{rel_out}`: the server "
        f"pinned with `taskset -c {manifest['server_core']}`, the load generator "
        f"`roomcast-bench` with `taskset -c {manifest['generator_core']}`, both on loopback.",
        ""]
    if quick:
        lines += ["> **Quick run** (`--quick`): tiny sizes that check the script, not the "
                  "server. The figures below are not the issue's scenarios and the targets are "
                  "evaluated against them only for illustration.", ""]
    lines += ["## Machine", "",
              f"- CPU: {info['cpu']} ({info['cores']} cores visible), memory {info['memory']}",
              f"- Kernel: {info['kernel']} ({info['os']})",
              f"- Date: {info['date']}",
              f"- roomcast: commit {info['commit']}, build type {info['build_type']}; "
              f"Node {info['node']}",
              f"- Runs per server and scenario: {manifest['runs_per_server']}"]
    target_rows = []
    summary = {}

    if "S1" in by:
        aggs = {s: aggregate_idle(by["S1"].get(s, [])) for s in servers}
        summary["S1"] = aggs
        lines = blocks["S1"] = []
        lines += [f"## {SCENARIOS['S1']['title']}", "", sizes_line(by["S1"]), "",
                  "| figure (median) | " + " | ".join(servers) +
                  (" | roomcast advantage |" if len(servers) == 2 else " |"),
                  "| --- |" + " --- |" * (len(servers) + (1 if len(servers) == 2 else 0))]
        rows = [("connections established", "conns", 0, True, False),
                ("handshakes/s", "hs", 0, True, True),
                ("connect time, s", "connect_s", 2, False, False),
                (f"joins/s (offered: {num(aggs_join_rate(by['S1']))}/s)", "joins", 0, True, True),
                ("join time, s", "join_s", 2, False, True),
                ("server RSS before connecting, MiB", "rss_before", 1, False, False),
                ("server RSS at the end of the hold, MiB", "rss_hold", 1, False, False),
                ("server bytes per connection", "bpc", 0, False, True),
                ("server CPU during the hold, s", "cpu_hold", 2, False, False),
                ("connections closed by the server", "closed", 0, False, False),
                ("still open after the hold (heartbeats answered)", "all_open", None, True,
                 False)]
        for label, key, dec, higher, with_ratio in rows:
            vals = [aggs[s].get(key) for s in servers]
            if key == "all_open":
                lines.append(f"| {label} | " + " | ".join(
                    "n/a" if v is None else ("all" if v else "**NO**") for v in vals) +
                    (" | |" if len(servers) == 2 else " |"))
                continue
            if key.startswith("rss"):
                vals = [v / 2**20 if v is not None else None for v in vals]
            cells = [num(v, dec) for v in vals]
            if len(servers) == 2:
                cells.append(ratio(vals[0], vals[1], higher) if with_ratio else "")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += notes_block(by["S1"], servers)
        rc = aggs.get("roomcast")
        if rc and rc["reports"]:
            bpc = rc.get("bpc")
            hs = rc.get("hs")
            target_rows.append(("S1", f"<= {TARGET_S1_BYTES} bytes of RSS per idle joined "
                                "connection", num(bpc, 0, " bytes"),
                                status(bpc is not None and bpc <= TARGET_S1_BYTES)))
            target_rows.append(("S1", f">= {TARGET_S1_HANDSHAKES:,} handshakes/s",
                                num(hs, 0, "/s"),
                                status(hs is not None and hs >= TARGET_S1_HANDSHAKES)))

    plots = []
    for sid in ("S2", "S3"):
        if sid not in by:
            continue
        aggs = {s: aggregate_ramp(by[sid].get(s, [])) for s in servers}
        summary[sid] = aggs
        lines = blocks[sid] = []
        lines += [f"## {SCENARIOS[sid]['title']}", "", sizes_line(by[sid]), ""]
        # Headline table.
        head = ["| figure (median) | " + " | ".join(servers) +
                (" | roomcast advantage |" if len(servers) == 2 else " |"),
                "| --- |" + " --- |" * (len(servers) + (1 if len(servers) == 2 else 0))]
        lines += head

        def row(label, values, dec=0, higher=True, with_ratio=True, unit=""):
            cells = [num(v, dec, unit) for v in values]
            if len(servers) == 2:
                cells.append(ratio(values[0], values[1], higher) if with_ratio else "")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")

        row("sustained deliveries/s (highest passing step)",
            [aggs[s]["figure"] if aggs[s]["reports"] else None for s in servers])
        lines.append("| ...limited by | " + " | ".join(
            limited_by(aggs[s]) for s in servers) + (" | |" if len(servers) == 2 else " |"))
        top_us = []
        for s in servers:
            passing = [st for st in aggs[s]["steps"] if st["passed"] * 2 >= st["runs"]
                       and st["passed"]]
            top_us.append(passing[-1]["us"] if passing else None)
        row("server CPU per delivery at that step, us", top_us, 2, higher=False)
        if sid == "S3":
            row("join time, s", [aggs[s]["join_s"] for s in servers], 2, higher=False)
            row("presence settled (full user_list everywhere), s",
                [aggs[s]["settle_s"] for s in servers], 2, higher=False)
        lines.append("| runs completed / reports | " + " | ".join(
            f"{aggs[s]['complete_runs']} / {aggs[s]['reports']} of "
            f"{len(by[sid].get(s, []))}" for s in servers) +
            (" | |" if len(servers) == 2 else " |"))
        lines.append("")
        # Per-step tables.
        for s in servers:
            agg = aggs[s]
            if not agg["steps"]:
                continue
            lines += [f"**{s}**, per step (medians over the runs that reached the step):", "",
                      "| target msgs/s | deliveries/s | delivered | p50 ms | p99 ms | "
                      "server CPU | server CPU us/delivery | generator CPU | passed (runs) |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
            for st in agg["steps"]:
                passed = f"{st['passed']}/{st['runs']}"
                if st["bound"]:
                    passed += f", generator-bound in {st['bound']}"
                lines.append(
                    f"| {num(st['rate'])} | {num(st['dps'])} | {num(100 * st['share'], 1)}% | "
                    f"{num(st['p50'], 2)} | {num(st['p99'], 2)} | "
                    f"{num(pct(st['cpu']), 0)}% | {num(st['us'], 2)} | "
                    f"{num(pct(st['gencpu']), 0)}% | {passed} |")
            lines.append("")
        lines += notes_block(by[sid], servers)
        png = plot_dir / f"{sid.lower()}_latency{'_quick' if quick else ''}.png"
        if plot_ramp(png, f"{SCENARIOS[sid]['short']}: latency (median over runs) vs delivered rate", aggs):
            rel = os.path.relpath(png, results_path.parent)
            lines += [f"![{sid} latency (p50, p99) against delivered rate]({rel})", ""]
            plots.append(png)

        rc = aggs.get("roomcast")
        nd = aggs.get("node")
        if sid == "S2" and rc and rc["reports"]:
            fig = rc["figure"]
            bound = rc["bound"]
            lower = rc["exhausted"]
            inconclusive = ("**inconclusive**: roomcast passed every step, so its figure is a "
                            "lower bound; extend --rates")
            if nd and nd["reports"]:
                r = fig / nd["figure"] if nd["figure"] else None
                target_rows.append((
                    "S2", f">= {TARGET_S2_RATIO:.0f}x the Node baseline's sustained deliveries/s",
                    f"{r:.1f}x" if r is not None else "n/a",
                    status(True) if r is not None and r >= TARGET_S2_RATIO else
                    inconclusive if lower else
                    status(False) + (" (roomcast generator-bound: its figure is a lower bound)"
                                     if bound else "")))
            measured = f"{num(fig)} deliveries/s"
            if fig is not None and fig >= TARGET_S2_DELIVERIES:
                verdict = status(True)
            elif bound:
                # The generator saturated first: compare server CPU per delivery instead.
                best_us = top_us[servers.index("roomcast")] if "roomcast" in servers else None
                near = min((st for st in rc["steps"] if st["us"] is not None and st["dps"]),
                           key=lambda st: abs(st["dps"] - 50_000), default=None)
                projected = 1e6 / best_us if best_us else None
                measured += (f"; generator-bound: server CPU {num(best_us, 2)} us/delivery at "
                             f"the top step (projects to {num(projected)} deliveries/s on a full "
                             f"core)")
                if near:
                    measured += (f", {num(near['us'], 2)} us at {num(near['dps'])}/s vs "
                                 f"uWebSockets ~{UWS_US_PER_DELIVERY:.0f} us at 50k/s")
                verdict = ("not measured (generator-bound); "
                           f"CPU projection {'meets' if projected and projected >= TARGET_S2_DELIVERIES else 'misses'} it")
            else:
                verdict = inconclusive if lower else status(False)
            target_rows.append(("S2", f">= {TARGET_S2_DELIVERIES:,} deliveries/s", measured,
                                verdict))
            room = next(e["report"]["config"]["clients_per_room"]
                        for e in by[sid]["roomcast"] if e["report"])
            at = next((st for st in rc["steps"]
                       if st["rate"] * room == TARGET_S2_P99_AT), None)
            if at is None:
                target_rows.append(("S2", f"p99 <= {TARGET_S2_P99_MS:.0f} ms at "
                                    f"{TARGET_S2_P99_AT:,} deliveries/s",
                                    "step not run", "n/a"))
            else:
                target_rows.append(("S2", f"p99 <= {TARGET_S2_P99_MS:.0f} ms at "
                                    f"{TARGET_S2_P99_AT:,} deliveries/s",
                                    f"p99 {num(at['p99'], 2)} ms at {num(at['dps'])}/s "
                                    f"(target {num(at['rate'])} msgs/s)",
                                    status(at["p99"] is not None and
                                           at["p99"] <= TARGET_S2_P99_MS and
                                           at["share"] >= 0.95)))
        if sid == "S3" and rc and rc["reports"]:
            n = [e["report"]["setup"]["connections_ok"] for e in by[sid]["roomcast"]
                 if e["report"]]
            joined = [e["report"]["setup"]["joins_ok"] for e in by[sid]["roomcast"]
                      if e["report"]]
            all_joined = all(j == c for j, c in zip(joined, n)) and bool(joined)
            js = rc["join_s"]
            want = int(flag_value(SCENARIOS["S3"]["quick" if quick else "full"],
                                  "--connections", 5000))
            target_rows.append(("S3", f"all {want:,} joined in under {TARGET_S3_JOIN_S:.0f} s",
                                f"{num(median(joined))} joined in {num(js, 2)} s",
                                status(all_joined and js is not None and js < TARGET_S3_JOIN_S)))

    lines = blocks["targets"] = []
    lines += ["## Targets (roomcast, one worker thread on one core)", "",
              "| scenario | target | measured (median) | status |", "| --- | --- | --- | --- |"]
    for sid, target, measured, verdict in target_rows:
        lines.append(f"| {sid} | {target} | {measured} | {verdict} |")
    if not target_rows:
        lines.append("| - | no roomcast reports | | |")
    lines.append("")

    lines = blocks["reproduce"] = []
    lines += ["## How to reproduce", "",
              "Build roomcast and the generator (release build, `build/`), `npm install` for the "
              "baseline's `ws`, then:", "", "```sh",
              "/usr/bin/python3 " + shlex.join(["bench/run_scenarios.py", *manifest["argv"]]),
              "```", "",
              "which runs, for each scenario, run and server (the free port and the server's pid "
              "filled in by the script):", ""]
    for sid in [s for s in SCENARIO_IDS if s in by]:
        lines += [f"{sid}:", "", "```sh"]
        seen = set()
        for e in manifest["runs"]:
            if e["scenario"] != sid:
                continue
            for key in ("server_command", "generator_command"):
                if e.get(key):
                    text = display_command(e[key], repo=manifest.get("repo"))
                    if text not in seen:
                        seen.add(text)
                        lines.append(text)
        lines += ["```", ""]
    lines += ["Each server is stopped with SIGTERM (SIGKILL after 5 s) after its generator run; "
              "raw JSON reports, generator output and server logs are kept in the output "
              "directory, and `bench/run_scenarios.py --aggregate-only DIR` regenerates the "
              "tables of this file from them."]
    for lines in blocks.values():
        while lines and lines[-1] == "":
            lines.pop()
    rewrite_generated(results_path, blocks, template=RESULTS)
    return summary, plots


def aggs_join_rate(entries_by_server):
    for entries in entries_by_server.values():
        for e in entries:
            if e.get("report"):
                return e["report"]["config"]["join_rate"]
    return None


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", default="S1,S2,S3", help="comma-separated subset of S1,S2,S3")
    p.add_argument("--servers", default="roomcast,node", help="comma-separated: roomcast,node")
    p.add_argument("--runs", type=int, default=2, help="runs per scenario and server (>= 1)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and short steps: an end-to-end check of this script")
    p.add_argument("--out", type=Path,
                   help="directory for raw reports and logs (default bench/results/<timestamp>/)")
    p.add_argument("--results", type=Path,
                   help="Markdown file to write (default bench/RESULTS.md; with --quick, "
                        "OUT/RESULTS.md so a quick check never overwrites the real results)")
    p.add_argument("--aggregate-only", type=Path, metavar="DIR",
                   help="do not run anything: rebuild RESULTS.md's tables from "
                        "DIR/manifest.json")
    add_arguments(p)
    p.add_argument("--node", default="node", help="node executable")
    p.add_argument("--pause", type=float, default=2.0, help="seconds between runs")
    return p.parse_args(argv)


def check_environment(args, servers):
    from shutil import which
    check_arguments(PROG, args, roomcast="roomcast" in servers)
    if "node" in servers:
        node = which(args.node)
        if node is None:
            procs.die(PROG, f"node executable {args.node!r} not found (install nodejs or "
                            "pass --node)")
        args.node = node
        if not (REPO / "bench/baselines/node-chat-server.js").is_file():
            procs.die(PROG, "bench/baselines/node-chat-server.js is missing")
        if not (REPO / "node_modules/ws").is_dir():
            procs.die(PROG, "node_modules/ws is missing: run `npm install` at the repository "
                            "root")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        procs.die(PROG, "matplotlib is missing: run scripts/setup --bench "
                        "(and run this script with /usr/bin/python3)")


def summarize(summary):
    """A few console lines after the run."""
    out = []
    if "S1" in summary:
        for s, a in summary["S1"].items():
            out.append(f"S1 {s}: {num(a.get('hs'))} handshakes/s, {num(a.get('joins'))} joins/s, "
                       f"{num(a.get('bpc'))} bytes/connection")
    for sid in ("S2", "S3"):
        for s, a in summary.get(sid, {}).items():
            extra = f", join {num(a['join_s'], 2)} s" if sid == "S3" else ""
            out.append(f"{sid} {s}: sustained {num(a['figure'])} deliveries/s"
                       f"{' (generator-bound)' if a['bound'] else ''}{extra}, "
                       f"{a['complete_runs']}/{a['reports']} runs completed")
    return out


def main(argv):
    args = parse_args(argv)
    procs.install(PROG)

    if args.aggregate_only:
        out_dir = args.aggregate_only.resolve()
        try:
            manifest = read_manifest(PROG, out_dir)
        except (OSError, ValueError) as e:
            procs.die(PROG, f"cannot read {out_dir / 'manifest.json'}: {e}")
    else:
        scenarios = [s.strip().upper() for s in args.scenarios.split(",") if s.strip()]
        servers = [s.strip().lower() for s in args.servers.split(",") if s.strip()]
        for s in scenarios:
            if s not in SCENARIOS:
                procs.die(PROG, f"unknown scenario {s!r} (S1, S2, S3)")
        for s in servers:
            if s not in SERVERS:
                procs.die(PROG, f"unknown server {s!r} (roomcast, node)")
        if not scenarios or not servers or args.runs < 1:
            procs.die(PROG, "need at least one scenario, one server and --runs >= 1")
        check_environment(args, servers)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out_dir = (args.out or REPO / "bench/results" / (stamp + ("-quick" if args.quick else ""))
                   ).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        manifest = {"argv": argv, "quick": args.quick, "scenarios": scenarios,
                    "servers": servers, "runs_per_server": args.runs,
                    "server_core": args.server_cores, "generator_core": args.generator_cores,
                    "threads": args.threads, "repo": str(REPO),
                    "machine": machine_info(), "runs": []}
        if manifest["machine"]["build_type"] not in ("Release", "RelWithDebInfo"):
            print(f"run_scenarios: warning: build type {manifest['machine']['build_type']}; "
                  "benchmark a Release or RelWithDebInfo build", file=sys.stderr)
        total = len(scenarios) * args.runs * len(servers)
        done = 0
        try:
            for sid in scenarios:
                for run in range(1, args.runs + 1):
                    for server in servers:
                        done += 1
                        print(f"run_scenarios: [{done}/{total}] {sid} run {run} {server}...",
                              file=sys.stderr, flush=True)
                        entry = run_one(args, sid, run, server, scenario_flags(sid, args),
                                        out_dir, starter(args, server))
                        record_run("run_scenarios", manifest, entry, out_dir)
                        time.sleep(args.pause)
        finally:
            procs.kill_all()
            procs.reap_orphans()
            (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))

    if args.results:
        results_path = args.results.resolve()
    elif manifest["quick"]:
        results_path = out_dir / "RESULTS.md"
    else:
        results_path = REPO / "bench/RESULTS.md"
    # Plots beside the Markdown file; for bench/RESULTS.md, in bench/results/.
    plot_dir = REPO / "bench/results" if results_path == RESULTS else results_path.parent
    plot_dir.mkdir(parents=True, exist_ok=True)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    summary, plots = write_results(out_dir, manifest, results_path, plot_dir)
    for line in summarize(summary):
        print(line)
    print(f"run_scenarios: wrote {results_path}" +
          "".join(f", {p}" for p in plots) + f"; raw reports in {out_dir}")
    return 0


if __name__ == "__main__":
    procs.run_main(PROG, main)
