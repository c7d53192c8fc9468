#!/usr/bin/python3
"""Smoke test of roomcast-bench (CTest bench_smoke): starts a real roomcast on a free loopback
port with the test harness's launcher, runs a tiny fanout ramp (50 connections, rooms of 10,
50 and 100 msgs/s, 2 s steps) and checks that the tool exits 0 and that every delivery of the
first step arrived. No timing assertions.

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


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit(__doc__.strip().splitlines()[-1])
    server_bin, bench_bin = argv[0], argv[1]
    log_dir = Path(argv[2] if len(argv) == 3 else tempfile.mkdtemp())
    log_dir.mkdir(parents=True, exist_ok=True)
    report_path = log_dir / "report.json"
    report_path.unlink(missing_ok=True)
    # The harness's test defaults turn the rate limits off: the generator sends far more than
    # 10 messages a minute from one address.
    with RoomcastServer("--threads", "1", "--log-level", "info", binary=server_bin,
                        log_path=str(log_dir / "server.log")) as server:
        status = subprocess.run(
            [bench_bin, "--url", f"{server.ws_url}/", "--connections", "50",
             "--clients-per-room", "10", "--rates", "50,100", "--step-seconds", "2",
             "--no-stop", "--server-pid", str(server.proc.pid), "--json", str(report_path)],
            timeout=90).returncode
    if status != 0:
        sys.exit(f"smoke_test: roomcast-bench exited with status {status}")

    report = json.loads(report_path.read_text())
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


if __name__ == "__main__":
    main(sys.argv[1:])
