"""Shared helpers for the test_security_*.py integration tests (this module holds no tests):
JSON Web Tokens made with PyJWT (Debian python3-jwt), and connections that expect a refusal.
"""

import asyncio
import subprocess
import time

import jwt
import websockets

SECRET = "integration-test-secret-0123456789"


def make_certificate(cert, key):
    """Writes a new self-signed certificate for 127.0.0.1/localhost and its key (PEM), with
    the openssl command line tool."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=30)


def make_token(sub="user-1", name="alice", expires_in=3600, key=SECRET, algorithm="HS256",
               headers=None, **claims):
    """A signed JWT; pass sub=None or name=None to leave the claim out."""
    payload = {"exp": int(time.time()) + expires_in, **claims}
    if sub is not None:
        payload["sub"] = sub
    if name is not None:
        payload["name"] = name
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def unsigned_token(**claims):
    """A token with "alg": "none" and no signature."""
    payload = {"sub": "user-1", "name": "alice", "exp": int(time.time()) + 3600, **claims}
    return jwt.encode(payload, None, algorithm="none")


async def expect_close(server, path="/", code=4001, reason=None, timeout=5, **connect_kwargs):
    """Connects (the upgrade must succeed) and waits for the server to close with `code`."""
    ws = await websockets.connect(server.ws_url + path, open_timeout=5, close_timeout=2,
                                  **connect_kwargs)
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as closed:
        assert closed.code == code, (closed.code, closed.reason)
        if reason is not None:
            assert closed.reason == reason, closed.reason
        return closed
    finally:
        ws.transport.abort()


async def expect_http_refusal(server, status, path="/", **connect_kwargs):
    """Attempts an upgrade that the server must answer with HTTP `status`."""
    try:
        ws = await websockets.connect(server.ws_url + path, open_timeout=5, **connect_kwargs)
    except websockets.InvalidStatusCode as refused:
        assert refused.status_code == status, refused.status_code
        return refused
    ws.transport.abort()
    raise AssertionError(f"the upgrade succeeded; expected HTTP {status}")
