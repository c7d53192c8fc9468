"""The bench drivers' library (bench/README.md, "Layout"). Importing it puts the Python test
harness (tests/integration/python: RoomcastServer, RedisServer, free_port, the raw WebSocket
client) on sys.path, so the drivers start servers exactly as the tests do."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "tests" / "integration" / "python"
if str(HARNESS) not in sys.path:
    sys.path.insert(0, str(HARNESS))
