"""Clients for the saturated-server heartbeat test and bench (this module holds no tests).

Each runs in its own process (a busy room's traffic would otherwise cost the test's event
loop the time it needs to answer pings), speaks WebSocket by hand over a raw socket so it
sees every ping and how the connection ended, and reports one JSON line on stdout:

  python3 heartbeat_load_support.py PORT ROLE COUNT ROOM SECONDS

ROLE:
  idle    COUNT clients join ROOM-i (a room each) and only answer pings.
  reader  COUNT clients join ROOM (a busy room of the load) and read everything.
  probe   one client joins ROOM and sends a chat message every 50 ms, measuring the time
          until the server delivers it back (its round trip through the server).

Report: {"role", "clients": [{"opened", "pings", "ended", "close_code", "frames"}],
"rtts_ms": [...], "unanswered": probe messages not back by the end}, where "ended" is null (open at the end), "close" (the server sent a close frame) or
"dropped" (the connection ended without one: what the heartbeat's termination looks like).
"""

import json
import os
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawws import (OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, HttpResponse, build_frame,  # noqa: E402
                   check_upgrade, new_key, parse_frame, upgrade_request)


def connect(port):
    """A socket with the upgrade request sent; the answer is read by the client's loop, so
    clients already open keep answering pings while the others connect."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = new_key()
    sock.sendall(upgrade_request(port, key, path="/"))
    sock.setblocking(False)
    return sock, key


class Client:
    def __init__(self, port, on_open):
        self.sock, self.key = connect(port)
        self.on_open = on_open  # called once the upgrade is answered
        self.upgraded = False
        self.buffer = bytearray()
        self.out = bytearray()
        self.pings = 0
        self.frames = 0
        self.ended = None
        self.close_code = None
        self.texts = []  # kept only when asked (the probe)
        self.keep_texts = False

    def send(self, opcode, payload):
        # A zero mask key: clients must mask, any key will do, and this one costs nothing.
        self.out += build_frame(opcode, payload, mask_key=b"\0\0\0\0")
        self.write()

    def write(self):
        while self.out and self.ended is None:
            try:
                n = self.sock.send(self.out)
            except BlockingIOError:
                return
            except OSError:
                self.ended = "dropped"
                return
            del self.out[:n]

    def on_readable(self):
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            if self.ended is None:
                self.ended = "dropped"
            return
        self.buffer += data
        if not self.upgraded:
            if b"\r\n\r\n" not in self.buffer:
                return
            head, rest = bytes(self.buffer).split(b"\r\n\r\n", 1)
            try:
                check_upgrade(HttpResponse(head), self.key)
            except AssertionError as e:
                raise ConnectionError(f"upgrade refused: {e}") from None
            self.buffer = bytearray(rest)
            self.upgraded = True
            self.on_open(self)
        self.parse()

    def parse(self):
        buf = self.buffer
        pos = 0
        while (parsed := parse_frame(buf, pos)) is not None:
            frame, pos = parsed
            self.frames += 1
            if frame.opcode == OP_PING:
                self.pings += 1
                self.send(OP_PONG, frame.payload)
            elif frame.opcode == OP_CLOSE:
                self.close_code = frame.close_code
                if self.ended is None:
                    self.ended = "close"
            elif frame.opcode == OP_TEXT and self.keep_texts:
                self.texts.append(frame.payload)
        del buf[:pos]

    def join(self, room, username):
        self.send(OP_TEXT, json.dumps({"type": "join_room", "room": room,
                                   "username": username}).encode())


def pump(selector, clients, timeout):
    """Reads what arrived (answering pings) and writes what is pending, once."""
    for key, _ in selector.select(timeout=timeout):
        key.data.on_readable()
        if key.data.ended is not None:
            selector.unregister(key.fileobj)
    for c in clients:
        c.write()


def main():
    port, role, count, room, seconds = (int(sys.argv[1]), sys.argv[2], int(sys.argv[3]),
                                        sys.argv[4], float(sys.argv[5]))
    selector = selectors.DefaultSelector()
    clients = []
    for i in range(count):
        def join(c, i=i):
            c.join(f"{room}-{i}" if role == "idle" else room, f"{role}{i}-{os.getpid()}")
        clients.append(Client(port, join))
        selector.register(clients[-1].sock, selectors.EVENT_READ, clients[-1])
        pump(selector, clients, 0)
    probe = clients[0] if role == "probe" else None
    if probe:
        probe.keep_texts = True
    rtts, sent_at, next_send, seq = [], {}, time.monotonic() + 1.0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pump(selector, clients, 0.01)
        if probe and probe.upgraded and probe.ended is None:
            now = time.monotonic()
            if now >= next_send:
                tag = f"probe-{os.getpid()}-{seq}"
                sent_at[tag] = now
                probe.send(OP_TEXT, json.dumps({"type": "chat_message", "room": room,
                                            "message": tag}).encode())
                seq += 1
                next_send = now + 0.05
            for text in probe.texts:
                message = json.loads(text)
                tag = message.get("message")
                if message.get("type") == "chat_message" and tag in sent_at:
                    rtts.append((time.monotonic() - sent_at.pop(tag)) * 1000)
            probe.texts.clear()
    report = {"role": role,
              "clients": [{"opened": c.upgraded, "pings": c.pings, "ended": c.ended,
                           "close_code": c.close_code, "frames": c.frames} for c in clients],
              "rtts_ms": rtts, "unanswered": len(sent_at)}
    print(json.dumps(report), flush=True)
    for c in clients:
        c.sock.close()


if __name__ == "__main__":
    main()
