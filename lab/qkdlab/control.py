"""Start, stop and inspect the lab process; PIDs and logs live in the lab directory."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import pki

START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10


class LabError(Exception):
    """The lab cannot do what was asked; the message says why and what to do."""


def _pid_file(topo):
    return topo.lab_dir / "lab.pid"


def _alive(pid):
    """True if pid runs and is a lab process (a PID reused by another program does not count)."""
    try:
        cmdline = Path("/proc/%d/cmdline" % pid).read_bytes()
    except OSError:
        return False
    return b"qkdlab" in cmdline and b"serve" in cmdline


def running_pid(topo):
    try:
        pid = int(_pid_file(topo).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _check_ports_free(topo):
    for what, port in topo.ports().items():
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                raise LabError("port %d (%s) is in use by another program: free it or change %s in the topology"
                               % (port, what, what)) from None


def _fetch_status(topo, timeout=2.0):
    url = "http://127.0.0.1:%d/status" % topo.admin_port
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback only)
        return json.load(response)


def up(topo, topology_path=None):
    """Start the lab unless it runs (and the VIM, if the topology enables it); return once all answer."""
    pid = running_pid(topo)
    if pid:
        print("lab is already up (pid %d, %s)" % (pid, topo.lab_dir))
    else:
        _check_ports_free(topo)
        pid = _start_core(topo, topology_path)
        print("lab is up (pid %d, %s)" % (pid, topo.lab_dir))
    if topo.vim:
        try:
            _start_vim(topo)
        except BaseException:
            down(topo)  # nothing half-started
            raise
    return 0


def _start_vim(topo):
    from . import vim
    print("VIM: installing (the first time takes minutes)..." if not vim.installer.installed(topo.lab_dir)
          else "VIM: starting...", flush=True)
    ports = {name: port + topo.port_offset for name, port in vim.DEFAULT_PORTS.items()}
    try:
        vim.install(topo.lab_dir, ports)
        pids = vim.start(topo.lab_dir, ports)
    except RuntimeError as exc:
        raise LabError("the VIM did not start: %s" % exc) from None
    print("VIM is up (%d processes, clouds.yaml in %s)" % (len(pids), topo.lab_dir / "vim"))


def _start_core(topo, topology_path):
    topo.lab_dir.mkdir(parents=True, exist_ok=True)
    pki.ensure(topo)  # certificate problems surface here, before anything starts
    log = open(topo.lab_dir / "lab.log", "ab")
    cmd = [sys.executable, "-m", "qkdlab", "--lab-dir", str(topo.lab_dir)]
    if topology_path:
        cmd += ["--topology", str(Path(topology_path).resolve())]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(cmd + ["serve"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True, env=env, cwd=str(topo.lab_dir))
    log.close()
    _pid_file(topo).write_text("%d\n" % proc.pid)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _pid_file(topo).unlink(missing_ok=True)
            raise LabError("the lab process exited (code %s) while starting; its log:\n%s"
                           % (proc.returncode, _tail(topo.lab_dir / "lab.log")))
        try:
            _fetch_status(topo, timeout=0.5)
            return proc.pid
        except (OSError, urllib.error.URLError, ValueError):
            time.sleep(0.1)
    _terminate(proc.pid)
    _pid_file(topo).unlink(missing_ok=True)
    raise LabError("the lab did not answer within %d s; its log:\n%s"
                   % (START_TIMEOUT_S, _tail(topo.lab_dir / "lab.log")))


def _terminate(pid):
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; the whole process group (it is a session leader)."""
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:
                pass  # not our child: poll /proc instead
            if not _alive(pid):
                return
            time.sleep(0.05)


def down(topo):
    """Stop what `up` started, by PID (the VIM's too); a no-op when it is down."""
    if (topo.lab_dir / "vim").is_dir():
        from . import vim
        vim.stop(topo.lab_dir)
    pid = running_pid(topo)
    if not pid:
        _pid_file(topo).unlink(missing_ok=True)
        print("lab is down")
        return 0
    _terminate(pid)
    if _alive(pid):
        raise LabError("lab process %d did not stop" % pid)
    _pid_file(topo).unlink(missing_ok=True)
    print("lab stopped (pid %d)" % pid)
    return 0


def status(topo):
    pid = running_pid(topo)
    if not pid:
        return {"running": False, "lab_dir": str(topo.lab_dir)}
    try:
        doc = _fetch_status(topo)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise LabError("lab process %d runs but its status endpoint does not answer: %s" % (pid, exc)) from None
    doc["pid"] = pid
    if topo.vim:
        from . import vim
        doc["vim"] = vim.status(topo.lab_dir)
    return doc


def format_status(doc):
    if not doc.get("running"):
        return "lab is down (%s)" % doc["lab_dir"]
    lines = ["lab is up (pid %d, %s), time scale %gx, emulated time %.0f s"
             % (doc["pid"], doc["lab_dir"], doc["time_scale"], doc["emulated_time_s"] or 0),
             "switch %s at %s: %s" % (doc["switch"]["node_id"], doc["switch"]["url"],
                                      ", ".join("%d->%d" % (p["ingress"], p["egress"])
                                                for p in doc["switch"]["pairs"]) or "no pairs")]
    lines.append("%-12s %-5s %-5s %7s  %-13s %8s %8s %7s" % (
        "link", "alice", "bob", "km", "state", "init", "keys", "qber"))
    for link in doc["links"]:
        progress = link["init_progress"]
        lines.append("%-12s %-5s %-5s %7.1f  %-13s %8s %8s %7s" % (
            link["name"], link["alice"], link["bob"], link["length_km"], link["state"],
            "-" if progress is None else "%d%%" % (100 * progress),
            "%d/%d" % (link["stored_keys"], link["capacity_keys"]),
            "-" if link["qber"] is None else "%.2f%%" % (100 * link["qber"])))
    for kme in doc["kmes"]:
        lines.append("KME %s (%s) at %s" % (kme["kme_id"], kme["node"], kme["url"]))
    if "vim" in doc:
        vim = doc["vim"]
        lines.append("VIM %s: %s; clouds %s in %s" % (
            "up" if vim["alive"] else "down", ", ".join("%s %s" % item for item in sorted(vim["urls"].items())),
            ", ".join(vim["clouds"]), vim["clouds_yaml"]))
    return "\n".join(lines)


def _tail(path, lines=20):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
