"""Authentication and room permissions: tokens from ?token= or Authorization: Bearer, the
chapter's 4001 closes for a missing or invalid token, identities fixed by the token, rooms
limited by its `rooms` claim. Every refusal leaves the server serving everyone else."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from roomcast_server import RoomcastServer
from security_support import SECRET, expect_close, make_token, unsigned_token
from test_chat_support import ChatClient, is_system, run


@pytest.fixture(scope="module")
def auth_server():
    """Tokens required, HS256 with SECRET."""
    with RoomcastServer("--jwt-secret", SECRET, "--require-auth") as s:
        yield s


@pytest.fixture(scope="module")
def open_server():
    """Tokens verified when given; anonymous users welcome (the default)."""
    with RoomcastServer("--jwt-secret", SECRET) as s:
        yield s


def pem_pair(private_key):
    private = private_key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    public = private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


@pytest.fixture(scope="module")
def rsa_keys(tmp_path_factory):
    private, public = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    path = tmp_path_factory.mktemp("keys") / "rsa_public.pem"
    path.write_bytes(public)
    return private, public, path


@pytest.fixture(scope="module")
def rsa_server(rsa_keys):
    with RoomcastServer("--jwt-public-key", str(rsa_keys[2]), "--require-auth") as s:
        yield s


async def authed(server, token, via="query"):
    if via == "query":
        return await ChatClient.connect(server, f"/?token={token}")
    return await ChatClient.connect(server, extra_headers={"Authorization": f"Bearer {token}"})


async def bystander(server, token=None):
    """A client chatting in 'general' before and after a refusal, proving the server serves on."""
    c = await (authed(server, token) if token else ChatClient.connect(server))
    await c.join("general", None if token else "bystander")
    await c.chat_roundtrip("general", "before")
    return c


def test_without_a_token_the_upgrade_completes_then_closes_4001_authentication_required(
        auth_server):
    async def body():
        other = await bystander(auth_server, make_token(sub="u-other", name="other"))
        await expect_close(auth_server, code=4001, reason="Authentication required")
        await other.chat_roundtrip("general", "after")
    run(body())


@pytest.mark.parametrize("token", [
    make_token(key="not-the-secret-not-the-secret-!!"),
    make_token(expires_in=-3600),
    unsigned_token(),
    make_token(sub=None),
    make_token(name=None),
    make_token(name="<b>bold</b>"),
    "garbage",
], ids=["bad-signature", "expired", "alg-none", "no-sub", "no-name", "markup-name", "garbage"])
def test_an_invalid_token_closes_4001_invalid_token(auth_server, token):
    async def body():
        other = await bystander(auth_server, make_token(sub="u-other", name="other"))
        await expect_close(auth_server, f"/?token={token}", code=4001, reason="Invalid token")
        await expect_close(auth_server, code=4001, reason="Invalid token",
                           extra_headers={"Authorization": f"Bearer {token}"})
        await other.chat_roundtrip("general", "after")
    run(body())


@pytest.mark.parametrize("via", ["query", "bearer"])
def test_a_valid_token_fixes_user_id_and_username(auth_server, via):
    async def body():
        c = await authed(auth_server, make_token(sub="auth0|user-7", name="alice"), via)
        assert c.user_id == "auth0|user-7"
        await c.join("general")  # no username needed: the token names the user
        msg = await c.chat_roundtrip("general", "hello")
        assert msg["userId"] == "auth0|user-7" and msg["username"] == "alice"
        await c.send({"type": "join_room", "room": "random", "username": "mallory"})
        assert (await c.expect_error())["code"] == "username_mismatch"
        await c.join("random", "alice")  # repeating the token's name is fine
    run(body())


def test_anonymous_users_are_welcome_by_default_but_a_bad_token_is_still_refused(open_server):
    async def body():
        anon = await ChatClient.connect(open_server)
        await anon.join("general", "guest")
        await anon.chat_roundtrip("general", "anonymous works")
        named = await authed(open_server, make_token(sub="u-9", name="nina"))
        assert named.user_id == "u-9"
        await expect_close(open_server, f"/?token={make_token(expires_in=-3600)}", code=4001,
                           reason="Invalid token")
        await anon.chat_roundtrip("general", "still works")
    run(body())


def test_rs256_tokens_are_verified_with_the_public_key(rsa_server, rsa_keys):
    private, _, _ = rsa_keys

    async def body():
        c = await authed(rsa_server, make_token(sub="rsa-user", name="rita", key=private,
                                                algorithm="RS256"))
        assert c.user_id == "rsa-user"
        await c.join("general")
        await c.chat_roundtrip("general", "signed with RSA")
        # Another RSA key's signature.
        stranger, _ = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        await expect_close(rsa_server, "/?token=" + make_token(key=stranger, algorithm="RS256"),
                           code=4001, reason="Invalid token")
        await c.chat_roundtrip("general", "still here")
    run(body())


def test_hs256_signed_with_the_public_key_is_refused_algorithm_confusion(rsa_server, rsa_keys):
    _, public, _ = rsa_keys

    async def body():
        # PyJWT refuses to use a PEM as an HMAC secret, so sign by hand (the attack).
        import base64
        import hashlib
        import hmac
        import json
        import time

        def b64(data):
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = b64(json.dumps({"sub": "evil", "name": "eve",
                                  "exp": int(time.time()) + 3600}).encode())
        signature = b64(hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        forged = f"{header}.{payload}.{signature}"
        await expect_close(rsa_server, f"/?token={forged}", code=4001, reason="Invalid token")
    run(body())


def test_es256_tokens_are_verified_with_an_ec_public_key(tmp_path):
    private, public = pem_pair(ec.generate_private_key(ec.SECP256R1()))
    key_file = tmp_path / "ec_public.pem"
    key_file.write_bytes(public)

    async def body(server):
        c = await authed(server, make_token(sub="ec-user", name="eve", key=private,
                                            algorithm="ES256"))
        assert c.user_id == "ec-user"
        await expect_close(server, "/?token=" + make_token(), code=4001, reason="Invalid token")
    with RoomcastServer("--jwt-public-key", str(key_file)) as server:
        run(body(server))


def test_require_auth_without_a_key_refuses_to_start():
    server = RoomcastServer("--require-auth")
    with pytest.raises(RuntimeError, match="exited early"):
        server.start()


def test_joining_a_room_the_token_does_not_allow_is_an_error_without_membership(auth_server):
    async def body():
        insider = await authed(auth_server, make_token(sub="u-in", name="insider"))
        await insider.join("secret")
        limited = await authed(auth_server, make_token(sub="u-lim", name="limited",
                                                       rooms=["general", "support:*"]))
        await limited.send({"type": "join_room", "room": "secret"})
        err = await limited.expect_error()
        assert err["code"] == "forbidden_room"
        # No membership: nobody in 'secret' heard of it, and its messages do not reach her.
        await insider.chat_roundtrip("secret", "insiders only")
        assert not [m for m in await limited.collect(0.3) if m.get("room") == "secret"]
        await limited.send({"type": "chat_message", "message": "x", "room": "secret"})
        assert (await limited.expect_error())["code"] == "not_in_room"
        # Allowed rooms work, prefixes included.
        await limited.join("support:billing")
        await limited.join("general")
        await limited.chat_roundtrip("general", "allowed")
        others = [m for m in await insider.collect(0.3)
                  if is_system("secret", "limited joined the chat")(m)]
        assert not others
    run(body())
