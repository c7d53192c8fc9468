"""Storage faults of the SQLite history store (issue 21, items 5 and 6), against the real
binary: a full disk (a small tmpfs mounted as --data-dir: needs root, as CI runs; skipped
with the reason otherwise) keeps joins of other rooms answered, drains its backlog through
smaller commits once a little space is back, refuses with `unavailable` (naming room and
id) once the fault outlasts --storage-refuse-after, says so in /healthz, and loses no
acknowledged message; a database deleted under the running server is detected, and the
restart numbers from a new epoch, so no `since` a client holds names another message."""

import errno
import os
import subprocess
import tempfile
import time

import pytest

from roomcast_server import RoomcastServer
from test_chat_support import ChatClient, is_type, now_ms, run
from test_history import http_json, joined, send_all_with_ids


def big_text(tag):
    """About 1.5 KB (the 500-character limit, mostly 3-byte characters), starting with
    `tag` so that history shows which message it is."""
    return tag + " " + "\u20ac" * (499 - len(tag))


@pytest.fixture
def small_disk():
    """A 16 MiB tmpfs to use as --data-dir, unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("a full disk needs a small tmpfs, and mounting one needs root "
                    "(CI runs these tests as root)")
    mount = tempfile.mkdtemp(prefix="roomcast-small-disk-")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mount],
                          capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        os.rmdir(mount)
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", mount], timeout=10).returncode != 0:
            subprocess.run(["umount", "-l", mount], timeout=10)
        os.rmdir(mount)


def fill_disk(directory):
    """Writes a filler file until the file system is full; returns its path."""
    filler = os.path.join(directory, "filler")
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 512):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
    return filler


def free_bytes(filler, n):
    os.truncate(filler, max(0, os.path.getsize(filler) - n))


def wait_for_health(server, status, timeout=20):
    """(status, body) of /healthz once it answers `status`; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        got, body = http_json(server, "/healthz")
        if got == status:
            return got, body
        if time.monotonic() > deadline:
            raise AssertionError(f"/healthz still {got} {body}, not {status}: {server.log()}")
        time.sleep(0.1)


def is_answer(room):
    """An ack or an error naming a chat message of `room`."""
    return lambda m: (m.get("type") == "ack" and m.get("room") == room) or \
        (m.get("type") == "error" and m.get("room") == room and "id" in m)


def stored_texts(server, room):
    """{seq: text} of everything the room's history holds."""
    status, body = http_json(server, f"/api/rooms/{room}/messages?since=0&limit=1000")
    assert status == 200, body
    return {m["seq"]: m["message"] for m in body["messages"]}


def test_a_full_disk_keeps_joins_answered_drains_through_smaller_commits_loses_nothing(
        small_disk):
    # A bound far away: this test is about what happens before messages are refused.
    with RoomcastServer("--storage-refuse-after", "10m", data_dir=small_disk) as server:
        async def body():
            ann = await joined(server, "busy", "ann")
            acked = {}
            for text, seq in (await send_all_with_ids(ann, "busy",
                                                      [f"before{i}" for i in range(20)])).items():
                acked[seq] = text
            filler = fill_disk(small_disk)
            texts = {f"m{i}": big_text(f"m{i}") for i in range(300)}
            for id_, text in texts.items():
                await ann.chat(text, id=id_)
            _, health = wait_for_health(server, 503)
            assert health["status"] == "degraded" and health["storage"] == "failing", health
            assert "full" in health["reason"], health

            # A room that is not in memory loads meanwhile: the join is answered.
            bob = await joined(server, "quiet", "bob")
            await bob.close()

            # 256 KiB back: less than the backlog (300 x 1.5 KB) needs in one commit, enough
            # for smaller ones, so some of it gets through.
            answers = []
            free_bytes(filler, 256 << 10)
            answers.append(await ann.expect(is_answer("busy"), timeout=30))
            # All the space back: the rest drains.
            os.remove(filler)
            while len(answers) < 300:
                answers.append(await ann.expect(is_answer("busy"), timeout=30))
            for a in answers:
                assert a["type"] == "ack", a  # nothing refused: the bound was not reached
                acked[a["seq"]] = texts[a["id"]]
            assert sorted(a["id"] for a in answers) == sorted(texts)
            await ann.close()
            return acked

        acked = run(body(), timeout=120)
        wait_for_health(server, 200)
    # Every acknowledged message is on disk under its seq, after a restart.
    with RoomcastServer(data_dir=small_disk) as server:
        assert stored_texts(server, "busy") == acked


def test_a_lasting_full_disk_answers_unavailable_naming_room_and_id_and_loses_nothing(
        small_disk):
    with RoomcastServer("--storage-refuse-after", "1s", data_dir=small_disk) as server:
        async def body():
            ann = await joined(server, "busy", "ann")
            acked = {seq: text for text, seq in
                     (await send_all_with_ids(ann, "busy", ["first", "second"])).items()}
            filler = fill_disk(small_disk)
            texts = {f"m{i}": big_text(f"m{i}") for i in range(100)}
            for id_, text in texts.items():
                await ann.chat(text, id=id_)
            # Every message is answered: acked if it got in before the disk filled up,
            # else refused once the fault outlasts the bound.
            answers = {}
            while len(answers) < len(texts):
                a = await ann.expect(is_answer("busy"), timeout=30)
                answers[a["id"]] = a
            refused = [i for i, a in answers.items() if a["type"] == "error"]
            assert refused, answers
            for i in refused:
                assert answers[i]["code"] == "unavailable", answers[i]
                assert answers[i]["message"], answers[i]
            for i, a in answers.items():
                if a["type"] == "ack":
                    acked[a["seq"]] = texts[i]
            # (/healthz while commits fail: see the test above, where they fail for longer.)

            # While it lasts, a new message gets its answer too.
            await ann.chat(big_text("late"), id="late")
            late = await ann.expect(lambda m: m.get("id") == "late", timeout=30)
            assert late["type"] == "error" and late["code"] == "unavailable", late
            assert late["room"] == "busy", late

            # The disk is back: the refused messages, sent again with their ids, are stored.
            os.remove(filler)
            texts["late"] = big_text("late")
            waiting = refused + ["late"]
            deadline = time.monotonic() + 60
            while waiting:
                assert time.monotonic() < deadline, f"still refused: {waiting}"
                for i in waiting:
                    await ann.chat(texts[i], id=i)
                answered = {}
                while len(answered) < len(waiting):
                    a = await ann.expect(is_answer("busy"), timeout=30)
                    answered[a["id"]] = a
                for i, a in answered.items():
                    if a["type"] == "ack":
                        acked[a["seq"]] = texts[i]
                waiting = [i for i, a in answered.items() if a["type"] != "ack"]
                if waiting:
                    time.sleep(0.3)
            await ann.close()
            return acked

        acked = run(body(), timeout=150)
        wait_for_health(server, 200)
    with RoomcastServer(data_dir=small_disk) as server:
        # Each acked message once, under its seq; nothing refused was stored.
        assert stored_texts(server, "busy") == acked


def test_a_deleted_database_is_refused_and_the_restart_reuses_no_seq(tmp_path):
    data_dir = str(tmp_path)
    with RoomcastServer(data_dir=data_dir) as server:
        async def before():
            ann = await joined(server, "kept", "ann")
            acks = await send_all_with_ids(ann, "kept", [f"a{i}" for i in range(5)])
            assert sorted(acks.values()) == [1, 2, 3, 4, 5]  # a new data directory: from 1
            os.remove(os.path.join(data_dir, "roomcast.db"))
            server.wait_for_log("roomcast.db was deleted while the server ran")
            _, health = wait_for_health(server, 503)
            assert health["status"] == "degraded", health
            assert "deleted or replaced" in health["reason"], health
            await ann.chat("into the void", id="x1")
            refused = await ann.expect(lambda m: m.get("id") == "x1", timeout=30)
            assert refused["type"] == "error" and refused["code"] == "unavailable", refused
            assert refused["room"] == "kept", refused
            # Joins are still answered.
            bob = await joined(server, "other", "bob")
            await bob.close()
            await ann.close()
        run(before())

    started_ms = now_ms()
    with RoomcastServer(data_dir=data_dir) as server:
        async def after():
            carl = await ChatClient.connect(server)
            await carl.join("kept", "carl", since=5)
            history = await carl.expect(is_type("history", "kept"))
            assert history["recovered"] is False, history
            ack = (await send_all_with_ids(carl, "kept", ["new"]))["new"]
            # Not 1 again: a client holding since=5 can never get another message as 1..5.
            assert ack >= started_ms * 1000, ack
            # And a rejoin from the new numbering resumes exactly.
            dana = await ChatClient.connect(server)
            await dana.join("kept", "dana", since=ack - 1)
            resumed = await dana.expect(is_type("history", "kept"))
            assert resumed["recovered"] is True, resumed
            assert [m["seq"] for m in resumed["messages"]] == [ack], resumed
        run(after())
        wait_for_health(server, 200)
