"""Peers that vanish while the server is writing to them (a TCP reset in the middle of a
fan-out) cost the server that connection and nothing else: it keeps running and serving."""

import json
import socket
import struct
import time
import urllib.request

import rawws
from roomcast_server import RoomcastServer


def masked_text_frame(text):
    payload = text.encode()
    n = len(payload)
    header = struct.pack("!BB", 0x81, 0x80 | n) if n < 126 else struct.pack("!BBH", 0x81, 0xFE, n)
    return header + b"\0\0\0\0" + payload


def join(ws, username):
    ws.send_raw(masked_text_frame(json.dumps(
        {"type": "join_room", "room": "resets", "username": username})))


def reset(ws):
    """Closes with an RST instead of a FIN: the server's next write to it fails with EPIPE."""
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.sock.close()


def test_the_server_survives_peers_that_vanish_while_it_writes_to_them():
    # More peers vanish at once than one epoll batch reports (256), so the server writes to
    # some of them again after their side is gone: EPIPE, which must not be a SIGPIPE.
    with RoomcastServer() as server:
        sender = rawws.connect(server, path="/", timeout=30)
        join(sender, "sender")
        flood = masked_text_frame(json.dumps({"type": "chat_message", "message": "x" * 300})) * 200
        for round_ in range(3):
            victims = [rawws.connect(server, path="/", timeout=30) for _ in range(600)]
            for i, victim in enumerate(victims):
                join(victim, f"v{round_}-{i}")
            sender.send_raw(flood)
            for i, victim in enumerate(victims):
                if i % 2:
                    reset(victim)
                else:
                    victim.sock.close()
            sender.send_raw(flood)
            # The sender keeps up with its own copies, so it is never the slow one.
            sender.sock.settimeout(0.5)
            try:
                while sender.sock.recv(1 << 20):
                    pass
            except socket.timeout:
                pass
            assert server.proc.poll() is None, f"roomcast died: exit {server.proc.returncode}"
        time.sleep(0.2)
        assert server.proc.poll() is None, f"roomcast died: exit {server.proc.returncode}"
        with urllib.request.urlopen(server.http_url + "/healthz", timeout=5) as r:
            assert r.status == 200
