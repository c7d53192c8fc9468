"""TLS (issue 6): --tls-cert / --tls-key serve https:// and wss:// through OpenSSL. The test
makes a self-signed certificate with the openssl command line tool; clients verify it."""

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest
import websockets

from roomcast_server import RoomcastServer, binary_path
from security_support import make_certificate
from test_chat_support import is_chat, is_type


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """(cert, key, other_key) PEM paths: a self-signed certificate for 127.0.0.1/localhost."""
    d = tmp_path_factory.mktemp("tls")
    cert, key, other = d / "cert.pem", d / "key.pem", d / "other-key.pem"
    make_certificate(cert, key)
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-out", str(other)],
                   check=True, capture_output=True, timeout=30)
    return str(cert), str(key), str(other)


@pytest.fixture
def tls_server(certificate, make_server):
    cert, key, _ = certificate
    return make_server("--tls-cert", cert, "--tls-key", key, "--echo-endpoint")


def client_context(certificate):
    return ssl.create_default_context(cafile=certificate[0])


def https_get(server, certificate, path):
    url = f"https://127.0.0.1:{server.port}{path}"
    with urllib.request.urlopen(url, timeout=5, context=client_context(certificate)) as r:
        return r.status, r.headers, r.read()


def wss_url(server, path="/"):
    return f"wss://127.0.0.1:{server.port}{path}"


async def connect(server, certificate, path="/"):
    ws = await websockets.connect(wss_url(server, path), ssl=client_context(certificate),
                                  open_timeout=5, close_timeout=2, max_queue=None,
                                  max_size=None)
    return ws


async def recv_json(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def expect(ws, pred, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        m = await recv_json(ws, max(deadline - time.monotonic(), 0.01))
        if pred(m):
            return m


def test_https_serves_health_and_the_web_client(tls_server, certificate):
    status, _, body = https_get(tls_server, certificate, "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, headers, body = https_get(tls_server, certificate, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"<html" in body.lower()


def test_chat_over_wss(tls_server, certificate):
    async def body():
        ann, bob = await connect(tls_server, certificate), await connect(tls_server, certificate)
        for ws, name in ((ann, "ann"), (bob, "bob")):
            assert (await recv_json(ws))["type"] == "connection_established"
            await ws.send(json.dumps({"type": "join_room", "room": "secure", "username": name}))
            await expect(ws, is_type("system_message", "secure"))
        texts = [f"{i}:" + "x" * 480 for i in range(300)]  # many records, several per read
        for t in texts:
            await ann.send(json.dumps({"type": "chat_message", "message": t}))
        got = []
        while len(got) < len(texts):
            m = await expect(bob, is_type("chat_message", "secure"))
            got.append(m["message"])
        assert got == texts
        await ann.close()
        await bob.close()
    asyncio.run(asyncio.wait_for(body(), 30))


def test_large_messages_echo_intact_over_tls(tls_server, certificate):
    async def body():
        ws = await connect(tls_server, certificate, "/echo")
        for size in (1, 125, 126, 16383, 16384, 16385, 65536, 300_000, 1 << 20):
            payload = os.urandom(size)
            await ws.send(payload)
            assert await asyncio.wait_for(ws.recv(), 10) == payload, size
        await ws.close()
        assert ws.close_code == 1000
    asyncio.run(asyncio.wait_for(body(), 60))


def test_permessage_deflate_over_wss(tls_server, certificate):
    # websockets offers permessage-deflate by default: compressed frames inside TLS records,
    # both ways, for the chat and for /echo.
    async def body():
        ws = await connect(tls_server, certificate, "/echo")
        assert [e.name for e in ws.extensions] == ["permessage-deflate"]
        text = "compressible, " * 5000
        await ws.send(text)
        assert await asyncio.wait_for(ws.recv(), 10) == text
        await ws.close()
        ann, bob = await connect(tls_server, certificate), await connect(tls_server, certificate)
        for ws, name in ((ann, "ann"), (bob, "bob")):
            assert [e.name for e in ws.extensions] == ["permessage-deflate"]
            assert (await recv_json(ws))["type"] == "connection_established"
            await ws.send(json.dumps({"type": "join_room", "room": "squeeze", "username": name}))
            await expect(ws, is_type("system_message", "squeeze"))
        await ann.send(json.dumps({"type": "chat_message", "message": text[:490]}))
        m = await expect(bob, is_type("chat_message", "squeeze"))
        assert m["message"] == text[:490]
        await ann.close()
        await bob.close()
    asyncio.run(asyncio.wait_for(body(), 30))


def test_plain_http_and_garbage_on_the_tls_port_are_dropped_and_others_go_on(tls_server,
                                                                              certificate):
    for junk in (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(300)):
        with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as s:
            s.sendall(junk)
            s.settimeout(5)
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            assert b"HTTP/1.1 200" not in data  # no plaintext answer; the server hangs up
    assert https_get(tls_server, certificate, "/healthz")[0] == 200
    _, _, metrics = https_get(tls_server, certificate, "/metrics")
    line = [m for m in metrics.decode().splitlines()
            if m.startswith("roomcast_handshake_errors_total")][0]
    assert int(line.split()[-1]) >= 2


def test_a_client_that_never_says_hello_is_dropped_at_the_handshake_timeout(certificate,
                                                                            make_server):
    cert, key, _ = certificate
    server = make_server("--tls-cert", cert, "--tls-key", key, "--handshake-timeout", "500ms")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.settimeout(5)
        start = time.monotonic()
        assert s.recv(1) == b""  # closed by the server
        assert time.monotonic() - start < 4
    assert https_get(server, certificate, "/healthz")[0] == 200


def test_sigterm_closes_wss_clients_with_1001(tls_server, certificate):
    async def body():
        ws = await connect(tls_server, certificate)
        await recv_json(ws)
        tls_server.signal(signal.SIGTERM)
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1001
    asyncio.run(asyncio.wait_for(body(), 20))
    assert tls_server.wait() == 0


def test_bad_certificate_options_are_clear_errors_at_startup(certificate, tmp_path):
    cert, key, other = certificate

    def start(*args):
        return subprocess.run([binary_path(), "--port", "0", "--data-dir", str(tmp_path), *args],
                              capture_output=True, text=True, timeout=10)

    mismatch = start("--tls-cert", cert, "--tls-key", other)
    assert mismatch.returncode == 1
    assert "mismatch" in mismatch.stdout + mismatch.stderr

    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate")
    bad = start("--tls-cert", str(not_pem), "--tls-key", key)
    assert bad.returncode == 1
    assert "cannot load certificate" in bad.stdout + bad.stderr

    missing = start("--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", key)
    assert missing.returncode != 0
    assert "--tls-cert" in missing.stdout + missing.stderr

    alone = start("--tls-cert", cert)
    assert alone.returncode != 0
    assert "--tls-key" in alone.stdout + alone.stderr


def served_certificate(server):
    """The DER certificate a new TLS connection to `server` is given (not verified: the
    test compares it with the files instead)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True)


def der_of(cert):
    with open(cert) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def test_sighup_reloads_the_certificate_for_new_connections_and_keeps_bad_files_out(
        make_server, tmp_path):
    first, renewed, live = tmp_path / "first", tmp_path / "renewed", tmp_path / "live"
    for d in (first, renewed, live):
        d.mkdir()
    make_certificate(first / "cert.pem", first / "key.pem")
    make_certificate(renewed / "cert.pem", renewed / "key.pem")
    cert, key = live / "cert.pem", live / "key.pem"

    def install(source_cert, source_key):
        # As a renewal tool does: write aside, then rename over the live files.
        for source, target in ((source_cert, cert), (source_key, key)):
            (live / "next").write_bytes(source.read_bytes())
            os.replace(live / "next", target)

    install(first / "cert.pem", first / "key.pem")
    s = make_server("--tls-cert", str(cert), "--tls-key", str(key), "--echo-endpoint")
    assert served_certificate(s) == der_of(first / "cert.pem")

    async def body():
        # A connection made with the first certificate lives through every reload.
        ws = await connect(s, (str(first / "cert.pem"),), "/echo")
        await ws.send("before")
        assert await asyncio.wait_for(ws.recv(), 5) == "before"

        install(renewed / "cert.pem", renewed / "key.pem")
        s.signal(signal.SIGHUP)
        await asyncio.to_thread(s.wait_for_log, "SIGHUP: reloaded the TLS certificate")
        assert served_certificate(s) == der_of(renewed / "cert.pem")
        await ws.send("after the reload")
        assert await asyncio.wait_for(ws.recv(), 5) == "after the reload"

        # Bad files: not PEM, then a key that is not the certificate's. Each is refused,
        # logged, and the renewed certificate goes on serving.
        cert.write_text("not a certificate")
        s.signal(signal.SIGHUP)
        await asyncio.to_thread(s.wait_for_log, "new connections keep the previous certificate")
        assert "cannot load certificate" in s.log()
        assert served_certificate(s) == der_of(renewed / "cert.pem")
        install(first / "cert.pem", renewed / "key.pem")
        s.signal(signal.SIGHUP)
        await asyncio.to_thread(s.wait_for_log, "new connections keep the previous certificate",
                                2)
        assert "mismatch" in s.log()
        assert served_certificate(s) == der_of(renewed / "cert.pem")
        status, _, _ = https_get(s, (str(renewed / "cert.pem"),), "/healthz")
        assert status == 200
        await ws.send("after the bad files")
        assert await asyncio.wait_for(ws.recv(), 5) == "after the bad files"
        await ws.close()
    asyncio.run(asyncio.wait_for(body(), 60))
    assert s.proc.poll() is None
