"""History and delivery guarantees (issue 5): seq per room, history on join, `since`
recovery, acks and idempotent `id`s, durability across SIGTERM and kill -9 (a real SQLite
file under a per-test --data-dir), retention, and the HTTP history API."""

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import urllib.error
import urllib.request

from roomcast_server import RoomcastServer, binary_path
from test_chat_support import (QUIET_WINDOW, ChatClient, is_chat, is_type, run)

CHAT_FIELDS = {"type", "room", "userId", "username", "message", "timestamp", "seq"}


def http_json(server, path):
    """(status, parsed JSON body) of a GET."""
    try:
        with urllib.request.urlopen(server.http_url + path, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def history_seqs(server, room, limit=1000):
    status, body = http_json(server, f"/api/rooms/{room}/messages?since=0&limit={limit}")
    assert status == 200, body
    return [m["seq"] for m in body["messages"]]


async def joined(server, room, name, **extra):
    c = await ChatClient.connect(server)
    await c.join(room, name, **extra)
    return c


async def send_all_with_ids(client, room, texts):
    """Sends each text with id = text; returns {id: seq} once every ack is in."""
    for text in texts:
        await client.chat(text, id=text)
    acks = {}
    while len(acks) < len(texts):
        ack = await client.expect(is_type("ack", room), timeout=20)
        assert set(ack) == {"type", "room", "id", "seq"}, ack
        acks[ack["id"]] = ack["seq"]
    return acks


async def seqs_until(client, room, last_seq, timeout=20):
    """Seqs of `room`'s chat messages (history replies included, in arrival order) up to
    and including last_seq."""
    seqs = []
    while not seqs or seqs[-1] < last_seq:
        m = await client.expect(lambda m: m.get("room") == room and
                                m.get("type") in ("history", "chat_message"), timeout=timeout)
        batch = m["messages"] if m["type"] == "history" else [m]
        seqs.extend(x["seq"] for x in batch)
    return seqs


# --- history on join ----------------------------------------------------------------

def test_join_receives_the_last_messages_as_live_copies_after_the_welcome(make_server):
    server = make_server("--history-on-join", "5")

    async def body():
        ann = await joined(server, "lobby", "ann")
        for i in range(8):
            await ann.chat(f"m{i}")
        live = await ann.expect(is_chat("lobby", "m7"))
        bob = await ChatClient.connect(server)
        await bob.send({"type": "join_room", "room": "lobby", "username": "bob"})
        first = await bob.recv()
        assert first["type"] == "system_message" and first["message"] == "Welcome to lobby!"
        history = await bob.expect(is_type("history", "lobby"))
        assert set(history) == {"type", "room", "messages"}, history  # no `recovered`
        assert [m["message"] for m in history["messages"]] == [f"m{i}" for i in range(3, 8)]
        assert [m["seq"] for m in history["messages"]] == [4, 5, 6, 7, 8]
        for m in history["messages"]:
            assert set(m) == CHAT_FIELDS and m["type"] == "chat_message", m
        assert history["messages"][-1] == live  # byte for byte what members saw
    run(body())


def test_join_of_a_room_without_messages_gets_no_history(server):
    async def body():
        ann = await joined(server, "quiet", "ann")
        assert not [m for m in await ann.collect(QUIET_WINDOW) if m["type"] == "history"]
    run(body())


def test_history_comes_before_any_live_message_while_others_keep_sending(server):
    async def body():
        ann = await joined(server, "busy", "ann")
        total = 400

        async def keep_sending():
            for i in range(total):
                await ann.chat(f"m{i}")
                if i % 20 == 0:
                    await asyncio.sleep(0.005)

        sender = asyncio.create_task(keep_sending())
        await asyncio.sleep(0.05)
        bob = await joined(server, "busy", "bob", since=0)
        seqs = await seqs_until(bob, "busy", total)
        await sender
        assert seqs == list(range(1, total + 1))
    run(body())


# --- since recovery ------------------------------------------------------------------

def test_client_that_drops_recovers_exactly_the_missed_messages_with_since(server):
    async def body():
        ann = await joined(server, "r", "ann")
        bob = await joined(server, "r", "bob")
        for i in range(20):
            await ann.chat(f"before {i}")
        seen = await seqs_until(bob, "r", 20)
        bob.abort()
        for i in range(300):
            await ann.chat(f"while away {i}")
        await ann.expect(is_chat("r", "while away 299"))

        async def more():
            for i in range(100):
                await ann.chat(f"during rejoin {i}")

        sender = asyncio.create_task(more())
        bob = await ChatClient.connect(server)
        await bob.join("r", "bob", since=seen[-1])
        seen += await seqs_until(bob, "r", 420)
        await sender
        assert seen == list(range(1, 421))
    run(body())


def test_since_tells_when_history_no_longer_reaches_back(make_server):
    server = make_server("--history-size", "10")

    async def body():
        ann = await joined(server, "short", "ann")
        for i in range(30):
            await ann.chat(f"m{i}")
        await ann.expect(is_chat("short", "m29"))

        bob = await joined(server, "short", "bob", since=5)
        h = await bob.expect(is_type("history", "short"))
        assert h["recovered"] is False
        assert [m["seq"] for m in h["messages"]] == list(range(21, 31))

        cat = await joined(server, "short", "cat", since=20)  # 21.. is all still there
        h = await cat.expect(is_type("history", "short"))
        assert h["recovered"] is True
        assert [m["seq"] for m in h["messages"]] == list(range(21, 31))

        dan = await joined(server, "short", "dan", since=30)  # up to date
        h = await dan.expect(is_type("history", "short"))
        assert h["recovered"] is True and h["messages"] == []

        eve = await joined(server, "short", "eve", since=99)  # beyond what the room had
        h = await eve.expect(is_type("history", "short"))
        assert h["recovered"] is False
        assert [m["seq"] for m in h["messages"]] == list(range(21, 31))
    run(body())


# --- order --------------------------------------------------------------------------

def test_concurrent_senders_give_every_member_one_gapless_total_order(server):
    async def body():
        members = [await joined(server, "order", f"user{i}") for i in range(5)]
        per_sender = 100

        async def send(c, n):
            for i in range(per_sender):
                await c.chat(f"{n}:{i}")

        await asyncio.gather(*(send(c, n) for n, c in enumerate(members)))
        total = per_sender * len(members)
        orders = []
        for c in members:
            got = []
            while len(got) < total:
                m = await c.expect(is_type("chat_message", "order"), timeout=20)
                got.append((m["seq"], m["message"]))
            orders.append(got)
        assert [s for s, _ in orders[0]] == list(range(1, total + 1))
        assert all(o == orders[0] for o in orders)
    run(body())


# --- acks and idempotency ------------------------------------------------------------

def test_duplicate_id_is_acked_twice_with_one_seq_and_delivered_once(server):
    async def body():
        ann = await joined(server, "dup", "ann")
        bob = await joined(server, "dup", "bob")
        await ann.chat("hello", id="msg-1")
        first = await ann.expect(is_type("ack", "dup"))
        await ann.chat("hello", id="msg-1")
        second = await ann.expect(is_type("ack", "dup"))
        assert first == second == {"type": "ack", "room": "dup", "id": "msg-1", "seq": 1}
        await bob.expect(is_chat("dup", "hello"))
        assert not [m for m in await bob.collect(QUIET_WINDOW) if m["type"] == "chat_message"]
        assert history_seqs(server, "dup") == [1]
    run(body())


def test_resend_after_reconnect_is_recognised(server):
    async def body():
        ann = await joined(server, "re", "ann")
        await ann.chat("once", id="abc")
        ack = await ann.expect(is_type("ack", "re"))
        await ann.close()
        ann = await joined(server, "re", "ann")
        await ann.chat("once", id="abc")
        assert await ann.expect(is_type("ack", "re")) == ack
        assert history_seqs(server, "re") == [1]
    run(body())


def test_same_id_from_different_users_is_two_messages(server):
    async def body():
        ann = await joined(server, "two", "ann")
        bob = await joined(server, "two", "bob")
        await ann.chat("from ann", id="same")
        await bob.chat("from bob", id="same")
        seqs = {(await ann.expect(is_type("ack", "two")))["seq"],
                (await bob.expect(is_type("ack", "two")))["seq"]}
        assert seqs == {1, 2}  # two messages (in whichever order the server got them)
    run(body())


def test_message_to_all_rooms_is_acked_per_room(server):
    async def body():
        ann = await joined(server, "a", "ann")
        await ann.join("b")
        await ann.chat("to both", id="both")
        acks = [await ann.expect(is_type("ack")), await ann.expect(is_type("ack"))]
        assert sorted((a["room"], a["seq"]) for a in acks) == [("a", 1), ("b", 1)]
    run(body())


def test_messages_without_id_get_no_ack(server):
    async def body():
        ann = await joined(server, "plain", "ann")
        await ann.chat_roundtrip("plain", "no id")
        assert not [m for m in await ann.collect(QUIET_WINDOW) if m["type"] == "ack"]
    run(body())


# --- durability ----------------------------------------------------------------------

def test_restart_keeps_history_and_continues_seq(tmp_path):
    async def first_life(server):
        ann = await joined(server, "keep", "ann")
        await send_all_with_ids(ann, "keep", [f"m{i}" for i in range(5)])

    async def second_life(server):
        bob = await joined(server, "keep", "bob")
        h = await bob.expect(is_type("history", "keep"))
        assert [m["message"] for m in h["messages"]] == [f"m{i}" for i in range(5)]
        await bob.chat("after restart")
        assert (await bob.expect(is_chat("keep", "after restart")))["seq"] == 6

    with RoomcastServer(data_dir=str(tmp_path)) as server:
        run(first_life(server))
    with RoomcastServer(data_dir=str(tmp_path)) as server:
        run(second_life(server))


def test_every_acknowledged_message_survives_kill_9(tmp_path):
    texts = [f"m{i}" for i in range(1000)]
    server = RoomcastServer(data_dir=str(tmp_path)).start()
    try:
        async def send(server):
            ann = await joined(server, "crash", "ann")
            return await send_all_with_ids(ann, "crash", texts)
        acks = run(send(server), timeout=60)
        server.proc.send_signal(signal.SIGKILL)
        server.wait()
    finally:
        server.stop()
    assert sorted(acks.values()) == list(range(1, 1001))

    with RoomcastServer(data_dir=str(tmp_path)) as server:
        status, body = http_json(server, "/api/rooms/crash/messages?since=0&limit=1000")
        assert status == 200 and body["last_seq"] == 1000
        assert [(m["message"], m["seq"]) for m in body["messages"]] == \
            [(t, acks[t]) for t in texts]

        async def resend(server):  # ids survive the crash too
            ann = await joined(server, "crash", "ann")
            await ann.chat("m500", id="m500")
            assert (await ann.expect(is_type("ack", "crash")))["seq"] == acks["m500"]
        run(resend(server))
        assert len(history_seqs(server, "crash")) == 1000


def test_kill_9_at_random_points_of_a_sustained_acked_load_loses_and_renumbers_nothing(tmp_path):
    """Issue 19: several lives of one data directory, each killed (SIGKILL) at a random moment
    of a sustained load of acked messages in two rooms, with the ids still unacked at the kill
    sent again in the next life. Afterwards the file must hold every acked id once, as its
    acked seq, and every seq any reader was shown must name the message it was shown with."""
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    rooms = ["crash-a", "crash-b"]
    acked = {}  # id -> (room, seq)
    shown = {}  # (room, seq) -> text, as any reader saw it (history replies included)
    unacked = {room: [] for room in rooms}  # ids sent in a life that ended before their ack

    def show(room, seq, text):
        assert shown.setdefault((room, seq), text) == text, \
            f"seed {seed}: {room} seq {seq} shown as {shown[(room, seq)]!r} and as {text!r}"

    async def reader(client):
        while True:
            m = await client.recv(timeout=20)
            if m.get("type") == "history":
                for x in m["messages"]:
                    show(x["room"], x["seq"], x["message"])
            elif m.get("type") == "chat_message":
                show(m["room"], m["seq"], m["message"])
            elif m.get("type") == "ack":
                return m

    async def sender(client, room, life, in_flight, first_ack):
        resend = unacked[room]
        unacked[room] = []
        ids = iter(resend + [f"{room}-{life}-{i}" for i in range(1_000_000)])
        window = 32  # sent and not yet acked
        while True:
            while len(in_flight) < window:
                text = next(ids)
                in_flight.add(text)
                await client.chat(text, id=text)
            ack = await reader(client)
            assert ack["room"] == room, ack
            previous = acked.setdefault(ack["id"], (room, ack["seq"]))
            assert previous == (room, ack["seq"]), f"seed {seed}: {ack} acked before as {previous}"
            in_flight.discard(ack["id"])
            first_ack.set()

    async def life(server, number):
        in_flight = {room: set() for room in rooms}  # sent, not yet acked
        first_ack = {room: asyncio.Event() for room in rooms}
        tasks = []
        for room in rooms:
            watcher = await joined(server, room, f"watch-{room}")
            author = await joined(server, room, f"send-{room}")
            tasks.append(asyncio.ensure_future(reader(watcher)))
            tasks.append(
                asyncio.ensure_future(
                    sender(author, room, number, in_flight[room], first_ack[room])))
        for room in rooms:  # both rooms under load
            await asyncio.wait_for(first_ack[room].wait(), timeout=20)
        await asyncio.sleep(rng.uniform(0.0, 1.0))  # somewhere in the sustained load
        server.proc.send_signal(signal.SIGKILL)
        server.wait()
        done, _ = await asyncio.wait(tasks, timeout=20)
        assert len(done) == len(tasks)
        for task in tasks:  # each ends when its connection drops, or with a failed check
            if isinstance(task.exception(), AssertionError):
                raise task.exception()
        for room in rooms:
            unacked[room].extend(in_flight[room])

    lives = 4
    for number in range(lives):
        server = RoomcastServer("--history-size", "1000000", data_dir=str(tmp_path)).start()
        try:
            before = len(acked)
            run(life(server, number), timeout=60)
            assert len(acked) > before, f"seed {seed}: life {number} got no ack"
        finally:
            server.stop()

    db = sqlite3.connect(os.path.join(tmp_path, "roomcast.db"))
    try:
        rows = db.execute("SELECT room, seq, message, client_id FROM messages").fetchall()
    finally:
        db.close()
    by_id = {}
    for room, seq, text, client_id in rows:
        assert client_id == text
        by_id.setdefault(client_id, []).append((room, seq))
    for room in rooms:  # one order per room: the numbering has no gap and no repeat
        assert sorted(seq for r, seq, _, _ in rows if r == room) == \
            list(range(1, 1 + sum(1 for r, *_ in rows if r == room))), f"seed {seed}"
    for text, (room, seq) in acked.items():
        assert by_id.get(text) == [(room, seq)], f"seed {seed}: acked {text} as {room} {seq}"
    stored = {(room, seq): text for room, seq, text, _ in rows}
    for (room, seq), text in shown.items():
        assert stored.get((room, seq)) == text, f"seed {seed}: {room} seq {seq} shown as {text!r}"


def test_sigterm_makes_everything_received_durable_before_exit(tmp_path):
    server = RoomcastServer(data_dir=str(tmp_path)).start()
    acked = {}

    async def send_then_term():
        ann = await joined(server, "term", "ann")
        for i in range(500):
            await ann.chat(f"m{i}", id=f"m{i}")
        _, skipped = await ann.recv_until(is_chat("term", "m499"), timeout=20)  # all received
        acked.update((m["id"], m["seq"]) for m in skipped if m["type"] == "ack")
        server.signal(signal.SIGTERM)
        while True:
            try:
                m = await ann.recv(timeout=10)
            except Exception:  # the server closed the connection (1001)
                break
            if m["type"] == "ack":
                acked[m["id"]] = m["seq"]

    try:
        run(send_then_term())
        assert server.wait() == 0
    finally:
        server.stop()
    assert len(acked) == 500  # flushed before the connections were closed
    with RoomcastServer(data_dir=str(tmp_path)) as server:
        assert history_seqs(server, "term") == list(range(1, 501))


def test_history_is_a_real_sqlite_file_in_wal_mode(tmp_path):
    with RoomcastServer(data_dir=str(tmp_path)) as server:
        async def body():
            ann = await joined(server, "file", "ann")
            await send_all_with_ids(ann, "file", ["x", "y"])
        run(body())
    db = sqlite3.connect(os.path.join(tmp_path, "roomcast.db"))
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = db.execute("SELECT room, seq, message, username FROM messages ORDER BY seq").fetchall()
        assert rows == [("file", 1, "x", "ann"), ("file", 2, "y", "ann")]
        # The schema's version (the store migrates older files, refuses newer ones).
        assert db.execute("PRAGMA user_version").fetchone() == (2,)
    finally:
        db.close()


def test_unusable_data_dir_is_a_clear_error_at_startup(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    proc = subprocess.run([binary_path(), "--port", "0", "--data-dir", str(blocker / "data")],
                          capture_output=True, text=True, timeout=10)
    assert proc.returncode == 1
    assert "data directory" in proc.stdout + proc.stderr


# --- retention -----------------------------------------------------------------------

def test_retention_by_count_on_disk_keeps_seq(tmp_path):
    with RoomcastServer("--history-size", "5", data_dir=str(tmp_path)) as server:
        async def body():
            ann = await joined(server, "trim", "ann")
            await send_all_with_ids(ann, "trim", [f"m{i}" for i in range(12)])
        run(body())
    with RoomcastServer("--history-size", "5", data_dir=str(tmp_path)) as server:
        status, body = http_json(server, "/api/rooms/trim/messages")
        assert status == 200 and body["last_seq"] == 12
        assert [m["seq"] for m in body["messages"]] == [8, 9, 10, 11, 12]
    db = sqlite3.connect(os.path.join(tmp_path, "roomcast.db"))
    try:
        assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 5
    finally:
        db.close()


def test_retention_by_age(make_server):
    server = make_server("--history-ttl", "1s")

    async def body():
        ann = await joined(server, "old", "ann")
        await send_all_with_ids(ann, "old", ["a", "b"])
        await asyncio.sleep(1.5)
        bob = await joined(server, "old", "bob", since=0)
        h = await bob.expect(is_type("history", "old"))
        assert h["messages"] == [] and h["recovered"] is False
        await ann.chat("c")
        assert (await ann.expect(is_chat("old", "c")))["seq"] == 3
    run(body())
    assert http_json(server, "/api/rooms/old/messages")[1]["messages"][0]["message"] == "c"


def test_memory_store_keeps_history_while_the_room_lives(make_server):
    server = make_server("--history-store", "memory")

    async def body():
        ann = await joined(server, "mem", "ann")
        acks = await send_all_with_ids(ann, "mem", ["p", "q"])
        assert acks == {"p": 1, "q": 2}
        bob = await joined(server, "mem", "bob")
        h = await bob.expect(is_type("history", "mem"))
        assert [m["message"] for m in h["messages"]] == ["p", "q"]
    run(body())
    assert not os.path.exists(os.path.join(server.data_dir, "roomcast.db"))


# --- bad input -----------------------------------------------------------------------

def test_bad_since_and_id_get_clear_errors_and_the_connection_stays(server):
    cases = [
        {"type": "join_room", "room": "x", "username": "ann", "since": "12"},
        {"type": "join_room", "room": "x", "username": "ann", "since": -1},
        {"type": "join_room", "room": "x", "username": "ann", "since": 1.5},
        {"type": "chat_message", "message": "hi", "id": ""},
        {"type": "chat_message", "message": "hi", "id": "x" * 65},
        {"type": "chat_message", "message": "hi", "id": 7},
    ]

    async def body():
        ann = await ChatClient.connect(server)
        for case in cases:
            await ann.send(case)
            error = await ann.expect_error()
            assert error["code"] == "invalid_field", (case, error)
            field = "since" if "since" in case else "id"
            assert f"'{field}'" in error["message"], (case, error)
        await ann.join("x", "ann")
        await ann.chat("y" * 10, id="y" * 64)  # the longest id is fine
        assert (await ann.expect(is_type("ack", "x")))["seq"] == 1
    run(body())


# --- HTTP API ------------------------------------------------------------------------

def test_http_history_pages_forward_and_returns_the_newest_by_default(server):
    async def body():
        ann = await joined(server, "my room", "ann")
        await send_all_with_ids(ann, "my room", [f"m{i}" for i in range(10)])
    run(body())
    status, page = http_json(server, "/api/rooms/my%20room/messages?limit=3")
    assert status == 200
    assert page["room"] == "my room" and page["last_seq"] == 10
    assert [m["seq"] for m in page["messages"]] == [8, 9, 10]
    assert all(set(m) == CHAT_FIELDS for m in page["messages"])
    status, page = http_json(server, "/api/rooms/my%20room/messages?since=4&limit=3")
    assert [m["seq"] for m in page["messages"]] == [5, 6, 7]
    status, page = http_json(server, "/api/rooms/my%20room/messages?since=10")
    assert status == 200 and page["messages"] == []
    status, page = http_json(server, "/api/rooms/nobody-here/messages")
    assert status == 200 and page == {"room": "nobody-here", "last_seq": 0, "messages": []}


def test_http_history_rejects_bad_parameters_with_a_clear_error(server):
    bad = {
        "/api/rooms/r/messages?since=abc": "'since'",
        "/api/rooms/r/messages?since=-1": "'since'",
        "/api/rooms/r/messages?since=": "'since'",
        "/api/rooms/r/messages?limit=0": "'limit'",
        "/api/rooms/r/messages?limit=1001": "'limit'",
        "/api/rooms/r/messages?limit=ten": "'limit'",
        "/api/rooms/%3Cscript%3E/messages": "'room'",
        "/api/rooms/" + "x" * 31 + "/messages": "'room'",
        "/api/rooms/%ZZ/messages": "room name",
    }
    for path, mention in bad.items():
        status, body = http_json(server, path)
        assert status == 400, (path, status, body)
        assert body["type"] == "error" and body["code"] == "invalid_field", (path, body)
        assert mention in body["message"], (path, body)
    assert http_json(server, "/api/rooms/r/messages?limit=1000")[0] == 200
