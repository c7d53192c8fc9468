"""Limits with clear answers: connections in total and per address (503 before the upgrade),
rooms per connection (error too_many_rooms), the Origin allow-list (403), maximum JSON depth,
and running out of file descriptors (the accept loop backs off without spinning). Each test
also shows that the server goes on serving everyone else."""

import asyncio
import json
import os
import resource
import socket
import time
import urllib.request

import pytest

from roomcast_server import RoomcastServer
from security_support import expect_http_refusal
from test_chat_support import ChatClient, run


async def chatting(server, name, room="general", **connect_kwargs):
    c = await ChatClient.connect(server, **connect_kwargs)
    await c.join(room, name)
    await c.chat_roundtrip(room, f"{name} is here")
    return c


def test_over_max_connections_the_handshake_gets_503_and_the_others_chat_on(make_server):
    server = make_server("--max-connections", "3")

    async def body():
        clients = [await chatting(server, f"user{i}") for i in range(3)]
        refused = await expect_http_refusal(server, 503)
        assert refused.headers.get("Retry-After") == "5"
        for c in clients:
            await c.chat_roundtrip("general", "still chatting")
        # Plain HTTP is not a WebSocket: still answered.
        with urllib.request.urlopen(server.http_url + "/healthz", timeout=5) as response:
            assert response.status == 200
        # A slot frees up when someone leaves.
        await clients[0].close()
        deadline = time.monotonic() + 5
        while True:
            try:
                await chatting(server, "newcomer")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
    run(body())


def test_over_max_connections_per_ip_only_that_address_is_refused(make_server):
    server = make_server("--max-connections-per-ip", "2")

    async def body():
        mine = [await chatting(server, f"local{i}") for i in range(2)]
        await expect_http_refusal(server, 503)
        # Another address (Linux routes all of 127/8 to loopback) is not affected.
        other = await chatting(server, "elsewhere", local_addr=("127.0.0.2", 0))
        for c in mine + [other]:
            await c.chat_roundtrip("general", "fine")
    run(body())


def test_over_max_rooms_per_connection_a_join_is_an_error(make_server):
    server = make_server("--max-rooms-per-connection", "2")

    async def body():
        c = await chatting(server, "alice", room="one")
        await c.join("two")
        await c.send({"type": "join_room", "room": "three"})
        err = await c.expect_error()
        assert err["code"] == "too_many_rooms"
        bob = await chatting(server, "bob", room="three")  # the room itself is fine
        await c.chat_roundtrip("one", "still in one")
        await c.send({"type": "leave_room", "room": "one"})
        await c.join("three")
        await bob.expect(lambda m: m.get("message") == "alice joined the chat")
    run(body())


def test_an_upgrade_from_an_origin_not_allowed_gets_403(make_server):
    server = make_server("--allowed-origins", "https://chat.example.com,http://localhost:3000")

    async def body():
        good = await chatting(server, "good", origin="https://chat.example.com")
        other = await chatting(server, "local", origin="http://localhost:3000")
        await expect_http_refusal(server, 403, origin="https://evil.example.net")
        await expect_http_refusal(server, 403, origin="null")
        # Non-browser clients send no Origin: cross-site rules do not apply to them.
        no_origin = await chatting(server, "cli")
        for c in (good, other, no_origin):
            await c.chat_roundtrip("general", "fine")
    run(body())


def test_by_default_every_origin_is_allowed(server):
    async def body():
        await chatting(server, "anyone", origin="https://anywhere.example")
    run(body())


def test_json_nested_deeper_than_the_limit_is_an_error_and_the_connection_works_on(server):
    async def body():
        c = await chatting(server, "alice")
        deep = '{"type":"chat_message","message":"x","extra":' + "[" * 100 + "]" * 100 + "}"
        await c.send(deep)
        assert (await c.expect_error())["code"] == "invalid_json"
        await c.chat_roundtrip("general", "still here")
    run(body())


def limit_descriptors():
    """Runs in the server's child process: few descriptors, so accept() meets EMFILE."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_the_accept_loop_backs_off_and_resumes():
    with RoomcastServer("--threads", "1", preexec_fn=limit_descriptors) as server:
        async def body():
            first = await chatting(server, "first")
            # Fill every descriptor with idle TCP connections.
            hogs = []
            for _ in range(60):
                s = socket.create_connection(("127.0.0.1", server.port), timeout=2)
                hogs.append(s)
            await asyncio.sleep(0.5)
            # While accept() fails, the server must not spin a core.
            before = cpu_seconds(server.proc.pid)
            await asyncio.sleep(1.0)
            used = cpu_seconds(server.proc.pid) - before
            assert used < 0.5, f"server used {used:.2f} s of CPU in 1 s while out of descriptors"
            await first.chat_roundtrip("general", "existing connections keep working")
            assert "accept failed" in server.log()
            # Free the descriptors: the server accepts again.
            for s in hogs:
                s.close()
            deadline = time.monotonic() + 10
            while True:
                try:
                    await chatting(server, "after")
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
        run(body(), timeout=40)


def test_silent_and_slow_handshakes_are_dropped_while_chat_goes_on(make_server):
    server = make_server("--handshake-timeout", "1s")

    async def body():
        chatter = await chatting(server, "chatter")
        silent = [socket.create_connection(("127.0.0.1", server.port), timeout=5)
                  for _ in range(50)]
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        slow.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")  # unfinished
        started = time.monotonic()
        for i in range(5):
            await chatter.chat_roundtrip("general", f"still chatting {i}")
            await asyncio.sleep(0.1)

        def hung_up(s):
            s.settimeout(max(0.1, started + 4 - time.monotonic()))
            return s.recv(1) == b""
        loop = asyncio.get_running_loop()
        for s in silent + [slow]:
            assert await loop.run_in_executor(None, hung_up, s)
            s.close()
        assert time.monotonic() - started < 4
        await chatter.chat_roundtrip("general", "after the sweep")
    run(body())
