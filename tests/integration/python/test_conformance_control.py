"""RFC 6455 sections 5.5 and 7: control frames (ping, pong, close) against /echo."""

import pytest

import rawws
from rawws import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT,
                   server_still_running)  # noqa: F401

echo_server = rawws.server_fixture("--echo-endpoint", name="echo_server")


# --------------------------------------------------------------------------- ping / pong

def test_ping_is_answered_with_pong_carrying_identical_payload(echo_server):
    # Section 5.5.3: the Pong "MUST have identical Application data" to the Ping.
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_PING, b"are you there?")
        ws.expect_frame(OP_PONG, b"are you there?")


def test_ping_without_payload_is_answered_with_empty_pong(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_PING, b"")
        ws.expect_frame(OP_PONG, b"")


def test_ping_with_binary_payload_is_answered_byte_for_byte(echo_server):
    payload = bytes([0x00, 0xFF, 0xFE, 0x80, 0xC0, 0x0A, 0x0D])
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_PING, payload)
        ws.expect_frame(OP_PONG, payload)


def test_ping_with_125_byte_payload_is_answered(echo_server):
    payload = bytes(range(125))
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_PING, payload)
        frame = ws.expect_frame(OP_PONG, payload)
        assert frame.length_form == rawws.LEN_7


def test_ping_with_126_byte_payload_is_closed_with_1002(echo_server):
    # Section 5.5: control frames MUST have a payload length of 125 bytes or less.
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_PING, b"p" * 126)
        ws.expect_close(1002)


def test_ping_with_non_minimal_length_encoding_gets_pong_or_1002(echo_server):
    # Non-minimal length encoding is the sender's fault, but the payload is within the
    # control frame limit; a server may accept it or call it a protocol error. It must not
    # hang, and whatever it sends must be either the pong or a 1002 close.
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_PING, b"q" * 125, length_form=rawws.LEN_16)
        frame = ws.recv_frame()
        if frame.opcode == OP_PONG:
            assert frame.payload == b"q" * 125
        else:
            assert frame.opcode == OP_CLOSE and frame.close_code == 1002, frame


def test_fragmented_ping_is_closed_with_1002(echo_server):
    # Section 5.5: control frames MUST NOT be fragmented.
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_PING, b"frag", fin=False)
        ws.expect_close(1002)


def test_several_pings_are_each_answered_in_order(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_raw(b"".join(rawws.build_frame(OP_PING, f"ping {i}".encode())
                             for i in range(10)))
        for i in range(10):
            ws.expect_frame(OP_PONG, f"ping {i}".encode())


def test_unsolicited_pong_is_ignored(echo_server):
    # Section 5.5.3: an unsolicited Pong is allowed and "a response is not expected".
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_PONG, b"heartbeat")
        ws.send_frame(OP_PONG, b"")
        ws.send_frame(OP_PONG, b"x" * 125)
        ws.echo(OP_TEXT, b"still works")


def test_pong_with_126_byte_payload_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_PONG, b"p" * 126)
        ws.expect_close(1002)


def test_fragmented_pong_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_PONG, b"frag", fin=False)
        ws.expect_close(1002)


# --------------------------------------------------------------------------- close

def test_close_1000_is_answered_with_close_1000_then_tcp_close(echo_server):
    # Section 5.5.1: the endpoint that receives a Close MUST send a Close in response,
    # "typically echoing the status code it received"; section 7.1.1: the server then
    # closes the TCP connection first.
    with rawws.connect(echo_server) as ws:
        ws.send_close(1000)
        ws.expect_close(1000)


def test_close_with_reason_is_answered_with_same_code(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_close(1000, b"bye now")
        ws.expect_close(1000)


def test_close_without_payload_is_answered_with_empty_close_or_1000(echo_server):
    # Section 7.4.1: 1005 means "no status code was present" and MUST NOT be sent, so the
    # reply is either an empty close frame or 1000.
    with rawws.connect(echo_server) as ws:
        ws.send_close()
        ws.expect_close((None, 1000))


def test_close_after_echo_traffic_ends_the_connection_cleanly(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.echo(OP_TEXT, b"one")
        ws.echo(OP_BINARY, b"two")
        ws.send_close(1000)
        ws.expect_close(1000)


def test_data_sent_after_close_is_not_echoed(echo_server):
    # Section 5.5.1: after sending a Close, an endpoint MUST NOT send more data frames;
    # data arriving after the peer's Close is to be discarded.
    with rawws.connect(echo_server) as ws:
        ws.send_raw(rawws.build_frame(OP_CLOSE, rawws.close_payload(1000))
                    + rawws.build_frame(OP_TEXT, b"too late"))
        ws.expect_close(1000)


def test_close_with_one_byte_payload_is_closed_with_1002(echo_server):
    # Section 5.5.1: if there is a body, its first two bytes MUST be a status code.
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_CLOSE, b"\x03")
        ws.expect_close(1002)


INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", INVALID_CODES)
def test_close_with_invalid_status_code_is_closed_with_1002(echo_server, code):
    # Section 7.4: 0-999 are not used; 1004 is reserved; 1005, 1006 and 1015 MUST NOT be
    # set in a close frame; 1016-2999 are unassigned protocol codes; above 4999 undefined.
    with rawws.connect(echo_server) as ws:
        ws.send_close(code)
        ws.expect_close(1002)


VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]


@pytest.mark.parametrize("code", VALID_CODES)
def test_close_with_valid_status_code_is_echoed_back(echo_server, code):
    with rawws.connect(echo_server) as ws:
        ws.send_close(code, b"reason")
        ws.expect_close(code)


def test_close_reason_with_invalid_utf8_is_closed_with_1007(echo_server):
    # Section 5.5.1: the close reason is UTF-8; section 8.1: invalid UTF-8 fails with 1007.
    with rawws.connect(echo_server) as ws:
        ws.send_close(1000, b"bad \xff\xfe reason")
        ws.expect_close(1007)


def test_close_reason_with_truncated_utf8_sequence_is_closed_with_1007(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_close(1000, "κόσμε".encode() + b"\xce")
        ws.expect_close(1007)


def test_close_reason_with_multibyte_utf8_is_accepted(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_close(1000, "κόσμε 👋".encode())
        ws.expect_close(1000)


def test_close_reason_of_123_bytes_is_accepted(echo_server):
    # 2 bytes of code + 123 bytes of reason = 125 bytes, the largest control payload.
    with rawws.connect(echo_server) as ws:
        ws.send_close(1000, b"r" * 123)
        ws.expect_close(1000)


def test_close_with_126_byte_payload_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_close(1000, b"r" * 124)
        ws.expect_close(1002)


def test_fragmented_close_is_closed_with_1002(echo_server):
    with rawws.connect(echo_server) as ws:
        ws.send_frame(OP_CLOSE, rawws.close_payload(1000), fin=False)
        ws.expect_close(1002)


def test_server_keeps_serving_after_close_handshakes(echo_server):
    for code in (1000, 1001, 4000):
        with rawws.connect(echo_server) as ws:
            ws.send_close(code)
            ws.expect_close(code)
    with rawws.connect(echo_server) as ws:
        ws.echo(OP_TEXT, b"still here")
