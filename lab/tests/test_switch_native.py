"""The switch's own RESTCONF (/api), over real HTTP."""

import pytest
import requests

from qkdlab.restconf import RestconfServer
from qkdlab.switch import Switch

XC = "optical-switch:cross-connects"


@pytest.fixture
def native(lab_topology, tmp_path):
    spec = lab_topology.switch
    switch = Switch(spec, tmp_path / "switch.json", clock=lambda: 1000.0)  # time stands still: nothing settles
    with RestconfServer(switch, spec, "native") as server:
        with requests.Session() as http:
            http.auth = (spec.native.username, spec.native.password)
            yield switch, http, server.url + "/api"


def error_of(response, status, tag):
    assert response.status_code == status, response.text
    error = response.json()["ietf-restconf:errors"]["error"][0]
    assert error["error-tag"] == tag
    return error


def body(ingress, egress):
    return {"optical-switch:pair": [{"ingress": ingress, "egress": egress}]}


def test_api_root_and_auth(native):
    switch, http, api = native
    assert http.get(api).status_code == 200
    r = requests.get(api, auth=("admin", "admin"))
    assert r.status_code == 401 and "ietf-restconf:errors" in r.json()
    assert requests.get(api + "/data/" + XC).status_code == 401


def test_cross_connects(native):
    switch, http, api = native
    xc = api + "/data/" + XC
    assert http.get(xc).json() == {XC: {"pair": [{"ingress": 1, "egress": 9}]}}
    r = http.post(xc, json=body(3, 10))
    assert r.status_code == 201 and r.headers["Location"].endswith("/api/data/%s/pair=3" % XC)
    error_of(http.post(xc, json=body(3, 11)), 409, "data-exists")
    error_of(http.post(xc, json=body(4, 10)), 409, "in-use")
    assert http.get(xc + "/pair=3").json() == {"optical-switch:pair": [{"ingress": 3, "egress": 10}]}
    assert http.get(xc, params={"content": "nonconfig"}).json() == {XC: {"pair": [{"ingress": 1, "egress": 9}]}}
    assert http.put(xc + "/pair=4", json=body(4, 11)).status_code == 201
    assert http.put(xc + "/pair=4", json=body(4, 12)).status_code == 204
    assert http.delete(xc + "/pair=4").status_code == 204
    error_of(http.delete(xc + "/pair=4"), 404, "data-missing")
    error_of(http.get(xc + "/pair=4"), 404, "data-missing")
    assert switch.pairs() == [(1, 9), (3, 10)]
    assert http.put(xc, json={XC: {"pair": [{"ingress": 2, "egress": 9}]}}).status_code == 204
    assert switch.pairs() == [(2, 9)]
    error_of(http.post(xc, data="nope"), 400, "malformed-message")


def test_ports_power_and_rpc(native):
    switch, http, api = native
    ports = http.get(api + "/data/optical-switch:port-config").json()["optical-switch:port-config"]["port"]
    assert [p["port-id"] for p in ports] == list(range(1, 17))
    r = http.post(api + "/operations/optical-switch:port-set-state", json={"input": {"port-disab": [3]}})
    assert r.status_code == 204
    r = http.get(api + "/data/optical-switch:port-config/port=3")
    assert r.json()["optical-switch:port"][0]["status"] == "DISABLED"
    power = http.get(api + "/data/optical-switch:opm-power").json()["optical-switch:opm-power"]["port"]
    assert {p["port-id"]: p["power"] for p in power}[10] == -60.0
