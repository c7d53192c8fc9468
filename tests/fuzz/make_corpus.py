#!/usr/bin/python3
"""Writes the committed seed corpus of the fuzz targets: tests/fuzz/corpus/<target>/.

Each seed is a small hand-made input in the layout its target's header comment describes,
named for what it exercises. Run again after changing a seed; the output is deterministic.

    /usr/bin/python3 tests/fuzz/make_corpus.py
"""

import json
import pathlib
import shutil
import struct
import zlib

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

# --- WebSocket frames (fuzz_frame_reader) -----------------------------------------------

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(opcode, payload=b"", fin=True, mask=MASK, rsv=0, length_form=None):
    """One frame; mask=None sends it unmasked (server to client)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    mask_bit = 0x80 if mask is not None else 0
    if form == 7:
        header = bytes([first, mask_bit | n])
    elif form == 16:
        header = bytes([first, mask_bit | 126]) + struct.pack(">H", n)
    else:
        header = bytes([first, mask_bit | 127]) + struct.pack(">Q", n)
    if mask is None:
        return header + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


# Byte 0: bit 0 = client role, bits 1-2 = message size limit (0: 1 MiB, 1: 16, 2: 125,
# 3: 4096), bit 3 = permessage-deflate negotiated, bit 4 = with the peer's context takeover.
# Byte 1: read-size seed (0 = one byte per read, 255 = large reads).
def frame_input(stream, client=False, limit=0, reads=255, deflate=False, takeover=False):
    flags = (1 if client else 0) | (limit << 1) | (8 if deflate else 0) | (16 if takeover else 0)
    return bytes([flags, reads]) + stream


def deflated(data, final_block=False):
    """A message's payload as permessage-deflate sends it (RFC 7692 section 7.2.1)."""
    c = zlib.compressobj(wbits=-15)
    if final_block:
        return c.compress(data) + c.flush(zlib.Z_FINISH)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


EURO = "€".encode()  # 3 bytes, split across fragments below

FRAME_SEEDS = {
    "text_hello": frame_input(frame(TEXT, b"Hello")),
    "text_hello_byte_reads": frame_input(frame(TEXT, b"Hello"), reads=0),
    "binary_200_len16": frame_input(frame(BINARY, bytes(range(200)))),
    "binary_len64_nonminimal": frame_input(frame(BINARY, b"abc", length_form=64), reads=3),
    "fragmented_text_with_ping": frame_input(
        frame(TEXT, b"Hel", fin=False) + frame(PING, b"p") + frame(CONTINUATION, b"lo"), reads=2
    ),
    "utf8_split_across_fragments": frame_input(
        frame(TEXT, b"price " + EURO[:1], fin=False)
        + frame(CONTINUATION, EURO[1:2], fin=False)
        + frame(CONTINUATION, EURO[2:] + b" 5")
    ),
    "ping_pong_close": frame_input(
        frame(PING, b"hb") + frame(PONG, b"hb") + frame(CLOSE, close_payload(1000, b"bye"))
    ),
    "close_no_status": frame_input(frame(CLOSE)),
    "close_one_byte_payload": frame_input(frame(CLOSE, b"\x03")),
    "close_invalid_code_1005": frame_input(frame(CLOSE, close_payload(1005))),
    "client_role_unmasked_text": frame_input(frame(TEXT, b"from server", mask=None), client=True),
    "client_role_masked_is_error": frame_input(frame(TEXT, b"x"), client=True),
    "server_role_unmasked_is_error": frame_input(frame(TEXT, b"x", mask=None)),
    "reserved_bits": frame_input(frame(TEXT, b"x", rsv=4)),
    "unknown_opcode": frame_input(frame(0x3, b"x")),
    "invalid_utf8": frame_input(frame(TEXT, b"\xc0\xaf")),
    "too_big_for_limit_16": frame_input(frame(TEXT, b"seventeen bytes!!"), limit=1),
    "fragments_too_big_together": frame_input(
        frame(BINARY, b"0123456789", fin=False) + frame(CONTINUATION, b"0123456789"), limit=1
    ),
    "continuation_without_message": frame_input(frame(CONTINUATION, b"x")),
    "length_high_bit": frame_input(bytes([0x82, 0xFF]) + b"\x80" + bytes(7) + MASK),
    "partial_frame_at_end": frame_input(frame(TEXT, b"Hello") + frame(TEXT, b"world")[:5], reads=4),
    "deflate_text": frame_input(frame(TEXT, deflated(b"Hello, Hello, Hello"), rsv=4), deflate=True),
    "deflate_fragmented": frame_input(
        frame(TEXT, deflated(b"abcabcabcabc")[:4], fin=False, rsv=4)
        + frame(PING, b"p")
        + frame(CONTINUATION, deflated(b"abcabcabcabc")[4:]),
        deflate=True, reads=3,
    ),
    "deflate_final_block_takeover": frame_input(
        frame(TEXT, deflated(b"one two one two", final_block=True), rsv=4)
        + frame(BINARY, deflated(bytes(range(50))), rsv=4),
        deflate=True, takeover=True,
    ),
    "deflate_bomb_limit_4096": frame_input(
        frame(TEXT, deflated(b"a" * 100000), rsv=4), limit=3, deflate=True
    ),
    "deflate_invalid_utf8": frame_input(frame(TEXT, deflated(b"\xc0\xaf"), rsv=4), deflate=True),
    "deflate_rsv1_on_continuation": frame_input(
        frame(TEXT, b"x", fin=False) + frame(CONTINUATION, b"y", rsv=4), deflate=True
    ),
    "deflate_not_deflate": frame_input(frame(TEXT, b"\xff\xff\xff", rsv=4), deflate=True),
}

# --- HTTP requests (fuzz_http_upgrade) ----------------------------------------------------

# Byte 0: bit 0 = /echo enabled, bits 1-3 = read size (0: all, 1: 1 byte, 2: 2, 3: 7,
# 4: 64, 5: 512, 6: 4096, 7: all).
def http_input(request, echo=False, reads=0):
    return bytes([(1 if echo else 0) | (reads << 1)]) + request


def request(method, target, headers=(), body=b"", version="1.1"):
    lines = [f"{method} {target} HTTP/{version}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


BROWSER_UPGRADE = [
    ("Host", "localhost:3000"),
    ("Connection", "Upgrade"),
    ("Pragma", "no-cache"),
    ("Cache-Control", "no-cache"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36"),
    ("Upgrade", "websocket"),
    ("Origin", "http://localhost:3000"),
    ("Sec-WebSocket-Version", "13"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Accept-Language", "en-US,en;q=0.9"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
]


def with_header(headers, name, value):
    return [(k, v) for k, v in headers if k != name] + ([(name, value)] if value else [])


JOIN = json.dumps({"type": "join_room", "room": "lobby", "username": "alice"}).encode()

HTTP_SEEDS = {
    "browser_upgrade_root": http_input(request("GET", "/", BROWSER_UPGRADE)),
    "browser_upgrade_ws_with_first_frame": http_input(
        request("GET", "/ws", BROWSER_UPGRADE) + frame(TEXT, JOIN), reads=4
    ),
    "upgrade_echo_enabled": http_input(request("GET", "/echo", BROWSER_UPGRADE), echo=True),
    "upgrade_echo_disabled": http_input(request("GET", "/echo", BROWSER_UPGRADE)),
    "upgrade_version_8": http_input(
        request("GET", "/ws", with_header(BROWSER_UPGRADE, "Sec-WebSocket-Version", "8"))
    ),
    "upgrade_bad_key": http_input(
        request("GET", "/ws", with_header(BROWSER_UPGRADE, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZR=="))
    ),
    "upgrade_http10": http_input(request("GET", "/ws", BROWSER_UPGRADE, version="1.0")),
    "upgrade_post": http_input(request("POST", "/ws", BROWSER_UPGRADE)),
    "upgrade_no_host": http_input(request("GET", "/ws", with_header(BROWSER_UPGRADE, "Host", ""))),
    "upgrade_connection_list": http_input(
        request("GET", "/ws", with_header(BROWSER_UPGRADE, "Connection", "keep-alive, Upgrade"))
    ),
    "upgrade_wrong_path": http_input(request("GET", "/chat", BROWSER_UPGRADE)),
    "upgrade_deflate_offers": http_input(request("GET", "/ws", with_header(
        BROWSER_UPGRADE, "Sec-WebSocket-Extensions",
        'x-a; b="c", permessage-deflate; server_max_window_bits=8; client_no_context_takeover, '
        'permessage-deflate; client_max_window_bits="10"'))),
    "upgrade_deflate_then_compressed_frame": http_input(
        request("GET", "/ws", BROWSER_UPGRADE) + frame(TEXT, deflated(JOIN), rsv=4), reads=4
    ),
    "plain_ws_get": http_input(request("GET", "/ws", [("Host", "localhost")])),
    "get_index": http_input(request("GET", "/", [("Host", "localhost")]), reads=3),
    "keep_alive_pipeline": http_input(
        request("GET", "/healthz", [("Host", "h")])
        + request("GET", "/metrics", [("Host", "h")])
        + request("GET", "/api/stats?pretty=1", [("Host", "h")])
        + request("HEAD", "/app.js", [("Host", "h")])
        + request("GET", "/sub/", [("Host", "h"), ("If-None-Match", '"0-0"')]),
        reads=5,
    ),
    "head_http10": http_input(request("HEAD", "/style.css", version="1.0")),
    "post_with_body": http_input(
        request("POST", "/api/stats", [("Host", "h"), ("Content-Length", "5")], b"hello")
    ),
    "chunked_body": http_input(
        request("PUT", "/x", [("Host", "h"), ("Transfer-Encoding", "chunked")], b"5\r\nhello\r\n0\r\n\r\n")
    ),
    "traversal_dotdot": http_input(request("GET", "/../secret.txt", [("Host", "h")])),
    "traversal_percent": http_input(request("GET", "/%2e%2e/secret.txt", [("Host", "h")])),
    "traversal_symlink_file": http_input(request("GET", "/escape.txt", [("Host", "h")])),
    "traversal_symlink_dir": http_input(request("GET", "/up/secret.txt", [("Host", "h")])),
    "symlink_inside_root": http_input(request("GET", "/inside/index.html", [("Host", "h")])),
    "percent_encoded_name": http_input(request("GET", "/a%20b%25.txt", [("Host", "h")])),
    "malformed_percent": http_input(request("GET", "/%zz", [("Host", "h")])),
    "garbage_request_line": http_input(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
    "truncated_headers": http_input(b"GET / HTTP/1.1\r\nHost: loc"),
}

# --- Protocol messages (fuzz_protocol_decoder) --------------------------------------------

PROTOCOL_SEEDS = {
    "join_with_username": JOIN,
    "join_without_username": b'{"type":"join_room","room":"general"}',
    "join_names_trimmed": b'{"type":"join_room","room":"  caf\\u00e9 ","username":"\\tbob "}',
    "leave": b'{"type":"leave_room","room":"lobby"}',
    "chat": b'{"type":"chat_message","message":"Hello, world!","timestamp":1700000000000}',
    "chat_to_room": b'{"type":"chat_message","message":"hi \xf0\x9f\x91\x8b","room":"lobby"}',
    "chat_escapes": b'{"type":"chat_message","message":"line\\nbreak \\"q\\" \\u2028 <b>"}',
    "join_since": b'{"type":"join_room","room":"lobby","username":"alice","since":41}',
    "join_since_negative": b'{"type":"join_room","room":"lobby","since":-1}',
    "chat_with_id": b'{"type":"chat_message","message":"hi","id":"4f1c9a52-client-1"}',
    "chat_id_too_long": b'{"type":"chat_message","message":"hi","id":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}',
    "typing_start": b'{"type":"typing_start","room":"lobby"}',
    "typing_stop": b'{"type":"typing_stop","room":"lobby"}',
    "refresh": b'{"type":"refresh","token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln"}',
    "refresh_token_not_string": b'{"type":"refresh","token":42}',
    "unknown_type": b'{"type":"shout","room":"lobby"}',
    "type_not_string": b'{"type":1}',
    "room_not_string": b'{"type":"leave_room","room":["lobby"]}',
    "username_null": b'{"type":"join_room","room":"lobby","username":null}',
    "forbidden_name": b'{"type":"join_room","room":"<script>","username":"x"}',
    "timestamp_string": b'{"type":"chat_message","message":"hi","timestamp":"now"}',
    "duplicate_keys": b'{"type":"leave_room","room":"a","room":"b"}',
    "too_deep": b'{"type":"chat_message","message":"x","extra":[[[[[[[[[[1]]]]]]]]]]}',
    "not_object": b'["join_room"]',
    "invalid_json": b'{"type":"join_room",',
    "invalid_utf8": b'{"type":"chat_message","message":"\xc3\x28"}',
    "join_invisible_name": b'{"type":"join_room","room":"\\u3000","username":"\\u200b\\u3164"}',
    "join_invisible_ends": b'{"type":"join_room","room":"\\u2060lobby","username":"\\u00a0ann\\ufeff"}',
    "join_bidi_name": b'{"type":"join_room","room":"lobby","username":"ann\\u202egnp.exe"}',
    "join_nfd_name": b'{"type":"join_room","room":"cafe\\u0301","username":"Zoe\\u0308"}',
    "chat_invisible": b'{"type":"chat_message","message":"\\u200b\\u2800\\u00a0"}',
}

# --- Hub operations (fuzz_hub) ------------------------------------------------------------

CONNECT, DISCONNECT, SAY, SAY_RAW, TICK, ADVANCE, BINARY_OP, STRANGER = range(8)
# KIND for SAY: join+username, join, leave, chat, chat to room, typing_start, typing_stop,
# chat with timestamp. ROOM: lobby, general, " lobby ", café, 30 chars, 31 chars, "", "a<b".
# NAME: alice, bob, " alice ", "", 20 chars, 21 chars, éééé..., "bad&name", alice between
# invisible characters, Cyrillic look-alike of alice, nothing visible, a bidi control, e+U+0301.
# TEXT: "hi", "", blank, 500 chars, 501 chars, 500 ü, markup, U+2028 and emoji.
# ADVANCE steps (ms): 1, 10, 50, 100, 1000, 4999, 5000, 60000.


def say(slot, kind, room=0, name=0, text=0):
    return bytes([SAY, slot, kind, room, name, text])


def say_raw(slot, text):
    return bytes([SAY_RAW, slot, len(text)]) + text


def ops(*parts):
    return b"".join(bytes(p) if isinstance(p, list) else p for p in parts)


HUB_SEEDS = {
    "look_alike_names": ops(
        [CONNECT, 0], [CONNECT, 1], [CONNECT, 2], say(0, 0, 0, 0), say(1, 0, 0, 9),
        say(1, 0, 1, 9), say(1, 1, 0), say(2, 0, 0, 8), say(2, 0, 1, 12), say(2, 0, 0, 10),
        say(0, 2, 0), say(1, 1, 0), [ADVANCE, 3], [TICK], [DISCONNECT, 1], [DISCONNECT, 0],
    ),
    "two_join_and_chat": ops(
        [CONNECT, 0], [CONNECT, 1], say(0, 0, 0, 0), say(1, 0, 0, 1), say(0, 3, text=0),
        [ADVANCE, 3], [TICK], say(1, 4, 0, text=6), [DISCONNECT, 0], [ADVANCE, 3], [TICK],
    ),
    "typing_expires": ops(
        [CONNECT, 0], [CONNECT, 1], say(0, 0, 1, 0), say(1, 0, 1, 1), say(0, 5, 1),
        say(0, 5, 1), [ADVANCE, 6], [TICK], say(1, 5, 1), say(1, 6, 1), [TICK],
    ),
    "typing_then_disconnect": ops(
        [CONNECT, 2], [CONNECT, 3], say(2, 0, 0, 0), say(3, 0, 0, 1), say(2, 5, 0),
        [DISCONNECT, 2], [ADVANCE, 7], [TICK],
    ),
    "many_rooms_and_leave": ops(
        [CONNECT, 0], say(0, 0, 0, 0), say(0, 1, 1), say(0, 1, 3), say(0, 1, 4),
        say(0, 3, text=5), say(0, 2, 2), say(0, 2, 0), say(0, 4, 1, text=0), [ADVANCE, 2], [TICK],
    ),
    "errors": ops(
        [CONNECT, 0], say(0, 1, 0), say(0, 3), say(0, 0, 5, 0), say(0, 0, 0, 5), say(0, 0, 7, 0),
        say(0, 0, 0, 7), say(0, 0, 0, 0), say(0, 0, 0, 1), say(0, 0, 0, 0), say(0, 2, 1),
        say(0, 3, text=1), say(0, 3, text=4), say(0, 7, name=1), [BINARY_OP, 0],
        say_raw(0, b"{not json"), say_raw(0, b'{"type":"dance"}'),
    ),
    "reconnect_and_stranger": ops(
        [CONNECT, 0], [CONNECT, 0], say(0, 0, 0, 0), [DISCONNECT, 0], [CONNECT, 0],
        say(0, 0, 0, 1), [STRANGER, 3, 0, 0, 0], [STRANGER, 0, 0, 0, 0], [DISCONNECT, 5],
    ),
    "raw_join_and_leave": ops(
        [CONNECT, 4], [CONNECT, 5],
        say_raw(4, b'{"type":"join_room","room":" lobby","username":"carol"}'),
        say_raw(5, b'{"type":"join_room","room":"lobby","username":"dave"}'),
        say_raw(4, b'{"type":"leave_room","room":"lobby "}'),
        [ADVANCE, 4], [TICK], say_raw(5, b'{"type":"chat_message","message":"anyone?"}'),
    ),
    "resends_and_rejoin_since": ops(
        [CONNECT, 0], [CONNECT, 1], say(0, 0, 0, 0), say(1, 0, 0, 1), say(0, 7, name=2),
        say(0, 7, name=2), say(0, 7, name=3), say(1, 2, 0), say(1, 1, 0, name=1, text=1),
        say(0, 3, text=0), [ADVANCE, 3], [TICK],
    ),
    "full_house": ops(
        *[[CONNECT, s] for s in range(8)], *[say(s, 0, 0, s % 2) for s in range(8)],
        *[say(s, 3, text=0) for s in range(8)], [ADVANCE, 3], [TICK],
        *[[DISCONNECT, s] for s in range(0, 8, 2)], [ADVANCE, 3], [TICK],
    ),
}

# --- Dictionaries ---------------------------------------------------------------------

HTTP_DICT = [
    "GET", "HEAD", "POST", "HTTP/1.1", "HTTP/1.0", "\r\n", "\r\n\r\n", ": ", "/", "/ws",
    "/echo", "/healthz", "/metrics", "/api/stats", "/index.html", "/app.js", "/sub/",
    "/escape.txt", "/up/", "/inside/", "..", "%2e", "%2f", "%00", "%5c", "?", "Host: ",
    "Upgrade: ", "Connection: ", "Sec-WebSocket-Key: ", "Sec-WebSocket-Version: ",
    "Content-Length: ", "Transfer-Encoding: ", "chunked", "If-None-Match: ", "keep-alive",
    "close", "websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==",
]

JSON_DICT = [
    '"type"', '"room"', '"username"', '"message"', '"timestamp"', '"join_room"',
    '"leave_room"', '"chat_message"', '"typing_start"', '"typing_stop"', '"refresh"',
    '"token"', "{", "}", "[", "]",
    ":", ",", "null", "true", "false", "1700000000000", '"\\u0000"', '"\\ud83d\\udca9"',
    '"\\u00e9"', " ",
]


def dict_entry(word):
    escaped = "".join(
        f"\\x{b:02X}" if b < 0x20 or b >= 0x7F or b in (0x22, 0x5C) else chr(b)
        for b in word.encode()
    )
    return f'"{escaped}"\n'


def write_dict(name, words):
    header = f"# libFuzzer dictionary for {name}; written by make_corpus.py.\n"
    (HERE / f"{name}.dict").write_text(header + "".join(dict_entry(w) for w in words))


def write_corpus(target, seeds):
    out = CORPUS / target
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name, data in sorted(seeds.items()):
        (out / name).write_bytes(data)


def main():
    write_corpus("fuzz_frame_reader", FRAME_SEEDS)
    write_corpus("fuzz_http_upgrade", HTTP_SEEDS)
    write_corpus("fuzz_protocol_decoder", PROTOCOL_SEEDS)
    write_corpus("fuzz_hub", HUB_SEEDS)
    write_dict("fuzz_http_upgrade", HTTP_DICT)
    write_dict("fuzz_protocol_decoder", JSON_DICT)
    write_dict("fuzz_hub", JSON_DICT)


if __name__ == "__main__":
    main()
