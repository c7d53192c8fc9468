"""A rate-limited refusal says how long to wait (docs/protocol.md, "Rate limits"): every
`rate_limited` error carries `retryAfterMs`, the milliseconds until the budget that refused
admits again (the end of its block, or of its window), and an HTTP refusal carries it too, with a
Retry-After header in whole seconds. Waiting that long is enough: the next message passes.

Run with the server's own defaults (`production_defaults=True`), the windows shortened by flags so
that waiting out a block stays short; the checks of the wait's size use the flags' numbers."""

import asyncio
import math
import time

from api_support import expect_error, request
from roomcast_server import RoomcastServer
from security_support import SECRET, make_token
from test_chat_support import ChatClient, is_type, run
from test_security_rate_limit import expect_rate_limited, joined

# --rate-limit-messages 3 per --rate-limit-window 2s: refused past 3, blocked for two windows.
WINDOW_MS = 2000
BLOCK_MS = 2 * WINDOW_MS
SHORT = ("--rate-limit-messages", "3", "--rate-limit-window", "2s")


async def wait_out(wait_ms):
    """Sleeps `wait_ms` (bounded: never past the block, which the test checked it is within)."""
    assert 0 < wait_ms <= BLOCK_MS
    await asyncio.sleep(wait_ms / 1000)


def test_a_refused_chat_message_says_how_long_to_wait_and_that_is_enough():
    with RoomcastServer(*SHORT, production_defaults=True) as server:
        async def body():
            alice = await joined(server, "alice")
            for i in range(3):
                await alice.chat_roundtrip("general", f"m{i}")
            await alice.send({"type": "chat_message", "room": "general", "message": "over",
                              "ref": "r-over"})
            err = await alice.expect_error(ref="r-over")  # named by its ref, like every reply
            first = err["retryAfterMs"]
            assert isinstance(first, int) and 0 < first <= BLOCK_MS, err
            # Still blocked: the wait shrinks as the block goes by (the server saw this one at
            # least the 200 ms sleep after the first), and never grows past the block.
            await asyncio.sleep(0.2)
            await alice.chat("during the block")
            second = await expect_rate_limited(alice, max_wait_ms=BLOCK_MS)
            assert second <= first - 199, (first, second)
            await wait_out(second)
            await alice.chat_roundtrip("general", "free again")
        run(body())


def test_under_the_plain_defaults_the_wait_is_within_the_chapters_two_minute_block():
    with RoomcastServer(production_defaults=True) as server:
        async def body():
            alice = await joined(server, "alice")
            for i in range(10):
                await alice.chat_roundtrip("general", f"m{i}")
            await alice.chat("eleventh")
            wait = await expect_rate_limited(alice, max_wait_ms=120_000)
            assert wait > 60_000, wait  # the block is twice the 60 s window, just begun
        run(body())


def test_refused_signals_app_events_and_direct_messages_say_how_long_to_wait():
    with RoomcastServer(*SHORT, "--rate-limit-signals", "2", "--rate-limit-signals-window", "1s",
                        "--app-events", "document_change:durable,price_update",
                        "--jwt-secret", SECRET, production_defaults=True) as server:
        async def body():
            ann = await ChatClient.connect(server, f"/?token={make_token(sub='u-ann', name='ann')}")
            await ann.join("doc")  # a signal: one of two
            await ann.send({"type": "typing_start", "room": "doc"})
            await ann.send({"type": "typing_start", "room": "doc"})
            signal_wait = await expect_rate_limited(ann, max_wait_ms=2000)
            await ann.send({"type": "price_update", "room": "doc", "p": 1})
            # Blocked signals are refused once per block: no second error. Wait it out.
            await asyncio.sleep(signal_wait / 1000)
            for i in range(2):
                await ann.send({"type": "price_update", "room": "doc", "p": i})
            await ann.send({"type": "price_update", "room": "doc", "id": "p-over", "p": 9})
            err = await ann.expect(is_type("error"))  # names its room and id
            assert err["code"] == "rate_limited" and err["id"] == "p-over", err
            assert 0 < err["retryAfterMs"] <= 2000, err
            # The message budget: a durable event and a direct message each spend one.
            for i in range(3):
                await ann.send({"type": "document_change", "room": "doc", "id": f"d{i}"})
                await ann.expect(is_type("ack", "doc"))
            await ann.send({"type": "document_change", "room": "doc", "id": "d-over"})
            err = await ann.expect(is_type("error"))
            assert err["id"] == "d-over" and err["room"] == "doc", err
            assert 0 < err["retryAfterMs"] <= BLOCK_MS, err
            await ann.send({"type": "direct_message", "to": "u-ann", "message": "hi"})
            err = await ann.expect(is_type("error"))  # names its recipient
            assert err["code"] == "rate_limited" and err["to"] == "u-ann", err
            assert 0 < err["retryAfterMs"] <= BLOCK_MS, err
        run(body())


def test_a_refused_http_send_has_retry_after_in_seconds_and_retry_after_ms():
    with RoomcastServer(*SHORT, "--jwt-secret", SECRET, production_defaults=True) as server:
        token = make_token(sub="u-http", name="http")

        def send(text):
            return request(server, "POST", "/api/rooms/budget/messages", {"message": text},
                           key=None, headers={"Authorization": f"Bearer {token}"})

        for i in range(3):
            status, _, answer = send(f"m{i}")
            assert status == 200, answer
        result = send("over")
        expect_error(result, 429, "rate_limited")
        _, headers, answer = result
        wait_ms = answer["retryAfterMs"]
        assert isinstance(wait_ms, int) and 0 < wait_ms <= BLOCK_MS, answer
        # Whole seconds, rounded up: never sooner than the body's milliseconds.
        assert int(headers["Retry-After"]) == math.ceil(wait_ms / 1000), (headers, wait_ms)
        time.sleep(wait_ms / 1000)
        status, headers, answer = send("free again")
        assert status == 200, answer
        assert "Retry-After" not in headers
