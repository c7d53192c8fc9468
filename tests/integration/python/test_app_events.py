"""App events (--app-events: the chapter's document_change, price_update, player_moved) and
direct messages, against the real binary with Python websockets clients: relayed with the
server's fields, refused when not allowed, too large or too deep, durable ones numbered, kept
across a kill -9 and recovered with `since`, ephemeral ones never in history, echo or not;
direct messages to every connection of a user over two workers (more in
test_direct_messages.py)."""

import asyncio
import json
import signal
import struct

import pytest

from cluster_support import cluster, redis_server  # noqa: F401 (fixtures)
from roomcast_server import RoomcastServer
from security_support import SECRET, make_token
from test_chat_support import (QUIET_WINDOW, ChatClient, assert_server_timestamp, is_type,
                               room_of, run, users)
from test_history import http_json

EVENTS = "document_change:durable,price_update,player_moved:ephemeral:no-echo"


@pytest.fixture(params=[False, True], ids=["test-defaults", "production-defaults"])
def events_server(request):
    """A server relaying EVENTS, with the test defaults and with the server's own defaults (rate
    limits on, durable SQLite history)."""
    with RoomcastServer("--app-events", EVENTS, "--max-event-bytes", "2048",
                        production_defaults=request.param) as s:
        yield s


def test_an_allowed_event_reaches_the_room_with_the_servers_fields(events_server):
    async def body():
        ann, bob = await room_of(events_server, "doc1", "ann", "bob")
        change = {"ops": [{"insert": "hello", "at": 0}], "version": 3}
        await ann.send({"type": "document_change", "room": "doc1", "change": change})
        for c in (ann, bob):  # durable types echo by default: the sender sees the order too
            got = await c.expect(is_type("document_change", "doc1"))
            assert got["change"] == change
            assert got["userId"] == ann.user_id and got["username"] == "ann"
            assert_server_timestamp(got["timestamp"])
            assert got["seq"] == 1
            assert set(got) == {"type", "room", "userId", "username", "timestamp", "seq", "change"}
        await ann.send({"type": "price_update", "room": "doc1", "symbol": "ACME", "price": 12.5})
        got = await bob.expect(is_type("price_update", "doc1"))
        assert got["symbol"] == "ACME" and got["price"] == 12.5 and "seq" not in got
    run(body())


def test_a_payload_that_claims_another_user_room_time_or_seq_is_not_believed(events_server):
    async def body():
        ann, bob = await room_of(events_server, "doc1", "ann", "bob")
        await bob.join("doc2")
        await ann.send({"type": "document_change", "room": "doc1", "userId": bob.user_id,
                        "username": "bob", "timestamp": 1, "seq": 4242, "change": "x"})
        got = await bob.expect(is_type("document_change"))
        assert got["room"] == "doc1"
        assert got["userId"] == ann.user_id and got["username"] == "ann"
        assert got["seq"] == 1 and got["timestamp"] != 1
        assert_server_timestamp(got["timestamp"])
    run(body())


def test_a_type_not_allowed_and_bad_events_get_clear_errors(events_server):
    async def body():
        ann, bob = await room_of(events_server, "doc1", "ann", "bob")
        await ann.send({"type": "teleport", "room": "doc1", "x": 1})
        err = await ann.expect_error()
        assert err["code"] == "unknown_type" and "teleport" in err["message"]
        await ann.send({"type": "price_update", "room": "doc1", "pad": "x" * 3000})
        err = await ann.expect_error()
        assert err["code"] == "too_large" and "2048 bytes" in err["message"]
        deep = 1
        for _ in range(10):
            deep = [deep]
        await ann.send({"type": "price_update", "room": "doc1", "deep": deep})
        err = await ann.expect_error()
        assert err["code"] == "invalid_json" and "nested deeper" in err["message"]
        await ann.send({"type": "price_update", "room": "nowhere", "price": 1})
        assert (await ann.expect_error())["code"] == "not_in_room"
        await ann.send({"type": "price_update", "price": 1})
        assert (await ann.expect_error())["code"] == "invalid_field"
        # None of them reached Bob; the connection still works.
        await ann.send({"type": "price_update", "room": "doc1", "price": 2})
        got = await bob.expect(is_type("price_update"))
        assert got["price"] == 2
    run(body())


def test_no_echo_types_go_to_the_others_only(events_server):
    async def body():
        ann, bob, cid = await room_of(events_server, "game", "ann", "bob", "cid")
        await ann.send({"type": "player_moved", "room": "game", "x": 1, "y": 2})
        for c in (bob, cid):
            got = await c.expect(is_type("player_moved", "game"))
            assert (got["x"], got["y"], got["userId"]) == (1, 2, ann.user_id)
        await ann.chat("marker", room="game")  # everything before it has arrived
        _, skipped = await ann.recv_until(lambda m: m.get("message") == "marker")
        assert not [m for m in skipped if m["type"] == "player_moved"]
    run(body())


def test_ephemeral_events_are_never_in_history(events_server):
    async def body():
        ann, bob = await room_of(events_server, "tick", "ann", "bob")
        await ann.send({"type": "price_update", "room": "tick", "price": 1})
        await ann.send({"type": "document_change", "room": "tick", "change": "kept"})
        await bob.expect(is_type("document_change"))
        late = await ChatClient.connect(events_server)
        await late.send({"type": "join_room", "room": "tick", "username": "late"})
        history = await late.expect(is_type("history", "tick"))
        assert [m["type"] for m in history["messages"]] == ["document_change"]
        status, page = http_json(events_server, "/api/rooms/tick/messages")
        assert status == 200
        assert [(m["type"], m.get("change")) for m in page["messages"]] == \
            [("document_change", "kept")]
    run(body())


def test_durable_events_survive_kill_9_and_are_recovered_with_since(tmp_path):
    """Every acked durable event is on disk (SQLite, the default store), a resent id is acked
    with its seq once again, and a client that saw seq 2 gets exactly what followed."""
    args = ("--app-events", EVENTS)
    server = RoomcastServer(*args, data_dir=str(tmp_path)).start()
    acks = {}
    try:
        async def first_life():
            ann = await ChatClient.connect(server)
            await ann.join("doc", "ann")
            for i in range(5):
                await ann.send({"type": "document_change", "room": "doc", "change": f"c{i}",
                                "id": f"e{i}"})
            while len(acks) < 5:
                ack = await ann.expect(is_type("ack", "doc"))
                acks[ack["id"]] = ack["seq"]
        run(first_life())
        server.proc.send_signal(signal.SIGKILL)
        server.wait()
    finally:
        server.stop()
    assert sorted(acks.values()) == [1, 2, 3, 4, 5]

    with RoomcastServer(*args, data_dir=str(tmp_path)) as again:
        async def second_life():
            ann = await ChatClient.connect(again)
            await ann.send({"type": "join_room", "room": "doc", "username": "ann", "since": 2})
            history = await ann.expect(is_type("history", "doc"))
            assert history["recovered"] is True
            assert [(m["change"], m["seq"]) for m in history["messages"]] == \
                [("c2", 3), ("c3", 4), ("c4", 5)]
            assert all(m["type"] == "document_change" and m["username"] == "ann"
                       for m in history["messages"])
            await ann.send({"type": "document_change", "room": "doc", "change": "c1", "id": "e1"})
            assert (await ann.expect(is_type("ack", "doc")))["seq"] == acks["e1"]
            await ann.send({"type": "document_change", "room": "doc", "change": "c5"})
            assert (await ann.expect(is_type("document_change", "doc")))["seq"] == 6
        run(second_life())


def test_ephemeral_events_spend_the_signal_budget_under_production_defaults():
    with RoomcastServer("--app-events", EVENTS, production_defaults=True) as server:
        async def body():
            ann, bob = await room_of(server, "fast", "ann", "bob")
            # The default signal budget: 30 per 10 s, the join took one.
            for i in range(40):
                await ann.send({"type": "price_update", "room": "fast", "n": i})
            err = await ann.expect_error()
            assert err["code"] == "rate_limited"
            got = [m for m in await bob.collect(1.0) if m["type"] == "price_update"]
            assert 0 < len(got) < 40
            assert [m["n"] for m in got] == list(range(len(got)))
        run(body())


# ---- direct messages ----------------------------------------------------------------------

@pytest.fixture(params=[False, True], ids=["test-defaults", "production-defaults"])
def dm_server(request):
    with RoomcastServer("--jwt-secret", SECRET, "--threads", "2",
                        production_defaults=request.param) as s:
        yield s


async def as_user(server, sub, name):
    return await ChatClient.connect(server, f"/?token={make_token(sub=sub, name=name)}")


def test_a_direct_message_reaches_every_connection_of_the_user_and_nobody_else(dm_server):
    async def body():
        # Several tabs, so that (the kernel spreads connections over the two workers) they are
        # on both workers but with a chance of 1 in 2^5.
        ann_tabs = [await as_user(dm_server, "ann-id", "ann") for _ in range(6)]
        bob = await as_user(dm_server, "bob-id", "bob")
        bob_tab = await as_user(dm_server, "bob-id", "bob")
        cid = await as_user(dm_server, "cid-id", "cid")
        await bob.send({"type": "direct_message", "to": "ann-id", "message": "psst", "id": "d1"})
        for tab in ann_tabs:
            got = await tab.expect(is_type("direct_message"))
            assert (got["from"], got["username"], got["to"], got["message"]) == \
                ("bob-id", "bob", "ann-id", "psst")
            assert_server_timestamp(got["timestamp"])
        ack = await bob.expect(is_type("ack"))
        assert ack == {"type": "ack", "to": "ann-id", "id": "d1", "seq": 1}
        # Bob's other tab sees what he said; Cid sees nothing.
        copy = await bob_tab.expect(is_type("direct_message"))
        assert copy["message"] == "psst"
        assert not [m for m in await cid.collect(QUIET_WINDOW) if m["type"] == "direct_message"]
    run(body())


def test_a_direct_message_to_a_user_who_is_not_connected(dm_server):
    async def body():
        ann = await as_user(dm_server, "ann-id", "ann")
        bob = await as_user(dm_server, "bob-id", "bob")
        await bob.close()
        # From a token user: kept for bob (test_direct_messages.py recovers it), and acked.
        await ann.send({"type": "direct_message", "to": "bob-id", "message": "there?",
                        "id": "d2"})
        assert (await ann.expect(is_type("ack")))["seq"] == 1
        # From an anonymous user: refused, nothing sent.
        anon = await ChatClient.connect(dm_server)
        await anon.join("lobby", "anon")
        await anon.send({"type": "direct_message", "to": "bob-id", "message": "hi", "id": "d3"})
        err = await anon.expect(is_type("error"))
        assert err["code"] == "user_offline" and err["to"] == "bob-id" and err["id"] == "d3"
        await anon.send({"type": "direct_message", "to": "nobody", "message": "hi"})
        err = await anon.expect(is_type("error"))
        assert err["code"] == "user_offline" and "id" not in err
    run(body())


# ---- binary messages ----------------------------------------------------------------------

# The chapter's position update: a type byte (1), then x, y, z as little-endian float32.
POSITION = bytes([1]) + struct.pack("<fff", 1.0, 2.0, 3.0)


@pytest.fixture(params=[False, True], ids=["test-defaults", "production-defaults"])
def binary_server(request):
    with RoomcastServer("--threads", "2", "--max-binary-bytes", "64",
                        production_defaults=request.param) as s:
        yield s


async def recv_binary(client, timeout=5):
    raw = await asyncio.wait_for(client.ws.recv(), timeout)
    assert isinstance(raw, bytes), f"expected a binary frame, got {raw!r}"
    return raw


def test_binary_reaches_the_other_binary_members_unchanged_and_never_a_text_client(binary_server):
    async def body():
        players = []
        for name in ("ann", "bob", "cid", "dee"):
            c = await ChatClient.connect(binary_server)
            await c.join("board", name, binary=True)
            players.append(c)
        text_only = await ChatClient.connect(binary_server)
        await text_only.join("board", "eve")
        for c in players + [text_only]:
            await c.expect_user_list("board", users(*players, text_only))
        ann, others = players[0], players[1:]
        await ann.send(POSITION)
        for c in others:
            assert await recv_binary(c) == POSITION
        # Ann does not get her own back, and Eve gets no binary frame at all (ChatClient.recv
        # fails on one); a chat message marks the end of what could have come.
        await ann.chat("marker", room="board")
        for c in (ann, text_only):
            await c.expect(lambda m: m.get("message") == "marker")
    run(body())


def test_binary_without_a_binary_room_or_too_large_gets_a_clear_error(binary_server):
    async def body():
        ann = await ChatClient.connect(binary_server)
        await ann.join("board", "ann")
        await ann.send(POSITION)
        err = await ann.expect_error()
        assert err["code"] == "unsupported_binary"
        await ann.join("game", binary=True)
        await ann.send(bytes(65))
        err = await ann.expect_error()
        assert err["code"] == "too_large" and "64 bytes" in err["message"]
        await ann.send({"type": "join_room", "room": "x", "binary": "yes"})
        assert (await ann.expect_error())["code"] == "invalid_field"
    run(body())


# ---- message_batch ------------------------------------------------------------------------

@pytest.mark.parametrize("production", [False, True], ids=["test-defaults", "production-defaults"])
def test_batching_members_get_the_rooms_messages_in_order_in_batches_of_at_most_the_size(
        production):
    count = 5 if production else 25  # production: 10 messages a minute per person
    with RoomcastServer("--batch-size", "4", production_defaults=production) as server:
        async def body():
            ann = await ChatClient.connect(server)
            await ann.join("r", "ann")
            bob = await ChatClient.connect(server)
            await bob.join("r", "bob", batch=True)
            await ann.expect_user_list("r", users(ann, bob))
            for i in range(count):
                await ann.chat(f"m{i}", room="r")
            got = []
            while len(got) < count:
                m = await bob.recv()
                assert m["type"] != "chat_message", m  # Bob asked for batches
                if m["type"] == "message_batch":
                    assert m["room"] == "r" and 1 <= len(m["messages"]) <= 4, m
                    got += m["messages"]
            assert [(m["message"], m["seq"]) for m in got] == \
                [(f"m{i}", i + 1) for i in range(count)]
            # Ann, who did not ask, gets them one by one.
            singles = [await ann.expect(is_type("chat_message", "r")) for _ in range(count)]
            assert [m["seq"] for m in singles] == list(range(1, count + 1))
        run(body())


# ---- across the nodes of a cluster ----------------------------------------------------------

def test_ephemeral_events_and_binary_cross_the_nodes_of_a_cluster(cluster):
    a, b = cluster(2, "--app-events", EVENTS)

    async def body():
        ann = await ChatClient.connect(a)
        await ann.join("arena", "ann", binary=True)
        bob = await ChatClient.connect(b)
        await bob.join("arena", "bob", binary=True)
        await ann.expect_user_list("arena", users(ann, bob))
        await bob.expect_user_list("arena", users(ann, bob))
        await ann.send({"type": "player_moved", "room": "arena", "x": 7})
        got = await bob.expect(is_type("player_moved", "arena"))
        assert (got["x"], got["userId"], got["username"]) == (7, ann.user_id, "ann")
        await ann.send(POSITION)
        assert await recv_binary(bob) == POSITION
        # Durable ones went through Redis's store already; they still do.
        await bob.send({"type": "document_change", "room": "arena", "change": "c"})
        got = await ann.expect(is_type("document_change", "arena"))
        assert got["seq"] == 1 and got["username"] == "bob"
    run(body())


# ---- presence per user --------------------------------------------------------------------

def test_two_tabs_of_one_user_appear_once_and_leave_with_the_last(dm_server):
    async def body():
        bob = await as_user(dm_server, "bob-id", "bob")
        await bob.join("r")
        tabs = [await as_user(dm_server, "ann-id", "ann") for _ in range(3)]
        for tab in tabs:
            await tab.join("r")
        everyone = [{"id": "bob-id", "username": "bob"}, {"id": "ann-id", "username": "ann"}]
        _, seen = await bob.recv_until(
            lambda m: m["type"] == "user_list" and m["users"] == everyone)
        for tab in tabs[:2]:
            await tab.close()
        await tabs[2].chat("still here", room="r")
        _, skipped = await bob.recv_until(lambda m: m.get("message") == "still here")
        said = [m["message"] for m in seen + skipped if m["type"] == "system_message"]
        # Never a list with ann twice.
        assert all(len(m["users"]) <= 2 for m in seen + skipped if m["type"] == "user_list")
        # With the server's defaults, joins in the rejoin grace after the start are not said.
        assert said.count("ann joined the chat") == (
            0 if dm_server.production_defaults else 1), said
        assert "ann left the chat" not in said, said
        await tabs[2].close()
        # ... and a leave is said once the grace (10 s by default) has passed.
        _, skipped = await bob.recv_until(lambda m: m.get("message") == "ann left the chat",
                                          timeout=15)
        if [m["users"] for m in skipped if m["type"] == "user_list"][-1:] != [everyone[:1]]:
            await bob.expect_user_list("r", everyone[:1])
    run(body())


# ---- conflation -----------------------------------------------------------------------------

def test_a_reader_that_falls_behind_gets_the_latest_of_a_conflating_type_not_a_backlog():
    """A member that stops reading while another streams ticks (ephemeral, conflate) gets, once
    it reads again, the newest tick and far fewer than were sent; in order, none twice."""
    import socket
    import rawws
    from test_chat_slow_consumer import FrameScanner, masked_text_frame

    # 60,000 ticks of ~430 bytes: far more than kernel buffers absorb (~10 MB at most), and
    # more than --max-queued-bytes (16 MiB) would hold: without conflation, a 1008.
    count, chunk = 60_000, 1_000
    with RoomcastServer("--app-events", "tick:no-echo:conflate") as server:
        slow = rawws.connect(server, path="/", timeout=60)
        slow.send_raw(masked_text_frame(json.dumps(
            {"type": "join_room", "room": "live", "username": "slow"})))
        fast = rawws.connect(server, path="/", timeout=60)
        fast.send_raw(masked_text_frame(json.dumps(
            {"type": "join_room", "room": "live", "username": "fast"})))
        fast_frames = FrameScanner()
        fast.sock.settimeout(30)

        def wait_for_fast(pred):
            while True:
                data = fast.sock.recv(1 << 20)
                assert data, "the server closed the client that keeps up"
                for opcode, payload in fast_frames.feed(data):
                    if opcode == 0x1 and pred(json.loads(payload)):
                        return

        wait_for_fast(lambda m: m["type"] == "user_list" and len(m["users"]) == 2)
        pad = "x" * 300
        for start in range(0, count, chunk):
            frames = b"".join(masked_text_frame(json.dumps(
                {"type": "tick", "room": "live", "n": n, "pad": pad}))
                for n in range(start, start + chunk))
            marker = f"after {start + chunk}"
            fast.send_raw(frames + masked_text_frame(json.dumps(
                {"type": "chat_message", "room": "live", "message": marker})))
            wait_for_fast(lambda m, marker=marker: m.get("message") == marker)

        scanner, ticks = FrameScanner(), []
        slow.sock.settimeout(30)
        done = False
        while not done:
            data = slow.sock.recv(1 << 20)
            assert data, "the server closed the reader that fell behind"
            for opcode, payload in scanner.feed(data):
                message = json.loads(payload) if opcode == 0x1 else {}
                if message.get("type") == "tick":
                    ticks.append(message["n"])
                if message.get("message") == f"after {count}":
                    done = True
        assert ticks[-1] == count - 1, "the newest state must arrive"
        assert ticks == sorted(set(ticks)), "in order, none twice"
        assert len(ticks) < count // 2, f"{len(ticks)} of {count}: not conflated"


# ---- per-type rate budgets (issue 14) ----------------------------------------------------

RATED = "document_change:durable:rate=5/2s,price_update:rate=4/1s,note:durable,cursor"


def test_a_type_with_its_own_rate_spends_it_and_not_the_chat_budget_under_production_defaults():
    """rate=5/2s: a burst of document_change is refused only past the fifth, with how long to
    wait (at most the type's block, twice its window), and waiting that long is enough; the
    sender's chat budget (10 a minute by default) is untouched."""
    with RoomcastServer("--app-events", RATED, production_defaults=True) as server:
        async def body():
            ann, bob = await room_of(server, "doc", "ann", "bob")
            for i in range(8):
                await ann.send({"type": "document_change", "room": "doc", "id": f"d{i}"})
            answers = {}
            while len(answers) < 8:
                m = await ann.expect(lambda m: m.get("type") in ("ack", "error"))
                answers[m["id"]] = m
            assert [answers[f"d{i}"]["type"] for i in range(8)] == ["ack"] * 5 + ["error"] * 3
            waits = [answers[f"d{i}"]["retryAfterMs"] for i in range(5, 8)]
            assert all(answers[f"d{i}"]["code"] == "rate_limited" for i in range(5, 8))
            assert all(isinstance(w, int) and 0 < w <= 4000 for w in waits), waits
            got = [m for m in await bob.collect(QUIET_WINDOW) if m["type"] == "document_change"]
            assert len(got) == 5, got
            # Ten chat messages, the whole default chat budget, still pass.
            for i in range(10):
                await ann.chat(f"chat {i}", room="doc")
                await ann.expect(lambda m, i=i: m.get("message") == f"chat {i}")
            await asyncio.sleep(waits[-1] / 1000)
            await ann.send({"type": "document_change", "room": "doc", "id": "after"})
            assert (await ann.expect(is_type("ack", "doc")))["id"] == "after"
        run(body())


def test_an_ephemeral_type_with_its_own_rate_is_refused_past_it_once_per_block():
    with RoomcastServer("--app-events", RATED, production_defaults=True) as server:
        async def body():
            ann, bob = await room_of(server, "fast", "ann", "bob")
            for i in range(10):
                await ann.send({"type": "price_update", "room": "fast", "n": i})
            err = await ann.expect_error()
            assert err["code"] == "rate_limited" and 0 < err["retryAfterMs"] <= 2000, err
            got = [m["n"] for m in await bob.collect(QUIET_WINDOW) if m["type"] == "price_update"]
            assert got == [0, 1, 2, 3], got
            assert not [m for m in await ann.collect(QUIET_WINDOW) if m["type"] == "error"]
            # The signal budget is untouched: typing goes through.
            await ann.send({"type": "typing_start", "room": "fast"})
            await bob.expect(is_type("typing_start", "fast"))
        run(body())


def test_types_without_a_rate_keep_spending_the_chat_and_signal_budgets():
    with RoomcastServer("--app-events", RATED, production_defaults=True) as server:
        async def body():
            ann, bob = await room_of(server, "keep", "ann", "bob")
            # A durable type without rate= spends the chat budget: 10 notes, then chat refused.
            for i in range(10):
                await ann.send({"type": "note", "room": "keep", "id": f"n{i}"})
                await ann.expect(is_type("ack", "keep"))
            await ann.chat("eleventh", room="keep")
            err = await ann.expect_error()
            assert err["code"] == "rate_limited" and 0 < err["retryAfterMs"] <= 120_000, err
            # An ephemeral type without rate= spends the signal budget (30 per 10 s).
            for i in range(40):
                await bob.send({"type": "cursor", "room": "keep", "n": i})
            err = await bob.expect_error()
            assert err["code"] == "rate_limited" and 0 < err["retryAfterMs"] <= 20_000, err
            got = [m for m in await ann.collect(1.0) if m["type"] == "cursor"]
            assert 0 < len(got) < 40
        run(body())
