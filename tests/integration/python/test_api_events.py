"""Server-sent events (issue 16, item 2; docs/api.md): GET /api/rooms/{room}/events streams a
room as text/event-stream, read here over a raw socket as a browser's EventSource would: `id:`
the seq, `event:` the type, `data:` the JSON WebSocket clients get; resumed with Last-Event-ID
(or ?since=) exactly, across a kill -9 and restart on the SQLite history; tokens and room
claims as for a join; keep-alive comments; the slow-consumer rule; counted in /metrics."""

import socket
import time

import pytest

from api_support import API_KEY, EventStreamReader, post
from cluster_support import cluster, kill_node, nginx_proxy, redis_server  # noqa: F401 (fixtures)
from roomcast_server import RoomcastServer
from security_support import SECRET, make_token
from test_chat_support import ChatClient, is_chat, run


def metric(server, name):
    import urllib.request
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(f"roomcast_{name} "):
                return int(float(line.split()[1]))
    raise AssertionError(f"no metric {name}")


def wait_for_metric(server, name, value, timeout=10):
    deadline = time.monotonic() + timeout
    while (got := metric(server, name)) != value:
        assert time.monotonic() < deadline, f"{name} is {got}, not {value}"
        time.sleep(0.05)


def publish(server, room, text):
    status, _, answer = post(server, "/api/publish", {"room": room, "message": text})
    assert status == 200, answer
    return answer["seq"]


@pytest.fixture(scope="module")
def server():
    with RoomcastServer("--api-key", API_KEY, "--threads", "2") as s:
        yield s


def test_a_stream_carries_the_room_as_websocket_clients_get_it(server):
    stream = EventStreamReader(server, "/api/rooms/live/events")
    try:
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream"
        assert stream.headers["cache-control"] == "no-store"
        wait_for_metric(server, "event_streams_active", 1)

        async def body():
            c = await ChatClient.connect(server)
            await c.join("live", "wendy")
            await c.chat("from a websocket", room="live")
            return await c.expect(is_chat("live", "from a websocket"))
        sent = run(body())
        seq = publish(server, "live", "from the backend")
        events = stream.events(2)
        # The same JSON the WebSocket client got, its seq as the event id.
        assert events[0]["data"] == sent, events[0]
        assert events[0]["id"] == str(sent["seq"]) and events[0]["event"] == "chat_message"
        assert events[1]["data"]["message"] == "from the backend"
        assert events[1]["id"] == str(seq) == str(sent["seq"] + 1)
    finally:
        stream.close()
    wait_for_metric(server, "event_streams_active", 0)


def test_other_room_events_come_with_their_type_and_no_id(server):
    stream = EventStreamReader(server, "/api/rooms/typed/events")
    try:
        async def body():
            c = await ChatClient.connect(server)
            await c.join("typed", "xena")
        run(body())
        joined = stream.next_event()
        assert joined["event"] == "system_message" and "id" not in joined, joined
        assert joined["data"]["message"] == "xena joined the chat"
    finally:
        stream.close()


def test_since_gives_exactly_what_followed(server):
    seqs = [publish(server, "since-room", f"m{i}") for i in range(5)]

    def read_from(path, marker, headers=None):
        """(seq, text) of every chat event up to the `marker` published once the stream is
        open."""
        stream = EventStreamReader(server, path, headers)
        try:
            publish(server, "since-room", marker)
            got = []
            while True:
                event = stream.events(1)[0]
                got.append((int(event["id"]), event["data"]["message"]))
                if event["data"]["message"] == marker:
                    return got
        finally:
            stream.close()

    got = read_from(f"/api/rooms/since-room/events?since={seqs[2]}", "live 1")
    assert got == [(seqs[3], "m3"), (seqs[4], "m4"), (seqs[4] + 1, "live 1")], got
    # Last-Event-ID (what EventSource sends when it reconnects) wins over ?since=.
    got = read_from(f"/api/rooms/since-room/events?since={seqs[0]}", "live 2",
                    {"Last-Event-ID": str(seqs[4] + 1)})
    assert got == [(seqs[4] + 2, "live 2")], got
    # No since: from now on.
    got = read_from("/api/rooms/since-room/events", "live 3")
    assert got == [(seqs[4] + 3, "live 3")], got


def test_resume_with_last_event_id_after_kill_and_restart_has_no_gap_and_no_duplicate(tmp_path):
    data = str(tmp_path)
    with RoomcastServer("--api-key", API_KEY, data_dir=data) as s:
        for i in range(1, 6):
            publish(s, "durable", f"before {i}")
        stream = EventStreamReader(s, "/api/rooms/durable/events?since=0")
        seen = [(int(e["id"]), e["data"]["message"]) for e in stream.events(5)]
        stream.close()
        assert seen == [(i, f"before {i}") for i in range(1, 6)], seen
        # A reader that saw up to 3 only (it was cut off there).
        last_seen = 3
        s.signal(9)
        s.wait()
    with RoomcastServer("--api-key", API_KEY, data_dir=data) as s:
        for i in range(6, 9):
            publish(s, "durable", f"after {i}")
        stream = EventStreamReader(s, "/api/rooms/durable/events",
                                   {"Last-Event-ID": str(last_seen)})
        try:
            got = [(int(e["id"]), e["data"]["message"]) for e in stream.events(5)]
            publish(s, "durable", "live 9")
            got += [(int(e["id"]), e["data"]["message"]) for e in stream.events(1)]
        finally:
            stream.close()
        assert got == ([(4, "before 4"), (5, "before 5")] +
                       [(i, f"after {i}") for i in range(6, 9)] + [(9, "live 9")]), got


def test_keep_alive_comments_while_the_room_is_quiet():
    with RoomcastServer("--ping-interval", "300ms", "--idle-timeout", "1s") as s:
        stream = EventStreamReader(s, "/api/rooms/quiet/events", timeout=5)
        try:
            received = stream.buffer
            deadline = time.monotonic() + 10
            while received.count(b": keep-alive\n\n") < 3:
                assert time.monotonic() < deadline, received
                chunk = stream.sock.recv(4096)
                assert chunk, "the server ended the stream"
                received += chunk
            # Silent for longer than the idle timeout, and still open: a reader is not judged
            # idle (a WebSocket this silent would have been terminated).
            assert metric(s, "event_streams_active") == 1
        finally:
            stream.close()


def test_bad_requests_are_refused(server):
    for path, headers, status, code in [
        ("/api/rooms/%3Cb%3E/events", {}, 400, "invalid_field"),
        ("/api/rooms/r/events?since=x", {}, 400, "invalid_field"),
        ("/api/rooms/r/events?since=-1", {}, 400, "invalid_field"),
        ("/api/rooms/r/events", {"Last-Event-ID": "abc"}, 400, "invalid_field"),
    ]:
        stream = EventStreamReader(server, path, headers)
        try:
            assert stream.status == status, (path, stream.status)
            assert stream.body()["code"] == code
        finally:
            stream.close()
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", "/api/rooms/r/events", body=b"{}")
    response = conn.getresponse()
    assert response.status == 405 and response.getheader("Allow") == "GET"
    conn.close()


def test_tokens_and_room_claims_are_enforced_as_for_a_join():
    with RoomcastServer("--jwt-secret", SECRET, "--require-auth", "--api-key", API_KEY) as s:
        def status_of(path, headers=None):
            stream = EventStreamReader(s, path, headers)
            stream.close()
            return stream.status
        allowed = make_token(sub="u-1", name="ann", rooms=["support:*"])
        assert status_of("/api/rooms/support:1/events") == 401
        assert status_of("/api/rooms/support:1/events?token=not-a-token") == 401
        assert status_of(f"/api/rooms/general/events?token={allowed}") == 403
        assert status_of("/api/rooms/general/events",
                         {"Authorization": f"Bearer {allowed}"}) == 403
        for path, headers in [(f"/api/rooms/support:1/events?token={allowed}", None),
                              ("/api/rooms/support:1/events",
                               {"Authorization": f"Bearer {allowed}"})]:
            stream = EventStreamReader(s, path, headers)
            try:
                assert stream.status == 200
                publish(s, "support:1", "hello support")
                assert stream.events(1)[0]["data"]["message"] == "hello support"
            finally:
                stream.close()


def test_a_reader_that_does_not_read_is_closed_as_a_slow_consumer():
    # The backend publishes (a WebSocket sender would get every message back and could be the
    # slow consumer itself on a loaded machine); memory history keeps each commit quick.
    import http.client
    import json
    with RoomcastServer("--api-key", API_KEY, "--max-queued-bytes", "65536",
                        "--history-store", "memory") as s:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", s.port))
        sock.sendall(b"GET /api/rooms/flood/events HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for_metric(s, "event_streams_active", 1)
        backend = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        body = json.dumps({"room": "flood", "message": "x" * 500})
        for i in range(20000):
            backend.request("POST", "/api/publish", body=body,
                            headers={"X-API-Key": API_KEY, "Content-Type": "application/json"})
            response = backend.getresponse()
            response.read()
            assert response.status == 200
            if i % 100 == 99 and metric(s, "slow_consumer_closes_total") >= 1:
                break
        backend.close()
        assert metric(s, "slow_consumer_closes_total") == 1
        wait_for_metric(s, "event_streams_active", 0)
        sock.close()


def test_a_reader_resumes_exactly_on_another_node_behind_nginx(cluster, nginx_proxy):
    """Two nodes behind nginx (no sticky sessions): a reader cut off after seq 3 comes back
    through the proxy with Last-Event-ID while the node it read from is dead, and the live node
    gives it exactly what followed."""
    nodes = cluster(2, "--api-key", API_KEY)
    proxy = nginx_proxy(nodes)
    for i in range(1, 6):
        publish(nodes[0], "relay", f"m{i}")
    stream = EventStreamReader(proxy, "/api/rooms/relay/events?since=0", http_version="1.0")
    try:
        assert stream.status == 200
        seen = [(int(e["id"]), e["data"]["message"]) for e in stream.events(3)]
    finally:
        stream.close()
    assert seen == [(1, "m1"), (2, "m2"), (3, "m3")], seen

    kill_node(nodes[0])
    for i in range(6, 8):
        publish(nodes[1], "relay", f"m{i}")
    # nginx tries the dead node, then the live one (proxy_next_upstream error).
    stream = EventStreamReader(proxy, "/api/rooms/relay/events", {"Last-Event-ID": "3"},
                               http_version="1.0")
    try:
        assert stream.status == 200
        got = [(int(e["id"]), e["data"]["message"]) for e in stream.events(4)]
        publish(nodes[1], "relay", "live")
        got += [(int(e["id"]), e["data"]["message"]) for e in stream.events(1)]
    finally:
        stream.close()
    assert got == [(4, "m4"), (5, "m5"), (6, "m6"), (7, "m7"), (8, "live")], got


def read_until_closed(stream):
    """Every event until the server ends the stream (bounded by the reader's timeout)."""
    events = []
    try:
        while True:
            events.append(stream.next_event())
    except EOFError:
        return events


def test_a_stream_ends_when_its_token_expires_saying_why():
    """As a WebSocket is closed with 4002 at its token's expiry, a stream ends then, its last
    event `close` with that code; a stream without a token (anonymous) is not affected."""
    with RoomcastServer("--api-key", API_KEY, "--jwt-secret", SECRET, "--jwt-leeway", "0",
                        "--threads", "2") as s:
        token = make_token(sub="u-short", name="short", expires_in=2)
        short = EventStreamReader(s, f"/api/rooms/expiring/events?token={token}", timeout=15)
        anonymous = EventStreamReader(s, "/api/rooms/expiring/events", timeout=15)
        try:
            assert short.status == 200 and anonymous.status == 200
            seq = publish(s, "expiring", "before expiry")
            assert short.events(1)[0]["id"] == str(seq)
            assert anonymous.events(1)[0]["id"] == str(seq)
            events = read_until_closed(short)  # the token expires about 2 s after it was made
            assert events and events[-1]["event"] == "close", events
            assert events[-1]["data"] == {"code": 4002, "reason": "Token expired"}, events
            # The anonymous reader still reads.
            later = publish(s, "expiring", "after expiry")
            assert anonymous.events(1)[0]["id"] == str(later)
            wait_for_metric(s, "event_streams_active", 1)
        finally:
            short.close()
            anonymous.close()


def test_disconnect_ends_the_users_event_streams_and_counts_them():
    with RoomcastServer("--api-key", API_KEY, "--jwt-secret", SECRET, "--threads", "2") as s:
        mine = [EventStreamReader(s, f"/api/rooms/{room}/events?token="
                                  f"{make_token(sub='u-gone', name='gone')}")
                for room in ("d1", "d2")]
        other = EventStreamReader(s, f"/api/rooms/d1/events?token="
                                  f"{make_token(sub='u-stays', name='stays')}")
        try:
            wait_for_metric(s, "event_streams_active", 3)

            async def body():
                ws = await ChatClient.connect(s, f"/?token={make_token(sub='u-gone', name='g')}")
                await ws.join("d1")
                status, _, answer = post(s, "/api/disconnect",
                                         {"user": "u-gone", "reason": "Banned"})
                assert status == 200 and answer == {"user": "u-gone", "connections": 3}, answer
            run(body())
            for stream in mine:
                events = read_until_closed(stream)
                assert events[-1]["event"] == "close", events
                assert events[-1]["data"] == {"code": 4003, "reason": "Banned"}, events
            seq = publish(s, "d1", "still here")
            assert other.events(1)[0]["id"] == str(seq)
            wait_for_metric(s, "event_streams_active", 1)
        finally:
            for stream in mine + [other]:
                stream.close()
