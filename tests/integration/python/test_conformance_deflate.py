"""RFC 7692: permessage-deflate against /echo, with frames made byte by byte.

The client side compresses with Python's zlib (raw DEFLATE, an implementation independent of
the server's use of it) and checks what the server answers: the negotiation response
(section 7.1), compressed messages whole and in fragments (section 6), every client window
size (section 7.1.2.2), and the failures: RSV1 where it may not be, data that does not
inflate, invalid UTF-8 once inflated, a decompression bomb (1009 at --max-message-size), and a
message whose fragments together pass its bound on the wire (1009).
"""

import random
import zlib

import pytest

import rawws
from rawws import (OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, RSV1,
                   server_still_running)  # noqa: F401

# A bound well below the default (1 MiB), so the bomb below passes it many times over.
MAX_MESSAGE = 65536

echo_server = rawws.server_fixture("--echo-endpoint", "--max-message-size", str(MAX_MESSAGE),
                                   name="echo_server")
off_server = rawws.server_fixture("--echo-endpoint", "--compression", "off",
                                  name="off_server")

OFFER = "permessage-deflate"
OUR_ANSWER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
TAIL = b"\x00\x00\xff\xff"

CHAT_JSON = ('{"type":"chat_message","room":"general","id":"m1","user":{"id":"u1",'
             '"name":"Ada"},"text":"Hello, everyone! How is the weather today?"}').encode()


def compress(data, wbits=15):
    """One message as a client without context takeover sends it (section 7.2.1)."""
    c = zlib.compressobj(wbits=-wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def decompress(payload):
    """A compressed message from the server, as section 7.2.2 reads it."""
    d = zlib.decompressobj(wbits=-15)
    return d.decompress(payload + TAIL)


def negotiated(server, *offers):
    ws = rawws.connect(server, extensions=offers)
    return ws, ws.handshake.header("Sec-WebSocket-Extensions")


def expect_message(ws, opcode, data, compressed):
    """The next frame is `data` in one `opcode` frame, compressed (RSV1) or not."""
    frame = ws.recv_frame()
    assert frame.opcode == opcode and frame.fin and not frame.masked, frame
    if compressed:
        assert frame.rsv == RSV1, f"expected a compressed frame: {frame!r}"
        assert decompress(frame.payload) == data
        assert len(frame.payload) < len(data)
    else:
        assert frame.rsv == 0, f"expected a plain frame: {frame!r}"
        assert frame.payload == data


# --------------------------------------------------------------------------- negotiation

@pytest.mark.parametrize("offer, answer", [
    (OFFER, OUR_ANSWER),
    ("permessage-deflate; client_max_window_bits", OUR_ANSWER),
    ("permessage-deflate; server_no_context_takeover", OUR_ANSWER),
    ("permessage-deflate; client_no_context_takeover", OUR_ANSWER),
    ("permessage-deflate; server_max_window_bits=10", OUR_ANSWER + "; server_max_window_bits=10"),
    ('permessage-deflate; server_max_window_bits="12"',
     OUR_ANSWER + "; server_max_window_bits=12"),
    ("permessage-deflate; client_max_window_bits=9", OUR_ANSWER + "; client_max_window_bits=9"),
    ("x-unknown; a=1, permessage-deflate, x-other", OUR_ANSWER),
    ("permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits",
     OUR_ANSWER),
], ids=["bare", "client-bits-no-value", "server-no-context", "client-no-context",
        "server-bits", "quoted-value", "client-bits", "unknown-around", "first-invalid"])
def test_a_valid_offer_is_answered(echo_server, offer, answer):
    ws, extensions = negotiated(echo_server, offer)
    with ws:
        assert extensions == answer
        ws.echo(OP_TEXT, b"hi")  # short: below --compression-min-bytes, sent plain


def test_offers_on_several_header_lines_are_one_list(echo_server):
    ws, extensions = negotiated(echo_server, "x-unknown", OFFER)
    with ws:
        assert extensions == OUR_ANSWER


@pytest.mark.parametrize("offer", [
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; client_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=010",
    "permessage-deflate; client_no_context_takeover=1",
    "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; mystery",
    'permessage-deflate; client_max_window_bits="1 0"',
    "permessage-deflate;;",
    "x-webkit-deflate-frame",
], ids=["server-bits-no-value", "server-bits-7", "client-bits-16", "leading-zero",
        "no-context-with-value", "repeated", "unknown-param", "bad-quoted", "broken-list",
        "other-extension"])
def test_an_invalid_offer_is_declined_and_the_connection_works_plain(echo_server, offer):
    ws, extensions = negotiated(echo_server, offer)
    with ws:
        assert extensions is None
        ws.echo(OP_TEXT, CHAT_JSON)
        # Not negotiated: RSV1 means nothing, so it is a protocol error (RFC 6455 5.2).
        ws.send_frame(OP_TEXT, compress(CHAT_JSON), rsv=RSV1)
        ws.expect_close(1002)


def test_compression_off_declines_every_offer(off_server):
    ws, extensions = negotiated(off_server, OFFER)
    with ws:
        assert extensions is None
        ws.echo(OP_TEXT, CHAT_JSON)


# --------------------------------------------------------------------------- data

def test_compressed_text_and_binary_round_trip(echo_server):
    ws, _ = negotiated(echo_server, OFFER)
    with ws:
        binary = bytes(range(256)) * 4
        for opcode, data in [(OP_TEXT, CHAT_JSON), (OP_BINARY, binary),
                             (OP_TEXT, "κόσμε 😀 ".encode() * 50)]:
            ws.send_frame(opcode, compress(data), rsv=RSV1)
            expect_message(ws, opcode, data, compressed=True)


def test_plain_messages_are_still_accepted_after_negotiation(echo_server):
    ws, _ = negotiated(echo_server, OFFER)
    with ws:
        ws.send_frame(OP_TEXT, CHAT_JSON)
        expect_message(ws, OP_TEXT, CHAT_JSON, compressed=True)  # our answer is compressed
        ws.echo(OP_TEXT, b"short")


def test_empty_compressed_message(echo_server):
    ws, _ = negotiated(echo_server, OFFER)
    with ws:
        ws.send_frame(OP_TEXT, compress(b""), rsv=RSV1)
        ws.expect_frame(OP_TEXT, b"")
        ws.send_frame(OP_TEXT, b"\x00", rsv=RSV1)  # a stored block header: the tail ends it
        ws.expect_frame(OP_TEXT, b"")


def test_a_message_ended_by_a_final_block(echo_server):
    c = zlib.compressobj(wbits=-15)
    payload = c.compress(CHAT_JSON) + c.flush(zlib.Z_FINISH)  # BFINAL set, no tail removed
    ws, _ = negotiated(echo_server, OFFER)
    with ws:
        ws.send_frame(OP_TEXT, payload, rsv=RSV1)
        expect_message(ws, OP_TEXT, CHAT_JSON, compressed=True)


@pytest.mark.parametrize("pieces", [2, 3, 10])
def test_fragmented_compressed_message_with_rsv1_on_the_first_frame(echo_server, pieces):
    data = CHAT_JSON * 20
    payload = compress(data)
    step = -(-len(payload) // pieces)
    chunks = [payload[i:i + step] for i in range(0, len(payload), step)]
    ws, _ = negotiated(echo_server, OFFER)
    with ws:
        for i, chunk in enumerate(chunks):
            ws.send_frame(OP_TEXT if i == 0 else OP_CONTINUATION, chunk,
                          fin=i == len(chunks) - 1, rsv=RSV1 if i == 0 else 0)
            if i == 0:
                ws.send_frame(OP_PING, b"between")  # control frames may come in between
                ws.expect_frame(OP_PONG, b"between")
        expect_message(ws, OP_TEXT, data, compressed=True)


@pytest.mark.parametrize("wbits", range(9, 16))
def test_every_client_window_size(echo_server, wbits):
    data = CHAT_JSON * 100  # longer than every window, so back-references span them
    ws, _ = negotiated(echo_server, f"permessage-deflate; client_max_window_bits={wbits}")
    with ws:
        ws.send_frame(OP_TEXT, compress(data, wbits), rsv=RSV1)
        expect_message(ws, OP_TEXT, data, compressed=True)


@pytest.mark.parametrize("wbits", [8, 9, 12])
def test_a_bounded_server_window_is_kept(echo_server, wbits):
    # Our frames are compressed once for everyone with a 2^15 window but without context
    # takeover: a message within the peer's window cannot refer beyond it; a longer one
    # goes plain.
    window = 1 << wbits
    within = CHAT_JSON * (window // len(CHAT_JSON))
    beyond = CHAT_JSON * (window // len(CHAT_JSON) + 2)
    ws, extensions = negotiated(echo_server, f"permessage-deflate; server_max_window_bits={wbits}")
    with ws:
        assert extensions == OUR_ANSWER + f"; server_max_window_bits={wbits}"
        ws.send_frame(OP_TEXT, within)
        frame = ws.recv_frame()
        assert frame.rsv == RSV1
        d = zlib.decompressobj(wbits=-max(wbits, 9))
        assert d.decompress(frame.payload + TAIL) == within
        ws.send_frame(OP_TEXT, beyond)
        expect_message(ws, OP_TEXT, beyond, compressed=False)


# --------------------------------------------------------------------------- failures

@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_rsv1_on_a_control_frame_is_1002(echo_server, opcode):
    ws, _ = negotiated(echo_server, OFFER)
    with ws:
        ws.send_frame(opcode, b"", rsv=RSV1)
        ws.expect_close(1002)


def test_rsv1_on_a_continuation_frame_is_1002(echo_server):
    payload = compress(CHAT_JSON)
    ws, _ = negotiated(echo_server, OFFER)
    with ws:
        ws.send_frame(OP_TEXT, payload[:10], fin=False, rsv=RSV1)
        ws.send_frame(OP_CONTINUATION, payload[10:], fin=True, rsv=RSV1)
        ws.expect_close(1002)


def test_data_that_does_not_inflate_fails_the_connection(echo_server):
    ws, _ = negotiated(echo_server, OFFER)
    with ws:
        ws.send_frame(OP_TEXT, b"\xff\xff\xff\xff", rsv=RSV1)
        ws.expect_close(1007)


@pytest.mark.parametrize("data", [b"\xc3\x28", b"ok \xed\xa0\x80", b"ends inside \xe2\x82"],
                         ids=["bad-continuation", "surrogate", "truncated"])
def test_invalid_utf8_after_inflation_is_1007(echo_server, data):
    ws, _ = negotiated(echo_server, OFFER)
    with ws:
        ws.send_frame(OP_TEXT, compress(data), rsv=RSV1)
        ws.expect_close(1007)


def test_invalid_utf8_in_a_compressed_binary_message_is_fine(echo_server):
    data = b"\xc3\x28" * 100
    ws, _ = negotiated(echo_server, OFFER)
    with ws:
        ws.send_frame(OP_BINARY, compress(data), rsv=RSV1)
        expect_message(ws, OP_BINARY, data, compressed=True)


def test_a_decompression_bomb_is_closed_with_1009(echo_server, server_still_running):
    bomb = compress(b"a" * (64 << 20))  # 64 MiB of one letter: about 64 KiB compressed
    assert len(bomb) < MAX_MESSAGE * 2
    ws, _ = negotiated(echo_server, OFFER)
    with ws:
        # Fragments within the frame bound; the inflated total passes it in the first.
        step = MAX_MESSAGE // 2
        for i in range(0, len(bomb), step):
            last = i + step >= len(bomb)
            ws.send_frame(OP_TEXT if i == 0 else OP_CONTINUATION, bomb[i:i + step], fin=last,
                          rsv=RSV1 if i == 0 else 0, ignore_errors=True)
        ws.expect_close(1009)


def test_a_message_that_inflates_to_the_limit_passes(echo_server):
    data = b"b" * MAX_MESSAGE
    ws, _ = negotiated(echo_server, OFFER)
    with ws:
        ws.send_frame(OP_TEXT, compress(data), rsv=RSV1)
        expect_message(ws, OP_TEXT, data, compressed=True)
        ws.send_frame(OP_TEXT, compress(data + b"b"), rsv=RSV1)
        ws.expect_close(1009)


def test_an_incompressible_message_of_the_limit_passes(echo_server):
    # Deflate makes random bytes a little longer: the frame passes the limit, the message not.
    data = random.Random(7).randbytes(MAX_MESSAGE)
    payload = compress(data)
    assert len(payload) > MAX_MESSAGE
    ws, _ = negotiated(echo_server, OFFER)
    with ws:
        ws.send_frame(OP_BINARY, payload, rsv=RSV1)
        frame = ws.recv_frame()
        assert frame.opcode == OP_BINARY
        assert (decompress(frame.payload) if frame.rsv == RSV1 else frame.payload) == data


# ------------------------------------------------------------- a message's frames together

# A message's frames together (headers and payloads) may take at most 2 x --max-message-size
# + 1 KiB on the wire (docs/protocol.md): each frame and the inflated total are bounded on
# their own, but without this a peer could go on in empty fragments for ever.
WIRE_BOUND = 2 * MAX_MESSAGE + 1024
EMPTY_STORED_BLOCK = b"\x00\x00\x00\xff\xff"  # non-final, inflates to nothing (RFC 1951)


def fragments(first_opcode, first_payload, middle, count, last_payload, rsv=0):
    """One message as bytes: a first frame, `count` continuations of `middle`, a final one."""
    out = [rawws.build_frame(first_opcode, first_payload, fin=False, rsv=rsv)]
    out += [rawws.build_frame(OP_CONTINUATION, middle, fin=False)] * count
    out.append(rawws.build_frame(OP_CONTINUATION, last_payload))
    return b"".join(out)


def test_a_compressed_message_in_many_fragments_is_bounded_on_the_wire(echo_server,
                                                                        server_still_running):
    run = EMPTY_STORED_BLOCK * 3000  # 15,000 bytes that inflate to nothing
    tail = compress(CHAT_JSON)
    ws, _ = negotiated(echo_server, OFFER)
    with ws:
        # Within the bound (4 x ~15 KiB): echoed.
        ws.send_raw(fragments(OP_TEXT, EMPTY_STORED_BLOCK, run, 4, tail, rsv=RSV1))
        expect_message(ws, OP_TEXT, CHAT_JSON, compressed=True)
        # Past it (10 x ~15 KiB = ~150 KiB > 129 KiB) though the message inflates to 200 bytes.
        wire = fragments(OP_TEXT, EMPTY_STORED_BLOCK, run, 10, tail, rsv=RSV1)
        assert len(wire) > WIRE_BOUND
        ws.send_raw(wire, ignore_errors=True)
        ws.expect_close(1009)


def test_a_plain_message_in_endless_empty_fragments_is_closed_with_1009(echo_server,
                                                                         server_still_running):
    ws, _ = negotiated(echo_server, OFFER)
    with ws:
        # A message of the limit in 1,024 fragments of 64 bytes (~70 KiB on the wire) passes.
        data = b"f" * MAX_MESSAGE
        chunks = [data[i:i + 64] for i in range(0, len(data), 64)]
        ws.send_raw(fragments(OP_BINARY, chunks[0], chunks[1], len(chunks) - 2, chunks[-1]))
        frame = ws.recv_frame()
        assert frame.opcode == OP_BINARY
        assert (decompress(frame.payload) if frame.rsv == RSV1 else frame.payload) == data
        # Empty continuations, 6 bytes each, past the bound: 1009 (each frame is harmless).
        count = WIRE_BOUND // 6 + 10
        ws.send_raw(fragments(OP_TEXT, b"a", b"", count, b"z"), ignore_errors=True)
        ws.expect_close(1009)


# --------------------------------------------------------------------------- dedicated

dedicated_server = rawws.server_fixture("--echo-endpoint", "--compression", "dedicated",
                                        name="dedicated_server")


def test_dedicated_keeps_a_context_per_connection(dedicated_server):
    ws, extensions = negotiated(dedicated_server, "permessage-deflate; client_max_window_bits")
    with ws:
        assert extensions == "permessage-deflate; client_no_context_takeover"
        reader = zlib.decompressobj(wbits=-15)  # one stream for the whole connection
        sizes = []
        for _ in range(3):
            ws.send_frame(OP_TEXT, CHAT_JSON)
            frame = ws.recv_frame()
            assert frame.rsv == RSV1 and frame.opcode == OP_TEXT
            assert reader.decompress(frame.payload + TAIL) == CHAT_JSON
            sizes.append(len(frame.payload))
        # Later copies refer back to the first: a context kept between messages.
        assert sizes[1] < sizes[0] / 2 and sizes[2] < sizes[0] / 2, sizes


@pytest.mark.parametrize("offer", ["permessage-deflate; server_no_context_takeover",
                                   "permessage-deflate; server_max_window_bits=8"])
def test_dedicated_compresses_each_message_alone_when_the_client_asks(dedicated_server, offer):
    ws, extensions = negotiated(dedicated_server, offer)
    with ws:
        assert extensions.startswith(OUR_ANSWER)
        for _ in range(2):
            ws.send_frame(OP_TEXT, CHAT_JSON)
            frame = ws.recv_frame()
            assert frame.rsv == RSV1
            # Readable on its own: no reference to an earlier message.
            assert zlib.decompressobj(wbits=-15).decompress(frame.payload + TAIL) == CHAT_JSON


@pytest.mark.parametrize("wbits", [9, 11, 15])
def test_dedicated_keeps_within_the_window_the_client_allows(dedicated_server, wbits):
    ws, extensions = negotiated(dedicated_server,
                                f"permessage-deflate; server_max_window_bits={wbits}")
    with ws:
        assert extensions == ("permessage-deflate; client_no_context_takeover; "
                              f"server_max_window_bits={wbits}")
        reader = zlib.decompressobj(wbits=-wbits)
        for data in [CHAT_JSON * 40, CHAT_JSON, bytes(range(256)) * 20, CHAT_JSON * 3]:
            ws.send_frame(OP_BINARY, data)
            frame = ws.recv_frame()
            assert frame.rsv == RSV1
            assert reader.decompress(frame.payload + TAIL) == data
