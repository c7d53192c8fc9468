#!/usr/bin/python3
"""Smoke test of roomcast-bench (CTest bench_smoke): starts a real roomcast on a free loopback
port with the test harness's launcher, runs a tiny fanout ramp (50 connections, rooms of 10,
50 and 100 msgs/s, 2 s steps) and checks that the tool exits 0 and that every delivery of the
first step arrived. Then, against a server that allows two app events, one 2 s step of each
other message kind (--message-kind event, event with --batch, position with --no-echo, binary):
every delivery arrived, none more, and the sender got its own message back only where the
kind echoes. Options that contradict each other are refused with exit status 2. No timing
assertions.

Usage: smoke_test.py ROOMCAST_BINARY ROOMCAST_BENCH_BINARY [LOG_DIR]
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402,F401  (puts the test harness on sys.path)
from roomcast_server import RoomcastServer  # noqa: E402

# What the server allows, as bench/protocol_cost.py runs it.
APP_EVENTS = "chat_event:durable,player_moved:no-echo"
# (roomcast-bench flags, deliveries per message in a room of 10, bytes per message sent or None)
KINDS = {
    "event": (["--message-kind", "event", "--payload-bytes", "40"], 10, None),
    "event-batch": (["--message-kind", "event", "--batch"], 10, None),
    "event-ids": (["--message-kind", "event", "--ids"], 10, None),
    "position": (["--message-kind", "position", "--no-echo"], 9, None),
    "binary": (["--message-kind", "binary"], 9, 25),
}


def run_bench(bench_bin, server, report_path, *flags):
    report_path.unlink(missing_ok=True)
    status = subprocess.run(
        [bench_bin, "--url", f"{server.ws_url}/", *flags, "--server-pid", str(server.proc.pid),
         "--json", str(report_path)], timeout=90).returncode
    if status != 0:
        sys.exit(f"smoke_test: roomcast-bench {' '.join(flags)} exited with status {status}")
    return json.loads(report_path.read_text())


def check_kinds(server_bin, bench_bin, log_dir):
    """One step of each message kind: every delivery of it arrived, and no more (a sender that
    got its own no-echo message back would count one over)."""
    with RoomcastServer("--threads", "1", "--log-level", "info", "--app-events", APP_EVENTS,
                        binary=server_bin, log_path=str(log_dir / "server-kinds.log")) as server:
        for name, (flags, per_message, size) in KINDS.items():
            report = run_bench(bench_bin, server, log_dir / f"report-{name}.json",
                               "--connections", "20", "--clients-per-room", "10",
                               "--senders-per-room", "2", "--rates", "40", "--step-seconds",
                               "2", *flags)
            step = report["steps"][0]
            assert step["sent"] > 0, f"{name}: nothing sent"
            assert step["deliveries_expected"] == step["sent"] * per_message, (name, step)
            assert step["deliveries_received"] == step["deliveries_expected"], (
                f"{name}: received {step['deliveries_received']} of "
                f"{step['deliveries_expected']}")
            assert report["health"]["late_deliveries"] == 0, (name, report["health"])
            assert report["health"]["error_messages"] == 0, (name, report["first_error"])
            if size is not None:
                assert step["bytes_per_message_sent"] == size, (name, step)
            print(f"smoke_test: {name}: ok, {step['deliveries_received']} of "
                  f"{step['deliveries_expected']} delivered")


def check_refused(bench_bin):
    """Contradictory options: exit status 2 and a message naming the option."""
    for flags, says in ((["--no-echo"], "--no-echo"),
                        (["--message-kind", "event", "--event-type", "no spaces"],
                         "--event-type"),
                        (["--message-kind", "binary", "--event-type", "x"], "--event-type"),
                        (["--message-kind", "binary", "--payload-bytes", "40"],
                         "--payload-bytes"),
                        (["--message-kind", "binary", "--clients-per-room", "1"], "--no-echo"),
                        (["--message-kind", "position", "--ids"], "--ids"),
                        (["--message-kind", "morse"], "--message-kind")):
        done = subprocess.run([bench_bin, "--url", "ws://127.0.0.1:9/", *flags],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 2, (flags, done.returncode, done.stderr)
        assert says in done.stderr, (flags, done.stderr)
    print("smoke_test: contradictory options refused")


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit(__doc__.strip().splitlines()[-1])
    server_bin, bench_bin = argv[0], argv[1]
    log_dir = Path(argv[2] if len(argv) == 3 else tempfile.mkdtemp())
    log_dir.mkdir(parents=True, exist_ok=True)
    # The harness's test defaults turn the rate limits off: the generator sends far more than
    # 10 messages a minute from one address.
    with RoomcastServer("--threads", "1", "--log-level", "info", binary=server_bin,
                        log_path=str(log_dir / "server.log")) as server:
        report = run_bench(bench_bin, server, log_dir / "report.json", "--connections", "50",
                           "--clients-per-room", "10", "--rates", "50,100", "--step-seconds",
                           "2", "--no-stop")
    assert report["completed"], "run not completed"
    assert report["setup"]["connections_ok"] == 50, report["setup"]
    steps = report["steps"]
    assert len(steps) == 2, f"expected 2 steps, got {len(steps)}"
    first = steps[0]
    assert first["sent"] > 0, "nothing sent in step 1"
    assert first["deliveries_expected"] == first["sent"] * 10, first
    assert first["deliveries_received"] == first["deliveries_expected"], (
        f"step 1: received {first['deliveries_received']} of {first['deliveries_expected']}")
    assert report["health"]["closed_by_server"] == 0, report["health"]
    print(f"smoke_test: ok, step 1 delivered {first['deliveries_received']} of "
          f"{first['deliveries_expected']}")
    check_kinds(server_bin, bench_bin, log_dir)
    check_refused(bench_bin)


if __name__ == "__main__":
    main(sys.argv[1:])
