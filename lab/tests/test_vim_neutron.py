"""The Neutron stand-in, over real HTTP: what Nova and openstacksdk ask of it."""

import json
import threading
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer

import pytest

from qkdlab.vim import neutron


@pytest.fixture
def standin(tmp_path):
    state = tmp_path / "neutron.json"

    def start():
        neutron.Handler.store = neutron.Store(str(state))
        server = ThreadingHTTPServer(("127.0.0.1", 0), neutron.Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return "http://127.0.0.1:%d" % server.server_address[1]

    servers = []
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def call(method, address, body=None, token="t"):
    req = urllib.request.Request(address, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    if token:
        req.add_header("X-Auth-Token", token)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_network_lookup_by_name_as_openstacksdk_does(standin):
    base = standin() + "/v2.0"
    assert call("GET", base + "/networks/private")[0] == 404
    status, doc = call("GET", base + "/networks?name=private")
    assert status == 200 and [n["id"] for n in doc["networks"]] == [neutron.NETWORK_ID]
    status, doc = call("GET", base + "/networks?id=%s&fields=id&fields=shared" % neutron.NETWORK_ID)
    assert doc["networks"] == [{"id": neutron.NETWORK_ID, "shared": True}]
    assert call("GET", base + "/networks?shared=false")[1]["networks"] == []


def test_port_lifecycle_binding_and_persistence(standin):
    base = standin() + "/v2.0"
    status, doc = call("POST", base + "/ports", {"port": {
        "network_id": neutron.NETWORK_ID, "device_id": "vm-1", "tenant_id": "p1"}})
    assert status == 201
    port = doc["port"]
    assert port["binding:vif_type"] == "unbound"
    assert port["fixed_ips"][0]["ip_address"] == "192.0.2.10"

    status, doc = call("PUT", base + "/ports/" + port["id"], {"port": {"binding:host_id": "vimhost"}})
    assert status == 200 and doc["port"]["binding:vif_type"] == "ovs" and doc["port"]["status"] == "ACTIVE"
    second = call("POST", base + "/ports", {"port": {"network_id": neutron.NETWORK_ID}})[1]["port"]
    assert second["fixed_ips"][0]["ip_address"] == "192.0.2.11"

    # A restarted stand-in still knows the ports of running servers.
    base = standin() + "/v2.0"
    status, doc = call("GET", base + "/ports?device_id=vm-1")
    assert [p["id"] for p in doc["ports"]] == [port["id"]]
    assert call("DELETE", base + "/ports/" + port["id"])[0] == 204
    assert call("DELETE", base + "/ports/" + port["id"])[0] == 404
    assert call("GET", base + "/ports?device_id=vm-1")[1]["ports"] == []


def test_default_security_group_per_project_and_quotas(standin):
    base = standin() + "/v2.0"
    groups = call("GET", base + "/security-groups?tenant_id=p1&fields=id&fields=name")[1]["security_groups"]
    assert [g["name"] for g in groups] == ["default"]
    assert call("GET", base + "/security-groups?tenant_id=p1")[1]["security_groups"][0]["id"] == groups[0]["id"]
    assert call("GET", base + "/quotas/p1")[1]["quota"]["port"] == -1
    assert "binding" in {e["alias"] for e in call("GET", base + "/extensions")[1]["extensions"]}


def test_refuses_requests_without_a_token_and_unknown_networks(standin):
    base = standin() + "/v2.0"
    assert call("GET", base + "/networks", token=None)[0] == 401
    status, doc = call("POST", base + "/ports", {"port": {"network_id": "nope"}})
    assert status == 404 and doc["NeutronError"]["type"] == "NetworkNotFound"
