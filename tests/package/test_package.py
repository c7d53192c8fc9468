"""The Debian package (issue 20): CPack builds the .deb from this build; dpkg installs it into a
scratch root with a dpkg database of its own (--instdir/--admindir: the machine's own packages
and database are not touched, and no maintainer script runs: the package has none), the
installed binary serves with its packaged configuration, the systemd unit passes
`systemd-analyze verify`, and dpkg removes it all again.

$ROOMCAST_BUILD_DIR (set by CTest) is the build directory cpack packages."""

import configparser
import os
import re
import shutil
import subprocess
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration", "python"))
from roomcast_server import ROOT, RoomcastServer  # noqa: E402
from test_chat_support import ChatClient, run  # noqa: E402


def sh(*args, timeout=300, **kwargs):
    """Runs a command we need to succeed; its CompletedProcess."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(roomcast VERSION ([0-9.]+)", f.read()).group(1)


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    build = os.environ.get("ROOMCAST_BUILD_DIR", os.path.join(ROOT, "build"))
    out = tmp_path_factory.mktemp("cpack")
    sh("cpack", "-G", "DEB", "-B", str(out), cwd=build)
    debs = list(out.glob("roomcast_*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


class Root:
    """A scratch root and its own dpkg database."""

    def __init__(self, path):
        self.path = path
        self.admin = path / "var" / "lib" / "dpkg"
        for sub in ("info", "updates", "triggers"):
            (self.admin / sub).mkdir(parents=True)
        (self.admin / "status").touch()
        (self.admin / "available").touch()

    def dpkg(self, *args):
        # --force-depends: the scratch database lists no package, the libraries are the
        # machine's (test_the_dependencies_are_what_this_machine_has checks them there).
        # --log: not the machine's /var/log/dpkg.log.
        return sh("dpkg", f"--instdir={self.path}", f"--admindir={self.admin}", "--log=/dev/null",
                  "--force-depends", *args)

    def query(self, field):
        return sh("dpkg-query", f"--admindir={self.admin}", "-W", f"-f=${{{field}}}",
                  "roomcast").stdout

    def __truediv__(self, relative):
        return self.path / relative.lstrip("/")


@pytest.fixture(scope="module")
def installed(deb, tmp_path_factory):
    if os.geteuid() != 0:  # dpkg sets the files' owners, even in a scratch root
        pytest.skip("installing with dpkg needs root (CI runs as root)")
    root = Root(tmp_path_factory.mktemp("root"))
    root.dpkg("-i", str(deb))
    yield root
    if (root / "usr/bin/roomcast").exists():  # the removal test did not run
        root.dpkg("--purge", "roomcast")


def test_the_package_names_itself_and_its_licence(deb, tmp_path):
    fields = sh("dpkg-deb", "-f", str(deb), "Package", "Version", "Architecture",
                "Maintainer").stdout
    assert f"Package: roomcast\nVersion: {project_version()}\n" in fields
    assert "Maintainer: roomcast developers" in fields
    # The licence where Debian keeps it: a machine-readable copyright file, MIT, its text
    # that of LICENSE.
    sh("dpkg-deb", "-x", str(deb), str(tmp_path))
    copyright_file = (tmp_path / "usr/share/doc/roomcast/copyright").read_text()
    assert "\nFiles: *\nCopyright: 2026 roomcast developers\nLicense: MIT\n" in copyright_file
    with open(os.path.join(ROOT, "LICENSE")) as f:
        licence = f.read()
    assert licence.startswith("MIT License\n")
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in copyright_file
    assert (tmp_path / "usr/share/doc/roomcast/LICENSE").read_text() == licence


def test_the_dependencies_are_what_this_machine_has(deb):
    """Depends (from dpkg-shlibdeps) lists real packages: every one is installed here, which
    is what lets the scratch install run the binary."""
    depends = sh("dpkg-deb", "-f", str(deb), "Depends").stdout.strip()
    names = [re.match(r"\s*([a-z0-9.+-]+)", d).group(1) for d in depends.split(",")]
    assert "libc6" in names and "libsqlite3-0" in names, names
    # Installed packages and what they provide (libspdlog1.10 provides libspdlog1.10-fmt9).
    have = set()
    listing = sh("dpkg-query", "-W", "-f=${db:Status-Status}\t${Package}\t${Provides}\n").stdout
    for line in listing.splitlines():
        status, package, provides = (line.split("\t") + ["", ""])[:3]
        if status == "installed":
            have.add(package)
            have.update(re.match(r"\s*([a-z0-9.+-]+)", p).group(1)
                        for p in provides.split(",") if p.strip())
    assert not set(names) - have, set(names) - have


def test_dpkg_installs_the_binary_client_docs_unit_and_configuration(installed):
    for path in ("usr/bin/roomcast", "usr/share/roomcast/web/index.html",
                 "usr/share/doc/roomcast/copyright", "usr/share/doc/roomcast/operations.md",
                 "usr/lib/systemd/system/roomcast.service", "etc/roomcast/roomcast.toml"):
        assert (installed / path).is_file(), path
    assert installed.query("Status") == "install ok installed"
    # The configuration is a conffile: an upgrade keeps the administrator's edits.
    assert "/etc/roomcast/roomcast.toml" in installed.query("Conffiles")
    done = sh(str(installed / "usr/bin/roomcast"), "--version")
    assert done.stdout.startswith(f"roomcast {project_version()} (commit ")


def test_the_installed_binary_serves_with_its_packaged_configuration(installed, tmp_path):
    """The packaged file as it is, but for the paths only the real root has: the launcher's
    flags (loopback, a free port, a scratch data dir) and the web root under the scratch root
    override it, as flags do."""
    config = installed / "etc/roomcast/roomcast.toml"
    with RoomcastServer("--config", str(config), "--web-root",
                        str(installed / "usr/share/roomcast/web"),
                        binary=str(installed / "usr/bin/roomcast"),
                        production_defaults=True) as s:
        s.wait_for_log(f"config file {config}")
        with urllib.request.urlopen(s.http_url + "/", timeout=5) as r:
            assert r.read() == (installed / "usr/share/roomcast/web/index.html").read_bytes()

        async def body():
            a = await ChatClient.connect(s)
            b = await ChatClient.connect(s)
            await a.join("general", "ann")
            await b.join("general", "ben")
            await a.chat("from the package")
            msg = await b.expect(lambda m: m.get("type") == "chat_message")
            assert msg["message"] == "from the package"
        run(body())
    # What the file itself says, before any flag: the unit's state directory for history.
    printed = sh(str(installed / "usr/bin/roomcast"), "--config", str(config),
                 "--print-config").stdout
    assert '\ndata-dir = "/var/lib/roomcast"\n' in printed
    assert '\nweb-root = "/usr/share/roomcast/web"\n' in printed


def unit(installed):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(installed / "usr/lib/systemd/system/roomcast.service")
    return parser


def test_the_unit_runs_the_server_unprivileged_keeps_history_restarts_and_drains(installed):
    service = unit(installed)["Service"]
    assert service["ExecStart"] == "/usr/bin/roomcast --config /etc/roomcast/roomcast.toml"
    assert service["DynamicUser"] == "yes" and "User" not in service  # never root
    assert service["StateDirectory"] == "roomcast"  # /var/lib/roomcast, the config's data-dir
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"  # roomcast drains on SIGTERM
    # Longer than the default --shutdown-timeout (3s), so the drain ends before SIGKILL.
    assert int(service["TimeoutStopSec"]) > 3
    assert unit(installed)["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verifies_the_unit(installed, tmp_path):
    """systemd's own check of the installed unit; ExecStart points into the scratch root, since
    verify requires the command to exist."""
    text = (installed / "usr/lib/systemd/system/roomcast.service").read_text()
    copy = tmp_path / "roomcast.service"
    copy.write_text(text.replace("ExecStart=/usr/bin/roomcast",
                                 f"ExecStart={installed / 'usr/bin/roomcast'}"))
    done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == "", done.stdout + done.stderr  # not even a warning


def test_dpkg_removes_it_and_purge_takes_the_configuration(installed):
    installed.dpkg("--remove", "roomcast")
    for path in ("usr/bin/roomcast", "usr/share/roomcast/web/index.html",
                 "usr/lib/systemd/system/roomcast.service"):
        assert not (installed / path).exists(), path
    assert (installed / "etc/roomcast/roomcast.toml").exists()  # remove keeps conffiles
    installed.dpkg("--purge", "roomcast")
    assert not (installed / "etc/roomcast/roomcast.toml").exists()
    left = subprocess.run(["dpkg-query", f"--admindir={installed.admin}", "-W",
                           "-f=${db:Status-Status}", "roomcast"], capture_output=True, text=True,
                          timeout=30)
    assert left.returncode != 0 or left.stdout in ("", "not-installed"), left.stdout
