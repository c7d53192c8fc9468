"""Plain HTTP: every malformed or unanswerable request gets a definite status, static files
carry the right headers, and a client that never finishes its request is dropped."""

import socket
import time

import pytest

import rawws
from roomcast_server import RoomcastServer


@pytest.fixture(scope="module")
def server():
    with RoomcastServer("--handshake-timeout", "1s") as s:
        yield s


def exchange(server, raw):
    response, sock, _ = rawws.http_exchange(server.port, raw)
    sock.close()
    return response


def get(server, path, *headers):
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return exchange(server, "\r\n".join(lines).encode())


def test_a_garbage_request_line_gets_400(server):
    assert exchange(server, b"HELLO THERE\r\n\r\n").status == 400


def test_headers_over_16_kib_get_431(server):
    big = "X-Filler: " + "a" * (17 * 1024)
    assert get(server, "/healthz", big).status == 431


def test_a_body_over_64_kib_gets_413(server):
    body = b"x" * (65 * 1024)
    head = (f"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n"
            .encode())
    assert exchange(server, head + body).status == 413


def test_methods_other_than_get_and_head_get_405_with_allow(server):
    response = exchange(server, b"DELETE / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
    assert response.status == 405
    assert response.header("Allow") == "GET, HEAD"


def test_head_gets_the_headers_of_get_without_a_body(server):
    sock = rawws.open_tcp(server.port)
    try:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        response, rest = rawws.read_http_response(sock, read_body=False)
        assert response.status == 200
        assert int(response.header("Content-Length")) > 0
        assert response.header("Content-Type") == "text/html; charset=utf-8"
        sock.settimeout(0.5)
        try:
            rest += sock.recv(65536)
        except socket.timeout:
            pass
        assert rest == b"", "HEAD must not carry a body"
    finally:
        sock.close()


@pytest.mark.parametrize("path,content_type", [
    ("/", "text/html; charset=utf-8"),
    ("/app.js", "text/javascript; charset=utf-8"),
    ("/style.css", "text/css; charset=utf-8"),
    ("/roomcast.d.ts", "text/plain; charset=utf-8"),
])
def test_static_files_have_their_content_type_and_caching_headers(server, path, content_type):
    response = get(server, path)
    assert response.status == 200
    assert response.header("Content-Type") == content_type
    assert response.header("Cache-Control") == "no-cache"
    assert response.header("ETag")
    assert response.header("X-Content-Type-Options") == "nosniff"


def test_a_matching_if_none_match_gets_304_without_a_body(server):
    etag = get(server, "/app.js").header("ETag")
    response = get(server, "/app.js", f"If-None-Match: {etag}")
    assert response.status == 304
    assert response.body == b""


@pytest.mark.parametrize("path", ["/%2e%2e/README.md", "/%zz", "/a%00b", "/..\\README.md"])
def test_malformed_or_escaping_paths_get_400_or_404_never_a_file(server, path):
    assert get(server, path).status in (400, 404)


def test_a_websocket_upgrade_on_a_path_without_an_endpoint_gets_404(server):
    response = exchange(server, rawws.upgrade_request(server.port, path="/nowhere"))
    assert response.status == 404


def test_keep_alive_serves_several_requests_on_one_connection(server):
    sock = rawws.open_tcp(server.port)
    try:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            response, _ = rawws.read_http_response(sock)
            assert response.status == 200
    finally:
        sock.close()


def test_a_client_that_never_finishes_its_request_is_dropped(server):
    sock = rawws.open_tcp(server.port, timeout=5)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ... and never the blank line
        started = time.monotonic()
        assert sock.recv(65536) == b""  # the server hangs up (--handshake-timeout 1s)
        assert time.monotonic() - started < 4
    finally:
        sock.close()
    assert get(server, "/healthz").status == 200  # and goes on serving everyone else
