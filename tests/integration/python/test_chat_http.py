"""The plain HTTP side of the chat server: health, metrics, stats, the web client, and
nothing else."""

import json
import socket
import urllib.error
import urllib.request

import pytest


def get(server, path):
    """(status, headers, body) for GET path; HTTP errors are answers, not exceptions."""
    try:
        with urllib.request.urlopen(server.http_url + path, timeout=5) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def raw_get(server, target):
    """Sends the request line exactly as given (no client-side path normalization)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                  "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b"\r\n", 1)[0].split()[1])
    return status, body


def test_healthz_is_200(server):
    status, _, _ = get(server, "/healthz")
    assert status == 200


def test_metrics_is_200_text_with_active_connections_gauge(server):
    status, headers, body = get(server, "/metrics")
    assert status == 200
    assert headers.get_content_type().startswith("text/")
    assert "roomcast_connections_active" in body.decode()


def test_api_stats_is_a_json_object(server):
    status, headers, body = get(server, "/api/stats")
    assert status == 200
    assert headers.get_content_type() == "application/json"
    assert isinstance(json.loads(body), dict)


def test_root_serves_the_html_web_client(server):
    status, headers, body = get(server, "/")
    assert status == 200
    assert headers.get_content_type() == "text/html"
    assert body.strip()


def test_unknown_path_is_404(server):
    status, _, _ = get(server, "/nonexistent")
    assert status == 404


@pytest.mark.parametrize("target", ["/../../etc/passwd", "/../../../../../../etc/passwd",
                                    "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd",
                                    "/static/../../etc/passwd"])
def test_path_traversal_is_refused_and_never_serves_the_file(server, target):
    status, body = raw_get(server, target)
    assert status in (400, 404)
    assert b"root:" not in body
