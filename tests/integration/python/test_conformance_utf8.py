"""RFC 6455 sections 5.6 and 8.1: text messages must be valid UTF-8 (RFC 3629).

A server that receives invalid UTF-8 in a text message MUST fail the connection; the
status code for "data inconsistent with the type of the message" is 1007 (section 7.4.1).
Validation is of the whole message, so a code point may straddle fragments, and a
message that cannot become valid may be failed as soon as that is known (section 8.1:
"when an endpoint is to interpret a byte stream as UTF-8 but finds that the byte stream
is not, in fact, a valid UTF-8 stream").
"""

import pytest

import rawws
from rawws import (OP_BINARY, OP_CONTINUATION, OP_TEXT,
                   server_still_running)  # noqa: F401

echo_server = rawws.server_fixture("--echo-endpoint", name="echo_server")

VALID_TEXTS = {
    "greek": "κόσμε",
    "emoji": "😀🎉",
    "cjk": "你好，世界",
    "mixed": "Hello-κόσμε-你好-😀-done",
    "last-before-surrogates": "\ud7ff",
    "first-after-surrogates": "\ue000",
    "bmp-max": "\uffff",
    "max-code-point": "\U0010ffff",
    "nul": "a\x00b",
}

INVALID_SEQUENCES = {
    "overlong-nul": b"\xc0\x80",
    "overlong-slash": b"\xc1\xaf",
    "overlong-3-byte": b"\xe0\x80\xaf",
    "overlong-4-byte": b"\xf0\x80\x80\xaf",
    "surrogate-high": b"\xed\xa0\x80",
    "surrogate-low": b"\xed\xbf\xbf",
    "above-max": b"\xf4\x90\x80\x80",
    "f5-lead": b"\xf5\x80\x80\x80",
    "lone-continuation": b"\x80",
    "fe": b"\xfe",
    "ff": b"\xff",
    "lead-without-continuation": b"\xce a",
}


def fragment_frames(opcode, pieces):
    return b"".join(rawws.build_frame(opcode if i == 0 else OP_CONTINUATION, piece,
                                      fin=(i == len(pieces) - 1))
                    for i, piece in enumerate(pieces))


# --------------------------------------------------------------------------- valid text

@pytest.mark.parametrize("text", VALID_TEXTS.values(), ids=VALID_TEXTS.keys())
def test_valid_multibyte_text_is_echoed(echo_server, text):
    with rawws.connect(echo_server) as ws:
        ws.echo(OP_TEXT, text.encode("utf-8"))


def test_every_split_point_of_a_valid_message_across_two_fragments_is_accepted(echo_server):
    data = "κ😀€".encode("utf-8")  # 2-, 4- and 3-byte sequences
    with rawws.connect(echo_server) as ws:
        for cut in range(1, len(data)):
            ws.send_raw(fragment_frames(OP_TEXT, [data[:cut], data[cut:]]))
            ws.expect_frame(OP_TEXT, data)


def test_four_byte_code_point_spread_over_four_fragments_is_accepted(echo_server):
    data = "😀".encode("utf-8")
    with rawws.connect(echo_server) as ws:
        ws.send_raw(fragment_frames(OP_TEXT, [data[i:i + 1] for i in range(4)]))
        ws.expect_frame(OP_TEXT, data)


def test_code_point_split_across_separate_tcp_writes_is_accepted(echo_server):
    data = "κόσμε".encode("utf-8")
    frame = rawws.build_frame(OP_TEXT, data)
    with rawws.connect(echo_server) as ws:
        ws.send_bytewise(frame, delay=0.001)
        ws.expect_frame(OP_TEXT, data)


def test_binary_message_is_not_checked_for_utf8(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.echo(OP_BINARY, b"\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80\xff")


# --------------------------------------------------------------------------- invalid text

@pytest.mark.parametrize("sequence", INVALID_SEQUENCES.values(), ids=INVALID_SEQUENCES.keys())
def test_invalid_utf8_in_single_frame_is_closed_with_1007(echo_server, sequence):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"valid prefix " + sequence + b" valid suffix")
        ws.expect_close(1007)


@pytest.mark.parametrize("sequence", [b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"],
                         ids=["overlong", "surrogate", "above-max"])
def test_message_consisting_only_of_invalid_sequence_is_closed_with_1007(echo_server,
                                                                         sequence):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, sequence)
        ws.expect_close(1007)


def test_text_ending_in_truncated_sequence_is_closed_with_1007(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, "κόσμε".encode("utf-8") + b"\xf0\x9f\x98")
        ws.expect_close(1007)


def test_invalid_utf8_is_not_echoed_before_the_close(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"\xff")
        frame = ws.recv_frame()
        assert frame.opcode == rawws.OP_CLOSE and frame.close_code == 1007, frame


def test_invalid_sequence_split_across_fragments_is_closed_with_1007(echo_server):
    # First fragment ends with the first two bytes of a 4-byte sequence (F0 9F); the
    # next continues with a byte that is not a continuation byte.
    with rawws.connect(echo_server) as ws:
        ws.send_raw(fragment_frames(OP_TEXT, [b"hello \xf0\x9f", b"\x41 world"]))
        ws.expect_close(1007)


def test_message_ending_inside_a_code_point_after_fragments_is_closed_with_1007(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_raw(fragment_frames(OP_TEXT, [b"abc", b"\xf0\x9f\x98", b""]))
        ws.expect_close(1007)


def test_surrogate_split_across_fragments_is_closed_with_1007(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_raw(fragment_frames(OP_TEXT, [b"x\xed", b"\xa0\x80y"]))
        ws.expect_close(1007)


def test_invalid_continuation_fragment_is_closed_with_1007_before_final(echo_server):
    # First fragment valid but ends mid code point; the second (FIN clear) breaks it.
    # No final fragment is ever sent: the server must not wait for one.
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"abc\xf0\x9f", fin=False)
        ws.send_frame(OP_CONTINUATION, b"\x28def", fin=False)
        ws.expect_close(1007)


def test_invalid_sequence_in_first_fragment_fails_fast(echo_server):
    # The message can never become valid, so the server fails it without waiting for the
    # remaining fragments (which are never sent).
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"ok so far \xc0\x80 then bad", fin=False)
        ws.expect_close(1007)


def test_above_max_code_point_in_first_fragment_fails_fast(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"\xf4\x90", fin=False)
        ws.expect_close(1007)


def test_server_keeps_serving_after_invalid_utf8(echo_server):
    with rawws.connect(echo_server) as bad:
        bad.send_frame(OP_TEXT, b"\xff")
        bad.expect_close(1007)
    with rawws.connect(echo_server) as ws:
        ws.echo(OP_TEXT, "κόσμε".encode("utf-8"))
