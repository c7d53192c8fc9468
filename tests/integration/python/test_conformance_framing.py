"""RFC 6455 section 5: base framing, masking, reserved bits and opcodes, against /echo.

The echo endpoint returns every text/binary message with the same opcode as one
unfragmented, unmasked frame (section 5.1: a server MUST NOT mask), using the minimal
length encoding (section 5.2: "the minimal number of bytes MUST be used").
"""

import random
import time

import pytest

import rawws
from rawws import (LEN_7, LEN_16, LEN_64, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT,
                   RSV1, RSV2, RSV3, server_still_running)  # noqa: F401

echo_server = rawws.server_fixture("--echo-endpoint", name="echo_server")

LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 1_000_000]


def text_payload(n, seed=0):
    rng = random.Random(seed)
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,"
    return bytes(rng.choice(alphabet) for _ in range(n)) if n < 4096 else \
        (bytes(rng.choice(alphabet) for _ in range(4096)) * (n // 4096 + 1))[:n]


def binary_payload(n, seed=0):
    return random.Random(seed).randbytes(n)


def expected_length_form(n):
    return LEN_7 if n <= 125 else LEN_16 if n <= 65535 else LEN_64


# --------------------------------------------------------------------------- echo

@pytest.mark.parametrize("length", LENGTHS)
def test_text_message_is_echoed_unmasked_with_shortest_length(echo_server, length):
    payload = text_payload(length, seed=length)
    with rawws.connect(echo_server) as ws:
        frame = ws.echo(OP_TEXT, payload)
        assert frame.length_form == expected_length_form(length), frame


@pytest.mark.parametrize("length", LENGTHS)
def test_binary_message_is_echoed_unmasked_with_shortest_length(echo_server, length):
    payload = binary_payload(length, seed=length)
    with rawws.connect(echo_server) as ws:
        frame = ws.echo(OP_BINARY, payload)
        assert frame.length_form == expected_length_form(length), frame


def test_binary_payload_with_every_byte_value_is_echoed_intact(echo_server):
    payload = bytes(range(256)) * 4
    with rawws.connect(echo_server) as ws:
        ws.echo(OP_BINARY, payload)


def test_all_zero_masking_key_is_still_a_masked_frame(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"zero key", mask_key=b"\x00\x00\x00\x00")
        ws.expect_frame(OP_TEXT, b"zero key")


def test_many_messages_on_one_connection_are_echoed_in_order(echo_server):
    with rawws.connect(echo_server) as ws:
        for i in range(200):
            ws.echo(OP_TEXT if i % 2 else OP_BINARY, f"message {i}".encode())


def test_frame_sent_one_byte_per_write_is_echoed(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_bytewise(rawws.build_frame(OP_TEXT, b"dribbled in byte by byte"))
        ws.expect_frame(OP_TEXT, b"dribbled in byte by byte")


def test_frame_with_16_bit_length_sent_one_byte_per_write_is_echoed(echo_server):
    payload = text_payload(300, seed=3)
    with rawws.connect(echo_server) as ws:
        ws.send_bytewise(rawws.build_frame(OP_TEXT, payload), delay=0.0005)
        ws.expect_frame(OP_TEXT, payload)


def test_frame_with_64_bit_length_split_inside_header_is_echoed(echo_server):
    payload = binary_payload(70000, seed=4)
    data = rawws.build_frame(OP_BINARY, payload)
    with rawws.connect(echo_server) as ws:
        # 1, 2, 5 and 6 bytes of the 14-byte header, each its own write, then the payload.
        for start, end in ((0, 1), (1, 3), (3, 8), (8, 14), (14, len(data))):
            ws.send_raw(data[start:end])
            time.sleep(0.02)
        ws.expect_frame(OP_BINARY, payload)


def test_several_frames_in_one_tcp_write_are_all_echoed_in_order(echo_server):
    messages = [(OP_TEXT, b"first"), (OP_BINARY, b"\x00\x01second"), (OP_TEXT, b""),
                (OP_TEXT, text_payload(200, 1)), (OP_BINARY, binary_payload(70000, 2)),
                (OP_TEXT, b"last")]
    with rawws.connect(echo_server) as ws:
        ws.send_raw(b"".join(rawws.build_frame(op, p) for op, p in messages))
        for op, p in messages:
            ws.expect_frame(op, p)


def test_ping_between_data_frames_in_one_write_is_answered_in_order(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_raw(rawws.build_frame(OP_TEXT, b"one") + rawws.build_frame(OP_PING, b"p")
                    + rawws.build_frame(OP_TEXT, b"two"))
        ws.expect_frame(OP_TEXT, b"one")
        ws.expect_frame(OP_PONG, b"p")
        ws.expect_frame(OP_TEXT, b"two")


# --------------------------------------------------------------------------- masking

def test_unmasked_text_frame_from_client_is_closed_with_1002(echo_server):
    # Section 5.1: the server MUST close the connection upon receiving an unmasked frame.
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"not masked", mask=False)
        ws.expect_close(1002)


def test_unmasked_ping_from_client_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_PING, b"not masked", mask=False)
        ws.expect_close(1002)


def test_unmasked_empty_frame_from_client_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_BINARY, b"", mask=False)
        ws.expect_close(1002)


def test_unmasked_frame_after_valid_traffic_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.echo(OP_TEXT, b"fine")
        ws.send_frame(OP_TEXT, b"not fine", mask=False)
        ws.expect_close(1002)


# --------------------------------------------------------------------------- reserved bits

@pytest.mark.parametrize("rsv", [RSV1, RSV2, RSV3, RSV1 | RSV2 | RSV3],
                         ids=["rsv1", "rsv2", "rsv3", "all"])
def test_reserved_bit_on_text_frame_without_extension_is_closed_with_1002(echo_server, rsv):
    # Section 5.2: RSV1-3 MUST be 0 unless an extension is negotiated; none is here.
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"reserved", rsv=rsv)
        ws.expect_close(1002)


@pytest.mark.parametrize("rsv", [RSV1, RSV2, RSV3], ids=["rsv1", "rsv2", "rsv3"])
def test_reserved_bit_on_binary_frame_is_closed_with_1002(echo_server, rsv):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_BINARY, b"\x01\x02", rsv=rsv)
        ws.expect_close(1002)


def test_reserved_bit_on_ping_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_PING, b"rsv ping", rsv=RSV1)
        ws.expect_close(1002)


def test_reserved_bit_on_empty_frame_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"", rsv=RSV2)
        ws.expect_close(1002)


def test_reserved_bit_frame_is_not_echoed_before_close(echo_server):
    # The offending message must not be delivered: the first thing back is the close.
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_TEXT, b"must not come back", rsv=RSV3)
        frame = ws.recv_frame()
        assert frame.opcode == OP_CLOSE, frame
        assert frame.close_code == 1002, frame


# --------------------------------------------------------------------------- opcodes

@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7])
def test_reserved_non_control_opcode_is_closed_with_1002(echo_server, opcode):
    # Section 5.2: opcodes %x3-7 are reserved; an unknown opcode fails the connection.
    with rawws.connect(echo_server) as ws:
        ws.send_frame(opcode, b"reserved opcode")
        ws.expect_close(1002)


@pytest.mark.parametrize("opcode", [0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_control_opcode_is_closed_with_1002(echo_server, opcode):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(opcode, b"reserved opcode")
        ws.expect_close(1002)


@pytest.mark.parametrize("opcode", [0x3, 0xB])
def test_reserved_opcode_with_empty_payload_is_closed_with_1002(echo_server, opcode):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(opcode, b"")
        ws.expect_close(1002)


def test_reserved_opcode_after_valid_traffic_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.echo(OP_BINARY, b"ok")
        ws.send_frame(0x5, b"")
        ws.expect_close(1002)


# --------------------------------------------------------------------------- lengths

def test_64_bit_length_with_most_significant_bit_set_fails_the_connection(echo_server):
    # Section 5.2: "the most significant bit MUST be 0". Whether the server calls this a
    # protocol error (1002) or a message that is too big (1009), it must close.
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_BINARY, b"x" * 16, length_form=LEN_64, declared_length=1 << 63,
                      ignore_errors=True)
        ws.expect_close((1002, 1009))


# --------------------------------------------------------------------------- isolation

def test_protocol_error_on_one_connection_does_not_affect_others(echo_server):
    with rawws.connect(echo_server) as bystander, rawws.connect(echo_server) as offender:
        bystander.echo(OP_TEXT, b"before")
        offender.send_frame(OP_TEXT, b"unmasked", mask=False)
        offender.expect_close(1002)
        bystander.echo(OP_TEXT, b"after")
    with rawws.connect(echo_server) as newcomer:
        newcomer.echo(OP_BINARY, b"new connection")


def test_server_keeps_serving_after_many_protocol_errors(echo_server):
    for opcode in (0x3, 0x4, 0xB, 0xC):
        with rawws.connect(echo_server) as ws:
            ws.send_frame(opcode, b"")
            ws.expect_close(1002)
    with rawws.connect(echo_server) as ws:
        ws.echo(OP_TEXT, b"still here")
