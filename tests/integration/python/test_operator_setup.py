"""What an operator deploying roomcast needs (issue 20): the build's identity (--version, the
start-up line, /api/stats, roomcast_build_info in /metrics); settings from a TOML file, the
environment and flags, flags winning over the environment over the file; and the token tools
(gentoken, checktoken), all with the real binary."""

import asyncio
import json
import os
import re
import subprocess
import urllib.request

import jwt
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from roomcast_server import ROOT, RoomcastServer, binary_path
from security_support import SECRET, make_token
from test_chat_support import ChatClient, run


def roomcast(*args, env=None, timeout=10):
    """Runs the binary for an answer (not a server): its CompletedProcess."""
    return subprocess.run([binary_path(), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def project_version():
    """The version CMakeLists.txt declares: project(roomcast VERSION x.y.z ...)."""
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(roomcast VERSION ([0-9.]+)", f.read()).group(1)


def in_git():
    done = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                          timeout=10)
    return done.returncode == 0


def is_commit_of_this_checkout(commit):
    """Whether `commit` is HEAD or one of its ancestors (a build may predate the last commit)."""
    done = subprocess.run(["git", "-C", ROOT, "merge-base", "--is-ancestor", commit, "HEAD"],
                          capture_output=True, timeout=10)
    return done.returncode == 0


def get(server, path):
    with urllib.request.urlopen(server.http_url + path, timeout=5) as r:
        return r.read().decode()


def test_the_build_names_itself_everywhere_alike(make_server):
    done = roomcast("--version")
    assert done.returncode == 0, done.stderr
    match = re.fullmatch(r"roomcast (\S+) \(commit (\S+)\)\n", done.stdout)
    assert match, done.stdout
    version, commit = match.groups()
    assert version == project_version()
    if in_git():  # built from this checkout: one of its commits, "-dirty" if edited since
        assert re.fullmatch(r"[0-9a-f]{12}(-dirty)?", commit), commit
        assert is_commit_of_this_checkout(commit.removesuffix("-dirty")), commit
    else:
        assert commit == "unknown"

    s = make_server()
    s.wait_for_log(f"roomcast {version} (commit {commit}) listening on")
    stats = json.loads(get(s, "/api/stats"))
    assert stats["build"] == {"version": version, "commit": commit}
    metrics = get(s, "/metrics")
    assert "# TYPE roomcast_build_info gauge" in metrics
    lines = [line for line in metrics.splitlines() if line.startswith("roomcast_build_info")]
    assert lines == [f'roomcast_build_info{{version="{version}",commit="{commit}"}} 1'], lines


def write(path, text):
    path.write_text(text)
    return str(path)


def test_settings_come_from_flags_over_the_environment_over_the_file(tmp_path):
    """One setting from each source, and two set in several: each source is seen, and where
    they disagree a flag wins over a variable, which wins over the file."""
    config = write(tmp_path / "roomcast.toml",
                   "# what the file alone sets: the echo endpoint\n"
                   "echo-endpoint = true\n"
                   "max-message-size = 100\n"
                   'allowed-origins = "http://file.example"\n')
    env = {"ROOMCAST_MAX_MESSAGE_SIZE": "2000",  # over the file's 100
           "ROOMCAST_ALLOWED_ORIGINS": "http://env.example"}  # the flag overrides it
    with RoomcastServer("--config", config, "--allowed-origins", "http://flag.example",
                        env=env) as s:
        async def body():
            echo = await websockets.connect(s.ws_url + "/echo", open_timeout=5,
                                            origin="http://flag.example")
            # 1,000 bytes: over the file's limit, within the environment's.
            await echo.send("x" * 1000)
            assert await asyncio.wait_for(echo.recv(), 5) == "x" * 1000
            await echo.send("y" * 3000)  # over the environment's
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(echo.recv(), 5)
            assert echo.close_code == 1009
            for origin in ("http://env.example", "http://file.example"):
                with pytest.raises(websockets.InvalidStatusCode) as refused:
                    await websockets.connect(s.ws_url, origin=origin, open_timeout=5)
                assert refused.value.status_code == 403
            c = await ChatClient.connect(s, origin="http://flag.example")
            await c.join("general", "flagged")
        run(body())
        s.wait_for_log(f"config file {config}")


def test_printed_settings_start_the_same_server(tmp_path):
    """--print-config writes the effective settings; the server starts from that file alone
    and prints the same again."""
    env = {"ROOMCAST_HISTORY_ON_JOIN": "7"}
    done = roomcast("--max-connections", "50", "--print-config", env=env)
    assert done.returncode == 0, done.stderr
    assert "\nmax-connections = 50\n" in done.stdout
    assert "\nhistory-on-join = 7\n" in done.stdout
    printed = write(tmp_path / "printed.toml", done.stdout)
    again = roomcast("--config", printed, "--print-config")
    assert again.returncode == 0, again.stderr
    assert again.stdout == done.stdout
    # The launcher's own flags (host, port, data dir, test defaults) win over the file's.
    with RoomcastServer("--config", printed) as s:
        assert json.loads(get(s, "/healthz"))["status"] == "ok"


@pytest.mark.parametrize("text,message", [
    ("prot = 3000\n", "'prot': not an option"),
    ("[server]\nport = 3000\n", "section [server]"),
    ('max-connections = "lots"\n', "'max-connections': Could not convert"),
])
def test_a_bad_file_stops_the_server_with_a_clear_error(tmp_path, text, message):
    config = write(tmp_path / "bad.toml", text)
    done = roomcast("--config", config, "--port", "0", "--host", "127.0.0.1",
                    "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 2, done.stderr
    assert config in done.stderr and message in done.stderr, done.stderr
    assert "listening" not in done.stdout + done.stderr


def test_a_bad_variable_stops_the_server_naming_it(tmp_path):
    done = roomcast("--port", "0", "--host", "127.0.0.1", "--data-dir", str(tmp_path / "data"),
                    env={"ROOMCAST_IDLE_TIMEOUT": "soon"})
    assert done.returncode == 2, done.stderr
    assert "ROOMCAST_IDLE_TIMEOUT: --idle-timeout: expected a duration" in done.stderr, \
        done.stderr


def test_gentoken_makes_a_token_the_server_accepts(tmp_path):
    """gentoken signs with the key the server is configured with, here from the same file;
    the server takes the token over a WebSocket, with the identity and rooms it names."""
    config = write(tmp_path / "auth.toml", f'jwt-secret = "{SECRET}"\nrequire-auth = true\n')
    done = roomcast("--config", config, "gentoken", "--sub", "ops-7", "--name", "olive",
                    "--rooms", "general,support:*", "--ttl", "10m")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])  # a JWT any library reads
    assert (claims["sub"], claims["name"], claims["rooms"]) == (
        "ops-7", "olive", ["general", "support:*"])
    assert 590 <= claims["exp"] - claims["iat"] <= 600

    with RoomcastServer("--config", config) as s:
        async def body():
            c = await ChatClient.connect(s, f"/?token={token}")
            assert c.user_id == "ops-7"
            await c.join("support:billing")
            msg = await c.chat_roundtrip("support:billing", "hello")
            assert msg["username"] == "olive"
            await c.send({"type": "join_room", "room": "random"})
            assert (await c.expect_error())["code"] == "forbidden_room"
        run(body())


def test_checktoken_says_whether_the_server_would_accept_a_token_and_why_not():
    env = {"ROOMCAST_JWT_SECRET": SECRET}
    good = make_token(sub="u-1", name="alice")
    done = roomcast("checktoken", good, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("accepted: sub u-1, name alice, rooms every room, until ")

    expired = roomcast("checktoken", make_token(expires_in=-3600), env=env)
    assert expired.returncode == 1
    assert expired.stdout.startswith("refused: token expired\n"), expired.stdout
    assert "claims (not verified):" in expired.stdout and "exp is " in expired.stdout

    forged = roomcast("checktoken", make_token(key="not-the-secret-not-the-secret-!!"), env=env)
    assert forged.returncode == 1
    assert forged.stdout.startswith("refused: malformed token or bad signature\n"), forged.stdout

    # The flag's key wins over the environment's, as for the server.
    other = roomcast("checktoken", good, "--jwt-secret", "another-secret", env=env)
    assert other.returncode == 1 and "bad signature" in other.stdout

    # Without a key the server reads no token at all: said so, not "accepted".
    keyless = roomcast("checktoken", good)
    assert keyless.returncode == 2 and "no key configured" in keyless.stderr


def test_gentoken_signs_rs256_with_a_private_key_for_a_public_key_server(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = write(tmp_path / "private.pem", key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode())
    public = write(tmp_path / "public.pem", key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
    done = roomcast("--jwt-public-key", public, "gentoken", "--sub", "u-rs", "--name", "rita",
                    "--private-key", private)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    with RoomcastServer("--jwt-public-key", public, "--require-auth") as s:
        async def body():
            c = await ChatClient.connect(s, f"/?token={token}")
            assert c.user_id == "u-rs"
        run(body())

    # A key that does not match the server's: refused before it is printed.
    stranger = write(tmp_path / "stranger.pem", rsa.generate_private_key(
        public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode())
    refused = roomcast("--jwt-public-key", public, "gentoken", "--sub", "u", "--name", "x",
                       "--private-key", stranger)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "would refuse this token: malformed token or bad signature" in refused.stderr

    # No key at all: said so.
    keyless = roomcast("gentoken", "--sub", "u", "--name", "x")
    assert keyless.returncode == 2 and "no key to sign with" in keyless.stderr


def test_json_logs_are_one_object_a_line_with_lifecycle_counts_and_debug_events():
    """--log-format json: every line of the log parses on its own; at info the connection and
    room counts (at most once a second), at debug each join, leave and refusal with its code,
    naming the connection and its peer address."""
    with RoomcastServer("--log-format", "json", "--log-level", "debug") as s:
        async def body():
            c = await ChatClient.connect(s)
            await c.join("general", "jason")
            await c.send({"type": "join_room", "room": "general"})
            assert (await c.expect_error())["code"] == "already_in_room"
            await c.send({"type": "leave_room", "room": "general"})
            await asyncio.sleep(0.2)
            await c.ws.close()
        run(body())
        s.wait_for_log("connections: ")  # the next second's count
        log_path = s.log_path
    with open(log_path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    records = [json.loads(line) for line in lines]  # each line alone
    assert records and all(set(r) == {"time", "level", "thread", "message"} for r in records)
    for r in records:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"]), r
    messages = [r["message"] for r in records]
    assert any(m.startswith("roomcast ") and " listening on " in m for m in messages)
    counts = [r for r in records if r["message"].startswith("connections: ")]
    assert counts and all(r["level"] == "info" for r in counts)
    assert re.fullmatch(r"connections: \d+ open \(\d+ opened, \d+ closed in the last second\); "
                        r"rooms: \d+", counts[0]["message"]), counts[0]

    debug = [r["message"] for r in records if r["level"] == "debug"]
    peer = r"connection [0-9a-f]+ from 127\.0\.0\.1:\d+: "
    for event in (r"connected as user \S+ \(anonymous\)", r"joined room 'general' as 'jason'",
                  r"refused \(already_in_room\): .+", r"left room 'general'", r"disconnected"):
        assert any(re.fullmatch(peer + event, m) for m in debug), (event, debug)
    # One connection: every event names the same id.
    assert len({m.split(" ")[1] for m in debug if m.startswith("connection ")}) == 1, debug


def test_at_info_there_is_no_line_per_connection():
    with RoomcastServer("--log-format", "json", "--log-level", "info") as s:
        async def body():
            for i in range(5):
                c = await ChatClient.connect(s)
                await c.join("general", f"quiet{i}")
        run(body())
        s.wait_for_log("connections: ")
        log_path = s.log_path
    with open(log_path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f.read().splitlines()]
    assert not [r for r in records if r["message"].startswith("connection ")], records
    assert all(r["level"] != "debug" for r in records)
