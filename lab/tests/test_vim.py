"""The VIM for real: start it in a temporary lab directory, ask every API, stop it, find no process left.

Needs an installed VIM (`python -m qkdlab.vim install`): the test borrows the virtualenv of
$QKDLAB_VIM_VENV or of the default lab directory and is skipped, saying so, when there is none.
The first start in a fresh directory also creates the databases (about a minute or two).
"""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import free_ports
from qkdlab import vim
from qkdlab.vim import installer, layout

LAB_ROOT = Path(__file__).resolve().parents[1]


def _installed_venv():
    candidates = [os.environ.get("QKDLAB_VIM_VENV"), str(layout.Layout(vim.default_lab_dir()).venv)]
    for venv in filter(None, candidates):
        if (Path(venv) / ".qkdlab-installed").exists():
            return Path(venv)
    return None


VENV = _installed_venv()
pytestmark = pytest.mark.skipif(
    VENV is None or installer.missing_system_packages(),
    reason="the VIM is not installed (python -m qkdlab.vim install; apt-get install rabbitmq-server)")


def _request(method, address, token=None, body=None):
    req = urllib.request.Request(address, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read() or b"{}")


def _token(keystone, user, project, password):
    status, headers, _ = _request("POST", keystone + "/auth/tokens", body={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}})
    assert status == 201, "Keystone refused %s" % user
    return headers["X-Subject-Token"]


def _processes_mentioning(text):
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(int(proc.name))
    return found


@pytest.fixture
def vim_dir(tmp_path):
    lab_dir = tmp_path / "lab"
    (lab_dir / "vim").mkdir(parents=True)
    (lab_dir / "vim" / "venv").symlink_to(VENV)
    yield lab_dir
    vim.stop(lab_dir)  # whatever the test did


def test_start_answers_and_stop_leaves_nothing(vim_dir):
    names = list(layout.DEFAULT_PORTS)
    ports = dict(zip(names, free_ports(len(names))))

    pids = vim.start(vim_dir, ports)

    assert set(pids) == set(vim.PROCESSES)
    state = vim.status(vim_dir)
    assert state["alive"] and state["pids"] == pids
    assert Path(state["clouds_yaml"]).stat().st_mode & 0o777 == 0o600
    urls = state["urls"]
    secrets = json.loads((vim_dir / "vim" / "secrets.json").read_text())

    # Every DC has its own project; its user sees the catalog's services.
    token = _token(urls["keystone"], "node2", "node2", secrets["node2"])
    assert _request("GET", urls["glance"] + "/v2/images", token)[0] == 200
    status, _, flavors = _request("GET", urls["nova"] + "/flavors", token)
    assert status == 200 and {"vnf.tiny", "vnf.small", "vnf.oversized"} <= {f["name"] for f in flavors["flavors"]}
    status, _, nets = _request("GET", urls["neutron"] + "/v2.0/networks?name=private", token)
    assert status == 200 and len(nets["networks"]) == 1
    admin = _token(urls["keystone"], "admin", "admin", secrets["admin"])
    status, _, providers = _request("GET", urls["placement"] + "/resource_providers", admin)
    assert status == 200 and [p["name"] for p in providers["resource_providers"]] == ["vimhost"]

    # A second start finds it running and starts nothing.
    assert vim.start(vim_dir, ports) == pids

    # Stopped from another process, by the PID files alone.
    subprocess.run([sys.executable, "-m", "qkdlab.vim", "stop", "--lab-dir", str(vim_dir)],
                   cwd=LAB_ROOT, env=dict(os.environ, PYTHONPATH=str(LAB_ROOT)), check=True)
    for pid in pids.values():
        assert not Path("/proc/%d" % pid).exists() or \
            Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert _processes_mentioning(str(vim_dir)) == []
    assert not vim.status(vim_dir)["alive"]
