"""Process control for the bench drivers: every child runs in its own session and is tracked,
so that it is killed (with whatever it forked: generator workers) however the driver ends."""

import atexit
import os
import signal
import subprocess
import sys

from lib import REPO

LIVE = []  # Popen objects started in their own session


class RunError(Exception):
    """A run that could not be done (a server that did not start, a generator that hung)."""


def die(prog, message):
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(2)


def kill_group(proc, grace_s):
    """SIGTERM the process group of proc, SIGKILL it after grace_s. Returns the exit code."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    else:
        # The leader is gone; make sure nothing it forked (generator workers) lingers.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    untrack(proc)
    return proc.returncode


def kill_all():
    for proc in list(LIVE):
        kill_group(proc, 2)


def track(proc):
    """Adds a child started in its own session (start_new_session=True) to those killed at
    the end."""
    LIVE.append(proc)
    return proc


def untrack(proc):
    if proc in LIVE:
        LIVE.remove(proc)


def spawn(argv, log_path):
    """Starts argv in its own session, output to log_path, tracked."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
    return track(proc)


def _become_subreaper():
    """Orphans (generator workers whose coordinator died first) get reparented to this driver,
    which reaps them, instead of lingering as zombies under a PID 1 that may not reap."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def reap_orphans():
    """Reaps exited children no Popen object owns. Call only when no tracked child is alive."""
    if LIVE:
        return
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def install(prog):
    """What every driver does first: SIGTERM/SIGHUP end it like Ctrl-C (so its children are
    killed), orphans are reaped here, and every tracked child is killed at exit."""
    def on_signal(signum, _frame):
        raise SystemExit(f"{prog}: interrupted by signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    _become_subreaper()
    atexit.register(kill_all)


def run_main(prog, main, what="servers and generator"):
    """The end of every driver: exits with main(argv)'s status; Ctrl-C kills every child."""
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        kill_all()
        print(f"{prog}: interrupted; {what} stopped", file=sys.stderr)
        sys.exit(130)
