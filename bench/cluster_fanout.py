#!/usr/bin/python3
"""What the cluster path costs (issue 7): the S2 fan-out ramp (2,000 clients in 20 rooms of 100,
one sender per room) against roomcast as

    single      one node, no Redis: history in SQLite (the default, fsync per group commit)
    cluster-1   one node with --redis
    cluster-2   two nodes sharing one port (SO_REUSEPORT) and one redis-server
    cluster-3   three nodes, likewise

interleaved run by run (single, cluster-1, cluster-2, cluster-3, single, ...). Each cluster run
gets a fresh redis-server on a free loopback port (AOF on, `--appendfsync everysec`, no RDB
snapshots) in a temporary directory. The nodes are started with the same --port, --threads 1
and their own --node-id; the kernel spreads the generator's connections (senders and receivers)
over them, so with k nodes about (k-1)/k of a message's receivers sit on another node than its
sender and get it through Redis.

All servers and redis-server are pinned to one core (default 0), roomcast-bench to the other
(default 1), as in bench/run_scenarios.py. On a 2-core machine the nodes therefore share one
core with Redis: the figures measure what the cluster path costs, not scale-out. Server CPU is
summed over every node and redis-server (roomcast-bench's repeated --server-pid).

Rewrites the generated blocks of bench/CLUSTER.md (its prose is written by hand; the
100,000-connection block is bench/cluster_100k.py's) and keeps raw reports,
generator output, node and redis logs in bench/results/cluster-STAMP/ (ignored by git).

    /usr/bin/python3 bench/cluster_fanout.py            # 2 runs per configuration (~12 min)
    /usr/bin/python3 bench/cluster_fanout.py --quick    # tiny sizes, 1 run: checks the script
    /usr/bin/python3 bench/cluster_fanout.py --aggregate-only bench/results/cluster-STAMP

Standard library only; process handling, servers and aggregation come from bench/lib.
"""

import argparse
import datetime
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import REPO, procs, servers  # noqa: E402
from lib.aggregate import aggregate_ramp, load_reports, median, read_manifest  # noqa: E402
from lib.generator import (add_arguments, check_arguments, flag_value,  # noqa: E402
                           generator_argv, generator_timeout, rates_flag, record_exit, wait)
from lib.machine import machine_info  # noqa: E402
from lib.markdown import num, rewrite_generated  # noqa: E402

PROG = "cluster_fanout"
RESULTS = REPO / "bench/CLUSTER.md"
CONFIGS = {"single": 0, "cluster-1": 1, "cluster-2": 2, "cluster-3": 3}  # nodes (0: no Redis)
RATES_FULL = [100, 500, 1000, 2000, 3000, 5000, 7000, 10000, 14000, 20000]
RATES_QUICK = [100, 500, 1000, 2000, 4000]
FLAGS_FULL = ["--scenario", "fanout", "--connections", "2000", "--clients-per-room", "100",
              "--senders-per-room", "1", "--rates", rates_flag(RATES_FULL),
              "--step-seconds", "5", "--settle-timeout", "20"]
FLAGS_QUICK = ["--scenario", "fanout", "--connections", "400", "--clients-per-room", "100",
               "--senders-per-room", "1", "--rates", rates_flag(RATES_QUICK),
               "--step-seconds", "2", "--settle-timeout", "30"]
# Latency is reported at these target rates (msgs/s; x100 deliveries/s).
LATENCY_AT = [100, 1000, 2000, 5000]
APPENDFSYNC = "everysec"
DELIVERED_OK = 0.999  # "sustained": highest step with >= 99.9 % delivered and p99 <= 250 ms


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

def node_flags(args, config, index, redis_port):
    """Each node's flags besides those of the harness (--host, --port, --data-dir and the test
    defaults: rate limits off)."""
    flags = ["--threads", str(args.threads), "--log-level", "warn"]
    if CONFIGS[config] == 0:
        return flags  # SQLite history, the default sync (full)
    return flags + ["--redis", f"redis://127.0.0.1:{redis_port}", "--node-id", f"n{index + 1}"]


def start_nodes(args, config, out_dir, stem, redis_port):
    """The configuration's node(s) on one free port (SO_REUSEPORT); returns the
    RoomcastServers, the port and their commands."""
    try:
        nodes, port = servers.start_nodes(
            args.roomcast, args.server_cores, max(1, CONFIGS[config]),
            lambda i: out_dir / f"{stem}.node{i + 1}.log",
            lambda i: node_flags(args, config, i, redis_port), redis=CONFIGS[config] > 0)
    except procs.RunError as e:
        raise procs.RunError(f"{config}: {e}") from None
    time.sleep(0.3)  # let every node finish its Redis subscriptions
    return nodes, port, [n.argv for n in nodes]


def log_findings(path):
    """Lines of a --log-level warn log (every line is a warning or worse), a few kept."""
    try:
        lines = [ln for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return 0, []
    return len(lines), lines[:5]


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------

def run_one(args, config, run_index, out_dir):
    flags = FLAGS_QUICK if args.quick else FLAGS_FULL
    if args.generator_processes:
        flags = flags + ["--processes", str(args.generator_processes)]
    stem = f"{config}-run{run_index}"
    json_path = out_dir / f"{stem}.json"
    gen_out = out_dir / f"{stem}.generator.txt"
    entry = {"scenario": "S2", "server": config, "run": run_index, "nodes": CONFIGS[config],
             "json": json_path.name, "generator_log": gen_out.name, "ok": False, "error": "",
             "started": datetime.datetime.now().isoformat(timespec="seconds")}
    redis = None
    redis_proc = None
    servers_ = []
    nodes = []
    gen_proc = None
    t0 = time.monotonic()
    try:
        redis_port = None
        if CONFIGS[config]:
            redis = servers.start_redis(args.redis_server, args.server_cores,
                                        out_dir / f"{stem}.redis.log", APPENDFSYNC)
            redis_proc, redis_port = redis.proc, redis.port
            entry["redis_command"] = redis.argv
        servers_, port, nargvs = start_nodes(args, config, out_dir, stem, redis_port)
        nodes = [n.proc for n in servers_]
        entry["node_commands"] = nargvs
        pids = [p.pid for p in nodes] + ([redis_proc.pid] if redis_proc else [])
        gen_argv = generator_argv(args.bench, args.generator_cores, flags, port, pids, json_path)
        entry["generator_command"] = gen_argv
        cpu0 = {pid: servers.cpu_seconds(pid) for pid in pids}
        info0 = redis.info() if redis else {}
        limit_s = generator_timeout(flags)
        gen_proc = procs.spawn(gen_argv, gen_out)
        peak_fds = [0] * len(nodes)
        peak_redis_rss = 0
        last_sample = 0.0

        def tick():
            nonlocal peak_redis_rss, last_sample
            if time.monotonic() - last_sample >= 1.0:
                last_sample = time.monotonic()
                for i, p in enumerate(nodes):
                    peak_fds[i] = max(peak_fds[i], servers.open_fds(p.pid) or 0)
                if redis_proc:
                    peak_redis_rss = max(peak_redis_rss, servers.rss_bytes(redis_proc.pid) or 0)
            for i, p in enumerate(nodes):
                if p.poll() is not None and not entry["error"]:
                    entry["error"] = (f"node n{i + 1} (pid {p.pid}) exited with status "
                                      f"{p.returncode} during the run")
            if redis_proc and redis_proc.poll() is not None and not entry["error"]:
                entry["error"] = f"redis-server exited with status {redis_proc.returncode}"

        code = wait(gen_proc, limit_s, tick, interval=0.25)
        entry["node_peak_open_fds"] = peak_fds
        entry["cpu_seconds"] = {
            ("redis" if redis_proc and pid == redis_proc.pid else f"n{i + 1}"):
                (None if cpu0[pid] is None or servers.cpu_seconds(pid) is None
                 else round(servers.cpu_seconds(pid) - cpu0[pid], 2))
            for i, pid in enumerate(pids)}
        if redis_port:
            info1 = redis.info()
            entry["redis_peak_rss_bytes"] = peak_redis_rss
            entry["redis"] = {k: info1.get(k) for k in (
                "redis_version", "used_memory", "used_memory_peak", "connected_clients",
                "aof_enabled", "total_commands_processed", "total_net_input_bytes",
                "total_net_output_bytes", "instantaneous_ops_per_sec")}
            try:
                entry["redis"]["commands_during_run"] = (
                    int(info1["total_commands_processed"]) -
                    int(info0["total_commands_processed"]))
            except (KeyError, ValueError):
                pass
        record_exit(entry, code, gen_out, json_path)
    except procs.RunError as e:
        entry["error"] = str(e)
    finally:
        if gen_proc is not None:
            procs.kill_group(gen_proc, 5)
        entry["node_exit"] = [procs.kill_group(p, 5) for p in nodes]
        for n in servers_:
            n.stop()  # removes its temporary --data-dir
        if redis is not None:
            entry["redis_exit"] = servers.remove_redis(redis)
        procs.reap_orphans()
        findings = {}
        for i in range(len(nodes)):
            n, first = log_findings(out_dir / f"{stem}.node{i + 1}.log")
            if n:
                findings[f"n{i + 1}"] = {"lines": n, "first": first}
        entry["log_findings"] = findings
        # SIGTERM should end every node with 0; anything else (a crash, SIGKILL) is reported.
        for i, ec in enumerate(entry["node_exit"]):
            if ec not in (0, None) and not entry["error"]:
                entry["error"] = f"node n{i + 1} ended with status {ec}"
        entry["seconds"] = round(time.monotonic() - t0, 1)
    return entry


# --------------------------------------------------------------------------------------------
# Aggregation and CLUSTER.md
# --------------------------------------------------------------------------------------------

def sustained(report):
    """Highest step, before any failure, with >= 99.9 % delivered and p99 <= 250 ms."""
    best = None
    for st in report.get("steps", []):
        p99 = st["latency_ms"]["p99"]
        if st["delivered_share"] >= DELIVERED_OK and p99 is not None and p99 <= 250 \
                and st["closed_by_server"] == 0:
            best = st
        else:
            break
    return best


def machine_line(args):
    m = machine_info()
    return (f"{m['cpu']}, {m['cores']} cores, {m['memory']}, kernel {m['kernel']}; "
            f"{m['build_type']} build; redis-server {args.redis_version}")


def write(args, out_dir, manifest, results_path):
    by = load_reports(out_dir, manifest).get("S2", {})
    aggs = {c: aggregate_ramp(by.get(c, [])) for c in manifest["configs"]}
    rates = RATES_QUICK if manifest["quick"] else RATES_FULL
    rel_out = os.path.relpath(out_dir, REPO)

    def step(agg, rate):
        return next((s for s in agg["steps"] if s["rate"] == rate), None)

    blocks = {}
    lines = blocks["setup"] = []
    if manifest["quick"]:
        lines += ["> **Quick run** (`--quick`): tiny sizes that check the script; not the "
                  "benchmark.", ""]
    fl = manifest["flags"]
    lines += [
        f"As run: {flag_value(fl, '--connections', 0):,.0f} clients, "
        f"{flag_value(fl, '--step-seconds', 10):g} s a step, rates "
        f"{', '.join(f'{r:,}' for r in rates)} msgs/s; nodes and redis-server on "
        f"`taskset -c {manifest['server_core']}`, the generator on "
        f"`taskset -c {manifest['generator_core']}`.", "",
        f"Medians of {manifest['runs_per_config']} run(s) per configuration, interleaved "
        f"(single, cluster-1, cluster-2, cluster-3, then again). *Sustained* is the highest "
        f"step, before any failing one, with at least {100 * DELIVERED_OK:g} % of its "
        "deliveries in time (step + 2 s grace) and p99 at most 250 ms. Generated by "
        f"`bench/cluster_fanout.py` from `{rel_out}`.", "",
        f"- Date: {manifest['date']}",
        f"- Commit: {manifest['commit']} (roomcast binary built {manifest['binary_mtime']}, "
        f"sha256 {manifest['binary_sha256'][:12]}; the working tree may hold the lead's "
        "uncommitted changes)",
        f"- Machine: {manifest['machine']}"]
    lines = blocks["summary"] = [
        "| configuration | sustained deliveries/s | generator's pass line (95 %) | "
        + " | ".join(f"p50 / p99 ms at {r * 100:,}/s" for r in LATENCY_AT) +
        " | server+redis CPU us/delivery at 50,000/s | at 100,000/s | redis share of CPU "
        "| runs ok |",
        "| --- | --- | --- | " + " | ".join("---" for _ in LATENCY_AT) + " | --- | --- | --- | --- |",
    ]
    summary = {}
    for c, agg in aggs.items():
        entries = by.get(c, [])
        reports = [e["report"] for e in entries if e.get("report")]
        sus = [sustained(r) for r in reports]
        sus_dps = median([s["deliveries_per_second"] if s else 0 for s in sus]) \
            if reports else None
        top = max((r["config"]["rates"][-1] for r in reports), default=None)
        all_top = reports and all(s is not None and s["target_rate"] == top for s in sus)
        summary[c] = sus_dps
        cells = []
        for r in LATENCY_AT:
            s = step(agg, r)
            cells.append("n/a" if s is None else
                         f"{num(s['p50'], 2)} / {num(s['p99'], 2)}"
                         + ("" if s["passed"] == s["runs"] else " (failed)"))
        shares = []
        for e in entries:
            cs = e.get("cpu_seconds") or {}
            total = sum(v for v in cs.values() if v)
            if "redis" in cs and cs["redis"] is not None and total:
                shares.append(cs["redis"] / total)
        share = median(shares)
        s500, s1000 = step(agg, 500), step(agg, 1000)
        lines.append(
            f"| {c} | {num(sus_dps)}{' (ramp top: a lower bound)' if all_top else ''} | "
            f"{num(agg['figure'])}{' (generator-bound)' if agg['bound'] else ''} | "
            + " | ".join(cells) +
            f" | {num(s500 and s500['us'], 2)} | {num(s1000 and s1000['us'], 2)} | "
            f"{'n/a' if share is None else f'{100 * share:.0f} %'} | "
            f"{sum(1 for e in entries if e['ok'])} of {len(entries)} |")
    lines = blocks["steps"] = []
    lines += ["Per step (median deliveries/s / delivered % / p50 ms / p99 ms / server+redis "
              "us per delivery; *failed* when the generator's step failed in a run):", "",
              "| rate (msgs/s) | " + " | ".join(aggs) + " |",
              "| --- | " + " | ".join("---" for _ in aggs) + " |"]
    for rate in rates:
        cells = []
        for agg in aggs.values():
            s = step(agg, rate)
            if s is None:
                cells.append("not reached")
                continue
            cells.append(f"{num(s['dps'])} / {num(100 * s['share'], 1)} / "
                         f"{num(s['p50'], 1)} / {num(s['p99'], 1)} / {num(s['us'], 2)}"
                         + ("" if s["passed"] == s["runs"] else
                            f" (*failed* in {s['runs'] - s['passed']} of {s['runs']})"))
        lines.append(f"| {rate:,} | " + " | ".join(cells) + " |")

    # Where the connections went, redis figures, notes.
    lines = blocks["runs"] = []
    lines += ["Per run: connections per node (peak open file descriptors, about 20 of "
              "which are not client sockets), CPU seconds over the whole run, Redis commands "
              "and peak RSS:", ""]
    for e in manifest["runs"]:
        cs = e.get("cpu_seconds") or {}
        parts = [f"- {e['server']} run {e['run']}: " + ("ok" if e["ok"] else
                                                        f"**FAILED**: {e['error']}")]
        if e.get("node_peak_open_fds"):
            parts.append("fds per node " + ", ".join(str(x) for x in e["node_peak_open_fds"]))
        if cs:
            parts.append("CPU s " + ", ".join(f"{k} {v}" for k, v in cs.items()))
        rd = e.get("redis") or {}
        if rd.get("commands_during_run") is not None:
            parts.append(f"redis commands {rd['commands_during_run']:,}, "
                         f"redis RSS peak {num((e.get('redis_peak_rss_bytes') or 0) / 2**20, 1)}"
                         " MiB")
        rep = e.get("report")
        if rep and rep.get("stop_reason"):
            parts.append(f"ramp stopped: {rep['stop_reason']}")
        if rep:
            parts.append(f"presence settled {rep['setup'].get('full_user_lists')} of "
                         f"{rep['setup'].get('connections_ok')} in "
                         f"{num(rep['setup'].get('presence_settled_seconds'), 2)} s")
        if e.get("node_exit"):
            parts.append("node exit codes on SIGTERM " +
                         ", ".join(str(x) for x in e["node_exit"]))
        lines.append("; ".join(parts))
        for node, f in (e.get("log_findings") or {}).items():
            lines.append(f"  - {node} log: {f['lines']} line(s) at warn level or above, "
                         f"first: `{f['first'][0][:200]}`")
    lines = blocks["commands"] = []
    lines += ["Commands (PORT, REDIS_PORT, PIDs and TMP filled in by the script):", "",
              "```sh", "/usr/bin/python3 " + shlex.join(["bench/cluster_fanout.py",
                                                         *manifest["argv"]])]
    seen = set()
    for e in manifest["runs"]:
        for argv in ([e.get("redis_command")] + (e.get("node_commands") or [])[:1] +
                     [e.get("generator_command")]):
            if not argv:
                continue
            text = display(argv)
            if text not in seen:
                seen.add(text)
                lines.append(text)
    lines += ["```"]
    rewrite_generated(results_path, blocks, template=RESULTS)
    return summary


def display(argv):
    out, prev = [], None
    for a in argv:
        t = str(a)
        if t.startswith(str(REPO) + "/"):
            t = t[len(str(REPO)) + 1:]
        elif t.startswith("/tmp/") and "bench-bin" in t:
            t = "build/" + ("src/roomcast" if t.endswith("/roomcast")
                            else "bench/generator/roomcast-bench")
        if prev in ("--port",):
            t = "PORT" if "redis-server" not in " ".join(map(str, argv)) else "REDIS_PORT"
        elif prev == "--server-pid":
            t = "PID"
        elif prev == "--json":
            t = "REPORT.json"
        elif prev in ("--dir", "--data-dir"):
            t = "TMP"
        elif prev == "--redis":
            t = "redis://127.0.0.1:REDIS_PORT"
        elif t.startswith("ws://127.0.0.1:"):
            t = "ws://127.0.0.1:PORT/"
        out.append(t)
        prev = str(a)
    return shlex.join(out)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=None, help="runs per configuration "
                   "(default 2; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="400 clients, 2 s steps")
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help="comma-separated subset of " + ",".join(CONFIGS))
    add_arguments(p)
    p.add_argument("--redis-server", default="/usr/bin/redis-server")
    p.add_argument("--out", type=Path, help="raw output directory "
                   "(default bench/results/cluster-STAMP[-quick]/)")
    p.add_argument("--results", type=Path, help="Markdown file (default bench/CLUSTER.md; "
                   "with --quick OUT/CLUSTER.md)")
    p.add_argument("--pause", type=float, default=2.0)
    p.add_argument("--aggregate-only", type=Path, metavar="DIR",
                   help="run nothing: rewrite the Markdown file from DIR/manifest.json")
    a = p.parse_args(argv)
    if a.runs is None:
        a.runs = 1 if a.quick else 2
    return a


def main(argv):
    args = parse_args(argv)
    procs.install(PROG)
    if args.aggregate_only:
        out_dir = args.aggregate_only.resolve()
        manifest = read_manifest(PROG, out_dir)
        results_path = (args.results or (out_dir / "CLUSTER.md" if manifest["quick"]
                                         else RESULTS)).resolve()
        write(args, out_dir, manifest, results_path)
        print(f"cluster_fanout: wrote {results_path}")
        return 0
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for c in configs:
        if c not in CONFIGS:
            procs.die(PROG, f"unknown configuration {c!r}")
    check_arguments(PROG, args)
    if shutil.which(args.redis_server) is None:
        procs.die(PROG, f"{args.redis_server} not found (Debian package redis-server)")
    args.redis_version = subprocess.run([args.redis_server, "--version"], capture_output=True,
                                        text=True).stdout.split(" v=")[-1].split()[0]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = (args.out or REPO / "bench/results" /
               f"cluster-{stamp}{'-quick' if args.quick else ''}").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = (args.results or (out_dir / "CLUSTER.md" if args.quick
                                     else RESULTS)).resolve()
    # Run copies of the binaries: the lead may rebuild build/ while this runs.
    bin_dir = Path(tempfile.mkdtemp(prefix="roomcast-bench-bin-"))
    src_roomcast = args.roomcast.resolve()
    mtime = datetime.datetime.fromtimestamp(src_roomcast.stat().st_mtime).astimezone()
    args.roomcast = Path(shutil.copy2(src_roomcast, bin_dir / "roomcast"))
    args.bench = Path(shutil.copy2(args.bench.resolve(), bin_dir / "roomcast-bench"))
    sha = hashlib.sha256(args.roomcast.read_bytes()).hexdigest()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    manifest = {"argv": argv, "quick": args.quick, "configs": configs,
                "runs_per_config": args.runs, "server_core": args.server_cores,
                "generator_core": args.generator_cores, "threads": args.threads,
                "flags": FLAGS_QUICK if args.quick else FLAGS_FULL,
                "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                "commit": commit, "binary_mtime": mtime.isoformat(timespec="seconds"),
                "binary_sha256": sha, "machine": machine_line(args), "runs": []}
    total = args.runs * len(configs)
    done = 0
    try:
        for run in range(1, args.runs + 1):
            for c in configs:
                done += 1
                print(f"cluster_fanout: [{done}/{total}] {c} run {run}...", file=sys.stderr,
                      flush=True)
                e = run_one(args, c, run, out_dir)
                manifest["runs"].append(e)
                (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
                print(f"cluster_fanout:   {'ok' if e['ok'] else 'FAILED'} in {e['seconds']} s"
                      + (f": {e['error']}" if e["error"] else ""), file=sys.stderr, flush=True)
                time.sleep(args.pause)
    finally:
        procs.kill_all()
        procs.reap_orphans()
        (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
        shutil.rmtree(bin_dir, ignore_errors=True)
    summary = write(args, out_dir, manifest, results_path)
    for c, v in summary.items():
        if c in configs:
            print(f"{c}: sustained {num(v)} deliveries/s")
    print(f"cluster_fanout: wrote {results_path}; raw output in {out_dir}")
    return 0 if all(e["ok"] for e in manifest["runs"]) else 1


if __name__ == "__main__":
    procs.run_main(PROG, main, "servers, redis and generator")
