"""RFC 6455 section 5.4: fragmented messages against /echo.

A fragmented message is a first frame with FIN clear and a text/binary opcode, any
number of continuation frames (opcode 0) with FIN clear, and a final continuation with
FIN set. Control frames may be injected between fragments. /echo answers each complete
message with one unfragmented frame.
"""

import pytest

import rawws
from rawws import (OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
                   server_still_running)  # noqa: F401

echo_server = rawws.server_fixture("--echo-endpoint", name="echo_server")


def fragments(opcode, pieces):
    """Frames carrying `pieces` as one fragmented message (one frame if one piece)."""
    frames = []
    for i, piece in enumerate(pieces):
        frames.append(rawws.build_frame(opcode if i == 0 else OP_CONTINUATION, piece,
                                        fin=(i == len(pieces) - 1)))
    return frames


def send_fragmented(ws, opcode, pieces):
    for frame in fragments(opcode, pieces):
        ws.send_raw(frame)


# --------------------------------------------------------------------------- reassembly

def test_text_in_two_fragments_is_echoed_as_one_message(echo_server):
    with rawws.connect(echo_server) as ws:
        send_fragmented(ws, OP_TEXT, [b"Hello, ", b"world"])
        ws.expect_frame(OP_TEXT, b"Hello, world")


def test_text_in_three_fragments_is_echoed_as_one_message(echo_server):
    with rawws.connect(echo_server) as ws:
        send_fragmented(ws, OP_TEXT, [b"one ", b"two ", b"three"])
        ws.expect_frame(OP_TEXT, b"one two three")


def test_text_in_many_fragments_is_echoed_as_one_message(echo_server):
    pieces = [f"<{i}>".encode() for i in range(300)]
    with rawws.connect(echo_server) as ws:
        send_fragmented(ws, OP_TEXT, pieces)
        ws.expect_frame(OP_TEXT, b"".join(pieces))


def test_text_in_one_byte_fragments_is_echoed_as_one_message(echo_server):
    message = b"one byte per fragment"
    with rawws.connect(echo_server) as ws:
        ws.send_raw(b"".join(fragments(OP_TEXT, [message[i:i + 1]
                                                 for i in range(len(message))])))
        ws.expect_frame(OP_TEXT, message)


def test_binary_in_fragments_is_echoed_as_one_binary_message(echo_server):
    pieces = [bytes([i]) * 1000 for i in range(10)]
    with rawws.connect(echo_server) as ws:
        send_fragmented(ws, OP_BINARY, pieces)
        ws.expect_frame(OP_BINARY, b"".join(pieces))


def test_large_fragments_with_extended_lengths_are_reassembled(echo_server):
    pieces = [b"a" * 125, b"b" * 126, b"c" * 65535, b"d" * 65536]
    with rawws.connect(echo_server) as ws:
        send_fragmented(ws, OP_BINARY, pieces)
        frame = ws.expect_frame(OP_BINARY, b"".join(pieces))
        assert frame.length_form == rawws.LEN_64


def test_all_fragments_in_one_tcp_write_are_reassembled(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_raw(b"".join(fragments(OP_TEXT, [b"al", b"l at ", b"once"])))
        ws.expect_frame(OP_TEXT, b"all at once")


def test_empty_first_fragment_is_allowed(echo_server):
    with rawws.connect(echo_server) as ws:
        send_fragmented(ws, OP_TEXT, [b"", b"payload"])
        ws.expect_frame(OP_TEXT, b"payload")


def test_empty_middle_and_final_fragments_are_allowed(echo_server):
    with rawws.connect(echo_server) as ws:
        send_fragmented(ws, OP_TEXT, [b"abc", b"", b"def", b""])
        ws.expect_frame(OP_TEXT, b"abcdef")


def test_message_made_only_of_empty_fragments_is_echoed_as_empty(echo_server):
    with rawws.connect(echo_server) as ws:
        send_fragmented(ws, OP_BINARY, [b"", b"", b""])
        ws.expect_frame(OP_BINARY, b"")


def test_fragmented_and_unfragmented_messages_alternate(echo_server):
    with rawws.connect(echo_server) as ws:
        send_fragmented(ws, OP_TEXT, [b"frag", b"mented"])
        ws.send_frame(OP_BINARY, b"whole")
        send_fragmented(ws, OP_BINARY, [b"\x01", b"\x02"])
        ws.send_frame(OP_TEXT, b"whole again")
        ws.expect_frame(OP_TEXT, b"fragmented")
        ws.expect_frame(OP_BINARY, b"whole")
        ws.expect_frame(OP_BINARY, b"\x01\x02")
        ws.expect_frame(OP_TEXT, b"whole again")


# --------------------------------------------------------------------------- control frames

def test_ping_between_fragments_is_answered_before_the_message(echo_server):
    # Section 5.4: control frames MAY be injected in the middle of a fragmented message;
    # the pong cannot wait for the message because the message is not complete yet.
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"before ", fin=False)
        ws.send_frame(OP_PING, b"mid-message")
        ws.expect_frame(OP_PONG, b"mid-message")
        ws.send_frame(OP_CONTINUATION, b"after", fin=True)
        ws.expect_frame(OP_TEXT, b"before after")


def test_ping_between_fragments_in_one_write_comes_back_first(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_raw(rawws.build_frame(OP_TEXT, b"A", fin=False)
                    + rawws.build_frame(OP_PING, b"1")
                    + rawws.build_frame(OP_CONTINUATION, b"B", fin=False)
                    + rawws.build_frame(OP_PING, b"2")
                    + rawws.build_frame(OP_CONTINUATION, b"C", fin=True))
        ws.expect_frame(OP_PONG, b"1")
        ws.expect_frame(OP_PONG, b"2")
        ws.expect_frame(OP_TEXT, b"ABC")


def test_pong_between_fragments_is_ignored(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_raw(rawws.build_frame(OP_BINARY, b"x", fin=False)
                    + rawws.build_frame(OP_PONG, b"unsolicited")
                    + rawws.build_frame(OP_CONTINUATION, b"y", fin=True))
        ws.expect_frame(OP_BINARY, b"xy")


def test_close_between_fragments_is_answered(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"never finished", fin=False)
        ws.send_close(1000)
        ws.expect_close(1000)


# --------------------------------------------------------------------------- violations

def test_continuation_without_start_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_CONTINUATION, b"orphan", fin=True)
        ws.expect_close(1002)


def test_non_final_continuation_without_start_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_CONTINUATION, b"orphan", fin=False)
        ws.expect_close(1002)


def test_continuation_after_completed_message_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        send_fragmented(ws, OP_TEXT, [b"done", b"!"])
        ws.expect_frame(OP_TEXT, b"done!")
        ws.send_frame(OP_CONTINUATION, b"extra", fin=True)
        ws.expect_close(1002)


def test_continuation_after_unfragmented_message_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"whole")
        ws.expect_frame(OP_TEXT, b"whole")
        ws.send_frame(OP_CONTINUATION, b"extra", fin=True)
        ws.expect_close(1002)


@pytest.mark.parametrize("second", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_new_data_frame_during_unfinished_message_is_closed_with_1002(echo_server, second):
    # Section 5.4: fragments of one message MUST NOT be interleaved with another message.
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"first half", fin=False)
        ws.send_frame(second, b"interloper", fin=True)
        ws.expect_close(1002)


def test_new_non_final_data_frame_during_unfinished_message_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_BINARY, b"first", fin=False)
        ws.send_frame(OP_CONTINUATION, b"second", fin=False)
        ws.send_frame(OP_BINARY, b"restart", fin=False)
        ws.expect_close(1002)


def test_unfinished_message_is_not_echoed_before_protocol_error(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"partial", fin=False)
        ws.send_frame(OP_TEXT, b"new", fin=True)
        frame = ws.recv_frame()
        assert frame.opcode == OP_CLOSE and frame.close_code == 1002, frame


def test_reserved_bit_on_continuation_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"start", fin=False)
        ws.send_frame(OP_CONTINUATION, b"end", fin=True, rsv=rawws.RSV1)
        ws.expect_close(1002)


def test_unmasked_continuation_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"start", fin=False)
        ws.send_frame(OP_CONTINUATION, b"end", fin=True, mask=False)
        ws.expect_close(1002)
