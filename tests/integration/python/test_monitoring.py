"""Monitoring (issue 17) against the real binary: every histogram, gauge and counter added
for operators moves when its event happens (a chat message, a ping's pong, a handshake, an
HTTP request, a refused connection, a slow consumer, a failing commit, a Redis restart, open
descriptors); /api/stats has the chapter's live rates; a live /metrics passes Debian's
`promtool check metrics` (a plain node and a cluster node); and every metric the Grafana
dashboard (deploy/grafana/roomcast.json) and the alert rules (deploy/prometheus/alerts.yml)
query exists in a live /metrics."""

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

import rawws
from cluster_support import cluster, redis_server, wait_until  # noqa: F401 (fixtures)
from roomcast_server import ROOT, RoomcastServer
from test_chat_slow_consumer import FrameScanner, join as join_raw, masked_text_frame
from test_chat_support import ChatClient, is_chat, run, users
from test_storage_faults import big_text, fill_disk, free_bytes, small_disk  # noqa: F401

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(server):
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=5) as r:
        return r.read().decode()


def samples(text):
    """{(name, labels text or ""): value} of a /metrics text."""
    out = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m:
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def value(server, name, labels=""):
    """One sample of /metrics; `labels` as written there, e.g. '{endpoint="healthz"}'."""
    got = samples(scrape(server))
    assert (name, labels) in got, f"{name}{labels} missing from /metrics"
    return got[(name, labels)]


def stats(server):
    with urllib.request.urlopen(server.http_url + "/api/stats", timeout=5) as r:
        return json.loads(r.read())


def http_status(server, path, method="GET"):
    request = urllib.request.Request(server.http_url + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def handshake_from(server, source, extra=()):
    """The status of a chat handshake from source address `source` (127.0.0.x)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5,
                                    source_address=(source, 0))
    sock.settimeout(5)
    sock.sendall(rawws.upgrade_request(server.port, path="/ws", extra=extra))
    response, _ = rawws.read_http_response(sock)
    return response.status, sock


def promtool_check_metrics(text):
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0 and not done.stdout.strip(), \
        f"promtool check metrics: {done.stdout}{done.stderr}"


async def chat_pair(server, room, count):
    """Two members in `room`; the first sends `count` messages, the second sees them all."""
    a = await ChatClient.connect(server)
    b = await ChatClient.connect(server)
    await a.join(room, "alice")
    await b.join(room, "bob")
    # The sender's Hub knows of both (the other may be on another worker): its fan-out is 2.
    await a.expect_user_list(room, users(a, b))
    for i in range(count):
        await a.send({"type": "chat_message", "room": room, "message": f"m{i}"})
    for i in range(count):
        await b.expect(is_chat(room, f"m{i}"))
    return a, b


def test_a_chat_message_moves_delivery_latency_fanout_commit_and_the_live_rates():
    started = time.time()
    with RoomcastServer("--threads", "2") as server:
        before = samples(scrape(server))
        assert before[("roomcast_delivery_latency_seconds_count", "")] == 0
        assert before[("roomcast_storage_last_commit_timestamp_seconds", "")] == 0

        async def body():
            a, b = await chat_pair(server, "lobby", 3)
            await a.close()
            await b.close()

        run(body())
        # Each message is delivered on every worker with a member (one or two here), and
        # counted once for its fan-out: two members each.
        wait_until(lambda: value(server, "roomcast_fanout_recipients_count") == 3, 5,
                   "three fan-outs")
        # Recorded once the flush phase that wrote them is over, maybe after the client read.
        wait_until(lambda: value(server, "roomcast_delivery_latency_seconds_count") >= 3, 5,
                   "three deliveries timed")
        got = samples(scrape(server))
        assert got[("roomcast_fanout_recipients_sum", "")] == 6
        assert got[("roomcast_fanout_recipients_bucket", '{le="2"}')] == 3
        assert got[("roomcast_fanout_recipients_bucket", '{le="1"}')] == 0
        assert 3 <= got[("roomcast_delivery_latency_seconds_count", "")] <= 6
        assert got[("roomcast_delivery_latency_seconds_sum", "")] > 0
        assert got[("roomcast_delivery_latency_seconds_bucket", '{le="+Inf"}')] == \
            got[("roomcast_delivery_latency_seconds_count", "")]
        assert got[("roomcast_storage_commit_seconds_count", "")] >= 1
        assert got[("roomcast_storage_commit_failures_total", "")] == 0
        assert got[("roomcast_storage_queue_messages", "")] == 0
        assert started <= got[("roomcast_storage_last_commit_timestamp_seconds", "")] <= time.time()

        live = stats(server)["live"]
        assert 0 < live["window_seconds"] <= 10.5, live
        assert live["messages_per_second"] > 0, live  # 3 chat messages, 2 joins
        assert live["deliveries_per_second"] > 0, live
        assert live["delivery_latency_avg_seconds"] > 0, live
        assert live["delivery_latency_p99_seconds"] >= live["delivery_latency_avg_seconds"] / 2
        assert 0 < live["delivery_latency_p50_seconds"] <= live["delivery_latency_p99_seconds"]
        assert live["error_rate"] == 0 and live["errors_per_second"] == 0, live


def test_errors_show_in_the_live_error_rate():
    with RoomcastServer() as server:
        async def body():
            c = await ChatClient.connect(server)
            await c.send({"type": "chat_message", "room": "nowhere", "message": "x"})
            await c.expect_error()
            await c.close()

        run(body())
        live = stats(server)["live"]
        assert live["errors_per_second"] > 0, live
        assert live["error_rate"] == 1, live  # one message, one error


def test_a_pong_to_the_heartbeat_ping_times_the_round_trip():
    with RoomcastServer("--ping-interval", "200ms", "--idle-timeout", "5s") as server:
        async def body():
            # websockets answers pings by itself.
            c = await ChatClient.connect(server)
            wait = time.monotonic() + 10
            while value(server, "roomcast_ping_rtt_seconds_count") < 2:
                assert time.monotonic() < wait, "no ping round trip timed"
                await c.collect(0.1)
            await c.close()

        run(body())
        got = samples(scrape(server))
        assert got[("roomcast_ping_rtt_seconds_sum", "")] > 0
        assert got[("roomcast_ping_rtt_seconds_bucket", '{le="+Inf"}')] == \
            got[("roomcast_ping_rtt_seconds_count", "")]


def test_handshakes_and_http_requests_are_timed_by_endpoint():
    with RoomcastServer() as server:
        before = samples(scrape(server))

        def count(endpoint):
            return value(server, "roomcast_http_request_duration_seconds_count",
                         f'{{endpoint="{endpoint}"}}')

        def before_count(endpoint):
            return before[("roomcast_http_request_duration_seconds_count",
                           f'{{endpoint="{endpoint}"}}')]

        async def body():
            clients = [await ChatClient.connect(server) for _ in range(3)]
            for c in clients:
                await c.close()

        run(body())
        assert value(server, "roomcast_websocket_handshake_seconds_count") == \
            before[("roomcast_websocket_handshake_seconds_count", "")] + 3
        assert value(server, "roomcast_websocket_handshake_seconds_sum") > 0

        assert http_status(server, "/healthz") == 200
        assert http_status(server, "/api/stats") == 200
        assert http_status(server, "/") == 200
        assert http_status(server, "/api/rooms/lobby/messages") == 200
        assert http_status(server, "/metrics", method="POST") == 405
        # No --api-key: the server API answers 404, still timed as the API.
        assert http_status(server, "/api/info") == 404
        # At least one more each: the launcher's last /healthz poll may be recorded (once its
        # write completes) after the first scrape.
        for endpoint in ("healthz", "stats", "static", "history", "api", "other"):
            wait_until(lambda e=endpoint: count(e) >= before_count(e) + 1, 5,
                       f"one {endpoint} request timed")
        # The scrapes themselves are timed too.
        assert count("metrics") > before_count("metrics")


def test_refused_connections_are_counted_by_reason():
    with RoomcastServer("--max-connections", "2", "--max-connections-per-ip", "1",
                        "--allowed-origins", "https://chat.example.com") as server:
        def refused(reason):
            return value(server, "roomcast_connections_refused_total", f'{{reason="{reason}"}}')

        for reason in ("max_connections", "max_connections_per_ip", "origin", "bad_handshake",
                       "auth", "accept_error"):
            assert refused(reason) == 0, reason
        open_socks = []
        try:
            status, sock = handshake_from(server, "127.0.0.1")
            open_socks.append(sock)
            assert status == 101
            status, sock = handshake_from(server, "127.0.0.1")
            open_socks.append(sock)
            assert status == 503
            wait_until(lambda: refused("max_connections_per_ip") == 1, 5, "a per-address refusal")
            status, sock = handshake_from(server, "127.0.0.2")
            open_socks.append(sock)
            assert status == 101
            status, sock = handshake_from(server, "127.0.0.3")
            open_socks.append(sock)
            assert status == 503
            wait_until(lambda: refused("max_connections") == 1, 5, "a server-full refusal")
            assert value(server, "roomcast_connection_limit_refusals_total") == 2
            status, sock = handshake_from(server, "127.0.0.4",
                                          extra=[("Origin", "https://evil.example.com")])
            open_socks.append(sock)
            assert status == 403
            wait_until(lambda: refused("origin") == 1, 5, "an Origin refusal")
            assert http_status(server, "/ws") == 400  # a GET without the upgrade
            wait_until(lambda: refused("bad_handshake") == 1, 5, "a bad handshake")
        finally:
            for sock in open_socks:
                sock.close()


def test_open_descriptors_follow_connections_and_process_metrics_are_real():
    started = time.time()
    with RoomcastServer() as server:
        before = samples(scrape(server))
        assert before[("process_max_fds", "")] >= before[("process_open_fds", "")] > 0
        assert before[("process_resident_memory_bytes", "")] > 0
        # Started by this test: a Unix time (seconds, not ticks) between then and now. The
        # kernel dates a start in clock ticks (10 ms) from its boot time (whole seconds).
        assert started - 1 <= before[("process_start_time_seconds", "")] <= time.time()

        # Each WebSocket holds a descriptor. The slack: HTTP connections (the launcher's
        # health polls) that were still closing when `before` was read.
        count, slack = 40, 10
        sockets = [rawws.connect(server, path="/") for _ in range(count)]
        try:
            wait_until(lambda: value(server, "roomcast_connections_active") == count, 10,
                       f"{count} WebSockets open")
            wait_until(lambda: value(server, "process_open_fds") >=
                       before[("process_open_fds", "")] + count - slack, 10,
                       f"{count} more descriptors")
            peak = value(server, "process_open_fds")
            assert stats(server)["process"]["open_fds"] >= count
        finally:
            for ws in sockets:
                ws.sock.close()
        wait_until(lambda: value(server, "process_open_fds") <= peak - (count - slack), 15,
                   "the descriptors given back")


def test_a_reader_that_stops_shows_in_the_send_queue_gauges():
    # A bound far above what the flood needs: the stalled reader's queue grows and stays.
    with RoomcastServer("--max-queued-bytes", str(256 << 20)) as server:
        assert value(server, "roomcast_send_queue_largest_bytes") == 0
        slow = rawws.connect(server, path="/", timeout=60)
        join_raw(slow, "slow")  # ... and then never reads
        fast = rawws.connect(server, path="/", timeout=60)
        join_raw(fast, "fast")
        frames, seen = FrameScanner(), 0
        fast.sock.settimeout(30)
        members = set()
        while members != {"slow", "fast"}:
            data = fast.sock.recv(1 << 16)
            assert data
            for opcode, payload in frames.feed(data):
                message = json.loads(payload) if opcode == 0x1 else {}
                if message.get("type") == "user_list":
                    members = {u["username"] for u in message["users"]}
        frame = masked_text_frame(json.dumps({"type": "chat_message", "message": "x" * 400}))
        sent = 0
        # Until the worker's sweep has seen the queue (kernel buffers take the first few
        # megabytes); bounded at ~45 MB.
        while value(server, "roomcast_send_queue_largest_bytes") == 0:
            assert sent < 100_000, "the sweep never saw the stalled reader's queue"
            fast.send_raw(frame * 500)
            sent += 500
            while seen < sent:
                data = fast.sock.recv(1 << 20)
                assert data, "the server closed the client that keeps up"
                seen += sum(1 for op, p in frames.feed(data)
                            if op == 0x1 and p.startswith(b'{"type":"chat_message"'))
        got = samples(scrape(server))
        assert got[("roomcast_send_queue_bytes", "")] >= \
            got[("roomcast_send_queue_largest_bytes", "")] > 0
        assert stats(server)["send_queue_largest_bytes"] > 0
        slow.sock.close()
        fast.sock.close()
        wait_until(lambda: value(server, "roomcast_send_queue_bytes") == 0, 10,
                   "the queues gone with their connections")
        assert value(server, "roomcast_send_queue_largest_bytes") == 0


def test_a_failing_commit_is_counted_and_its_backlog_shown(small_disk):  # noqa: F811
    with RoomcastServer("--storage-refuse-after", "10m", data_dir=small_disk) as server:
        async def body():
            c = await ChatClient.connect(server)
            await c.join("full", "writer")
            filler = fill_disk(small_disk)
            # Until a commit fails (SQLite may still have a page or two to write into).
            sent = 0
            while value(server, "roomcast_storage_commit_failures_total") == 0:
                assert sent < 200, "no commit failed on a full disk"
                await c.send({"type": "chat_message", "room": "full",
                              "message": big_text(f"m{sent}"), "id": f"m{sent}"})
                sent += 1
                await asyncio.sleep(0.05)
            got = samples(scrape(server))
            assert got[("roomcast_storage_ok", "")] == 0
            assert got[("roomcast_storage_queue_messages", "")] >= 1
            assert got[("roomcast_storage_commit_seconds_count", "")] >= 1  # failed ones too
            freed_at = time.time()
            free_bytes(filler, 4 << 20)
            last = f"m{sent - 1}"
            await c.expect(lambda m: m.get("type") == "ack" and m.get("id") == last, timeout=20)
            wait_until(lambda: value(server, "roomcast_storage_queue_messages") == 0, 10,
                       "the backlog drained")
            last_commit = value(server, "roomcast_storage_last_commit_timestamp_seconds")
            assert freed_at <= last_commit <= time.time()
            await c.close()

        run(body(), timeout=60)


def test_a_cluster_node_times_redis_commands_and_counts_a_reconnect(redis_server, cluster):  # noqa: F811
    node = cluster(1)[0]
    wait_until(lambda: value(node, "roomcast_redis_command_seconds_count") > 0, 10,
               "a Redis command timed")

    async def body():  # a message numbered by the Redis script is timed to its delivery
        a, b = await chat_pair(node, "clustered", 2)
        await a.close()
        await b.close()

    run(body())
    wait_until(lambda: value(node, "roomcast_fanout_recipients_count") == 2, 5, "two fan-outs")
    assert value(node, "roomcast_delivery_latency_seconds_count") >= 2
    assert value(node, "roomcast_storage_commit_seconds_count") == 2  # the publish script
    promtool_check_metrics(scrape(node))
    assert value(node, "roomcast_redis_reconnects_total") == 0
    redis_server.stop()
    wait_until(lambda: value(node, "roomcast_redis_up") == 0, 20, "Redis seen down")
    redis_server.start()
    wait_until(lambda: value(node, "roomcast_redis_up") == 1, 20, "Redis seen back")
    assert value(node, "roomcast_redis_reconnects_total") >= 1


def test_a_live_metrics_page_passes_promtool():
    with RoomcastServer() as server:
        async def body():
            a, b = await chat_pair(server, "lint", 2)
            await a.close()
            await b.close()

        run(body())
        http_status(server, "/healthz")
        promtool_check_metrics(scrape(server))


def test_promtool_finds_the_alert_rules_valid():
    done = subprocess.run([PROMTOOL, "check", "rules",
                           os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def queried_metrics():
    """Every roomcast_* and process_* name the dashboard and the alert rules query."""
    with open(os.path.join(ROOT, "deploy", "grafana", "roomcast.json")) as f:
        dashboard = json.load(f)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    with open(os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")) as f:
        exprs.append(f.read())
    names = set()
    for expr in exprs:
        names.update(re.findall(r"\b((?:roomcast|process)_[a-z0-9_]+)\b", expr))
    return names


def test_every_metric_the_dashboard_and_the_alerts_query_is_in_a_live_metrics_page(
        redis_server, cluster):  # noqa: F811
    names = queried_metrics()
    assert len(names) > 20, names  # the dashboard was read
    exposed = set()

    def add(text):
        # Sample names, and family names (a histogram's, a labelled family with no sample yet).
        exposed.update(name for name, _ in samples(text))
        exposed.update(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))

    with RoomcastServer() as server:  # SQLite: the storage metrics
        add(scrape(server))
    node = cluster(1)[0]  # cluster mode: the Redis metrics
    add(scrape(node))
    missing = sorted(n for n in names if n not in exposed)
    assert not missing, f"queried but not in /metrics: {missing}"
