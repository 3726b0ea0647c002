"""The OpenDaylight-style northbound, over real HTTP: RFC 8040 (/rests) and draft-02 (/restconf)."""

from types import SimpleNamespace

import pytest
import requests

from qkdlab.restconf import RestconfServer
from qkdlab.switch import Switch

NT = "network-topology:network-topology"
XC = "optical-switch:cross-connects"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, ms):
        self.now += ms / 1000.0


@pytest.fixture
def odl(lab_topology, tmp_path):
    spec = lab_topology.switch
    clock = FakeClock()
    state = tmp_path / "switch.json"
    switch = Switch(spec, state, clock=clock)
    server = RestconfServer(switch, spec, "odl")
    server.start()
    http = requests.Session()
    http.auth = (spec.odl.username, spec.odl.password)
    base = "http://127.0.0.1:%d" % spec.odl.port
    node = "%s/rests/data/%s/topology=topology-netconf/node=%s" % (base, NT, spec.node_id)
    old = "%s/restconf/%%s/%s/topology/topology-netconf/node/%s/yang-ext:mount/%s" % (base, NT, spec.node_id, XC)
    rig = SimpleNamespace(spec=spec, clock=clock, state=state, switch=switch, server=server, http=http,
                          base=base, node=node, mount=node + "/yang-ext:mount", xc=node + "/yang-ext:mount/" + XC,
                          config=old % "config", operational=old % "operational")
    yield rig
    http.close()
    rig.server.stop()


def pairs_of(response, key=XC):
    assert response.status_code == 200, response.text
    return [(p["ingress"], p["egress"]) for p in response.json()[key].get("pair", [])]


def error_of(response, status, tag):
    assert response.status_code == status, response.text
    error = response.json()["errors"]["error"][0]
    assert error["error-tag"] == tag
    return error


def body(ingress, egress, key="optical-switch:pair"):
    return {key: [{"ingress": ingress, "egress": egress}]}


def test_mount_is_connected_with_the_optical_switch_capability(odl):
    r = odl.http.get(odl.node, params={"content": "nonconfig"})
    node = r.json()["network-topology:node"][0]
    assert node["node-id"] == odl.spec.node_id
    assert node["netconf-node-topology:connection-status"] == "connected"
    caps = [c["capability"] for c in node["netconf-node-topology:available-capabilities"]["available-capability"]]
    assert any(c.endswith(")optical-switch") and "2018-03-22" in c for c in caps)


def test_create_then_read_config_at_once_and_nonconfig_after_switching(odl):
    r = odl.http.post(odl.xc, json=body(3, 10))
    assert r.status_code == 201, r.text
    assert r.headers["Location"].endswith("/yang-ext:mount/%s/pair=3" % XC)
    assert pairs_of(odl.http.get(odl.xc, params={"content": "config"})) == [(1, 9), (3, 10)]
    assert pairs_of(odl.http.get(odl.xc, params={"content": "nonconfig"})) == [(1, 9)]
    error_of(odl.http.get(odl.xc + "/pair=3", params={"content": "nonconfig"}), 409, "data-missing")
    odl.clock.advance(25)
    assert pairs_of(odl.http.get(odl.xc, params={"content": "nonconfig"})) == [(1, 9), (3, 10)]
    r = odl.http.get(odl.xc + "/pair=3", params={"content": "nonconfig"})
    assert r.json() == {"optical-switch:pair": [{"ingress": 3, "egress": 10}]}
    r = odl.http.post(odl.xc, json=body(4, 11, key="pair"))  # unqualified body
    assert r.status_code == 201 and odl.switch.pairs() == [(1, 9), (3, 10), (4, 11)]


def test_post_on_a_paired_ingress_is_data_exists(odl):
    error = error_of(odl.http.post(odl.xc, json=body(1, 10)), 409, "data-exists")
    assert error["error-message"] == "Data already exists"
    assert pairs_of(odl.http.get(odl.xc)) == [(1, 9)]


@pytest.mark.parametrize("method, path, ingress, egress", [
    ("post", "", 2, 9),         # 9 is the egress of 1-9
    ("post", "", 9, 2),         # 9 as an ingress
    ("put", "/pair=2", 2, 1),   # 1 is the ingress of 1-9
])
def test_a_used_port_is_in_use_and_nothing_changes(odl, method, path, ingress, egress):
    before = odl.state.read_bytes()
    error_of(getattr(odl.http, method)(odl.xc + path, json=body(ingress, egress)), 409, "in-use")
    assert pairs_of(odl.http.get(odl.xc)) == [(1, 9)]
    assert odl.state.read_bytes() == before


@pytest.mark.parametrize("ingress, egress, status, tag", [
    (5, 5, 400, "invalid-value"),
    (5, 17, 400, "invalid-value"),       # the switch has 16 ports
    (0, 5, 400, "invalid-value"),        # outside the YANG port range
    (5, 6, 409, "resource-denied"),      # port 5 disabled below
])
def test_refused_pairs_change_nothing(odl, ingress, egress, status, tag):
    r = odl.http.post(odl.mount.replace("/rests/data/", "/rests/operations/") + "/optical-switch:port-set-state",
                      json={"input": {"port-disab": [5]}})
    assert r.status_code == 204, r.text
    for method, url in (("post", odl.xc), ("put", odl.xc + "/pair=%d" % ingress)):
        error_of(getattr(odl.http, method)(url, json=body(ingress, egress)), status, tag)
    assert pairs_of(odl.http.get(odl.xc)) == [(1, 9)]


def test_port_set_state_rpc_and_port_config(odl):
    rpc = odl.mount.replace("/rests/data/", "/rests/operations/") + "/optical-switch:port-set-state"
    assert odl.http.post(rpc, json={"input": {"port-disab": [5, 6]}}).status_code == 204
    assert odl.http.post(rpc, json={"optical-switch:input": {"port-enab": [6]}}).status_code == 204
    ports = odl.http.get(odl.mount + "/optical-switch:port-config").json()["optical-switch:port-config"]["port"]
    assert len(ports) == 16 and {p["port-id"]: p["status"] for p in ports}[5] == "DISABLED"
    r = odl.http.get(odl.mount + "/optical-switch:port-config/port=6", params={"content": "nonconfig"})
    assert r.json() == {"optical-switch:port": [{"port-id": 6, "status": "ENABLED", "label": ""}]}
    error_of(odl.http.get(odl.mount + "/optical-switch:port-config/port=17"), 409, "data-missing")
    error_of(odl.http.post(rpc, json={"input": {"port-enab": [17]}}), 400, "invalid-value")
    error_of(odl.http.post(rpc, data="{"), 400, "malformed-message")
    info = odl.http.get(odl.mount + "/optical-switch:product-information").json()
    assert info["optical-switch:product-information"]["model-name"] == "N-OST-16xCC-LU1-DMHNS"


def test_put_creates_or_re_points_break_before_make(odl):
    r = odl.http.put(odl.xc + "/pair=4", json=body(4, 11))
    assert r.status_code == 201, r.text
    r = odl.http.put(odl.xc + "/pair=1", json=body(1, 10))
    assert r.status_code == 204, r.text
    assert pairs_of(odl.http.get(odl.xc, params={"content": "config"})) == [(1, 10), (4, 11)]
    assert pairs_of(odl.http.get(odl.xc, params={"content": "nonconfig"})) == []
    assert not odl.switch.connected(1, 9) and not odl.switch.connected(1, 10)
    odl.clock.advance(25)
    assert odl.switch.connected(1, 10)
    assert odl.http.put(odl.xc + "/pair=1", json=body(1, 10)).status_code == 204  # unchanged
    assert odl.switch.connected(1, 10)


def test_put_with_a_key_other_than_the_url_is_invalid_value(odl):
    error = error_of(odl.http.put(odl.xc + "/pair=3", json=body(4, 11)), 400, "invalid-value")
    assert error["error-message"] == ("The value '3' for key 'ingress' specified in the URI doesn't match "
                                      "the value '4' specified in the message body. ")
    assert odl.switch.pairs() == [(1, 9)]


def test_delete(odl):
    assert odl.switch.connected(1, 9)
    assert odl.http.delete(odl.xc + "/pair=1").status_code == 204
    assert not odl.switch.connected(1, 9)
    error_of(odl.http.get(odl.xc + "/pair=1"), 409, "data-missing")
    error = error_of(odl.http.delete(odl.xc + "/pair=1"), 409, "data-missing")
    assert error["error-message"] == "Data does not exist"
    r = odl.http.get(odl.xc)
    assert r.status_code == 200 and r.json() == {XC: {}}


def test_put_the_whole_list_replaces_all_pairs(odl):
    r = odl.http.put(odl.xc, json={XC: {"pair": [{"ingress": 1, "egress": 9}, {"ingress": 2, "egress": 10}]}})
    assert r.status_code == 204, r.text
    assert pairs_of(odl.http.get(odl.xc, params={"content": "nonconfig"})) == [(1, 9)]  # 1-9 untouched
    error_of(odl.http.put(odl.xc, json={"cross-connects": {"pair": [{"ingress": 3, "egress": 9},
                                                                     {"ingress": 4, "egress": 9}]}}), 409, "in-use")
    assert odl.switch.pairs() == [(1, 9), (2, 10)]
    assert odl.http.put(odl.xc, json={XC: {}}).status_code == 204
    assert odl.switch.pairs() == []


@pytest.mark.parametrize("data", [
    "{not json", "[]", '{"optical-switch:pair": [{"ingress": 3}]}',
    '{"optical-switch:pairs": [{"ingress": 3, "egress": 10}]}',
    '{"optical-switch:pair": [{"ingress": "x", "egress": 10}]}',
    '{"optical-switch:pair": [{"ingress": 3, "egress": 10, "colour": "red"}]}',
])
def test_malformed_body_is_400_and_changes_nothing(odl, data):
    headers = {"Content-Type": "application/yang-data+json"}
    error = error_of(odl.http.post(odl.xc, data=data, headers=headers), 400, "malformed-message")
    assert error["error-message"].startswith("Error parsing input")
    error_of(odl.http.put(odl.xc + "/pair=3", data=data, headers=headers), 400, "malformed-message")
    assert odl.switch.pairs() == [(1, 9)]


@pytest.mark.parametrize("auth", [None, ("admin", "wrong"), ("nobody", "admin")])
def test_bad_or_missing_credentials_are_401(odl, auth):
    r = requests.get(odl.xc, auth=auth)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    r = requests.delete(odl.xc + "/pair=1", auth=auth)
    assert r.status_code == 401 and odl.switch.pairs() == [(1, 9)]


def test_unknown_node_is_mount_point_does_not_exist(odl):
    other = odl.xc.replace("node=%s" % odl.spec.node_id, "node=polatis-9")
    error = error_of(odl.http.get(other), 503, "resource-denied-transport")
    assert error["error-message"] == "Mount point does not exist."
    error_of(odl.http.post(other, json=body(3, 10)), 503, "resource-denied-transport")
    error_of(odl.http.get(odl.node.replace(odl.spec.node_id, "polatis-9")), 409, "data-missing")


def test_wrong_method_is_405(odl):
    r = odl.http.patch(odl.xc, json={XC: {}})
    assert r.status_code == 405 and "GET" in r.headers["Allow"]
    assert odl.http.post(odl.xc + "/pair=1", json=body(1, 9)).status_code == 405
    assert odl.http.delete(odl.mount + "/optical-switch:opm-power").status_code == 405


def test_media_types(odl):
    yang = "application/yang-data+json"
    r = odl.http.get(odl.xc, headers={"Accept": yang})
    assert r.headers["Content-Type"] == yang
    r = odl.http.get(odl.xc, headers={"Accept": "application/json"})
    assert r.headers["Content-Type"] == "application/json"
    assert odl.http.get(odl.xc, headers={"Accept": "application/xml"}).status_code == 406
    r = odl.http.post(odl.xc, data='{"pair":[{"ingress":3,"egress":10}]}', headers={"Content-Type": yang})
    assert r.status_code == 201
    r = odl.http.post(odl.xc, data="<pair/>", headers={"Content-Type": "application/xml"})
    assert r.status_code == 415


def test_opm_power(odl):
    spec = odl.spec
    lit = round(spec.light[1] - spec.insertion_loss_db, 2)

    def power(port):
        r = odl.http.get(odl.mount + "/optical-switch:opm-power/port=%d" % port, params={"content": "nonconfig"})
        return r.json()["optical-switch:port"][0]["power"]

    assert power(9) == lit and power(1) == spec.light[1] and power(10) == -60.0
    assert odl.http.post(odl.xc, json=body(2, 10)).status_code == 201
    assert power(10) == -60.0 and odl.switch.power_dbm(10) == -60.0
    odl.clock.advance(25)
    assert power(10) == round(spec.light[2] - spec.insertion_loss_db, 2)
    ports = odl.http.get(odl.mount + "/optical-switch:opm-power").json()["optical-switch:opm-power"]["port"]
    assert len(ports) == 16
    error_of(odl.http.get(odl.mount + "/optical-switch:opm-power", params={"content": "config"}),
             409, "data-missing")


def test_state_survives_a_restart(odl):
    assert odl.http.delete(odl.xc + "/pair=1").status_code == 204
    assert odl.http.post(odl.xc, json=body(3, 11)).status_code == 201
    odl.server.stop()
    switch = Switch(odl.spec, odl.state, clock=FakeClock())
    odl.server = RestconfServer(switch, odl.spec, "odl")
    odl.server.start()
    assert pairs_of(odl.http.get(odl.xc, params={"content": "config"})) == [(3, 11)]
    assert pairs_of(odl.http.get(odl.xc, params={"content": "nonconfig"})) == [(3, 11)]
    assert switch.connected(3, 11)


def test_draft02_paths_codes_and_names(odl):
    r = odl.http.get(odl.config)
    assert r.status_code == 200 and r.json() == {"cross-connects": {"pair": [{"ingress": 1, "egress": 9}]}}
    r = odl.http.post(odl.config, json=body(3, 10, key="pair"))
    assert r.status_code == 204 and r.headers["Location"].endswith("/restconf/config/%s/topology/topology-netconf"
                                                                   "/node/%s/yang-ext:mount/%s/pair/3"
                                                                   % (NT, odl.spec.node_id, XC))
    assert pairs_of(odl.http.get(odl.operational), "cross-connects") == [(1, 9)]
    odl.clock.advance(25)
    assert pairs_of(odl.http.get(odl.operational), "cross-connects") == [(1, 9), (3, 10)]
    assert odl.http.get(odl.config + "/pair/3").json() == {"pair": [{"ingress": 3, "egress": 10}]}
    assert odl.http.put(odl.config + "/pair/4", json=body(4, 11, key="pair")).status_code == 201
    assert odl.http.put(odl.config + "/pair/4", json=body(4, 12, key="pair")).status_code == 200
    assert odl.http.delete(odl.config + "/pair/4").status_code == 200
    error = error_of(odl.http.get(odl.config + "/pair/4"), 404, "data-missing")
    assert error["error-type"] == "application"
    error = error_of(odl.http.delete(odl.config + "/pair/4"), 404, "data-missing")
    assert error["error-message"] == "Data specified for delete doesn't exist."
    error = error_of(odl.http.post(odl.config, json=body(1, 12, key="pair")), 409, "data-exists")
    assert error["error-message"].startswith("Data already exists for path: /restconf/config/")
    error_of(odl.http.post(odl.config, json=body(5, 9, key="pair")), 409, "in-use")
    assert odl.http.put(odl.operational + "/pair/5", json=body(5, 12, key="pair")).status_code == 405
    error = error_of(odl.http.get(odl.config.replace(odl.spec.node_id, "polatis-9")), 404, "data-missing")
    assert error["error-message"] == "Mount point does not exist."
    assert odl.switch.pairs() == [(1, 9), (3, 10)]


def test_draft02_node_status_power_and_rpc(odl):
    status = "%s/restconf/operational/%s/topology/topology-netconf/node/%s" % (odl.base, NT, odl.spec.node_id)
    node = odl.http.get(status).json()["node"][0]
    assert node["netconf-node-topology:connection-status"] == "connected"
    power = odl.http.get(odl.operational.replace(XC, "optical-switch:opm-power/port/9")).json()
    assert power == {"port": [{"port-id": 9, "power": round(odl.spec.light[1] - odl.spec.insertion_loss_db, 2)}]}
    rpc = "%s/restconf/operations/%s/topology/topology-netconf/node/%s/yang-ext:mount/optical-switch:port-set-state" \
        % (odl.base, NT, odl.spec.node_id)
    assert odl.http.post(rpc, json={"input": {"port-disab": [12]}}).status_code == 204
    error_of(odl.http.put(odl.config + "/pair/12", json=body(12, 13, key="pair")), 409, "resource-denied")
