"""Fixtures shared by the lab's tests: a topology like inventory/lab's, on free ports, in tmp_path."""

import copy
import socket
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qkdlab import topology  # noqa: E402


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (bound then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def lab_section():
    """The lab section of inventory/lab, as parsed YAML."""
    return yaml.safe_load(topology.DEFAULT_TOPOLOGY.read_text())


def _merge(base, overrides):
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


@pytest.fixture
def make_topology(tmp_path):
    """make_topology(**overrides) -> (Topology, path of its YAML), every port moved to a free one.

    overrides are merged into the `lab` mapping (nested dicts merge, other values replace).
    """
    def make(**overrides):
        data = copy.deepcopy(lab_section())
        data["lab"]["vim"] = {"enabled": False}  # OpenStack has tests of its own (test_vim*.py)
        _merge(data["lab"], copy.deepcopy(overrides))
        lab = data["lab"]
        ports = iter(free_ports(3 + len(lab["nodes"])))
        lab["admin_port"] = next(ports)
        lab["switch"]["odl"]["port"] = next(ports)
        lab["switch"]["native"]["port"] = next(ports)
        for node in lab["nodes"].values():
            node["kme_port"] = next(ports)
        path = tmp_path / "lab.yml"
        path.write_text(yaml.safe_dump(data))
        return topology.load(path, lab_dir=tmp_path / "lab", port_offset=0), path
    return make


@pytest.fixture
def lab_topology(make_topology):
    """The inventory's topology on free ports, lab directory in tmp_path."""
    return make_topology()[0]


def run_lab(topology_path, lab_dir, *args, check=True):
    """Run `python -m qkdlab --topology P --lab-dir D ARGS...` as an operator would."""
    import os
    import subprocess
    # The topology and lab directory are explicit: no QKDLAB_* setting of the caller applies.
    env = {name: value for name, value in os.environ.items() if not name.startswith("QKDLAB_")}
    proc = subprocess.run([sys.executable, "-m", "qkdlab", "--topology", str(topology_path),
                           "--lab-dir", str(lab_dir), *args],
                          cwd=str(Path(__file__).resolve().parents[1]), capture_output=True, text=True,
                          timeout=60, env=env)
    if check and proc.returncode != 0:
        raise AssertionError("qkdlab %s failed (%d):\n%s%s" % (" ".join(args), proc.returncode,
                                                              proc.stdout, proc.stderr))
    return proc


class RunningLab:
    """A lab process started by the CLI; status() reads its status endpoint."""

    def __init__(self, topo, path):
        self.topo, self.path = topo, path

    def status(self):
        """The status document as `qkdlab status --json` prints it."""
        import json
        return json.loads(run_lab(self.path, self.topo.lab_dir, "status", "--json").stdout)

    def poll(self):
        """The same document straight from the status endpoint (cheap enough to poll)."""
        import json
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/status" % self.topo.admin_port, timeout=5) as r:
            return json.load(r)

    def link(self, name):
        return next(link for link in self.poll()["links"] if link["name"] == name)

    def odl(self, method, path, body=None):
        """A call to the switch's OpenDaylight-style northbound, under the mount point."""
        import requests
        sw = self.topo.switch
        url = ("http://127.0.0.1:%d/rests/data/network-topology:network-topology/topology=topology-netconf"
               "/node=%s/yang-ext:mount/optical-switch:%s" % (sw.odl.port, sw.node_id, path))
        return requests.request(method, url, json=body, auth=(sw.odl.username, sw.odl.password), timeout=10)

    def connect(self, ingress, egress):
        response = self.odl("PUT", "cross-connects/pair=%d" % ingress,
                            {"optical-switch:pair": [{"ingress": ingress, "egress": egress}]})
        assert response.status_code in (201, 204), response.text

    def disconnect(self, ingress):
        response = self.odl("DELETE", "cross-connects/pair=%d" % ingress)
        assert response.status_code == 204, response.text


@pytest.fixture
def start_lab(make_topology):
    """start_lab(**overrides) -> RunningLab, brought down (and checked gone) at the end."""
    labs = []

    def start(**overrides):
        topo, path = make_topology(**overrides)
        run_lab(path, topo.lab_dir, "up")
        labs.append((topo, path))
        return RunningLab(topo, path)

    yield start
    for topo, path in labs:
        run_lab(path, topo.lab_dir, "down")
