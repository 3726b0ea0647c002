"""An independent ETSI GS QKD 014 client (PyPI etsi-qkd-014-client) against the lab KMEs."""

import base64

import pytest

from test_kme import kme_lab  # noqa: F401  (fixture)

client_module = pytest.importorskip("etsi_qkd_014_client")


def _client(lab, node, sae_id):
    cert, key = lab.pki.sae[sae_id]
    return client_module.QKD014Client("127.0.0.1:%d" % lab.topo.nodes[node].kme_port,
                                      str(cert), str(key), str(lab.pki.ca))


def test_independent_client_gets_the_same_key_at_both_ends(kme_lab):
    kme_lab.fill("node1", "node3", 10)
    master = _client(kme_lab, "node1", "sae-node1")
    slave = _client(kme_lab, "node3", "sae-node3")

    code, st = master.get_status("sae-node3")
    assert code == 200
    assert (st.source_kme_id, st.target_kme_id, st.stored_key_count, st.max_sae_id_count) == \
        ("kme-node1", "kme-node3", 10, 0)

    code, container = master.get_key("sae-node3", number=2, size=512)    # POST
    assert code == 200 and len(container.keys) == 2
    code, simple = master.get_key("sae-node3")                            # plain GET
    assert code == 200 and len(simple.keys) == 1
    taken = container.keys + simple.keys
    assert [len(base64.b64decode(k.key)) * 8 for k in taken] == [512, 512, 256]

    code, got = slave.get_key_with_key_IDs("sae-node1", [k.key_id for k in taken])
    assert code == 200
    assert [(k.key_id, k.key) for k in got.keys] == [(k.key_id, k.key) for k in taken]

    code, error = slave.get_key_with_key_IDs("sae-node1", [taken[0].key_id])
    assert code == 400 and error.message == "one or more keys specified are not found on KME"
