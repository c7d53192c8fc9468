"""Long-polling (issue 16, item 3; docs/api.md): GET /api/rooms/{room}/poll?since=&timeout=
answers as soon as the room has something after `since`, or with an empty list when the wait
ends; bounded per user; authorised like a join. Read with Python's http.client."""

import threading
import time

import pytest

from api_support import API_KEY, expect_error, get, post
from roomcast_server import RoomcastServer
from security_support import SECRET, make_token


def publish(server, room, text):
    status, _, answer = post(server, "/api/publish", {"room": room, "message": text})
    assert status == 200, answer
    return answer["seq"]


def poll(server, query, headers=None, timeout=30):
    return get(server, f"/api/rooms/{query}", key=None, headers=headers, timeout=timeout)


@pytest.fixture(scope="module")
def server():
    with RoomcastServer("--api-key", API_KEY, "--jwt-secret", SECRET, "--threads", "2") as s:
        yield s


def test_a_poll_behind_the_room_is_answered_at_once(server):
    seqs = [publish(server, "p-now", f"m{i}") for i in range(3)]
    status, headers, page = poll(server, f"p-now/poll?since={seqs[0]}&timeout=20s")
    assert status == 200, page
    assert headers["Cache-Control"] == "no-store"
    assert page["room"] == "p-now" and page["last_seq"] == seqs[2], page
    assert [(m["seq"], m["message"]) for m in page["messages"]] == [(seqs[1], "m1"),
                                                                  (seqs[2], "m2")]


def test_a_waiting_poll_is_answered_by_the_next_message(server):
    last = publish(server, "p-wait", "before")
    answer = {}

    def waiting():
        answer["result"] = poll(server, f"p-wait/poll?since={last}&timeout=20s")
    thread = threading.Thread(target=waiting)
    thread.start()
    time.sleep(0.5)  # paces the publisher: the poll should be waiting by now (not asserted)
    seq = publish(server, "p-wait", "news")
    thread.join(25)
    assert not thread.is_alive()
    status, _, page = answer["result"]
    assert status == 200, page
    # Answered with the message, not by the 20 s wait ending (that answer has no messages).
    assert [(m["seq"], m["message"]) for m in page["messages"]] == [(seq, "news")], page
    assert page["last_seq"] == seq


def test_a_poll_times_out_empty(server):
    last = publish(server, "p-quiet", "only")
    status, _, page = poll(server, f"p-quiet/poll?since={last}&timeout=300ms")
    assert status == 200, page
    assert page == {"room": "p-quiet", "last_seq": last, "messages": []}, page
    # A room that never had a message: since 0, nothing, last_seq 0.
    status, _, page = poll(server, "p-never/poll?timeout=100ms")
    assert page == {"room": "p-never", "last_seq": 0, "messages": []}, page


def test_bad_parameters_are_refused(server):
    for query in ("r/poll?since=x", "r/poll?since=-1", "r/poll?timeout=0", "r/poll?timeout=61s",
                  "r/poll?timeout=abc", "%3Cb%3E/poll"):
        expect_error(poll(server, query), 400, "invalid_field")
    status, _, _ = post(server, "/api/rooms/r/poll", {}, key=None)
    assert status == 405


def test_one_user_may_wait_on_four_polls_at_once(server):
    token = make_token(sub="u-poller", name="polly")
    headers = {"Authorization": f"Bearer {token}"}
    last = publish(server, "p-bound", "x")
    statuses = []

    def waiting():
        status, _, body = poll(server, f"p-bound/poll?since={last}&timeout=4s", headers)
        statuses.append((status, body.get("code") if status != 200 else None))
    # Five at once, each waiting 4 s: whatever their order, the fifth finds four waiting.
    threads = [threading.Thread(target=waiting) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert sorted(statuses, key=str) == sorted([(200, None)] * 4 + [(429, "rate_limited")],
                                               key=str), statuses
    # Another user is not held back by this one, and the user may poll again.
    other = make_token(sub="u-other", name="otto")
    for user_headers in ({"Authorization": f"Bearer {other}"}, headers):
        status, _, _ = poll(server, f"p-bound/poll?since={last}&timeout=100ms", user_headers)
        assert status == 200


def test_tokens_and_room_claims_are_enforced_as_for_a_join():
    with RoomcastServer("--jwt-secret", SECRET, "--require-auth", "--api-key", API_KEY) as s:
        allowed = make_token(sub="u-1", name="ann", rooms=["support:*"])
        expect_error(poll(s, "support:1/poll?timeout=100ms"), 401, "authentication_required")
        expect_error(poll(s, "support:1/poll?timeout=100ms&token=bad"), 401, "invalid_token")
        expect_error(poll(s, f"general/poll?timeout=100ms&token={allowed}"), 403,
                     "forbidden_room")
        seq = publish(s, "support:1", "hello")
        status, _, page = poll(s, "support:1/poll?since=0&timeout=100ms",
                               {"Authorization": f"Bearer {allowed}"})
        assert status == 200 and [m["seq"] for m in page["messages"]] == [seq], page


def test_anonymous_polls_hold_a_connection_within_the_address_limit():
    # A waiting poll holds its connection as a WebSocket does: --max-connections-per-ip bounds
    # one address's polls (anonymous ones too), and a poll's place ends with its answer.
    with RoomcastServer("--api-key", API_KEY, "--max-connections-per-ip", "2") as server:
        last = publish(server, "p-addr", "x")
        statuses = []

        def waiting():
            status, _, body = poll(server, f"p-addr/poll?since={last}&timeout=4s")
            statuses.append((status, body.get("code") if status != 200 else None))
        # Three at once, each waiting 4 s: whatever their order, the third finds two waiting.
        threads = [threading.Thread(target=waiting) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert sorted(statuses, key=str) == sorted([(200, None)] * 2 + [(503, "unavailable")],
                                                   key=str), statuses
        # Answered polls gave their places back: polls (and a WebSocket) are admitted again.
        for _ in range(3):
            status, _, page = poll(server, f"p-addr/poll?since={last}&timeout=100ms")
            assert status == 200 and page["messages"] == [], page
