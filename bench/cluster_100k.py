#!/usr/bin/python3
"""100,000 concurrent connections on a cluster (issue 7): like S4 (bench/S4.md), but the 6
roomcast processes sharing one port (SO_REUSEPORT) are cluster nodes joined by one
redis-server, so rooms and presence span all of them (the generator's "presence settled"
figure is meaningful). 100,000 connections in rooms of 100 (6 generator processes, source
addresses 127.0.0.1-8), heartbeat every 5 s, idle timeout 10 s, hold 10 s. Nodes and Redis on
--server-cores (0), the generator on --generator-cores (1). Memory: the nodes' RSS
before/after (the generator's --server-pid, summed) and redis-server's RSS, sampled every
second.

    /usr/bin/python3 bench/cluster_100k.py            # after scripts/build
    /usr/bin/python3 bench/cluster_100k.py --quick    # 600 connections, a short hold

Writes bench/results/cluster100k-STAMP/ (generator output and JSON, node and Redis logs,
samples.txt, summary.md; ignored by git) and rewrites the generated:cluster_100k block of
bench/CLUSTER.md (not with --quick).
"""

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import REPO, procs, servers  # noqa: E402
from lib.generator import (add_arguments, check_arguments, generator_argv,  # noqa: E402
                           generator_timeout, wait)
from lib.machine import display_command  # noqa: E402
from lib.markdown import rewrite_generated  # noqa: E402

PROG = "cluster_100k"
RESULTS = REPO / "bench/CLUSTER.md"
NODES = 6
FULL = {"n": 100_000, "hold": 10, "ping": "5s", "idle": "10s", "settle": 120, "connect": 60}
QUICK = {"n": 600, "hold": 6, "ping": "2s", "idle": "4s", "settle": 30, "connect": 20}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="600 connections, a short hold")
    add_arguments(p)
    p.add_argument("--redis-server", default="/usr/bin/redis-server")
    return p.parse_args(argv)


class Sampler(threading.Thread):
    """Every second: Redis RSS, the nodes' summed RSS (KiB) and each node's open descriptors,
    one line of samples.txt each."""

    def __init__(self, path, redis_pid, node_pids):
        super().__init__(daemon=True)
        self.path, self.redis_pid, self.node_pids = path, redis_pid, node_pids
        self.done = threading.Event()

    def run(self):
        with open(self.path, "w") as f:
            while not self.done.is_set():
                kib = [(servers.rss_bytes(p) or 0) // 1024 for p in self.node_pids]
                fds = [servers.open_fds(p) or 0 for p in self.node_pids]
                f.write(f"{int(time.time())} redis_rss_kib="
                        f"{(servers.rss_bytes(self.redis_pid) or 0) // 1024} "
                        f"nodes_rss_kib={sum(kib)} fds={','.join(map(str, fds))}\n")
                f.flush()
                self.done.wait(1.0)

    def stop(self):
        self.done.set()
        self.join(timeout=5)


def redis_memory(redis, field):
    return int(redis.info().get(field) or 0)


def run(args, out, size):
    """Runs the cluster and the generator; returns what the report needs."""
    r = {"nodes": NODES}
    redis = servers.start_redis(args.redis_server, args.server_cores, out / "redis.log",
                                "everysec")
    nodes = []
    sampler = None
    try:
        nodes, port = servers.start_nodes(
            args.roomcast, args.server_cores, NODES, lambda i: out / f"node{i + 1}.log",
            lambda i: ["--threads", str(args.threads), "--log-level", "warn",
                       "--redis", redis.url, "--node-id", f"n{i + 1}",
                       "--ping-interval", size["ping"], "--idle-timeout", size["idle"]],
            redis=True)
        time.sleep(0.5)
        pids = [n.proc.pid for n in nodes]
        r["redis_rss_before"] = servers.rss_bytes(redis.proc.pid) or 0
        r["redis_mem_before"] = redis_memory(redis, "used_memory")
        sampler = Sampler(out / "samples.txt", redis.proc.pid, pids)
        sampler.start()
        flags = ["--scenario", "idle", "--connections", str(size["n"]), "--processes", "6",
                 "--clients-per-room", "100", "--hold-seconds", str(size["hold"]),
                 "--connect-timeout", str(size["connect"]), "--settle-timeout",
                 str(size["settle"])]
        gen_argv = generator_argv(args.bench, args.generator_cores, flags, port, pids,
                                  out / "cluster100k.json")
        r["command"] = display_command(
            [args.bench_shown if a == str(args.bench) else a for a in gen_argv])
        r["start"] = time.time()
        gen = procs.spawn(gen_argv, out / "generator.txt")
        r["generator_exit"] = wait(gen, generator_timeout(flags), lambda: None)
        r["redis_mem_peak"] = redis_memory(redis, "used_memory_peak")
        r["redis_keys"] = redis.command("DBSIZE")
        time.sleep(3)  # the mass disconnect: do the nodes survive it?
        sampler.stop()
        r["status"], r["exits"] = [], []
        for n in nodes:
            if n.proc.poll() is None:
                r["status"].append("alive")
                r["exits"].append(str(procs.kill_group(n.proc, 5)))
            else:
                r["status"].append(f"exited:{n.proc.returncode}")
                r["exits"].append("-")
    finally:
        if sampler is not None:
            sampler.stop()
        for n in nodes:
            procs.kill_group(n.proc, 5)
            n.stop()
        r["redis_exit"] = servers.remove_redis(redis)
    return r


def report(args, out, size, r):
    """The Markdown section (summary.md, and CLUSTER.md's block)."""
    try:
        rep = json.loads((out / "cluster100k.json").read_text())
    except (OSError, ValueError):
        rep = None
    samples = []
    for line in (out / "samples.txt").read_text(errors="replace").splitlines():
        fields = dict(f.split("=", 1) for f in line.split()[1:])
        samples.append((int(fields["redis_rss_kib"]), int(fields["nodes_rss_kib"]),
                        [int(x) for x in fields["fds"].split(",") if x]))

    def mib(b):
        return f"{b / 2**20:,.1f} MiB" if b is not None else "n/a"

    n = size["n"]
    redis_before = r["redis_rss_before"]
    redis_peak = max((s[0] for s in samples), default=0) * 1024
    fds_peak = [max(col) for col in zip(*[s[2] for s in samples if len(s[2]) == NODES])]
    logs = {}
    for i in range(1, NODES + 1):
        lines = [ln for ln in (out / f"node{i}.log").read_text(errors="replace").splitlines()
                 if ln.strip()]
        if lines:
            logs[f"n{i}"] = lines
    rows = []
    if rep:
        st, sv, h, hold = rep["setup"], rep["server"], rep["health"], rep["hold"]
        nb = sv.get("rss_before_bytes")
        nh = sv.get("rss_holding_bytes") or sv.get("rss_joined_bytes")
        rows += [
            ("connections established", f"{st['connections_ok']:,} of {n:,} in "
             f"{st['connect_seconds']:.2f} s ({st['handshakes_per_second']:,.0f} handshakes/s)"),
            ("joins (offered at 5,000/s by the generator)", f"{st['joins_ok']:,} in "
             f"{st['join_seconds']:.1f} s ({st['joins_per_second']:,.0f}/s)"),
            ("presence settled (every client saw a user_list of its whole room, across nodes)",
             f"{st['full_user_lists']:,} of {st['connections_ok']:,}"
             + (f", {st['presence_settled_seconds']:.1f} s after the first join"
                if st.get("presence_settled_seconds") is not None else "")),
            ("connections per node (peak open fds, ~20 are not sockets)",
             ", ".join(f"{x:,}" for x in fds_peak) or "n/a"),
            (f"nodes' RSS before connecting ({NODES} processes)", mib(nb)),
            ("nodes' RSS with every connection joined, end of the hold", mib(nh)),
            ("node RSS per connection", f"{sv['bytes_per_connection']:,.0f} bytes"
             if sv.get("bytes_per_connection") is not None else "n/a"),
            ("redis-server RSS before / peak during the run",
             f"{mib(redis_before)} / {mib(redis_peak)} (used_memory "
             f"{mib(r['redis_mem_before'])} / peak {mib(r['redis_mem_peak'])}; "
             f"{r['redis_keys']} keys after the run)"),
            ("redis RSS per connection", f"{(redis_peak - redis_before) / n:,.0f} bytes"),
            ("nodes + redis RSS per connection",
             f"{((nh or 0) - (nb or 0) + redis_peak - redis_before) / n:,.0f} bytes"
             if nb else "n/a"),
            ("open after the hold", f"{hold['open_at_end']:,} of {n:,}"),
            ("pings received / pongs sent by clients",
             f"{h['pings_received']:,} / {h['pongs_sent']:,}"),
            ("connections closed by the servers", f"{h['closed_by_server']:,}"),
            ("error messages from the servers", f"{h['error_messages']:,}"),
        ]
    alive = r["status"].count("alive")
    rows += [("nodes alive 3 s after the generator exited",
              f"{alive} of {NODES} ({' '.join(r['status'])}); exit codes on SIGTERM: "
              f"{' '.join(r['exits'])}"),
             ("generator exit status", str(r["generator_exit"]) + (
                 "" if not rep or not rep.get("first_error")
                 else f" (first error: {rep['first_error']})"))]
    when = datetime.datetime.fromtimestamp(int(r["start"])).astimezone().isoformat(
        timespec="seconds")
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    quick = args.quick
    md = ["## 100,000 connections on a 6-node cluster"
          + (" (QUICK RUN: tiny sizes)" if quick else ""), "",
          f"{NODES} cluster nodes (`--threads {args.threads} --redis ... --node-id nK`, heartbeat "
          f"`--ping-interval {size['ping']} --idle-timeout {size['idle']}`) share one port "
          "(`SO_REUSEPORT`) and one redis-server (AOF, `appendfsync everysec`); the generator "
          f"holds {n:,} connections in rooms of 100 for {size['hold']} s, from 6 processes. "
          f"Nodes and redis on `taskset -c {args.server_cores}`, the generator on "
          f"`taskset -c {args.generator_cores}`. A room's members are spread over all six nodes, so the "
          "user lists the generator waits for are cluster-wide. "
          f"Generated by `bench/cluster_100k.py` on {when}, commit {commit}; raw output in "
          f"`{out.relative_to(REPO)}`.", "",
          "| figure | value |", "| --- | --- |"]
    md += [f"| {a} | {b} |" for a, b in rows]
    md += ["", "Command: `/usr/bin/python3 bench/cluster_100k.py" + (" --quick" if quick else "")
           + "`, which runs", "", "```sh", r["command"], "```"]
    if rep and rep.get("warnings"):
        md += ["", "Generator warnings: " + "; ".join(rep["warnings"])]
    if logs:
        md += ["", "Node logs (level warn and above):", ""]
        for k, lines in logs.items():
            md += [f"- {k}: {len(lines)} line(s); first: `{lines[0][:200]}`"]
    return md


def main(argv):
    args = parse_args(argv)
    procs.install(PROG)
    check_arguments(PROG, args)
    if shutil.which(args.redis_server) is None:
        procs.die(PROG, f"{args.redis_server} not found (Debian package redis-server)")
    size = QUICK if args.quick else FULL
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = REPO / "bench/results" / f"cluster100k-{stamp}{'-quick' if args.quick else ''}"
    out.mkdir(parents=True, exist_ok=True)
    # Run copies of the binaries: the build may be redone while this runs.
    bin_dir = Path(tempfile.mkdtemp(prefix="roomcast-cluster100k-"))
    args.bench_shown = str(args.bench)
    args.roomcast = Path(shutil.copy2(args.roomcast, bin_dir / "roomcast"))
    args.bench = Path(shutil.copy2(args.bench, bin_dir / "roomcast-bench"))
    try:
        r = run(args, out, size)
    except procs.RunError as e:
        procs.die(PROG, str(e))
    finally:
        procs.kill_all()
        procs.reap_orphans()
        shutil.rmtree(bin_dir, ignore_errors=True)
    print("\n".join((out / "generator.txt").read_text(errors="replace").splitlines()[-22:]))
    print(f"generator exit {r['generator_exit']}; nodes alive after the generator exited: "
          f"{r['status'].count('alive')} of {NODES} ({' '.join(r['status'])}); exit codes on "
          f"SIGTERM: {' '.join(r['exits'])}; redis exit {r['redis_exit']}")
    md = report(args, out, size, r)
    (out / "summary.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    if not args.quick:
        rewrite_generated(RESULTS, {"cluster_100k": md})
        print(f"{PROG}: wrote {RESULTS}")
    return 0 if r["generator_exit"] == 0 else 1


if __name__ == "__main__":
    procs.run_main(PROG, main, "nodes, redis and generator")
