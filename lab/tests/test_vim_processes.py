"""Starting and stopping the VIM's processes by PID file, with real processes."""

import os
import subprocess
from pathlib import Path

from qkdlab.vim import processes
from qkdlab.vim.layout import Layout


def _alive(pid):
    try:
        state = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_stop_all_ends_each_service_with_its_workers(tmp_path):
    layout = Layout(tmp_path)
    # A "service" that forks a worker, as uWSGI's master does.
    pid = processes.spawn(layout, "svc", ["sh", "-c", "sleep 60 & echo $! > %s/worker; wait" % tmp_path])
    for _ in range(50):
        if (tmp_path / "worker").exists() and (tmp_path / "worker").read_text().strip():
            break
        subprocess.run(["sleep", "0.1"], check=True)
    worker = int((tmp_path / "worker").read_text())
    assert processes.recorded(layout) == {"svc": pid}
    assert _alive(worker)

    processes.stop_all(layout, grace_s=5)

    assert not _alive(pid) and not _alive(worker)
    assert processes.recorded(layout) == {}
    assert list(layout.pids_dir.glob("*.pid")) == []
    assert layout.log("svc").exists()


def test_a_reused_pid_is_never_signalled(tmp_path):
    layout = Layout(tmp_path)
    layout.pids_dir.mkdir(parents=True)
    # A PID file naming this very process but with another start time: a stale record.
    layout.pid_file("stale").write_text("%d 1\n" % os.getpid())

    assert processes.recorded(layout) == {}
    processes.stop_all(layout, grace_s=1)  # must not signal us
    assert _alive(os.getpid())


def test_wait_until_names_the_dead_service(tmp_path):
    layout = Layout(tmp_path)
    processes.spawn(layout, "short", ["true"])
    for _ in range(50):
        if not processes.alive(layout, "short"):
            break
        subprocess.run(["sleep", "0.1"], check=True)
    try:
        processes.wait_until(lambda: False, 5, "short service", layout, ["short"])
    except RuntimeError as exc:
        assert "short exited" in str(exc) and str(layout.log("short")) in str(exc)
    else:
        raise AssertionError("wait_until did not raise")
