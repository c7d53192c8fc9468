"""RFC 6455 sections 7.4.1 and 10.4: message size limits.

Section 10.4: implementations SHOULD impose limits on frame and total message size;
section 7.4.1: 1009 means "received a message that is too big for it to process".
roomcast's limit is --max-message-size (bytes of one message, all fragments together,
inclusive), 1 MiB by default.
"""


import pytest

import rawws
from rawws import (LEN_64, OP_BINARY, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
                   server_still_running)  # noqa: F401

LIMIT = 65536
DEFAULT_LIMIT = 1 << 20

limit_server = rawws.server_fixture("--echo-endpoint", "--max-message-size", str(LIMIT),
                                    name="limit_server")
default_server = rawws.server_fixture("--echo-endpoint", name="default_server")


def fragment_frames(opcode, pieces):
    return b"".join(rawws.build_frame(opcode if i == 0 else OP_CONTINUATION, piece,
                                      fin=(i == len(pieces) - 1))
                    for i, piece in enumerate(pieces))


# --------------------------------------------------------------------------- --max-message-size

@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_message_exactly_at_limit_is_echoed(limit_server, opcode):
    payload = b"L" * LIMIT
    with rawws.connect(limit_server) as ws:
        ws.echo(opcode, payload)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_single_frame_one_byte_over_limit_is_closed_with_1009(limit_server, opcode):
    with rawws.connect(limit_server) as ws:
        ws.send_frame(opcode, b"L" * (LIMIT + 1), ignore_errors=True)
        ws.expect_close(1009)


def test_fragments_summing_to_limit_are_echoed(limit_server):
    pieces = [b"a" * 30000, b"b" * 30000, b"c" * (LIMIT - 60000)]
    with rawws.connect(limit_server) as ws:
        ws.send_raw(fragment_frames(OP_TEXT, pieces))
        ws.expect_frame(OP_TEXT, b"".join(pieces))


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_fragments_summing_to_one_over_limit_are_closed_with_1009(limit_server, opcode):
    pieces = [b"a" * 30000, b"b" * 30000, b"c" * (LIMIT + 1 - 60000)]
    with rawws.connect(limit_server) as ws:
        ws.send_raw(fragment_frames(opcode, pieces), ignore_errors=True)
        ws.expect_close(1009)


def test_many_small_fragments_over_limit_are_closed_with_1009(limit_server):
    pieces = [b"x" * 1000] * 66 + [b""]   # 66000 bytes
    with rawws.connect(limit_server) as ws:
        ws.send_raw(fragment_frames(OP_BINARY, pieces), ignore_errors=True)
        ws.expect_close(1009)


def test_over_limit_fragments_fail_before_the_final_fragment(limit_server):
    # Once the fragments received exceed the limit the message can only be too big;
    # the server must not wait for a final fragment that is never sent.
    with rawws.connect(limit_server) as ws:
        ws.send_frame(OP_BINARY, b"a" * 40000, fin=False)
        ws.send_frame(OP_CONTINUATION, b"b" * 40000, fin=False, ignore_errors=True)
        ws.expect_close(1009)


def test_declared_frame_length_over_limit_is_closed_with_1009_without_payload(limit_server):
    # The 64-bit length says 1 TiB; only a few bytes follow. The header alone shows the
    # message is too big, so the server must not wait for (or buffer) the payload.
    with rawws.connect(limit_server) as ws:
        ws.send_frame(OP_BINARY, b"only a little", length_form=LEN_64,
                      declared_length=1 << 40, ignore_errors=True)
        ws.expect_close(1009)


def test_connection_under_limit_keeps_working_after_big_messages(limit_server):
    with rawws.connect(limit_server) as ws:
        for _ in range(3):
            ws.echo(OP_BINARY, b"z" * LIMIT)
        ws.echo(OP_TEXT, b"small")


def test_ping_between_fragments_does_not_count_towards_message_size(limit_server):
    with rawws.connect(limit_server) as ws:
        ws.send_frame(OP_TEXT, b"a" * (LIMIT - 10), fin=False)
        ws.send_frame(OP_PING, b"p" * 125)
        ws.expect_frame(OP_PONG, b"p" * 125)
        ws.send_frame(OP_CONTINUATION, b"b" * 10, fin=True)
        ws.expect_frame(OP_TEXT, b"a" * (LIMIT - 10) + b"b" * 10)


def test_other_connections_survive_a_too_big_message(limit_server):
    with rawws.connect(limit_server) as bystander, rawws.connect(limit_server) as offender:
        offender.send_frame(OP_BINARY, b"L" * (LIMIT + 1), ignore_errors=True)
        offender.expect_close(1009)
        bystander.echo(OP_TEXT, b"unaffected")
    with rawws.connect(limit_server) as ws:
        ws.echo(OP_TEXT, b"new connection")


# --------------------------------------------------------------------------- default limit

def test_default_limit_accepts_a_1_mib_message(default_server):
    payload = bytes(range(256)) * (DEFAULT_LIMIT // 256)
    with rawws.connect(default_server) as ws:
        frame = ws.echo(OP_BINARY, payload)
        assert frame.length_form == LEN_64


def test_default_limit_rejects_1_mib_plus_one_with_1009(default_server):
    with rawws.connect(default_server) as ws:
        ws.send_frame(OP_BINARY, b"\x00" * (DEFAULT_LIMIT + 1), ignore_errors=True)
        ws.expect_close(1009)
