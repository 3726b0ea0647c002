"""`python -m qkdlab up | status | down` as an operator uses it."""

import os
import socket
from pathlib import Path

import pytest
import yaml

from conftest import run_lab


def pid_alive(pid):
    return Path("/proc/%d" % pid).exists() and b"qkdlab" in Path("/proc/%d/cmdline" % pid).read_bytes()


def test_up_status_down(make_topology):
    topo, path = make_topology()
    assert run_lab(path, topo.lab_dir, "status", check=False).returncode == 3  # down
    run_lab(path, topo.lab_dir, "up")
    try:
        pid = int((topo.lab_dir / "lab.pid").read_text())
        assert pid_alive(pid)
        again = run_lab(path, topo.lab_dir, "up")
        assert "already up" in again.stdout
        assert int((topo.lab_dir / "lab.pid").read_text()) == pid

        text = run_lab(path, topo.lab_dir, "status").stdout
        assert "node1-node4" in text and "1->9" in text
        doc = yaml.safe_load(run_lab(path, topo.lab_dir, "status", "--json").stdout)
        assert doc["ca"] == str(topo.lab_dir / "pki" / "ca.crt")
        assert {k["kme_id"] for k in doc["kmes"]} == {n.kme_id for n in topo.nodes.values()}
        assert all(k["url"].startswith("https://127.0.0.1:") for k in doc["kmes"])
        sae = next(s for s in doc["saes"] if s["sae_id"] == "sae-node2")
        assert sae["node"] == "node2" and sae["kme_id"] == "kme-node2"
        assert Path(sae["cert"]).exists() and os.stat(sae["key"]).st_mode & 0o777 == 0o600
        assert {(x["name"], x["alice"], x["bob"], x["length_km"]) for x in doc["links"]} >= {
            ("node1-node2", "node2", "node1", 0.0), ("node1-node4", "node4", "node1", 25.0)}
        assert all(x["state"] in ("idle", "initialising", "generating", "aborted") for x in doc["links"])
        assert all({"stored_keys", "qber"} <= set(x) for x in doc["links"])
        assert doc["switch"]["node_id"] == "polatis-1"
        assert doc["switch"]["pairs"] == [{"ingress": 1, "egress": 9}]
    finally:
        run_lab(path, topo.lab_dir, "down")
    assert not pid_alive(pid)
    assert not (topo.lab_dir / "lab.pid").exists()
    assert "down" in run_lab(path, topo.lab_dir, "down").stdout  # twice is a no-op


def test_every_listener_is_on_loopback_and_closes_after_down(make_topology):
    topo, path = make_topology()
    run_lab(path, topo.lab_dir, "up")
    try:
        for what, port in topo.ports().items():
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
    finally:
        run_lab(path, topo.lab_dir, "down")
    for port in topo.ports().values():
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


@pytest.mark.parametrize("overrides, field", [
    ({"switch": {"cross_connects": [{"ingress": 1, "egress": 9}, {"ingress": 2, "egress": 9}]}},
     "lab.switch.cross_connects[1]: port 9 is already used"),
    ({"switch": {"cross_connects": [{"ingress": 1, "egress": 99}]}}, "lab.switch.cross_connects[0].egress"),
    ({"links": [{"name": "x", "alice": "node9", "bob": "node1", "length_km": 1}]}, "lab.links[0].alice: unknown node"),
    ({"links": [{"name": "a", "alice": "node2", "bob": "node1", "length_km": 1, "alice_port": 1, "bob_port": 9},
                {"name": "b", "alice": "node3", "bob": "node1", "length_km": 1, "alice_port": 1, "bob_port": 9}]},
     "lab.links[1].alice_port: port 1 is already used by link a"),
    ({"time_scale": "fast"}, "lab.time_scale: expected float"),
    ({"kme": {"key_size": 100}}, "lab.kme.key_size"),
    ({"nodes": {"node1": {"kme_id": "kme-node1", "kme_port": 20001, "saes": ["sae-x"]},
                "node2": {"kme_id": "kme-node2", "kme_port": 20002, "saes": ["sae-x"]}}},
     "lab.nodes.node2.saes: sae-x is already used by node1"),
])
def test_a_malformed_topology_is_refused_naming_the_field(make_topology, tmp_path, overrides, field):
    topo, path = make_topology()
    data = yaml.safe_load(path.read_text())
    data["lab"].update(overrides)
    path.write_text(yaml.safe_dump(data))
    proc = run_lab(path, tmp_path / "lab", "up", check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert field in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "lab" / "lab.pid").exists()


def test_not_yaml_is_refused(tmp_path):
    path = tmp_path / "lab.yml"
    path.write_text("lab: [unclosed\n")
    proc = run_lab(path, tmp_path / "lab", "up", check=False)
    assert proc.returncode == 2 and "not valid YAML" in proc.stderr


def test_a_port_in_use_refuses_to_start_and_leaves_nothing(make_topology):
    topo, path = make_topology()
    node = topo.nodes["node3"]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", node.kme_port))
        squatter.listen()
        proc = run_lab(path, topo.lab_dir, "up", check=False)
    assert proc.returncode == 1
    assert "port %d (nodes.node3.kme_port) is in use" % node.kme_port in proc.stderr
    assert not (topo.lab_dir / "lab.pid").exists()
