"""Names that deceive (issue 21 item 7), against the real binary: names of nothing visible,
bidirectional controls and look-alikes of a member's name are refused with invalid_field;
a name is one name however it is composed (NFC); a message of nothing visible is empty.
Names in any script that deceive nobody are taken as they are. Each refusal leaves the
connection working."""

import json
import urllib.parse

import pytest

from cluster_support import cluster, redis_server  # noqa: F401 (fixtures)
from roomcast_server import RoomcastServer
from security_support import SECRET, expect_close, make_token
from test_chat_support import ChatClient, is_chat, is_system, is_type, room_of, run, users
from test_history import http_json

CYRILLIC_ANN = "\u0430nn"  # U+0430 CYRILLIC SMALL LETTER A, then Latin "nn"

INVISIBLE = {
    "zero-width-space": "\u200b",
    "zero-width-mix": "\u200b\u200c\u200d\ufeff\u2060",
    "nbsp": "\u00a0\u00a0",
    "ideographic-space": "\u3000",
    "spaces-mixed": " \u00a0\u3000\u2003\u200b ",
    "hangul-filler": "\u3164",
    "hangul-jamo-fillers": "\u115f\u1160",
    "halfwidth-hangul-filler": "\uffa0",
    "braille-blank": "\u2800",
    "soft-hyphen-and-selectors": "\u00ad\u034f\ufe0f\u180e",
}

BIDI_CONTROLS = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068",
                 "\u2069", "\u200e", "\u200f", "\u061c"]


async def refused_join(client, room, username=None):
    """Sends a join that must be refused with invalid_field; returns the error."""
    msg = {"type": "join_room", "room": room}
    if username is not None:
        msg["username"] = username
    await client.send(msg)
    err = await client.expect_error()
    assert err["code"] == "invalid_field", err
    return err


async def still_works(client, room="after", name="visible"):
    """The refused connection joins with a plain name and chats: it was left working."""
    await client.join(room, name)
    await client.chat_roundtrip(room, "still here")


@pytest.mark.parametrize("name", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_a_username_of_nothing_visible_is_refused(server, name):
    async def body():
        c = await ChatClient.connect(server)
        err = await refused_join(c, "general", name)
        assert "must not be empty" in err["message"], err
        await still_works(c)
    run(body())


@pytest.mark.parametrize("name", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_a_room_name_of_nothing_visible_is_refused(server, name):
    async def body():
        c = await ChatClient.connect(server)
        await refused_join(c, name, "ann")
        await still_works(c)
    run(body())


@pytest.mark.parametrize("control", BIDI_CONTROLS, ids=[f"U+{ord(c):04X}" for c in BIDI_CONTROLS])
def test_a_bidi_control_in_a_name_is_refused(server, control):
    async def body():
        watcher = await ChatClient.connect(server)
        await watcher.join("general", "watcher")
        c = await ChatClient.connect(server)
        # "ann<RLO>gnp.exe" reads as "annexe.png"; at the end, the control would turn the
        # others' "... joined the chat" around.
        for name in ("ann" + control + "gnp.exe", "ann" + control):
            err = await refused_join(c, "general", name)
            assert "bidirectional" in err["message"], err
        await refused_join(c, "gen" + control + "eral", "ann")
        joined = [m for m in await watcher.collect(0.3) if is_type("system_message")(m)]
        assert joined == [], joined
        await still_works(c)
    run(body())


def test_a_look_alike_of_a_members_name_is_refused_and_taken_where_nobody_looks_the_same(
        server):
    async def body():
        ann, carol = await room_of(server, "general", "ann", "carol")
        impostor = await ChatClient.connect(server)
        err = await refused_join(impostor, "general", CYRILLIC_ANN)
        assert "looks like the name of someone else in room 'general'" in err["message"], err
        # Nobody in general heard of the impostor.
        for c in (ann, carol):
            assert not [m for m in await c.collect(0.3)
                        if is_type("system_message")(m) or is_type("user_list")(m)]
        # Where nobody looks the same, the same name is taken (decided: look-alikes deceive
        # side by side; a name alone in its room deceives nobody).
        await impostor.join("elsewhere", CYRILLIC_ANN)
        await impostor.chat_roundtrip("elsewhere", "hello from elsewhere")
        # Still refused in general while ann is there; taken once she has left.
        await refused_join(impostor, "general")
        await ann.send({"type": "leave_room", "room": "general"})
        await carol.expect(is_system("general", "ann left the chat"))
        await impostor.join("general")
        await carol.expect(is_system("general", f"{CYRILLIC_ANN} joined the chat"))
    run(body())


@pytest.mark.parametrize("lookalike", ["bobl", "b\u043eb1", "bob\u200b1", "bob\u00a01"],
                         ids=["ascii-l-for-1", "cyrillic-o", "zero-width-inside", "nbsp-gap"])
def test_other_look_alikes_are_refused(server, lookalike):
    async def body():
        await room_of(server, "general", "bob1")
        c = await ChatClient.connect(server)
        if lookalike == "bob\u00a01":
            # A gap is a gap: "bob 1" and "bob<NBSP>1" look the same, "bob1" does not.
            await room_of(server, "spaced", "bob 1")
            await refused_join(c, "spaced", lookalike)
        else:
            await refused_join(c, "general", lookalike)
        await still_works(c)
    run(body())


def test_names_are_one_name_however_composed(server):
    async def body():
        decomposed, composed = "Ame\u0301lie", "Am\u00e9lie"
        a = await ChatClient.connect(server)
        await a.join("general", decomposed)
        # The same name on the same connection: no username_mismatch.
        await a.join("random", composed)
        watcher = await ChatClient.connect(server)
        await watcher.join("general", "watcher")
        await a.chat("bonjour", room="general")
        msg = await watcher.expect(is_chat("general", "bonjour"))
        assert msg["username"] == composed  # what everyone sees is the NFC form
        # Another anonymous connection with the same name (either spelling) is the same user
        # (anonymous users are known by name): taken, and listed under the one spelling.
        again = await ChatClient.connect(server)
        await again.join("general", decomposed)
        again.username = composed
        a.username = composed
        await watcher.expect_user_list("general", users(a, watcher, again))
    run(body())


def test_a_message_of_nothing_visible_is_refused_as_empty_and_reaches_nobody(server):
    async def body():
        sender, other = await room_of(server, "general", "sender", "other")
        for text in ("\u200b", "\u200b\u200b\u200b", "\u00a0\u3000\u2800", "\u3164\ufeff"):
            await sender.chat(text)
            err = await sender.expect_error()
            assert err == {"type": "error", "code": "invalid_field", "field": "message",
                           "message": "Field 'message' must not be empty"}, err
        # A visible message keeps its invisible characters: messages are not rewritten.
        await sender.chat("\u200bhi\u200b")
        await sender.expect(is_chat("general", "\u200bhi\u200b"))
        chats = [m["message"] for m in await other.collect(0.3) if is_type("chat_message")(m)]
        assert chats == ["\u200bhi\u200b"], chats
    run(body())


@pytest.mark.parametrize("name", ["山田\u3000太郎", "محمد", "José", "Zoë", "Дмитрий", "Ægir Ödegaard",
                                  "\U0001f469\u200d\U0001f4bb"],
                         ids=["japanese", "arabic", "accented", "diaeresis", "cyrillic-alone",
                              "nordic", "emoji-zwj"])
def test_names_in_any_script_that_deceive_nobody_are_taken_as_they_are(server, name):
    async def body():
        c, other = await room_of(server, "general", name, "other")
        await c.chat_roundtrip("general", "hi")
        msg = await other.expect(is_chat("general", "hi"))
        assert msg["username"] == name
    run(body())


def test_invisible_ends_are_trimmed_from_names(server):
    async def body():
        c = await ChatClient.connect(server)
        await c.send({"type": "join_room", "room": "\u2060general\u3000",
                      "username": "\u200bann\u00a0"})
        await c.expect(is_system("general", "Welcome to general!"))
        c.username = "ann"
        await c.expect_user_list("general", users(c))
    run(body())


def test_an_ill_formed_room_name_in_the_history_api_is_refused(server):
    status, body = http_json(server, "/api/rooms/caf%C3/messages")
    assert status == 400 and body["code"] == "invalid_field", (status, body)
    assert body["message"] == "Field 'room' must be valid UTF-8", body
    # One room whichever way its name is composed.
    status, nfd = http_json(server, "/api/rooms/" + urllib.parse.quote("cafe\u0301") + "/messages")
    assert status == 200 and nfd["room"] == "caf\u00e9", (status, nfd)


@pytest.fixture(scope="module")
def token_server():
    """Tokens verified when given; anonymous users welcome (the default)."""
    with RoomcastServer("--jwt-secret", SECRET) as s:
        yield s


def test_nobody_passes_for_a_tokens_user_by_taking_the_name(token_server):
    async def body():
        token = make_token(sub="user-ann", name="ann")
        ann = await ChatClient.connect(token_server, f"/?token={token}")
        await ann.join("general")
        tab = await ChatClient.connect(token_server, f"/?token={token}")
        await tab.join("general")  # ann's other tab: the same user
        for name in ("ann", CYRILLIC_ANN):  # anonymous: the very name, or a look-alike
            c = await ChatClient.connect(token_server)
            await refused_join(c, "general", name)
        other = make_token(sub="user-other", name=CYRILLIC_ANN)  # another token's user
        c = await ChatClient.connect(token_server, f"/?token={other}")
        await refused_join(c, "general")
        await c.join("elsewhere")
    run(body())


def test_a_tokens_name_of_nothing_visible_is_refused_and_a_decomposed_one_is_kept_in_nfc(
        token_server):
    async def body():
        invisible = make_token(name="\u3164")  # a Hangul filler
        await expect_close(token_server, f"/?token={invisible}", code=4001,
                           reason="Invalid token")
        token = make_token(sub="user-zoe", name="Zoe\u0308")  # decomposed
        zoe = await ChatClient.connect(token_server, f"/?token={token}")
        await zoe.join("general", "Zo\u00eb")  # the token's name, composed: no mismatch
        zoe.username = "Zo\u00eb"
        await zoe.expect_user_list("general", users(zoe))
    run(body())


def test_a_look_alike_of_a_member_on_another_node_is_refused(cluster):
    a, b = cluster(2)

    async def body():
        ann = await ChatClient.connect(a)
        await ann.join("general", "ann")
        watcher = await ChatClient.connect(b)
        await watcher.join("general", "watcher")
        # Node B has heard of ann (through Redis) once its watcher sees her in the user list
        # (in join order: ann was there first).
        ann.username = "ann"
        watcher.username = "watcher"
        await watcher.expect_user_list("general", users(ann, watcher))
        await ann.expect(is_system("general", "watcher joined the chat"))
        impostor = await ChatClient.connect(b)
        err = await refused_join(impostor, "general", CYRILLIC_ANN)
        assert "looks like the name of someone else" in err["message"], err
        # Node A never heard of the impostor.
        heard = [m for m in await ann.collect(0.3)
                 if CYRILLIC_ANN in json.dumps(m, ensure_ascii=False)]
        assert heard == [], heard
        await still_works(impostor)
    run(body())
