import pytest

from roomcast_server import RoomcastServer


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "serial: a saturation test that needs the machine to itself; it runs in its own CTest "
        "entry (integration_python_serial, RUN_SERIAL), not beside the other files")


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
