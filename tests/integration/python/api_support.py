"""Shared helpers for the server API tests (test_api_*.py; this module holds no tests): HTTP
requests with and without the API key, through Python's own http.client."""

import http.client
import json

API_KEY = "test-api-key-0123456789abcdef"


def request(server, method, path, body=None, key=API_KEY, headers=None, raw=None, timeout=10):
    """(status, headers, parsed JSON body or the raw text) of one request on a fresh
    connection. `body` is sent as JSON; `raw` as it is."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        sent = dict(headers or {})
        if key is not None:
            sent["X-API-Key"] = key
        payload = None
        if raw is not None:
            payload = raw.encode() if isinstance(raw, str) else raw
        elif body is not None:
            payload = json.dumps(body).encode()
        if payload is not None:
            sent.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=payload, headers=sent)
        response = conn.getresponse()
        text = response.read().decode()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return response.status, dict(response.getheaders()), parsed
    finally:
        conn.close()


def post(server, path, body=None, **kwargs):
    return request(server, "POST", path, body, **kwargs)


def get(server, path, **kwargs):
    return request(server, "GET", path, **kwargs)


def expect_error(result, status, code):
    """Asserts `result` is an API error with `status` and `code`; returns its message."""
    got_status, headers, body = result
    assert got_status == status, (got_status, body)
    assert isinstance(body, dict) and body.get("type") == "error", body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    assert headers.get("Content-Type") == "application/json", headers
    return body["message"]
