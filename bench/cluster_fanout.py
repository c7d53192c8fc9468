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

Writes bench/CLUSTER.md (keeping the 100,000-connection section bench/scenarios/cluster_100k.sh
appends after its marker) and keeps raw reports, generator output, node and redis logs in
bench/results/cluster-STAMP/.

    /usr/bin/python3 bench/cluster_fanout.py            # 2 runs per configuration (~12 min)
    /usr/bin/python3 bench/cluster_fanout.py --quick    # tiny sizes, 1 run: checks the script
    /usr/bin/python3 bench/cluster_fanout.py --aggregate-only bench/results/cluster-STAMP

Standard library only; reuses run_scenarios.py's process handling and aggregation.
"""

import argparse
import datetime
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_scenarios as rs  # noqa: E402  (spawn, kill, aggregation, formatting)
from redis_server import RedisServer  # noqa: E402  (the test harness's, via run_scenarios)

CONFIGS = {"single": 0, "cluster-1": 1, "cluster-2": 2, "cluster-3": 3}  # nodes (0: no Redis)
RATES_FULL = [100, 500, 1000, 2000, 3000, 5000, 7000, 10000, 14000, 20000]
RATES_QUICK = [100, 500, 1000, 2000, 4000]
FLAGS_FULL = ["--scenario", "fanout", "--connections", "2000", "--clients-per-room", "100",
              "--senders-per-room", "1", "--rates", rs.rates_flag(RATES_FULL),
              "--step-seconds", "5", "--settle-timeout", "20"]
FLAGS_QUICK = ["--scenario", "fanout", "--connections", "400", "--clients-per-room", "100",
               "--senders-per-room", "1", "--rates", rs.rates_flag(RATES_QUICK),
               "--step-seconds", "2", "--settle-timeout", "30"]
# Latency is reported at these target rates (msgs/s; x100 deliveries/s).
LATENCY_AT = [100, 1000, 2000, 5000]
APPENDFSYNC = "everysec"
MARKER = "<!-- cluster_100k.sh appends below this line; cluster_fanout.py keeps it -->"
READING = """How to read it (the run of 2026-11-29, commit 5a5ccef):

- **Throughput.** Every configuration delivered 100 % of every step up to the ramp's top,
  2,000,000 deliveries/s (20,000 msgs/s to rooms of 100), nodes and Redis on one core. Steps
  fail here on latency alone once that core is saturated (p99 over the 250 ms line, 100 %
  delivered): `single` passed every step in both runs; each cluster configuration failed one
  of the top steps in one of its two runs, so its median sustained figure is lower (1.7, 1.5
  and 1.2 million for 1, 2 and 3 nodes). The first full run, at commit 2abcb10 (raw output in
  `bench/results/cluster-20261129-022054/`), had 2.0, 1.7 and 1.7 million: at the top the
  figure is decided by scheduling noise between 2-4 processes on one core.
- **CPU per delivery** is comparable below saturation only (from 200,000/s the core is at
  100 % and the figure is just 1/rate). At 50,000 deliveries/s, nodes + Redis: single 10.3 us,
  cluster-1 10.1 us (Redis with `appendfsync everysec` costs no more than SQLite with fsync
  per group commit), cluster-2 10.5 us, cluster-3 11.3 us: each extra node on the same core
  adds about 0.5-1 us per delivery (2abcb10's run: 1.5-2 us), because every node hears every
  message of its rooms from Redis and frames it for its own members. redis-server's own share
  of the CPU is 15-16 %; it counted about 1.88 million commands per run (INFO
  total_commands_processed, the publish script's inner calls included) for 313,000 messages,
  whatever the node count; its RSS peaked at 16 MiB.
- **Latency.** At 10,000/s the cluster's p50 (1.0-1.2 ms) is below single's 1.4 ms (single
  waits for the SQLite commit with fsync; Redis appends with `appendfsync everysec`). At
  100,000/s p99 is 30-50 ms in every configuration (13.8-30 ms in the first run). Once the
  core is saturated the nodes compete with each other and with Redis for it, and p99 at the
  top grows with the node count.
- **Spread.** `SO_REUSEPORT` split the 2,000 connections evenly (about 1,000 per node of 2,
  620-740 per node of 3).
- **Presence** settled for all 2,000 clients in every run. The first run found 31-105 clients
  per run with 2-3 nodes that never received a complete `user_list`: a cross-node presence
  defect, fixed in 5a5ccef (see the 100k section).
"""
DELIVERED_OK = 0.999  # "sustained": highest step with >= 99.9 % delivered and p99 <= 250 ms


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

def start_redis(args, out_dir, stem):
    """A fresh redis-server (the test harness's RedisServer) on a free port in its own temp
    dir, pinned beside the nodes, in its own process group (tracked like every child)."""
    last = ""
    for _attempt in range(3):
        redis = RedisServer(appendfsync=APPENDFSYNC, binary=args.redis_server,
                            prefix=["taskset", "-c", str(args.server_core)],
                            log_path=str(out_dir / f"{stem}.redis.log"), new_session=True)
        try:
            redis.start()
        except RuntimeError as e:
            shutil.rmtree(redis.dir, ignore_errors=True)
            last = str(e)
            continue
        rs._live.append(redis.proc)
        return redis
    raise rs.RunError(f"redis-server did not answer PING: {last}")


def listeners(port):
    """Listening TCP sockets on 127.0.0.1:port (one per SO_REUSEPORT node)."""
    want = f"0100007F:{port:04X}"
    n = 0
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1] == want and parts[3] == "0A":
                    n += 1
    except OSError:
        pass
    return n


def node_argv(args, config, port, index, redis_port, data_dir):
    argv = ["taskset", "-c", str(args.server_core), str(args.roomcast), "--host", "127.0.0.1",
            "--port", str(port), "--threads", "1", "--log-level", "warn",
            "--rate-limit-messages", "0", "--rate-limit-signals", "0",
            "--rate-limit-address-messages", "0", "--rate-limit-address-signals", "0"]
    if CONFIGS[config] == 0:
        return argv + ["--data-dir", data_dir]  # SQLite history, the default sync (full)
    # --data-dir is unused in cluster mode; pointing it at a temp dir keeps the repo clean.
    return argv + ["--redis", f"redis://127.0.0.1:{redis_port}", "--node-id", f"n{index + 1}",
                   "--data-dir", data_dir]


def health(port):
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return r.status, r.read().decode(errors="replace")
    except Exception as e:  # noqa: BLE001  (HTTPError 503, refused, timeout...)
        return getattr(e, "code", None), str(e)


def start_nodes(args, config, out_dir, stem, redis_port):
    """Starts the configuration's node(s) on one free port; returns (procs, port, argvs)."""
    count = max(1, CONFIGS[config])
    last = ""
    for _attempt in range(3):
        port = rs.free_port()
        procs, argvs = [], []
        ok = True
        for i in range(count):
            data_dir = tempfile.mkdtemp(prefix="roomcast-cluster-data-")
            argv = node_argv(args, config, port, i, redis_port, data_dir)
            procs.append(rs.spawn(argv, out_dir / f"{stem}.node{i + 1}.log"))
            argvs.append(argv)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if procs[-1].poll() is not None:
                    break
                if listeners(port) == i + 1:
                    code, body = health(port)
                    if code == 200 and (CONFIGS[config] == 0 or '"up"' in body):
                        break
                time.sleep(0.05)
            else:
                ok = False
            if procs[-1].poll() is not None:
                ok = False
            if not ok:
                last = (out_dir / f"{stem}.node{i + 1}.log").read_text(errors="replace")[-1500:]
                break
        if ok:
            time.sleep(0.3)  # let every node finish its Redis subscriptions
            return procs, port, argvs
        for p in procs:
            rs._kill_group(p, 5)
        if "in use" not in last:
            break
    raise rs.RunError(f"{config}: nodes did not all listen and answer /healthz; log tail:\n{last}")


def cpu_seconds(pid):
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def open_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


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
    stem = f"{config}-run{run_index}"
    json_path = out_dir / f"{stem}.json"
    gen_out = out_dir / f"{stem}.generator.txt"
    entry = {"scenario": "S2", "server": config, "run": run_index, "nodes": CONFIGS[config],
             "json": json_path.name, "generator_log": gen_out.name, "ok": False, "error": "",
             "started": datetime.datetime.now().isoformat(timespec="seconds")}
    redis = None
    redis_proc = None
    nodes = []
    gen_proc = None
    t0 = time.monotonic()
    try:
        redis_port = None
        if CONFIGS[config]:
            redis = start_redis(args, out_dir, stem)
            redis_proc, redis_port = redis.proc, redis.port
            entry["redis_command"] = redis.argv
        nodes, port, nargvs = start_nodes(args, config, out_dir, stem, redis_port)
        entry["node_commands"] = nargvs
        pids = [p.pid for p in nodes] + ([redis_proc.pid] if redis_proc else [])
        gen_argv = ["taskset", "-c", str(args.generator_core), str(args.bench), *flags,
                    "--url", f"ws://127.0.0.1:{port}/",
                    *[x for pid in pids for x in ("--server-pid", str(pid))],
                    "--json", str(json_path)]
        entry["generator_command"] = gen_argv
        cpu0 = {pid: cpu_seconds(pid) for pid in pids}
        info0 = redis.info() if redis else {}
        limit_s = rs.generator_timeout(flags)
        gen_proc = rs.spawn(gen_argv, gen_out)
        deadline = time.monotonic() + limit_s
        peak_fds = [0] * len(nodes)
        peak_redis_rss = 0
        last_sample = 0.0
        while gen_proc.poll() is None:
            if time.monotonic() > deadline:
                rs._kill_group(gen_proc, 5)
                raise rs.RunError(f"generator still running after {limit_s:.0f} s; killed")
            if time.monotonic() - last_sample >= 1.0:
                last_sample = time.monotonic()
                for i, p in enumerate(nodes):
                    peak_fds[i] = max(peak_fds[i], open_fds(p.pid) or 0)
                if redis_proc:
                    peak_redis_rss = max(peak_redis_rss, rs.rss_bytes(redis_proc.pid) or 0)
            for i, p in enumerate(nodes):
                if p.poll() is not None and not entry["error"]:
                    entry["error"] = (f"node n{i + 1} (pid {p.pid}) exited with status "
                                      f"{p.returncode} during the run")
            if redis_proc and redis_proc.poll() is not None and not entry["error"]:
                entry["error"] = f"redis-server exited with status {redis_proc.returncode}"
            try:
                gen_proc.wait(timeout=0.25)
            except subprocess.TimeoutExpired:
                pass
        code = gen_proc.returncode
        if gen_proc in rs._live:
            rs._live.remove(gen_proc)
        entry["generator_exit"] = code
        entry["node_peak_open_fds"] = peak_fds
        entry["cpu_seconds"] = {
            ("redis" if redis_proc and pid == redis_proc.pid else f"n{i + 1}"):
                (None if cpu0[pid] is None or cpu_seconds(pid) is None
                 else round(cpu_seconds(pid) - cpu0[pid], 2))
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
        if code != 0 and not entry["error"]:
            entry["error"] = f"generator exit {code}: {rs.last_error_line(gen_out)}"
        if not json_path.exists():
            entry["json"] = None
            entry["error"] = entry["error"] or "no JSON report written"
        entry["ok"] = code == 0 and not entry["error"]
    except rs.RunError as e:
        entry["error"] = str(e)
    finally:
        if gen_proc is not None:
            rs._kill_group(gen_proc, 5)
        entry["node_exit"] = [rs._kill_group(p, 5) for p in nodes]
        if redis_proc is not None:
            entry["redis_exit"] = rs._kill_group(redis_proc, 5)
        if redis is not None:
            shutil.rmtree(redis.dir, ignore_errors=True)
        for argv in entry.get("node_commands", []):
            d = argv[argv.index("--data-dir") + 1]
            if d.startswith(tempfile.gettempdir()):
                shutil.rmtree(d, ignore_errors=True)
        rs._reap_orphans()
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
    m = rs.machine_info()
    return (f"{m['cpu']}, {m['cores']} cores, {m['memory']}, kernel {m['kernel']}; "
            f"{m['build_type']} build; redis-server {args.redis_version}")


def write(args, out_dir, manifest, results_path):
    by = rs.load_reports(out_dir, manifest).get("S2", {})
    aggs = {c: rs.aggregate_ramp(by.get(c, [])) for c in manifest["configs"]}
    rates = RATES_QUICK if manifest["quick"] else RATES_FULL
    rel_out = os.path.relpath(out_dir, rs.REPO)

    def step(agg, rate):
        return next((s for s in agg["steps"] if s["rate"] == rate), None)

    lines = ["# Cluster mode: what the Redis path costs (issue 7)", ""]
    if manifest["quick"]:
        lines += ["> **Quick run** (`--quick`): tiny sizes that check the script; not the "
                  "benchmark.", ""]
    fl = manifest["flags"]
    lines += [
        f"The S2 fan-out ramp of `bench/RESULTS.md` ({rs.flag_value(fl, '--connections', 0):,.0f} "
        "clients in rooms of 100, one sender per room, 100 deliveries per message; shorter: "
        f"{rs.flag_value(fl, '--step-seconds', 10):g} s a step, rates "
        f"{', '.join(f'{r:,}' for r in rates)} msgs/s) against roomcast as one node without "
        "Redis (`single`: history in SQLite, the default fsync per group commit) and as a "
        "cluster of 1, 2 and 3 nodes sharing one redis-server (`cluster-k`: AOF on, "
        f"**`appendfsync {APPENDFSYNC}`**, no RDB). The nodes of a cluster listen on one port "
        "(`SO_REUSEPORT`), each `--threads 1 --redis ... --node-id nK`, so the kernel spreads "
        "the generator's connections, senders and receivers alike, over them: with k nodes "
        "about (k-1)/k of each message's receivers are on another node than its sender. Every "
        "message goes through Redis in cluster mode (seq, history and the publish), "
        "even with one node.", "",
        "**This machine has 2 cores: the nodes and redis-server all run on core 0 "
        f"(`taskset -c {manifest['server_core']}`), the generator on core "
        f"{manifest['generator_core']}.** The nodes share one core with Redis, so these "
        "figures measure what the cluster path costs in CPU and latency, not scale-out; "
        "more nodes on one core can only add overhead. Server CPU is summed over all nodes "
        "and redis-server (repeated `--server-pid`).", "",
        f"Medians of {manifest['runs_per_config']} run(s) per configuration, interleaved "
        f"(single, cluster-1, cluster-2, cluster-3, then again). *Sustained* is the highest "
        f"step, before any failing one, with at least {100 * DELIVERED_OK:g} % of its "
        "deliveries in time (step + 2 s grace) and p99 at most 250 ms. Generated by "
        f"`bench/cluster_fanout.py` from `{rel_out}`.", "",
        f"- Date: {manifest['date']}",
        f"- Commit: {manifest['commit']} (roomcast binary built {manifest['binary_mtime']}, "
        f"sha256 {manifest['binary_sha256'][:12]}; the working tree may hold the lead's "
        "uncommitted changes)",
        f"- Machine: {manifest['machine']}", "",
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
        sus_dps = rs.median([s["deliveries_per_second"] if s else 0 for s in sus]) \
            if reports else None
        top = max((r["config"]["rates"][-1] for r in reports), default=None)
        all_top = reports and all(s is not None and s["target_rate"] == top for s in sus)
        summary[c] = sus_dps
        cells = []
        for r in LATENCY_AT:
            s = step(agg, r)
            cells.append("n/a" if s is None else
                         f"{rs.num(s['p50'], 2)} / {rs.num(s['p99'], 2)}"
                         + ("" if s["passed"] == s["runs"] else " (failed)"))
        shares = []
        for e in entries:
            cs = e.get("cpu_seconds") or {}
            total = sum(v for v in cs.values() if v)
            if "redis" in cs and cs["redis"] is not None and total:
                shares.append(cs["redis"] / total)
        share = rs.median(shares)
        s500, s1000 = step(agg, 500), step(agg, 1000)
        lines.append(
            f"| {c} | {rs.num(sus_dps)}{' (ramp top: a lower bound)' if all_top else ''} | "
            f"{rs.num(agg['figure'])}{' (generator-bound)' if agg['bound'] else ''} | "
            + " | ".join(cells) +
            f" | {rs.num(s500 and s500['us'], 2)} | {rs.num(s1000 and s1000['us'], 2)} | "
            f"{'n/a' if share is None else f'{100 * share:.0f} %'} | "
            f"{sum(1 for e in entries if e['ok'])} of {len(entries)} |")
    lines += ["", "Per step (median deliveries/s / delivered % / p50 ms / p99 ms / server+redis "
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
            cells.append(f"{rs.num(s['dps'])} / {rs.num(100 * s['share'], 1)} / "
                         f"{rs.num(s['p50'], 1)} / {rs.num(s['p99'], 1)} / {rs.num(s['us'], 2)}"
                         + ("" if s["passed"] == s["runs"] else
                            f" (*failed* in {s['runs'] - s['passed']} of {s['runs']})"))
        lines.append(f"| {rate:,} | " + " | ".join(cells) + " |")

    # Where the connections went, redis figures, notes.
    lines += ["", "Per run: connections per node (peak open file descriptors, about 20 of "
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
                         f"redis RSS peak {rs.num((e.get('redis_peak_rss_bytes') or 0) / 2**20, 1)}"
                         " MiB")
        rep = e.get("report")
        if rep and rep.get("stop_reason"):
            parts.append(f"ramp stopped: {rep['stop_reason']}")
        if rep:
            parts.append(f"presence settled {rep['setup'].get('full_user_lists')} of "
                         f"{rep['setup'].get('connections_ok')} in "
                         f"{rs.num(rep['setup'].get('presence_settled_seconds'), 2)} s")
        if e.get("node_exit"):
            parts.append("node exit codes on SIGTERM " +
                         ", ".join(str(x) for x in e["node_exit"]))
        lines.append("; ".join(parts))
        for node, f in (e.get("log_findings") or {}).items():
            lines.append(f"  - {node} log: {f['lines']} line(s) at warn level or above, "
                         f"first: `{f['first'][0][:200]}`")
    if not manifest["quick"]:
        lines += ["", READING.rstrip()]
    lines += ["", "Commands (PORT, REDIS_PORT, PIDs and TMP filled in by the script):", "",
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
    lines += ["```", ""]
    old = results_path.read_text() if results_path.exists() else ""
    tail = old[old.index(MARKER):] if MARKER in old else MARKER + "\n"
    results_path.write_text("\n".join(lines) + "\n" + tail)
    return summary


def display(argv):
    out, prev = [], None
    for a in argv:
        t = str(a)
        if t.startswith(str(rs.REPO) + "/"):
            t = t[len(str(rs.REPO)) + 1:]
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
    p.add_argument("--roomcast", type=Path, default=rs.REPO / "build/src/roomcast")
    p.add_argument("--bench", type=Path, default=rs.REPO / "build/bench/generator/roomcast-bench")
    p.add_argument("--redis-server", default="/usr/bin/redis-server")
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--generator-core", type=int, default=1)
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
    signal.signal(signal.SIGTERM, rs._on_signal)
    signal.signal(signal.SIGHUP, rs._on_signal)
    rs._become_subreaper()
    import atexit
    atexit.register(rs._kill_all)
    if args.aggregate_only:
        out_dir = args.aggregate_only.resolve()
        manifest = json.loads((out_dir / "manifest.json").read_text())
        results_path = (args.results or (out_dir / "CLUSTER.md" if manifest["quick"]
                                         else rs.REPO / "bench/CLUSTER.md")).resolve()
        write(args, out_dir, manifest, results_path)
        print(f"cluster_fanout: wrote {results_path}")
        return 0
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for c in configs:
        if c not in CONFIGS:
            rs.die(f"unknown configuration {c!r}")
    for path in (args.roomcast, args.bench):
        if not (path.is_file() and os.access(path, os.X_OK)):
            rs.die(f"{path} not found: build first")
    if shutil.which(args.redis_server) is None:
        rs.die(f"{args.redis_server} not found (Debian package redis-server)")
    args.redis_version = subprocess.run([args.redis_server, "--version"], capture_output=True,
                                        text=True).stdout.split(" v=")[-1].split()[0]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = (args.out or rs.REPO / "bench/results" /
               f"cluster-{stamp}{'-quick' if args.quick else ''}").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = (args.results or (out_dir / "CLUSTER.md" if args.quick
                                     else rs.REPO / "bench/CLUSTER.md")).resolve()
    # Run copies of the binaries: the lead may rebuild build/ while this runs.
    bin_dir = Path(tempfile.mkdtemp(prefix="roomcast-bench-bin-"))
    src_roomcast = args.roomcast.resolve()
    mtime = datetime.datetime.fromtimestamp(src_roomcast.stat().st_mtime).astimezone()
    args.roomcast = Path(shutil.copy2(src_roomcast, bin_dir / "roomcast"))
    args.bench = Path(shutil.copy2(args.bench.resolve(), bin_dir / "roomcast-bench"))
    sha = hashlib.sha256(args.roomcast.read_bytes()).hexdigest()
    commit = subprocess.run(["git", "-C", str(rs.REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    manifest = {"argv": argv, "quick": args.quick, "configs": configs,
                "runs_per_config": args.runs, "server_core": args.server_core,
                "generator_core": args.generator_core,
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
        rs._kill_all()
        rs._reap_orphans()
        (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
        shutil.rmtree(bin_dir, ignore_errors=True)
    summary = write(args, out_dir, manifest, results_path)
    for c, v in summary.items():
        if c in configs:
            print(f"{c}: sustained {rs.num(v)} deliveries/s")
    print(f"cluster_fanout: wrote {results_path}; raw output in {out_dir}")
    return 0 if all(e["ok"] for e in manifest["runs"]) else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        rs._kill_all()
        print("cluster_fanout: interrupted; servers, redis and generator stopped",
              file=sys.stderr)
        sys.exit(130)
