import pytest

from roomcast_server import RoomcastServer


@pytest.fixture
def server():
    """A fresh roomcast on a free loopback port, default flags."""
    with RoomcastServer() as s:
        yield s


@pytest.fixture
def make_server():
    """Factory for servers with extra flags: make_server("--idle-timeout", "1s")."""
    started = []

    def make(*args, **kwargs):
        s = RoomcastServer(*args, **kwargs).start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()
