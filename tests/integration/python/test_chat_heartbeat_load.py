"""Heartbeats on a saturated server (issue 21.1): with 2,000 clients in rooms of 100 and 40
senders pushing the server past what it can deliver, and short heartbeat settings
(--ping-interval 2s --idle-timeout 4s), the server must terminate no client that answers
its pings: neither idle clients in quiet rooms nor readers of a busy room, nor any of the
load generator's own clients (which answer pings too).

The load is roomcast-bench (bench/generator), built with the project; the watched clients run
in their own processes (heartbeat_load_support.py), so a busy room's traffic cannot keep
them from answering. The generator is starved on purpose while they watch (its processes
stopped for 1.2 s of every 1.8 s, as a loaded machine starves a client): its clients fall
behind, their pings wait behind what the kernels already hold for them, and they answer
late, but they answer: they must not be ended either. Bounded: about 35 s."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from roomcast_server import RoomcastServer, binary_path

# The starvation is measured: a second test process or build beside it starves the generator
# further than the test's own schedule (63 of its clients ended in a CI run that way).
pytestmark = pytest.mark.serial

HEARTBEAT = ("--ping-interval", "2s", "--idle-timeout", "4s")
# The load's anonymous clients share a few loopback addresses: no per-address budgets.
NO_ADDRESS_LIMITS = ("--rate-limit-address-messages", "0", "--rate-limit-address-signals", "0")
WATCH_SECONDS = 16  # eight ping intervals of saturation
STARVED = (1.2, 0.6)  # the generator's seconds stopped, seconds running
SUPPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "heartbeat_load_support.py")


def bench_binary():
    path = os.environ.get("ROOMCAST_BENCH_BIN")
    if not path:
        server = os.environ.get("ROOMCAST_BIN", "")
        path = os.path.join(os.path.dirname(os.path.dirname(server)), "bench", "generator",
                            "roomcast-bench")
    if not os.path.exists(path):
        pytest.skip(f"roomcast-bench not built ({path}); configure with ROOMCAST_BUILD_BENCH=ON")
    return path


def sanitized(path):
    """Whether a binary was built with ASan or TSan: it then runs several times slower, and
    a saturation test would measure the sanitizer (and starve the load's own clients)."""
    with open(path, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__tsan_init" in data


def metrics(server):
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=10) as r:
        return {line.split()[0]: float(line.split()[1])
                for line in r.read().decode().splitlines()
                if line.startswith("roomcast_") and len(line.split()) == 2}


def wait_for_connections(server, n, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics(server).get("roomcast_connections_total", 0) >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"the load did not open {n} connections within {timeout} s")


def starve(group, server, stop):
    """Once the load is well under way (its clients' queues full), stops and continues the
    process group `group` (STARVED) until the event `stop`. Before the fix of the rule this
    ended about a hundred of the load's clients per run (net/heartbeat.h)."""
    while metrics(server).get("roomcast_messages_received_total", 0) < 100_000:
        if stop.wait(0.1):
            return
    stopped, running = STARVED
    try:
        while not stop.is_set():
            os.killpg(group, signal.SIGSTOP)
            stop.wait(stopped)
            os.killpg(group, signal.SIGCONT)
            stop.wait(running)
    except ProcessLookupError:
        pass  # the load ended


def test_a_saturated_server_terminates_no_client_that_answers_its_pings():
    bench = bench_binary()
    if sanitized(bench) or sanitized(binary_path()):
        pytest.skip("sanitizer build: the saturation test runs in the normal build")
    with RoomcastServer(*HEARTBEAT, *NO_ADDRESS_LIMITS) as server:
        load = subprocess.Popen(
            [bench, "--url", f"ws://127.0.0.1:{server.port}/", "-n", "2000",
             "--clients-per-room", "100", "--senders-per-room", "2", "--rates", "50000",
             "--step-seconds", str(WATCH_SECONDS + 4), "--grace-seconds", "0", "--no-stop",
             "--max-p99-ms", "1000000", "--settle-timeout", "10", "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)  # its worker processes go with it (killpg below)
        try:
            wait_for_connections(server, 2000, timeout=30)
            watchers = [subprocess.Popen([sys.executable, SUPPORT, str(server.port), role,
                                          str(count), room, str(WATCH_SECONDS)],
                                         stdout=subprocess.PIPE, text=True)
                        for role, count, room in (("idle", 25, "quiet"),
                                                  ("reader", 20, "room-0"))]
            stop_starving = threading.Event()
            starver = threading.Thread(target=starve, args=(load.pid, server, stop_starving))
            starver.start()
            reports = {}
            try:
                for w in watchers:
                    out, _ = w.communicate(timeout=WATCH_SECONDS + 30)
                    report = json.loads(out.strip().splitlines()[-1])
                    reports[report["role"]] = report["clients"]
            finally:
                stop_starving.set()
                starver.join()
            counters = metrics(server)
        finally:
            try:
                os.killpg(load.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it had finished
            load.communicate()

    # The load was running: the readers of room-0 got its traffic.
    assert min(c["frames"] for c in reports["reader"]) > 1000, reports["reader"]
    for role, clients in reports.items():
        assert len(clients) == (25 if role == "idle" else 20)
        assert all(c["opened"] for c in clients), clients
        ended = [c for c in clients if c["ended"] is not None]
        assert ended == [], f"{len(ended)} {role} clients that answered every ping were ended"
        # Every one of them was asked, more than once, and answered.
        assert min(c["pings"] for c in clients) >= 2, clients
    # Nor any of the starved generator's clients.
    assert counters.get("roomcast_idle_timeouts_total") == 0, counters
