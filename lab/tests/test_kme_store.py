"""Key stores: identical blocks at both ends, once-only delivery across restarts and races,
crash repair, file modes, and no key material in the logs."""

import base64
import logging
import os
import sqlite3
import stat
import threading
import uuid

import pytest

from qkdlab.keystore import KeyNetwork, KeyNotFound, NotAuthorised, NotEnoughKey
from test_kme import KME_SPEC, NOT_FOUND, decoded, kme_lab, status  # noqa: F401  (kme_lab is a fixture)


def _blocks(n, prefix="b"):
    return [("%s%d" % (prefix, i), os.urandom(32)) for i in range(n)]


def _pool(topo, node, link):
    """The raw pool rows (block_id, block) of node's KME for a link, in order."""
    path = topo.lab_dir / "kme" / (topo.nodes[node].kme_id + ".sqlite")
    with sqlite3.connect(str(path)) as db:
        return db.execute("SELECT block_id, block FROM pool WHERE link = ? ORDER BY seq", (link.name,)).fetchall()


# -- KeyNetwork directly --------------------------------------------------------------------

@pytest.fixture
def topo(make_topology):
    return make_topology(kme=KME_SPEC)[0]


@pytest.fixture
def network(topo):
    net = KeyNetwork(topo)
    yield net
    net.close()


def test_deposit_lands_identically_at_both_ends(topo, network):
    link = topo.link_between("node1", "node2")
    blocks = _blocks(5)
    assert network.deposit(link, blocks) == 5
    assert _pool(topo, "node1", link) == _pool(topo, "node2", link) == blocks
    assert network.stored_blocks(link) == 5
    assert network.stored_blocks(topo.link_between("node1", "node3")) == 0


def test_deposit_validation(topo, network):
    link = topo.link_between("node1", "node2")
    with pytest.raises(ValueError, match="is not 32 bytes"):
        network.deposit(link, [("short", b"\x00" * 31)])
    with pytest.raises(ValueError, match="appears twice"):
        network.deposit(link, [("x", os.urandom(32)), ("x", os.urandom(32))])
    network.deposit(link, [("x", os.urandom(32))])
    with pytest.raises(ValueError, match="already stored"):
        network.deposit(link, [("y", os.urandom(32)), ("x", os.urandom(32))])
    assert network.stored_blocks(link) == 1
    assert _pool(topo, "node1", link) == _pool(topo, "node2", link)


def test_capacity_per_link(make_topology):
    topo, _ = make_topology(kme=dict(KME_SPEC, max_key_count=10))
    net = KeyNetwork(topo)
    try:
        link = topo.link_between("node1", "node2")
        assert net.deposit(link, _blocks(6)) == 6
        assert net.deposit(link, _blocks(6, "c")) == 4
        assert net.stored_blocks(link) == net.capacity_blocks(link) == 10
        assert net.deposit(topo.link_between("node1", "node3"), _blocks(10)) == 10  # its own pool
    finally:
        net.close()


def test_take_and_deliver(topo, network):
    link = topo.link_between("node1", "node2")
    network.deposit(link, _blocks(4))
    with pytest.raises(NotEnoughKey):
        network.take(link, "node1", "sae-node1", "sae-node2", 5, 256)
    keys = network.take(link, "node1", "sae-node1", "sae-node2", 2, 256)
    assert network.stored_blocks(link) == 2 and network.reserved_keys("node2") == 2
    ids = [key_id for key_id, _ in keys]
    with pytest.raises(NotAuthorised):
        network.deliver("node2", "sae-node2", "sae-node1-ops", ids)
    with pytest.raises(KeyNotFound):
        network.deliver("node2", "sae-node2", "sae-node1", ids + [str(uuid.uuid4())])
    assert network.deliver("node2", "sae-node2", "sae-node1", ids) == keys
    with pytest.raises(KeyNotFound):
        network.deliver("node2", "sae-node2", "sae-node1", ids[:1])
    assert network.reserved_keys("node2") == 0


def test_durable_network_delivers_once_across_reopen(topo):
    link = topo.link_between("node1", "node2")
    net = KeyNetwork(topo, durable=True)
    try:
        net.deposit(link, _blocks(4))
        keys = net.take(link, "node2", "sae-node2", "sae-node1", 2, 256)
        assert net.deliver("node1", "sae-node1", "sae-node2", [keys[0][0]]) == keys[:1]
    finally:
        net.close()
    net = KeyNetwork(topo, durable=True)
    try:
        assert net.stored_blocks(link) == 2
        with pytest.raises(KeyNotFound):
            net.deliver("node1", "sae-node1", "sae-node2", [keys[0][0]])
        assert net.deliver("node1", "sae-node1", "sae-node2", [keys[1][0]]) == keys[1:]
    finally:
        net.close()


def test_free_counts_match_the_databases(make_topology):
    topo, _ = make_topology(kme=dict(KME_SPEC, max_key_count=20))
    link = topo.link_between("node1", "node2")
    net = KeyNetwork(topo)
    try:
        net.deposit(link, _blocks(15))
        net.take(link, "node1", "sae-node1", "sae-node2", 2, 512)    # 4 blocks
        net.take(link, "node2", "sae-node2", "sae-node1", 1, 264)    # 2 blocks
        assert net.deposit(link, _blocks(30, "c")) == 11
        expected = len(_pool(topo, "node1", link))
        assert expected == len(_pool(topo, "node2", link)) == net.stored_blocks(link) == 20
    finally:
        net.close()
    net = KeyNetwork(topo)
    try:
        assert net.stored_blocks(link) == 20
    finally:
        net.close()


def test_interrupted_deposit_is_repaired_at_open(topo):
    link = topo.link_between("node1", "node2")
    net = KeyNetwork(topo)
    net.deposit(link, _blocks(3))
    net.close()
    # As if the process died between Alice's commit and Bob's: node2 (Alice) holds two more blocks.
    path = topo.lab_dir / "kme" / "kme-node2.sqlite"
    with sqlite3.connect(str(path)) as db:
        db.executemany("INSERT INTO pool (link, block_id, block) VALUES (?, ?, ?)",
                       [(link.name, block_id, block) for block_id, block in _blocks(2, "orphan")])
    net = KeyNetwork(topo)
    try:
        assert _pool(topo, "node1", link) == _pool(topo, "node2", link)
        assert net.stored_blocks(link) == 3
    finally:
        net.close()


def test_take_skips_blocks_the_slave_lacks(topo, network):
    link = topo.link_between("node1", "node2")
    blocks = _blocks(4)
    network.deposit(link, blocks)
    # As if an earlier take died after the slave's commit: the slave no longer holds block b0.
    path = topo.lab_dir / "kme" / "kme-node2.sqlite"
    with sqlite3.connect(str(path)) as db:
        db.execute("DELETE FROM pool WHERE block_id = 'b0'")
    [(_, key)] = network.take(link, "node1", "sae-node1", "sae-node2", 1, 256)
    assert key == blocks[1][1]
    assert _pool(topo, "node1", link) == _pool(topo, "node2", link) == blocks[2:]
    assert network.stored_blocks(link) == 2


def test_database_files_are_private(topo, network):
    link = topo.link_between("node1", "node2")
    network.deposit(link, _blocks(1))
    base = topo.lab_dir / "kme"
    assert stat.S_IMODE(base.stat().st_mode) == 0o700
    files = list(base.iterdir())
    assert {p.name for p in files} >= {n.kme_id + ".sqlite" for n in topo.nodes.values()}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


# -- over HTTPS -----------------------------------------------------------------------------

def test_restart_loses_nothing_and_never_delivers_twice(kme_lab):
    kme_lab.fill("node1", "node2", 10)
    keys = decoded(kme_lab.enc("sae-node1", "node1", "sae-node2", {"number": 3}))
    first = keys[0][0]
    assert decoded(kme_lab.dec("sae-node2", "node2", "sae-node1", [first])) == keys[:1]
    kme_lab.restart()
    assert status(kme_lab).json()["stored_key_count"] == 7
    r = kme_lab.dec("sae-node2", "node2", "sae-node1", [first])
    assert (r.status_code, r.json()) == (400, {"message": NOT_FOUND})
    rest = [key_id for key_id, _ in keys[1:]]
    assert decoded(kme_lab.dec("sae-node2", "node2", "sae-node1", rest)) == keys[1:]
    kme_lab.restart()
    r = kme_lab.dec("sae-node2", "node2", "sae-node1", rest)
    assert r.status_code == 400
    # The pool after the restarts still serves fresh keys, identical at both ends.
    [(key_id, key)] = decoded(kme_lab.enc("sae-node2", "node2", "sae-node1"))
    assert decoded(kme_lab.dec("sae-node1", "node1", "sae-node2", [key_id])) == [(key_id, key)]


def test_concurrent_dec_keys_on_one_key_id(kme_lab):
    kme_lab.fill("node1", "node2", 20)
    keys = decoded(kme_lab.enc("sae-node1", "node1", "sae-node2", {"number": 20}))
    sessions = [kme_lab.session("sae-node2") for _ in range(2)]
    url = kme_lab.url("node2", "sae-node1", "dec_keys")
    for s in sessions:
        s.get(kme_lab.url("node2", "sae-node1", "status"))   # handshakes done before the race
    for key_id, key in keys:
        barrier, results = threading.Barrier(2), [None, None]

        def call(i, key_id=key_id, barrier=barrier, results=results):
            barrier.wait()
            results[i] = sessions[i].post(url, json={"key_IDs": [{"key_ID": key_id}]})

        threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 400]
        winner = next(r for r in results if r.status_code == 200)
        assert decoded(winner) == [(key_id, key)]


def test_both_directions_in_parallel_never_share_blocks(kme_lab):
    kme_lab.fill("node1", "node2", 200)
    got = {"node1": [], "node2": []}

    def drain(node, caller, slave):
        s = kme_lab.session(caller)
        while True:
            r = s.post(kme_lab.url(node, slave, "enc_keys"), json={"number": 3})
            if r.status_code == 503:
                return
            got[node].extend(decoded(r))

    threads = [threading.Thread(target=drain, args=("node1", "sae-node1", "sae-node2")),
               threading.Thread(target=drain, args=("node2", "sae-node2", "sae-node1"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = got["node1"] + got["node2"]
    assert len(everything) == 198                        # 66 requests of 3 keys, 2 blocks left
    assert len({key for _, key in everything}) == 198    # no block served twice
    assert status(kme_lab).json()["stored_key_count"] == 2
    # Every key is at the other end, once.
    for node, slave_node, master in (("node1", "node2", "sae-node1"), ("node2", "node1", "sae-node2")):
        caller = "sae-node2" if slave_node == "node2" else "sae-node1"
        keys = got[node]
        for i in range(0, len(keys), 100):
            part = keys[i:i + 100]
            r = kme_lab.dec(caller, slave_node, master, [key_id for key_id, _ in part])
            assert decoded(r) == part


def test_no_key_material_in_logs(kme_lab, caplog):
    caplog.set_level(logging.DEBUG)
    blocks = kme_lab.fill("node1", "node2", 4)
    r = kme_lab.enc("sae-node1", "node1", "sae-node2", {"number": 2})
    keys = decoded(r)
    kme_lab.dec("sae-node1-ops", "node1", "sae-node2", [keys[0][0]])       # 401
    kme_lab.dec("sae-node2", "node2", "sae-node1", [keys[0][0]], method="GET")
    kme_lab.enc("sae-node1", "node1", "sae-node2", {"number": 5})          # 503
    assert any(rec.name.startswith("qkdlab") for rec in caplog.records)    # the KME did log
    text = caplog.text
    for _, key in keys + blocks:
        assert base64.b64encode(key).decode() not in text
        assert key.hex() not in text
