"""Backpressure instead of refusal (issue 19): a sender whose messages wait for the store (its
join's room still loading, or a room with too many messages in flight) is no longer read until
the store catches up. Nothing is refused, nothing is lost, and the acks come in order. The
server is the real binary with its default SQLite history (fsync per group commit), the client
raw sockets, so the server reads as much of a burst at once as the kernel hands it."""

import json
import threading
import time
import urllib.request

import rawws
from cluster_support import metric
from roomcast_server import RoomcastServer

WAIT = 60  # seconds for any one frame from the server: a loaded machine's fsyncs are slow


def chat_frame(room, i):
    text = json.dumps({"type": "chat_message", "room": room, "message": f"m{i}", "id": f"m{i}"})
    # An all-zero mask key: masked as RFC 6455 requires, and cheap to build by the thousand.
    return rawws.build_frame(rawws.OP_TEXT, text, mask_key=b"\0\0\0\0")


def join_frame(room, name):
    text = json.dumps({"type": "join_room", "room": room, "username": name})
    return rawws.build_frame(rawws.OP_TEXT, text, mask_key=b"\0\0\0\0")


def sender(ws, pieces):
    """Writes `pieces` in order, on a thread of its own: a held sender's writes block until
    the server reads again, while the test goes on reading the acks.

    Not sendall(): the socket's timeout is the reader's (settimeout applies to the socket,
    not the thread), and sendall() gives up on the whole piece once that much time has passed,
    part-way through a frame, when a slow build's store holds the sender longer. send() waits
    at most the timeout for room and either writes some bytes or none, so it can wait again."""
    def write():
        deadline = time.monotonic() + 10 * WAIT
        for piece in pieces:
            rest = memoryview(piece)
            while rest:
                try:
                    rest = rest[ws.sock.send(rest):]
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def acks_in_order(ws, room, count, writer=None):
    """Reads until `count` acks of `room` have come; fails on any error. Returns the acks.
    `writer`: the thread writing to `ws` (sender()); pings are answered once it is done."""
    acks = []
    while len(acks) < count:
        frame = ws.recv_frame(timeout=WAIT)
        if frame.opcode == rawws.OP_PING:
            # While the writer writes, what it sends shows the client alive (and a pong now
            # could land inside one of its frames); after that, answered as any client does.
            if writer is None or not writer.is_alive():
                ws.send_frame(rawws.OP_PONG, frame.payload)
            continue
        assert frame.opcode == rawws.OP_TEXT, frame
        m = json.loads(frame.payload)
        assert m["type"] != "error", f"after {len(acks)} acks: {m}"
        if m["type"] == "ack" and m["room"] == room:
            acks.append(m)
    return acks


def check_acks(acks, first_seq=1):
    assert [a["id"] for a in acks] == [f"m{i}" for i in range(len(acks))]
    assert [a["seq"] for a in acks] == list(range(first_seq, first_seq + len(acks)))


def test_a_burst_behind_a_join_is_held_not_refused_and_all_of_it_is_acked_in_order(tmp_path):
    count = 3000
    with RoomcastServer(data_dir=str(tmp_path)) as server:
        ws = rawws.connect(server, path="/")
        ws.timeout = WAIT
        frames = [chat_frame("burst", i) for i in range(count)]
        # The join and 600 messages in one write of under 64 KiB: the server reads them in one
        # go, before the room's load can be answered, so more than the 256 a join may have
        # waiting behind it (HubOptions::max_parked_messages) arrive while it waits.
        first = join_frame("burst", "ann") + b"".join(frames[:600])
        assert len(first) < 64 << 10
        writes = sender(ws, [first, b"".join(frames[600:])])
        acks = acks_in_order(ws, "burst", count, writes)
        writes.join(timeout=WAIT)
        check_acks(acks)
        assert metric(server, "roomcast_reads_held_total") >= 1  # held, at least once
        # The connection still works, and what was held is stored once, in order.
        ws.send_frame(rawws.OP_TEXT, json.dumps(
            {"type": "chat_message", "room": "burst", "message": "after", "id": "after"}))
        assert acks_in_order(ws, "burst", 1)[0]["seq"] == count + 1
        ws.sock.close()
    # After a restart: every message stored once, with the seq its ack gave.
    with RoomcastServer(data_dir=str(tmp_path)) as server:
        url = f"{server.http_url}/api/rooms/burst/messages?since={count - 100}&limit=1000"
        with urllib.request.urlopen(url, timeout=WAIT) as r:
            body = json.loads(r.read())
        assert body["last_seq"] == count + 1
        assert [(m["seq"], m["message"]) for m in body["messages"]] == (
            [(i + 1, f"m{i}") for i in range(count - 100, count)] + [(count + 1, "after")])


def test_a_flood_faster_than_the_store_commits_is_acked_once_in_order_and_none_refused(tmp_path):
    count = 25_000  # past the 10,000 a room may have in flight (Hub::kMaxInFlight)
    with RoomcastServer(data_dir=str(tmp_path)) as server:
        clients = []
        for name in ("ann", "bob"):
            ws = rawws.connect(server, path="/")
            ws.timeout = WAIT
            ws.send_raw(join_frame("flood", name))
            while json.loads(ws.recv_frame(timeout=WAIT).payload).get("message") != "Welcome to flood!":
                pass
            clients.append(ws)
        # Each sends its own ids (the resend key is per sender), as fast as the socket takes,
        # and each reads on a thread of its own: both get every message of the room.
        writes = [sender(ws, [b"".join(chat_frame("flood", i) for i in range(count))])
                  for ws in clients]
        results = [None, None]

        def read(k):
            try:
                results[k] = acks_in_order(clients[k], "flood", count, writes[k])
            except BaseException as e:  # reported by the main thread
                results[k] = e
        readers = [threading.Thread(target=read, args=(k,), daemon=True) for k in (0, 1)]
        for thread in readers:
            thread.start()
        for thread in readers + writes:
            thread.join(timeout=10 * WAIT)
        seqs = []
        for acks in results:
            assert isinstance(acks, list), acks
            assert [a["id"] for a in acks] == [f"m{i}" for i in range(count)]
            mine = [a["seq"] for a in acks]
            assert mine == sorted(mine)  # a sender's messages keep their order
            seqs += mine
        # One order for the room: every seq given once, none skipped.
        assert sorted(seqs) == list(range(1, 2 * count + 1))
        for ws in clients:
            ws.sock.close()
