"""Start, find and stop the VIM's processes by PID, with no init system.

Each process runs in a session of its own (so stopping it also stops its workers) and is
recorded as "pid start-time" under <lab_dir>/vim/pids: a later process that happens to reuse
the PID is never signalled.
"""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request


def _start_time(pid):
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _state(pid):
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def spawn(layout, name, argv, env=None, cwd=None):
    """Start argv as service `name`, logging to its log file; record and return its PID."""
    log_path = layout.log(name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    layout.pids_dir.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    full_env.update(env or {})
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=full_env, cwd=cwd,
                                start_new_session=True)
    layout.pid_file(name).write_text("%d %d\n" % (proc.pid, _start_time(proc.pid) or 0))
    return proc.pid


def recorded(layout):
    """{service: pid} of every PID file whose process is still the one we started."""
    found = {}
    if not layout.pids_dir.is_dir():
        return found
    for path in sorted(layout.pids_dir.glob("*.pid")):
        try:
            pid, started = (int(x) for x in path.read_text().split())
        except (OSError, ValueError):
            continue
        if _start_time(pid) == started and _state(pid) not in (None, "Z"):
            found[path.stem] = pid
    return found


def alive(layout, name):
    return name in recorded(layout)


def stop_all(layout, grace_s=20.0, first=(), last=()):
    """SIGTERM every recorded process group, SIGKILL what is left after grace_s; drop PID files.

    Services named in `first` stop before the others and those in `last` after them: clients
    before their servers, so none spends its shutdown reconnecting to a server already gone.
    """
    everything = recorded(layout)
    for group in ({n: p for n, p in everything.items() if n in first},
                  {n: p for n, p in everything.items() if n not in first and n not in last},
                  {n: p for n, p in everything.items() if n in last}):
        _stop_group(group, grace_s)
    for path in layout.pids_dir.glob("*.pid") if layout.pids_dir.is_dir() else ():
        path.unlink()


def _stop_group(running, grace_s):
    for pid in running.values():
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while running and time.monotonic() < deadline:
        time.sleep(0.1)
        running = {n: p for n, p in running.items() if not _gone(p)}
    for pid in running.values():
        _signal_group(pid, signal.SIGKILL)
    for pid in running.values():
        _wait_gone(pid, 5.0)


def _signal_group(pid, signum):
    # Each service leads its own session and process group (pgid == pid): workers go with it.
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, signum)


def _gone(pid):
    """True when the process (our child or not) has exited; reaps it if it is our child."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass
    return _state(pid) in (None, "Z")


def _wait_gone(pid, timeout_s):
    deadline = time.monotonic() + timeout_s
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def http_answers(url, timeout_s=2.0):
    """True when url answers HTTP at all (any status below 500)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, ValueError):
        return False


def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout_s, what, layout=None, services=()):
    """Poll predicate() until true; raise RuntimeError naming `what` (and any dead service)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return
        if layout is not None:
            dead = [s for s in services if not alive(layout, s)]
            if dead:
                raise RuntimeError("%s: %s exited; see %s" % (
                    what, ", ".join(dead), ", ".join(str(layout.log(s)) for s in dead)))
        if time.monotonic() >= deadline:
            raise RuntimeError("%s: not ready after %.0f s" % (what, timeout_s))
        time.sleep(0.25)
