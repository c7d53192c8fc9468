"""What an operator meets first (issue 12, item 4): flag values that make no sense are refused
at start with a message naming the flag; --host takes a host name; SIGHUP never stops the
server (the TLS reload itself is tested in test_tls.py)."""

import asyncio
import signal
import socket
import subprocess
import urllib.request

import pytest
import websockets

from roomcast_server import RoomcastServer, binary_path
from test_chat_support import ChatClient, run


def start(tmp_path, *args):
    """Runs the server with `args` (on loopback and a free port unless they say otherwise); a
    refused flag ends it at once."""
    defaults = [flag_value for flag, value in (("--host", "127.0.0.1"), ("--port", "0"))
                if flag not in args for flag_value in (flag, value)]
    return subprocess.run([binary_path(), *defaults, "--data-dir", str(tmp_path / "data"),
                           *args], capture_output=True, text=True, timeout=10)


@pytest.mark.parametrize("args,flag,why", [
    (["--allowed-origins"], "--allowed-origins", "missing"),
    (["--allowed-origins", ""], "--allowed-origins", "empty"),
    (["--allowed-origins", "https://a.example,"], "--allowed-origins", "empty"),
    (["--allowed-origins", ",https://a.example"], "--allowed-origins", "empty"),
    (["--allowed-origins", "https://a.example/"], "--allowed-origins", "trailing slash"),
    (["--allowed-origins", "https://a.example/chat"], "--allowed-origins", "path"),
    (["--allowed-origins", "chat.example.com"], "--allowed-origins", "scheme"),
    (["--allowed-origins", "https://a.example:99999"], "--allowed-origins", "port"),
    (["--allowed-origins", "*"], "--allowed-origins", "scheme"),
    (["--port", "65536"], "--port", ""),
    (["--port", "-1"], "--port", ""),
    (["--threads", "65"], "--threads", ""),
    (["--host", ""], "--host", "empty"),
    (["--ping-interval", "0"], "--ping-interval", "more than 0"),
    (["--idle-timeout", "0s"], "--idle-timeout", "more than 0"),
    (["--idle-timeout", "10s"], "--idle-timeout", "more than --ping-interval"),
    (["--ping-interval", "2s", "--idle-timeout", "2s"], "--idle-timeout",
     "more than --ping-interval"),
    (["--handshake-timeout", "0ms"], "--handshake-timeout", "more than 0"),
    (["--storage-refuse-after", "0"], "--storage-refuse-after", "more than 0"),
    (["--storage-refuse-after", "5x"], "--storage-refuse-after", "unknown unit"),
    (["--rate-limit-window", "0"], "--rate-limit-window", "--rate-limit-messages 0"),
    (["--rate-limit-signals-window", "0"], "--rate-limit-signals-window",
     "--rate-limit-signals 0"),
    (["--max-message-size", "0"], "--max-message-size", "at least 1"),
    (["--max-queued-bytes", "0"], "--max-queued-bytes", "at least 1"),
    (["--max-rooms-per-connection", "-1"], "--max-rooms-per-connection", "not be negative"),
    (["--history-size", "-3"], "--history-size", "not be negative"),
    (["--max-connections-per-ip", "-1"], "--max-connections-per-ip", "not be negative"),
    (["--app-events", "chat_message"], "--app-events", "a message type of the chat protocol"),
    (["--app-events", "doc:forever"], "--app-events", "unknown option 'forever'"),
    (["--app-events", "doc:durable:ephemeral"], "--app-events", "contradicts"),
    (["--max-event-bytes", "0"], "--max-event-bytes", "at least 1"),
    (["--max-binary-bytes", "-1"], "--max-binary-bytes", "not be negative"),
])
def test_a_bad_flag_value_is_refused_with_a_message_naming_the_flag(tmp_path, args, flag, why):
    done = start(tmp_path, *args)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output  # a usage error, whichever check refused it
    assert flag in output, output
    assert why in output, output
    assert "listening" not in output, output


def test_an_unresolvable_host_is_a_clear_error(tmp_path):
    done = start(tmp_path, "--host", "no-such-host.invalid")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "cannot resolve --host 'no-such-host.invalid'" in output, output


def test_good_origins_are_accepted_and_enforced(make_server):
    s = make_server("--allowed-origins", "https://chat.example.com,http://[::1]:8080")

    async def body():
        ok = await websockets.connect(s.ws_url, origin="https://chat.example.com",
                                      open_timeout=5)
        await ok.close()
        with pytest.raises(websockets.InvalidStatusCode) as refused:
            await websockets.connect(s.ws_url, origin="https://evil.example", open_timeout=5)
        assert refused.value.status_code == 403
    run(body())


def test_host_localhost_listens_on_every_address_of_the_name(make_server):
    s = make_server(host="localhost")
    with urllib.request.urlopen(f"http://127.0.0.1:{s.port}/healthz", timeout=5) as r:
        assert r.status == 200

    async def body():
        c = await ChatClient.connect(s)  # ws://127.0.0.1:PORT
        await c.join("general", "alice")
        await c.chat_roundtrip("general", "over 127.0.0.1")
        await c.close()
    run(body())

    resolved = {info[4][0] for info in socket.getaddrinfo("localhost", s.port,
                                                          type=socket.SOCK_STREAM)}
    if "::1" in resolved and socket.has_ipv6:
        try:
            probe = socket.create_connection(("::1", s.port), timeout=5)
        except OSError as e:
            # IPv6 may be off here even though the name has ::1: then the server skipped it.
            assert "cannot listen on ::1" in s.log(), (e, s.log())
        else:
            probe.close()
            with urllib.request.urlopen(f"http://[::1]:{s.port}/healthz", timeout=5) as r:
                assert r.status == 200


def test_sighup_is_logged_and_ignored_without_tls(make_server):
    s = make_server()

    async def body():
        c = await ChatClient.connect(s)
        await c.join("general", "alice")
        await c.chat_roundtrip("general", "before")
        for n in (1, 2):  # the handler re-arms: a second SIGHUP is no different
            s.signal(signal.SIGHUP)
            await asyncio.to_thread(s.wait_for_log, "SIGHUP: nothing to reload", n)
            await c.chat_roundtrip("general", f"after SIGHUP {n}")
        assert s.proc.poll() is None
        with urllib.request.urlopen(s.http_url + "/healthz", timeout=5) as r:
            assert r.status == 200
        late = await ChatClient.connect(s)
        await late.join("general", "bob")
        await late.chat_roundtrip("general", "new connections too")
        await late.close()
        await c.close()
    run(body())
    # ...and the drain on SIGTERM still works as before.
    s.signal(signal.SIGTERM)
    assert s.wait() == 0
