"""The bench drivers' library (bench/README.md, "The library"): procs (process control),
servers (roomcast, Redis and the Node baseline, pinned; /proc figures), generator (running
roomcast-bench, the drivers' common options), scenarios (S1-S3), aggregate (medians, sustained
figures), markdown (tables, the reports' generated blocks), machine (what a report names).

Importing it puts the Python test harness (tests/integration/python: RoomcastServer,
RedisServer, free_port, the raw WebSocket client) on sys.path, so the drivers start servers
exactly as the tests do."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "tests" / "integration" / "python"
if str(HARNESS) not in sys.path:
    sys.path.insert(0, str(HARNESS))
