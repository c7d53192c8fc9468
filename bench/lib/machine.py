"""What a report says about where it was measured: the machine, the commit, the commands
(with repository-relative paths and PORT/PID placeholders)."""

import datetime
import os
import platform
import shlex
import subprocess
from pathlib import Path

from lib import REPO


def machine_info():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass

    def out(argv):
        try:
            return subprocess.run(argv, cwd=REPO, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = out(["git", "rev-parse", "--short", "HEAD"])
    dirty = out(["git", "status", "--porcelain", "--untracked-files=no"])
    build_type = ""
    cache = REPO / "build/CMakeCache.txt"
    if cache.exists():
        for line in cache.read_text(errors="replace").splitlines():
            if line.startswith("CMAKE_BUILD_TYPE:"):
                build_type = line.split("=", 1)[1]
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(),
            "os": platform.platform(), "node": out(["node", "--version"]),
            "commit": commit + (" (with uncommitted changes)" if dirty else ""),
            "build_type": build_type or "unknown",
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def machine_line():
    """The machine, commit, build and date in one sentence, as a report's setup block says it."""
    m = machine_info()
    return (f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory')}, kernel "
            f"{m.get('kernel')}; roomcast commit {m.get('commit')}, {m.get('build_type')}; "
            f"{m.get('date')}.")


def display_command(argv, port_placeholder=True, repo=None):
    """The command with repository-relative paths (of this checkout, or of `repo`: the one a
    manifest was written in) and PORT/PID/REPORT.json/TMP (--data-dir) placeholders."""
    shown = []
    prev = None
    roots = [str(r) + "/" for r in (REPO, repo) if r]
    for arg in argv:
        text = str(arg)
        for root in roots:
            if text.startswith(root):
                text = text[len(root):]
                break
        if port_placeholder:
            if prev == "--port":
                text = "PORT"
            elif prev == "--server-pid":
                text = "PID"
            elif prev == "--json":
                text = "REPORT.json"
            elif prev == "--data-dir":
                text = "TMP"  # a fresh temporary directory per server
            elif text.startswith("ws://127.0.0.1:"):
                text = "ws://127.0.0.1:PORT/"
        shown.append(text)
        prev = str(arg)
    return shlex.join(shown)


def frozen_copy(binary, into):
    """A copy of `binary` in the directory `into`, to run instead of the original (which a
    rebuild may replace during a long run), and what identifies it: its source path, size,
    modification time and SHA-256."""
    import hashlib
    import shutil
    src = Path(binary).resolve()
    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    copy = Path(shutil.copy2(src, into / src.name))
    mtime = datetime.datetime.fromtimestamp(src.stat().st_mtime).astimezone()
    return copy, {"source": str(src), "size": src.stat().st_size,
                  "mtime": mtime.isoformat(timespec="seconds"),
                  "sha256": hashlib.sha256(copy.read_bytes()).hexdigest()}
