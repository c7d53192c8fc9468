"""A client that stops reading is closed with 1008 once more than --max-queued-bytes wait
for it, the close is counted in /metrics, and everyone else keeps every message."""

import json
import re
import struct
import time
import urllib.request

import rawws
from roomcast_server import RoomcastServer

FLOOD = 60_000  # at most ~28 MB to the stalled reader: more than kernel buffers absorb
CHUNK = 500  # the sender waits for each chunk's echo, so it never floods itself
QUEUE_LIMIT = 262_144


def masked_text_frame(text):
    """A client text frame with an all-zero mask key: masked as RFC 6455 requires, and
    cheap to build sixty thousand times."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, 0x80 | n)
    else:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    return header + b"\0\0\0\0" + payload


class FrameScanner:
    """Splits server frames (unmasked) out of a byte stream without copying it around."""

    def __init__(self):
        self.buf = bytearray()
        self.pos = 0

    def feed(self, data):
        self.buf += data
        frames = []
        while True:
            avail = len(self.buf) - self.pos
            if avail < 2:
                break
            b0, b1 = self.buf[self.pos], self.buf[self.pos + 1]
            n, head = b1 & 0x7F, 2
            if n == 126:
                if avail < 4:
                    break
                n, head = struct.unpack_from("!H", self.buf, self.pos + 2)[0], 4
            elif n == 127:
                if avail < 10:
                    break
                n, head = struct.unpack_from("!Q", self.buf, self.pos + 2)[0], 10
            if avail < head + n:
                break
            start = self.pos + head
            frames.append((b0 & 0x0F, bytes(self.buf[start:start + n])))
            self.pos = start + n
        if self.pos > 1 << 20:  # compact now and then, not per frame
            del self.buf[:self.pos]
            self.pos = 0
        return frames


def join(ws, username):
    ws.send_raw(masked_text_frame(json.dumps(
        {"type": "join_room", "room": "flood", "username": username})))


def metric(server, name):
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    match = re.search(rf"^{name} (\d+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return int(match.group(1))


def test_a_client_that_stops_reading_is_closed_with_1008_and_counted():
    with RoomcastServer("--max-queued-bytes", str(QUEUE_LIMIT), "--log-level", "debug") as server:
        slow = rawws.connect(server, path="/", timeout=60)
        join(slow, "slow")  # ... and then never reads until the flood is over
        fast = rawws.connect(server, path="/", timeout=60)
        join(fast, "fast")

        # The sender reads everything it is sent, so it is never the slow one.
        fast_frames = FrameScanner()
        seen = 0

        # Both joins are answered before the flood: messages sent behind a join whose room
        # is still loading wait only up to a bound (256), and the flood must not meet it.
        fast.sock.settimeout(30)
        members = set()
        while members != {"slow", "fast"}:
            data = fast.sock.recv(1 << 16)
            assert data, "the server closed the client that keeps up"
            for opcode, payload in fast_frames.feed(data):
                message = json.loads(payload) if opcode == 0x1 else {}
                if message.get("type") == "user_list":
                    members = {u["username"] for u in message["users"]}

        def read_own_chats(until):
            nonlocal seen
            while seen < until:
                data = fast.sock.recv(1 << 20)
                assert data, "the server closed the client that keeps up"
                for opcode, payload in fast_frames.feed(data):
                    if opcode == 0x1 and payload.startswith(b'{"type":"chat_message"'):
                        seen += 1

        frame = masked_text_frame(json.dumps({"type": "chat_message", "message": "x" * 400}))
        fast.sock.settimeout(30)
        sent = 0
        while sent < FLOOD and metric(server, "roomcast_slow_consumer_closes_total") == 0:
            fast.send_raw(frame * CHUNK)
            sent += CHUNK
            read_own_chats(sent)
        assert seen == sent, "a client that keeps up must lose nothing"
        assert sent < FLOOD, "the stalled client was never closed"

        # The stalled client reads again at once, within the server's --close-timeout (2 s)
        # for the closing handshake: what it was sent, then the server's 1008.
        scanner, close_code = FrameScanner(), None
        slow.sock.settimeout(30)
        deadline = time.monotonic() + 60
        while close_code is None and time.monotonic() < deadline:
            data = slow.sock.recv(1 << 20)
            if not data:
                break
            for opcode, payload in scanner.feed(data):
                if opcode == 0x8:
                    close_code = struct.unpack("!H", payload[:2])[0]
                    assert b"Slow consumer" in payload[2:], payload
        assert close_code == 1008
        assert metric(server, "roomcast_slow_consumer_closes_total") == 1
        # At debug, the close is logged with the connection and its peer.
        server.wait_for_log("closed as a slow consumer (1008): send queue over "
                            f"{QUEUE_LIMIT} bytes")
        assert re.search(r"connection [0-9a-f]+ from 127\.0\.0\.1:\d+: closed as a slow "
                         r"consumer", server.log()), server.log()

        # The room goes on without the slow member.
        fast.send_raw(masked_text_frame(json.dumps(
            {"type": "chat_message", "message": "still here"})))
        fast.sock.settimeout(10)
        got = []
        while not any(b"still here" in payload for _, payload in got):
            data = fast.sock.recv(65536)
            assert data, "the server closed the client that kept up"
            got += fast_frames.feed(data)
