"""The lab KMEs over real mutual TLS: ETSI GS QKD 014 endpoints, codes and messages.

The `kme_lab` fixture (also used by the other test_kme_* files) starts every node's KME in-process
on free ports; keys enter through KeyNetwork.deposit as the link emulator would put them.
"""

import base64
import http.client
import os
import ssl
import threading
import uuid

import pytest
import requests

from qkdlab import kme, pki
from qkdlab.keystore import KeyNetwork

NOT_FOUND = "one or more keys specified are not found on KME"
# The KME settings these tests' figures and messages rely on, pinned whatever the inventory says.
KME_SPEC = {"key_size": 256, "max_key_count": 10000, "max_key_per_request": 128,
            "min_key_size": 64, "max_key_size": 8192}


class Lab:
    """Every KME of a topology, started in-process, with helpers to call them as an SAE."""

    def __init__(self, topo):
        self.topo = topo
        self.pki = pki.ensure(topo)
        self.network = None
        self.servers = {}
        self._sessions = []
        self.start()

    def start(self):
        self.network = KeyNetwork(self.topo)
        self.servers = {name: kme.KmeServer(self.topo, node, self.network, self.pki)
                        for name, node in self.topo.nodes.items()}
        for server in self.servers.values():
            server.start()

    def stop(self):
        threads = [threading.Thread(target=s.stop) for s in self.servers.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.network.close()

    def restart(self):
        self.stop()
        self.start()

    def close(self):
        for session in self._sessions:
            session.close()
        self.stop()

    def session(self, sae_id=None, cert=None):
        """A keep-alive session presenting sae_id's certificate (or cert, or none)."""
        s = requests.Session()
        s.trust_env = False  # no proxy, no CA bundle from the environment
        s.verify = str(self.pki.ca)
        s.cert = cert or (tuple(str(p) for p in self.pki.sae[sae_id]) if sae_id else None)
        self._sessions.append(s)
        return s

    def url(self, node, sae_id, op):
        return "https://127.0.0.1:%d/api/v1/keys/%s/%s" % (self.topo.nodes[node].kme_port, sae_id, op)

    def fill(self, a, b, count, start=0):
        """Deposit count random blocks on the link between nodes a and b; returns the blocks."""
        link = self.topo.link_between(a, b)
        blocks = [("%s-%d" % (link.name, i), os.urandom(self.topo.kme.key_size // 8))
                  for i in range(start, start + count)]
        assert self.network.deposit(link, blocks) == count
        return blocks

    # calls as an SAE
    def enc(self, caller, node, slave, body=None, params=None, method="POST"):
        s = self.session(caller)
        if method == "GET":
            return s.get(self.url(node, slave, "enc_keys"), params=params)
        return s.post(self.url(node, slave, "enc_keys"), json={} if body is None else body)

    def dec(self, caller, node, master, key_ids, method="POST"):
        s = self.session(caller)
        if method == "GET":
            return s.get(self.url(node, master, "dec_keys"), params={"key_ID": key_ids[0]})
        return s.post(self.url(node, master, "dec_keys"), json={"key_IDs": [{"key_ID": k} for k in key_ids]})


@pytest.fixture
def kme_lab(make_topology):
    lab = Lab(make_topology(kme=KME_SPEC)[0])
    yield lab
    lab.close()


def decoded(response):
    return [(k["key_ID"], base64.b64decode(k["key"], validate=True)) for k in response.json()["keys"]]


def status(lab, caller="sae-node1", node="node1", slave="sae-node2"):
    return lab.session(caller).get(lab.url(node, slave, "status"))


# -- Status ---------------------------------------------------------------------------------

def test_status_fields(kme_lab):
    kme_lab.fill("node1", "node2", 7)
    r = status(kme_lab)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {
        "source_KME_ID": "kme-node1", "target_KME_ID": "kme-node2",
        "master_SAE_ID": "sae-node1", "slave_SAE_ID": "sae-node2",
        "key_size": 256, "stored_key_count": 7, "max_key_count": 10000, "max_key_per_request": 128,
        "max_key_size": 8192, "min_key_size": 64, "max_SAE_ID_count": 0,
    }
    # The other end of the link sees the same pool.
    back = status(kme_lab, "sae-node2", "node2", "sae-node1").json()
    assert (back["source_KME_ID"], back["target_KME_ID"], back["stored_key_count"]) == ("kme-node2", "kme-node1", 7)


def test_stored_key_count_never_above_max_key_count(make_topology):
    topo, _ = make_topology(kme=dict(KME_SPEC, max_key_count=5))
    lab = Lab(topo)
    try:
        link = topo.link_between("node1", "node2")
        blocks = [("b%d" % i, os.urandom(32)) for i in range(8)]
        assert lab.network.deposit(link, blocks) == 5
        assert lab.network.deposit(link, [("late", os.urandom(32))]) == 0
        assert lab.network.capacity_blocks(link) == 5
        body = status(lab).json()
        assert body["stored_key_count"] == 5 <= body["max_key_count"] == 5
    finally:
        lab.close()


@pytest.mark.parametrize("slave, message", [
    ("sae-nowhere", "unknown slave_SAE_ID sae-nowhere: no such SAE in this QKD network"),
    ("sae-node5", "no QKD link joins node1 (kme-node1) and node5 (kme-node5): "
                  "slave_SAE_ID sae-node5 cannot be reached from this KME"),
    ("sae-node1-ops", "slave_SAE_ID sae-node1-ops is attached to this KME (kme-node1); "
                      "keys are shared only across a QKD link"),
    ("sae-node1", "master_SAE_ID and slave_SAE_ID are the same SAE (sae-node1)"),
    ("", "slave_SAE_ID is missing in the path"),
])
def test_status_bad_slave(kme_lab, slave, message):
    r = status(kme_lab, slave=slave)
    assert (r.status_code, r.json()) == (400, {"message": message})
    r = kme_lab.enc("sae-node1", "node1", slave)
    assert (r.status_code, r.json()) == (400, {"message": message})


def test_wrong_method_and_unknown_path(kme_lab):
    s = kme_lab.session("sae-node1")
    r = s.post(kme_lab.url("node1", "sae-node2", "status"), json={})
    assert r.status_code == 405 and r.headers["Allow"] == "GET" and "message" in r.json()
    r = s.put(kme_lab.url("node1", "sae-node2", "enc_keys"), json={})
    assert r.status_code == 405 and r.headers["Allow"] == "GET, POST"
    r = s.delete(kme_lab.url("node1", "sae-node2", "dec_keys"))
    assert r.status_code == 405
    for path in ("/", "/api/v1/keys/sae-node2/other", "/api/v2/keys/sae-node2/status"):
        r = s.get("https://127.0.0.1:%d%s" % (kme_lab.topo.nodes["node1"].kme_port, path))
        assert r.status_code == 404 and "message" in r.json()


# -- Get key / Get key with key IDs ---------------------------------------------------------

@pytest.mark.parametrize("size", [64, 256, 264, 1024, 8192])
def test_key_sizes_in_bits_and_same_key_at_both_ends(kme_lab, size):
    kme_lab.fill("node1", "node2", 40)
    r = kme_lab.enc("sae-node1", "node1", "sae-node2", {"number": 1, "size": size})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    [(key_id, key)] = decoded(r)
    assert len(key) * 8 == size
    assert uuid.UUID(key_id).version == 4
    r = kme_lab.dec("sae-node2", "node2", "sae-node1", [key_id])
    assert r.status_code == 200
    assert decoded(r) == [(key_id, key)]
    # ceil(size / key_size) blocks taken from the pool
    assert status(kme_lab).json()["stored_key_count"] == 40 - -(-size // 256)


def test_key_is_built_from_the_deposited_blocks(kme_lab):
    blocks = kme_lab.fill("node1", "node2", 3)
    [(_, key)] = decoded(kme_lab.enc("sae-node1", "node1", "sae-node2", {"size": 512}))
    assert key == blocks[0][1] + blocks[1][1]


def test_get_methods(kme_lab):
    kme_lab.fill("node1", "node2", 10)
    r = kme_lab.enc("sae-node1", "node1", "sae-node2", method="GET", params={"number": 3, "size": 128})
    assert r.status_code == 200
    keys = decoded(r)
    assert len(keys) == 3 and all(len(k) == 16 for _, k in keys)
    for key_id, key in keys:
        r = kme_lab.dec("sae-node2", "node2", "sae-node1", [key_id], method="GET")
        assert r.status_code == 200 and decoded(r) == [(key_id, key)]


def test_defaults(kme_lab):
    kme_lab.fill("node1", "node2", 10)
    s = kme_lab.session("sae-node1")
    for r in (s.get(kme_lab.url("node1", "sae-node2", "enc_keys")),       # empty GET
              s.post(kme_lab.url("node1", "sae-node2", "enc_keys"), json={}),
              s.post(kme_lab.url("node1", "sae-node2", "enc_keys"))):      # POST without a body
        assert r.status_code == 200
        [(_, key)] = decoded(r)
        assert len(key) * 8 == 256


def test_many_keys_in_one_request_and_in_one_dec_keys(kme_lab):
    kme_lab.fill("node1", "node2", 300)
    r = kme_lab.enc("sae-node1", "node1", "sae-node2", {"number": 128, "size": 264})  # 2 blocks each
    keys = decoded(r)
    assert len(keys) == 128 and len({k for k, _ in keys}) == 128 and len({v for _, v in keys}) == 128
    assert status(kme_lab).json()["stored_key_count"] == 300 - 256
    r = kme_lab.dec("sae-node2", "node2", "sae-node1", [k for k, _ in keys])
    assert decoded(r) == keys


def test_both_directions_share_the_link_pool(kme_lab):
    kme_lab.fill("node1", "node2", 4)
    [(id1, k1)] = decoded(kme_lab.enc("sae-node1", "node1", "sae-node2"))
    [(id2, k2)] = decoded(kme_lab.enc("sae-node2", "node2", "sae-node1"))   # node2 as master
    assert k1 != k2
    assert decoded(kme_lab.dec("sae-node1", "node1", "sae-node2", [id2])) == [(id2, k2)]
    assert decoded(kme_lab.dec("sae-node2", "node2", "sae-node1", [id1])) == [(id1, k1)]
    assert status(kme_lab).json()["stored_key_count"] == 2
    assert status(kme_lab, "sae-node2", "node2", "sae-node1").json()["stored_key_count"] == 2


def test_second_sae_of_a_node_has_its_own_keys(kme_lab):
    kme_lab.fill("node1", "node3", 4)
    [(key_id, key)] = decoded(kme_lab.enc("sae-node1-ops", "node1", "sae-node3"))
    r = kme_lab.dec("sae-node3", "node3", "sae-node1-ops", [key_id])
    assert decoded(r) == [(key_id, key)]


def test_unknown_fields_and_extension_optional_are_accepted(kme_lab):
    kme_lab.fill("node1", "node2", 4)
    body = {"number": 1, "size": 256, "extension_optional": [{"abc_max_age": 30000}],
            "additional_slave_SAE_IDs": [], "extension_mandatory": [], "vendor_thing": {"x": 1}}
    r = kme_lab.enc("sae-node1", "node1", "sae-node2", body)
    assert r.status_code == 200
    container = r.json()
    # A conformance suite posts whole key containers back as Key IDs.
    r = kme_lab.session("sae-node2").post(kme_lab.url("node2", "sae-node1", "dec_keys"),
                                          json={"key_IDs": container["keys"], "key_IDs_extension": {}})
    assert r.status_code == 200 and r.json() == container


# -- 400 ------------------------------------------------------------------------------------

SIZE_RANGE = "size shall be between 64 (min_key_size) and 8192 (max_key_size) bits"
NUMBER_RANGE = "number shall be between 1 and 128 (max_key_per_request)"


@pytest.mark.parametrize("params, message", [
    ({"size": 100}, "size shall be a multiple of 8"),
    ({"size": 4}, "size shall be a multiple of 8"),
    ({"size": 0}, SIZE_RANGE),
    ({"size": -8}, SIZE_RANGE),
    ({"size": 56}, SIZE_RANGE),
    ({"size": 8200}, SIZE_RANGE),
    ({"size": "abc01"}, "size shall be an integer"),
    ({"number": 0}, NUMBER_RANGE),
    ({"number": -8}, NUMBER_RANGE),
    ({"number": 129}, NUMBER_RANGE),
    ({"number": "abc01"}, "number shall be an integer"),
    ({"number": "1.5"}, "number shall be an integer"),
])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_enc_keys_bad_number_or_size(kme_lab, method, params, message):
    kme_lab.fill("node1", "node2", 4)
    r = kme_lab.enc("sae-node1", "node1", "sae-node2", params, params=params, method=method)
    assert r.status_code == 400 and r.headers["Content-Type"] == "application/json"
    assert r.json() == {"message": message}
    assert status(kme_lab).json()["stored_key_count"] == 4


def test_enc_keys_get_huge_number(kme_lab):
    r = kme_lab.enc("sae-node1", "node1", "sae-node2", params={"number": "9" * 5000}, method="GET")
    assert (r.status_code, r.json()) == (400, {"message": "number is out of range"})


@pytest.mark.parametrize("body, message", [
    ({"number": 1.0}, "number shall be an integer"),
    ({"number": True}, "number shall be an integer"),
    ({"size": 256.0}, "size shall be an integer"),
    ({"size": [256]}, "size shall be an integer"),
    ({"additional_slave_SAE_IDs": ["sae-node3"]},
     "key multicast is not supported: additional_slave_SAE_IDs shall be empty (max_SAE_ID_count is 0)"),
    ({"additional_slave_SAE_IDs": "sae-node3"}, "additional_slave_SAE_IDs shall be an array of SAE IDs"),
    ({"extension_mandatory": {"abc_route_type": "direct"}}, "extension_mandatory shall be an array of objects"),
])
def test_enc_keys_bad_body(kme_lab, body, message):
    kme_lab.fill("node1", "node2", 4)
    r = kme_lab.enc("sae-node1", "node1", "sae-node2", body)
    assert (r.status_code, r.json()) == (400, {"message": message})


def test_enc_keys_extension_mandatory(kme_lab):
    kme_lab.fill("node1", "node2", 4)
    body = {"number": 1, "extension_mandatory": [{"abc_route_type": "direct"}, {"abc_transfer_method": "qkd"}]}
    r = kme_lab.enc("sae-node1", "node1", "sae-node2", body)
    assert (r.status_code, r.json()) == (400, {
        "message": "not all extension_mandatory parameters are supported",
        "details": [{"extension_mandatory_unsupported": "abc_route_type is not supported"},
                    {"extension_mandatory_unsupported": "abc_transfer_method is not supported"}]})


@pytest.mark.parametrize("raw, message", [
    (b"{", "the request body is not valid JSON"),
    (b"\xff\xfe", "the request body is not valid JSON"),
    (b"[1, 2]", "the request body shall be a JSON object (Key request)"),
])
def test_enc_keys_malformed_json(kme_lab, raw, message):
    r = kme_lab.session("sae-node1").post(kme_lab.url("node1", "sae-node2", "enc_keys"), data=raw,
                                          headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()) == (400, {"message": message})


def test_dec_keys_unknown_or_invalid_key_id(kme_lab):
    r = kme_lab.dec("sae-node2", "node2", "sae-node1", [str(uuid.uuid4())])
    assert (r.status_code, r.json()) == (400, {"message": NOT_FOUND})
    r = kme_lab.dec("sae-node2", "node2", "sae-node1", ["not-a-uuid"])
    assert r.status_code == 400 and r.json()["message"] == NOT_FOUND
    r = kme_lab.dec("sae-node2", "node2", "sae-node1", ["not-a-uuid"], method="GET")
    assert r.status_code == 400 and r.json()["message"] == NOT_FOUND


@pytest.mark.parametrize("body, message", [
    ({}, 'key_IDs shall be a non-empty array of objects, each with a "key_ID" string'),
    ({"key_IDs": []}, 'key_IDs shall be a non-empty array of objects, each with a "key_ID" string'),
    ({"key_IDs": ["bc490419-7d60-487f-adc1-4ddcc177c139"]},
     'key_IDs shall be a non-empty array of objects, each with a "key_ID" string'),
    ({"key_IDs": [{"key_ID": "bc490419-7d60-487f-adc1-4ddcc177c139"},
                  {"key_ID": "bc490419-7d60-487f-adc1-4ddcc177c139"}]},
     "key_IDs names the same key_ID more than once"),
    ({"key_IDs": [{"key_ID": str(uuid.uuid4())} for _ in range(129)]},
     "at most 128 key IDs per request (max_key_per_request)"),
])
def test_dec_keys_bad_body(kme_lab, body, message):
    r = kme_lab.session("sae-node2").post(kme_lab.url("node2", "sae-node1", "dec_keys"), json=body)
    assert (r.status_code, r.json()) == (400, {"message": message})


def test_dec_keys_get_needs_exactly_one_key_id(kme_lab):
    s = kme_lab.session("sae-node2")
    message = "GET dec_keys takes exactly one key_ID in the query string; use POST for several"
    for params in ({}, {"key_ID": [str(uuid.uuid4()), str(uuid.uuid4())]}):
        r = s.get(kme_lab.url("node2", "sae-node1", "dec_keys"), params=params)
        assert (r.status_code, r.json()) == (400, {"message": message})
    r = s.get(kme_lab.url("node2", "", "dec_keys"), params={"key_ID": str(uuid.uuid4())})
    assert (r.status_code, r.json()) == (400, {"message": "master_SAE_ID is missing in the path"})


def test_dec_keys_all_or_nothing(kme_lab):
    kme_lab.fill("node1", "node2", 4)
    [(key_id, key)] = decoded(kme_lab.enc("sae-node1", "node1", "sae-node2"))
    r = kme_lab.dec("sae-node2", "node2", "sae-node1", [key_id, str(uuid.uuid4())])
    assert (r.status_code, r.json()) == (400, {"message": NOT_FOUND})
    assert decoded(kme_lab.dec("sae-node2", "node2", "sae-node1", [key_id])) == [(key_id, key)]


# -- 401 and TLS ----------------------------------------------------------------------------

def test_no_client_certificate_is_401(kme_lab):
    s = kme_lab.session()
    for r in (s.get(kme_lab.url("node1", "sae-node2", "status")),
              s.post(kme_lab.url("node1", "sae-node2", "enc_keys"), json={}),
              s.post(kme_lab.url("node2", "sae-node1", "dec_keys"), json={"key_IDs": [{"key_ID": str(uuid.uuid4())}]})):
        assert r.status_code == 401 and r.content == b""


def test_sae_of_another_node_is_401(kme_lab):
    kme_lab.fill("node1", "node2", 4)
    r = kme_lab.session("sae-node2").get(kme_lab.url("node1", "sae-node1", "status"))
    assert r.status_code == 401 and r.content == b""
    r = kme_lab.enc("sae-node3", "node1", "sae-node2")
    assert r.status_code == 401 and r.content == b""
    assert status(kme_lab).json()["stored_key_count"] == 4


def test_dec_keys_by_a_third_party_is_401(kme_lab):
    kme_lab.fill("node1", "node2", 4)
    [(key_id, key)] = decoded(kme_lab.enc("sae-node2", "node2", "sae-node1"))
    # sae-node1-ops is at the right KME but was not named as the slave.
    r = kme_lab.dec("sae-node1-ops", "node1", "sae-node2", [key_id])
    assert r.status_code == 401 and r.content == b""
    r = kme_lab.dec("sae-node1-ops", "node1", "sae-node2", [key_id], method="GET")
    assert r.status_code == 401 and r.content == b""
    # The right slave naming the wrong master in the path.
    r = kme_lab.dec("sae-node1", "node1", "sae-node3", [key_id])
    assert r.status_code == 401 and r.content == b""
    # Nothing was consumed.
    assert decoded(kme_lab.dec("sae-node1", "node1", "sae-node2", [key_id])) == [(key_id, key)]


def test_certificate_from_another_ca_is_refused(kme_lab, tmp_path):
    ca_cert, ca_key = pki.make_ca("foreign CA")
    cert, key = pki.issue(ca_cert, ca_key, "sae-node1")   # the right name, the wrong issuer
    pki.write_pair(cert, key, tmp_path / "foreign.crt", tmp_path / "foreign.key")
    s = kme_lab.session(cert=(str(tmp_path / "foreign.crt"), str(tmp_path / "foreign.key")))
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        s.get(kme_lab.url("node1", "sae-node2", "status"))
    # At TLS 1.2 the refusal is in the handshake itself.
    ctx = ssl.create_default_context(cafile=str(kme_lab.pki.ca))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(tmp_path / "foreign.crt"), str(tmp_path / "foreign.key"))
    conn = http.client.HTTPSConnection("127.0.0.1", kme_lab.topo.nodes["node1"].kme_port, context=ctx, timeout=5)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        conn.connect()
    conn.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["TLS1.2", "TLS1.3"])
def test_tls_versions_ciphers_and_keep_alive(kme_lab, version):
    ctx = ssl.create_default_context(cafile=str(kme_lab.pki.ca))
    ctx.minimum_version = ctx.maximum_version = version
    ctx.load_cert_chain(*(str(p) for p in kme_lab.pki.sae["sae-node1"]))
    conn = http.client.HTTPSConnection("localhost", kme_lab.topo.nodes["node1"].kme_port, context=ctx, timeout=5)
    try:
        conn.connect()
        name, _, _ = conn.sock.cipher()
        assert conn.sock.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
        assert "GCM" in name or "CHACHA20" in name
        peer = conn.sock.getpeercert()
        assert dict(x[0] for x in peer["subject"])["commonName"] == "kme-node1"
        sock = conn.sock
        for _ in range(3):   # several requests on one connection
            conn.request("GET", "/api/v1/keys/sae-node2/status")
            r = conn.getresponse()
            assert r.status == 200 and r.getheader("Content-Type") == "application/json"
            r.read()
        assert conn.sock is sock
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_below_1_2_is_refused(kme_lab):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    conn = http.client.HTTPSConnection("127.0.0.1", kme_lab.topo.nodes["node1"].kme_port, context=ctx, timeout=5)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        conn.connect()
    conn.close()


# -- 503 ------------------------------------------------------------------------------------

def test_exhaustion_is_503(kme_lab):
    kme_lab.fill("node1", "node2", 3)
    r = kme_lab.enc("sae-node1", "node1", "sae-node2", {"number": 4})
    assert r.status_code == 503
    assert r.json() == {"message": "not enough key on link node1-node2: 3 blocks stored, the request needs 4"}
    assert status(kme_lab).json()["stored_key_count"] == 3     # nothing taken
    assert len(decoded(kme_lab.enc("sae-node1", "node1", "sae-node2", {"number": 3}))) == 3
    r = kme_lab.enc("sae-node1", "node1", "sae-node2", method="GET")
    assert r.status_code == 503 and "not enough key" in r.json()["message"]
    r = kme_lab.enc("sae-node1", "node1", "sae-node4")   # a link that never generated key
    assert r.status_code == 503


def test_port_in_use_is_a_clear_error(kme_lab):
    node = kme_lab.topo.nodes["node1"]
    other = kme.KmeServer(kme_lab.topo, node, kme_lab.network, kme_lab.pki)
    with pytest.raises(OSError, match="KME kme-node1 cannot listen on 127.0.0.1:%d" % node.kme_port):
        other.start()
    other.stop()   # never started: nothing to do
