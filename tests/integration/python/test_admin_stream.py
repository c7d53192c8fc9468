"""The admin page's live figures (issue 17, item 5; docs/api.md): GET /api/stats/stream is a
text/event-stream of one `stats` event a second, the JSON of GET /api/stats, for the holder of
the API key only; read here over a raw socket, as the page's fetch reads it."""

import socket

import pytest

from api_support import API_KEY, EventStreamReader, expect_error, get, post
from roomcast_server import RoomcastServer
from test_chat_support import ChatClient, is_chat, run

STREAM = "/api/stats/stream"


@pytest.fixture(scope="module")
def server():
    with RoomcastServer("--api-key", API_KEY, "--threads", "2") as s:
        yield s


def refusal(server, headers):
    """The status and JSON body of a refused stream."""
    stream = EventStreamReader(server, STREAM, headers=headers)
    try:
        return stream.status, stream.body()
    finally:
        stream.close()


def test_no_figures_without_the_key(server):
    for headers, code in (({}, "api_key_required"), ({"X-API-Key": ""}, "api_key_required"),
                          ({"X-API-Key": "not-the-key"}, "invalid_api_key"),
                          ({"X-API-Key": API_KEY + "x"}, "invalid_api_key")):
        status, body = refusal(server, headers)
        assert status == 401, (headers, body)
        assert body["type"] == "error" and body["code"] == code, body
        assert "messages" not in str(body)


def test_only_get(server):
    message = expect_error(post(server, STREAM, {}), 405, "method_not_allowed")
    assert "GET" in message


def test_off_without_an_api_key():
    with RoomcastServer() as bare:
        stream = EventStreamReader(bare, STREAM, headers={"X-API-Key": "anything"})
        try:
            assert stream.status == 404
            assert stream.body()["code"] == "not_found"
        finally:
            stream.close()


def test_a_stats_event_a_second_that_follows_the_chat(server):
    stream = EventStreamReader(server, STREAM, headers={"X-API-Key": API_KEY}, timeout=10)
    try:
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream"
        assert stream.headers["cache-control"] == "no-store"
        first = stream.events(1, "stats")[0]
        # The shape of GET /api/stats, live rates included.
        assert set(first["data"]) >= {"connections_active", "live", "process", "build"}
        assert "id" not in first  # nothing to resume: the next second's figures replace it
        _, _, stats = get(server, "/api/stats", key=None)
        assert set(first["data"]) == set(stats)

        async def chat():
            a = await ChatClient.connect(server)
            await a.join("busy", "ann")
            for i in range(20):
                await a.chat(f"m{i}", room="busy")
            await a.expect(is_chat("busy", "m19"))
            return a

        run(chat())
        # Figures move: the next events show the messages and their rate (over the last 10 s).
        for _ in range(8):
            data = stream.events(1, "stats")[0]["data"]
            if data["live"]["messages_per_second"] > 0:
                break
        else:
            raise AssertionError(f"the stream never showed the chat: {data}")
        assert data["messages_received"] >= first["data"]["messages_received"] + 20
        assert data["deliveries"] >= first["data"]["deliveries"] + 20
        assert data["event_streams_active"] >= 1
    finally:
        stream.close()


def test_every_reader_gets_the_same_event(server):
    readers = [EventStreamReader(server, STREAM, headers={"X-API-Key": API_KEY}, timeout=10)
               for _ in range(4)]
    try:
        # The event is made once a second for all readers: opened together, they get the same
        # events (the same uptime to the millisecond), at most the first differing.
        seen = [{r_event["data"]["uptime_seconds"] for r_event in r.events(3, "stats")}
                for r in readers]
        assert set.intersection(*seen), seen
    finally:
        for r in readers:
            r.close()


def test_a_closed_reader_is_forgotten(server):
    stream = EventStreamReader(server, STREAM, headers={"X-API-Key": API_KEY}, timeout=10)
    stream.events(1, "stats")
    stream.sock.shutdown(socket.SHUT_RDWR)
    stream.close()
    # The server goes on; a new reader gets its events.
    again = EventStreamReader(server, STREAM, headers={"X-API-Key": API_KEY}, timeout=10)
    try:
        assert again.events(2, "stats")
    finally:
        again.close()
