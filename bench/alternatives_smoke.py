#!/usr/bin/python3
"""Smoke test of bench/alternatives.py (CTest bench_alternatives): runs the driver end to end
at a tiny size (4 readers, 5 msgs/s, a 2 s window per transport) against the roomcast binary
given, through its own launcher (the test harness's), and checks that every transport held
every reader and delivered every message published in the window to every reader, that the
readers' bytes and requests were counted, and that the report's table was written. No timing
assertions.

Usage: alternatives_smoke.py ROOMCAST_BINARY [LOG_DIR]
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
READERS = 4


def main(argv):
    if len(argv) not in (1, 2):
        sys.exit(__doc__.strip().splitlines()[-1])
    out = Path(argv[1] if len(argv) == 2 else tempfile.mkdtemp()) / "alternatives"
    shutil.rmtree(out, ignore_errors=True)
    report = out / "ALTERNATIVES.md"
    status = subprocess.run(
        [sys.executable, str(HERE / "alternatives.py"), "--roomcast", argv[0],
         "--readers", str(READERS), "--rate", "5", "--seconds", "2", "--warmup", "0.5",
         "--out", str(out), "--results", str(report)], timeout=150).returncode
    if status != 0:
        sys.exit(f"alternatives_smoke: the driver exited with status {status}")

    manifest = json.loads((out / "manifest.json").read_text())
    runs = {e["transport"]: e for e in manifest["runs"]}
    assert sorted(runs) == sorted(["polling", "long-poll", "sse", "websocket"]), sorted(runs)
    for transport, e in runs.items():
        assert e["ok"], f"{transport}: {e['error']}"
        assert e["held"] == READERS, f"{transport}: held {e['held']} of {READERS}"
        assert e["published_in_window"] > 0, f"{transport}: nothing published in the window"
        assert e["delivered"] == e["expected"], (
            f"{transport}: delivered {e['delivered']} of {e['expected']}")
        assert sum(e["latency_buckets"].values()) == e["delivered"], transport
        assert e["bytes_in"] > 0 and e["received_in_window"] > 0, e
        assert e["server_cpu_seconds"] is not None, e
    # The HTTP readers ask again and again; SSE and WebSocket asked once, before the window.
    assert runs["polling"]["requests"] > 0 and runs["long-poll"]["requests"] > 0, runs
    assert runs["sse"]["requests"] == 0 and runs["websocket"]["requests"] == 0, runs
    text = report.read_text()
    for transport in runs:
        assert f"| **{transport}** | {READERS} of {READERS} |" in text, text
    delivered = ", ".join(f"{t} {e['delivered']}" for t, e in runs.items())
    print(f"alternatives_smoke: ok, deliveries: {delivered}")


if __name__ == "__main__":
    main(sys.argv[1:])
