"""RFC 6455 section 4: the opening handshake of ws://host:port/echo, byte by byte."""

import base64

import pytest

import rawws
from rawws import OP_TEXT, server_still_running  # noqa: F401  (autouse fixture)

echo_server = rawws.server_fixture("--echo-endpoint", name="echo_server")


def exchange(server, **kw):
    """Sends an upgrade request built with rawws.upgrade_request(**kw); returns
    (response, socket, leftover). The socket is closed by the test via `with`."""
    return rawws.http_exchange(server.port, rawws.upgrade_request(server.port, **kw))


def assert_not_switched(sock, leftover):
    """After a refused handshake the connection must not speak WebSocket: a masked text
    frame sent now is either ignored, answered as (bad) HTTP, or the server hangs up --
    but it is never echoed as a WebSocket frame."""
    try:
        sock.sendall(rawws.build_frame(OP_TEXT, b"hello"))
    except (BrokenPipeError, ConnectionResetError):
        return
    data = leftover
    sock.settimeout(1.0)
    try:
        while len(data) < 4096:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, OSError):
        pass
    assert data == b"" or data.startswith(b"HTTP/"), (
        f"server sent non-HTTP bytes after refusing the upgrade: {data[:80]!r}")
    assert b"\x81\x05hello" not in data, "server echoed a WebSocket frame after a refusal"


# --------------------------------------------------------------------------- success

def test_valid_upgrade_gets_101_with_upgrade_and_connection_headers(echo_server):
    response, sock, _ = exchange(echo_server)
    with sock:
        assert response.status == 101, response
        assert response.version == "HTTP/1.1"
        assert (response.header("Upgrade") or "").lower() == "websocket", response
        connection_tokens = [t.strip().lower()
                             for t in (response.header("Connection") or "").split(",")]
        assert "upgrade" in connection_tokens, response


def test_sec_websocket_accept_is_base64_sha1_of_key_and_guid(echo_server):
    key = rawws.new_key()
    response, sock, _ = exchange(echo_server, key=key)
    with sock:
        assert response.status == 101, response
        assert response.header("Sec-WebSocket-Accept") == rawws.accept_for(key)


def test_sec_websocket_accept_matches_the_rfc_worked_example(echo_server):
    # RFC 6455 section 1.3: key "dGhlIHNhbXBsZSBub25jZQ==" -> "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
    response, sock, _ = exchange(echo_server, key="dGhlIHNhbXBsZSBub25jZQ==")
    with sock:
        assert response.status == 101, response
        assert response.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_connection_is_usable_for_echo_after_handshake(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.echo(OP_TEXT, b"after handshake")


def test_connection_header_with_several_tokens_is_accepted(echo_server):
    response, sock, _ = exchange(echo_server, replace={"Connection": "keep-alive, Upgrade"})
    with sock:
        assert response.status == 101, response


def test_header_values_are_matched_case_insensitively(echo_server):
    key = rawws.new_key()
    response, sock, rest = exchange(echo_server, key=key,
                                    replace={"Upgrade": "WebSocket", "Connection": "UPGRADE"})
    with sock:
        assert response.status == 101, response
        assert response.header("Sec-WebSocket-Accept") == rawws.accept_for(key)
        ws = rawws.RawWebSocket(sock, rest)
        ws.echo(OP_TEXT, b"mixed case values")


def test_header_names_are_matched_case_insensitively(echo_server):
    key = rawws.new_key()
    response, sock, _ = exchange(echo_server, key=key, replace={
        "upgrade": "websocket", "CONNECTION": "Upgrade",
        "sec-websocket-key": key, "SEC-WEBSOCKET-VERSION": "13"})
    with sock:
        assert response.status == 101, response
        assert response.header("Sec-WebSocket-Accept") == rawws.accept_for(key)


# --------------------------------------------------------------------------- refusals

def test_missing_sec_websocket_key_gets_400(echo_server):
    response, sock, rest = exchange(echo_server, omit=["Sec-WebSocket-Key"])
    with sock:
        assert response.status == 400, response
        assert_not_switched(sock, rest)


@pytest.mark.parametrize("bad_key", [
    base64.b64encode(b"x" * 15).decode(),   # decodes to 15 bytes
    base64.b64encode(b"x" * 17).decode(),   # decodes to 17 bytes
    "not base64 at all!!!!!!",              # 24 characters, not base64
    "dGhlIHNhbXBsZSBub25jZQ",               # the RFC key without its padding
    "",                                     # empty value
], ids=["15-bytes", "17-bytes", "not-base64", "unpadded", "empty"])
def test_key_that_is_not_base64_of_16_bytes_gets_400(echo_server, bad_key):
    response, sock, rest = exchange(echo_server, key=bad_key)
    with sock:
        assert response.status == 400, response
        assert_not_switched(sock, rest)


def test_post_method_gets_400(echo_server):
    response, sock, rest = exchange(echo_server, method="POST", extra=[("Content-Length", "0")])
    with sock:
        assert response.status == 400, response
        assert_not_switched(sock, rest)


def test_http_1_0_gets_400(echo_server):
    response, sock, rest = exchange(echo_server, http_version="HTTP/1.0")
    with sock:
        assert response.status == 400, response
        assert_not_switched(sock, rest)


def test_missing_upgrade_header_gets_400(echo_server):
    response, sock, rest = exchange(echo_server, omit=["Upgrade"])
    with sock:
        assert response.status == 400, response
        assert_not_switched(sock, rest)


def test_upgrade_header_naming_another_protocol_gets_400(echo_server):
    response, sock, rest = exchange(echo_server, replace={"Upgrade": "h2c"})
    with sock:
        assert response.status == 400, response
        assert_not_switched(sock, rest)


def test_connection_header_without_upgrade_token_gets_400(echo_server):
    response, sock, rest = exchange(echo_server, replace={"Connection": "keep-alive"})
    with sock:
        assert response.status == 400, response
        assert_not_switched(sock, rest)


def test_connection_token_must_match_whole_not_substring(echo_server):
    response, sock, rest = exchange(echo_server, replace={"Connection": "keep-alive, upgraded"})
    with sock:
        assert response.status == 400, response
        assert_not_switched(sock, rest)


def test_missing_host_header_gets_400(echo_server):
    # Section 4.2.1 item 2 lists |Host| among the fields a valid handshake must carry.
    response, sock, rest = exchange(echo_server, omit=["Host"])
    with sock:
        assert response.status == 400, response
        assert_not_switched(sock, rest)


@pytest.mark.parametrize("name, values", [
    ("Origin", ["http://a.example", "http://b.example"]),
    ("Host", ["127.0.0.1", "evil.example"]),
    ("Sec-WebSocket-Version", ["13", "13"]),
])
def test_a_header_the_handshake_reads_once_given_twice_gets_400(echo_server, name, values):
    # Two values would be read differently by different readers (the first by one, the last
    # by another); RFC 6454 section 7.3: a user agent sends at most one Origin.
    response, sock, rest = exchange(echo_server, replace={name: values[0]},
                                    extra=[(name, values[1])])
    with sock:
        assert response.status == 400, response
        assert f"more than one {name}".encode() in response.body, response.body
        assert_not_switched(sock, rest)


def test_missing_connection_header_gets_400(echo_server):
    response, sock, rest = exchange(echo_server, omit=["Connection"])
    with sock:
        assert response.status == 400, response
        assert_not_switched(sock, rest)


def test_unsupported_version_gets_426_naming_version_13(echo_server):
    response, sock, rest = exchange(echo_server, replace={"Sec-WebSocket-Version": "8"})
    with sock:
        assert response.status == 426, response
        versions = [v.strip() for v in (response.header("Sec-WebSocket-Version") or "").split(",")]
        assert versions == ["13"], response
        assert_not_switched(sock, rest)


def test_missing_version_is_refused(echo_server):
    # Section 4.2.1 requires version 13; section 4.2.2 says a refusal uses "an appropriate
    # HTTP error code", so 400 and 426 are both acceptable here, 101 is not.
    response, sock, rest = exchange(echo_server, omit=["Sec-WebSocket-Version"])
    with sock:
        assert response.status in (400, 426), response
        assert_not_switched(sock, rest)


def test_server_still_accepts_handshakes_after_refusals(echo_server):
    for kw in ({"omit": ["Sec-WebSocket-Key"]}, {"replace": {"Sec-WebSocket-Version": "8"}}):
        response, sock, _ = exchange(echo_server, **kw)
        sock.close()
        assert response.status in (400, 426)
    with rawws.connect(echo_server) as ws:
        ws.echo(OP_TEXT, b"still serving")
