#!/usr/bin/python3
"""S4: 100,000 concurrent connections on one machine (bench/S4.md): 6 roomcast processes share
one port (SO_REUSEPORT; a process here may hold at most 20,000 files), 6 generator processes;
heartbeat every 5 s, idle timeout 10 s, hold 10 s. The servers on --server-cores (0), the
generator on --generator-cores (1). Prints the generator's table and whether every server
survived; S4.md's reading of it is written by hand.

    /usr/bin/python3 bench/s4_100k.py            # after scripts/build
    /usr/bin/python3 bench/s4_100k.py --quick    # 600 connections: checks the script

Raw output (generator output and JSON, server logs) in bench/results/s4-STAMP/ (ignored by
git).
"""

import argparse
import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import REPO, procs, servers  # noqa: E402
from lib.generator import (add_arguments, check_arguments, generator_argv,  # noqa: E402
                           generator_timeout, wait)

PROG = "s4_100k"
PROCESSES = 6


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="600 connections")
    add_arguments(p)
    args = p.parse_args(argv)
    procs.install(PROG)
    check_arguments(PROG, args)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = REPO / "bench/results" / f"s4-{stamp}{'-quick' if args.quick else ''}"
    out.mkdir(parents=True, exist_ok=True)
    nodes = []
    try:
        nodes, port = servers.start_nodes(
            args.roomcast, args.server_cores, PROCESSES, lambda i: out / f"server-{i}.log",
            lambda i: ["--threads", str(args.threads), "--log-level", "warn",
                       "--ping-interval", "5s", "--idle-timeout", "10s"])
        flags = ["--scenario", "idle", "--connections", "600" if args.quick else "100000",
                 "--processes", str(PROCESSES), "--clients-per-room", "100",
                 "--hold-seconds", "10", "--connect-timeout", "60", "--settle-timeout", "120"]
        gen = procs.spawn(generator_argv(args.bench, args.generator_cores, flags, port,
                                         [n.proc.pid for n in nodes], out / "s4.json"),
                          out / "generator.txt")
        code = wait(gen, generator_timeout(flags), lambda: None)
        print("\n".join((out / "generator.txt").read_text(errors="replace").splitlines()[-22:]))
        for n in nodes:
            if n.proc.poll() is None:
                print(f"server {n.proc.pid} alive")
            else:
                print(f"server {n.proc.pid} exited rc={n.proc.returncode}")
    except procs.RunError as e:
        procs.die(PROG, str(e))
    finally:
        for n in nodes:
            procs.kill_group(n.proc, 5)
            n.stop()
        procs.kill_all()
        procs.reap_orphans()
    print(f"{PROG}: raw output in {out}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    procs.run_main(PROG, main)
