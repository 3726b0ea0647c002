# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""relay: XOR, the paper's example, relay steps and chains against a real HTTPS KME, key files."""

from __future__ import annotations

import base64
import os
import secrets
import uuid

import pytest
from hypothesis import given, strategies as st

from ansible_collections.qkd.nfv.plugins.module_utils.kme import KmeClient, write_key_files
from ansible_collections.qkd.nfv.plugins.module_utils.relay import (
    KeyLengthError, RelayError, RelayStep, check_chain, fingerprint, read_key_file, recover, relay,
    remove_key_file, xor)

# The paper's 32-byte example of one relay (section V): Key1 XOR Key2 = Enc.
PAPER_KEY1 = bytes.fromhex("063c394625fb316d899e849265ca04b25fbd3eaf12cf51a48871f9c7a548ae40")
PAPER_ENC = bytes.fromhex("07098e88af3dcc5f0c558d0b751028553031c6e613146196ae7b11cb4cb43bc9")
PAPER_KEY2 = bytes.fromhex("0135b7ce8ac6fd3285cb099910da2ce76f8cf84901db3032260ae80ce9fc9589")


def forms(material):
    """Spellings of a key that must never show up in text."""
    return [material.hex(), material.hex().upper(), base64.b64encode(material).decode(),
            base64.urlsafe_b64encode(material).decode().rstrip("=")]


def assert_no_key(text, *keys):
    for key in keys:
        for form in forms(key):
            assert form not in text


@pytest.fixture(scope="module")
def saes(pki):
    """Two more SAEs, so a chain can cross four links: sae-a -> b -> c -> d -> e."""
    for name in ("sae-d", "sae-e"):
        if not os.path.exists(pki.path(name)):
            pki.issue(name, cn=name, client=True)
    return pki


def client_as(pki, kme, sae, retries=3):
    return KmeClient(kme.url, pki.path("ca"), pki.path(sae), pki.key(sae), kme_id="kme-test",
                     retries=retries, backoff_factor=0)


# -- xor ---------------------------------------------------------------------------------------

def test_paper_example_is_consistent():
    assert len(PAPER_KEY1) == len(PAPER_ENC) == len(PAPER_KEY2) == 32
    assert xor(PAPER_KEY1, PAPER_KEY2) == PAPER_ENC
    assert xor(PAPER_ENC, PAPER_KEY1) == PAPER_KEY2  # what the CO does (step 8)


@given(st.integers(min_value=1, max_value=1024).flatmap(
    lambda n: st.tuples(st.binary(min_size=n, max_size=n), st.binary(min_size=n, max_size=n))))
def test_xor_matches_bytewise_xor_and_undoes_itself(pair):
    a, b = pair
    assert xor(a, b) == bytes(x ^ y for x, y in zip(a, b))
    assert xor(xor(a, b), b) == a
    assert xor(a, b) == xor(b, a)  # pylint: disable=arguments-out-of-order


def test_xor_keeps_leading_zero_bytes():
    a = secrets.token_bytes(32)
    assert xor(a, a) == bytes(32)


@pytest.mark.parametrize("a_len, b_len", [(32, 31), (31, 32), (32, 64), (1, 0)])
def test_xor_refuses_other_lengths_without_showing_keys(a_len, b_len):
    a, b = secrets.token_bytes(a_len), secrets.token_bytes(b_len)
    with pytest.raises(KeyLengthError) as caught:
        xor(a, b)
    assert "%d and %d bits" % (a_len * 8, b_len * 8) in caught.value.msg
    assert_no_key(str(caught.value), *(k for k in (a, b) if k))


def test_xor_refuses_empty_keys():
    with pytest.raises(KeyLengthError):
        xor(b"", b"")


def test_fingerprint_is_sha256_hex():
    assert fingerprint(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# -- one relay step against a KME ------------------------------------------------------------

def origin_key(pki, kme, origin="sae-a", first="sae-b", size=None):
    with client_as(pki, kme, origin) as client:
        return client.enc_keys(first, size=size)[0]


def take(pki, kme, sae, master, key_id):
    with client_as(pki, kme, sae) as client:
        return client.dec_keys(master, [key_id])[0]


def test_relay_step_hands_on_the_next_key_as_one_time_pad(pki, kme):
    key1 = origin_key(pki, kme)
    with client_as(pki, kme, "sae-b") as client:
        step = relay(client, "sae-a", key1.key_id, "sae-c")
    key2 = take(pki, kme, "sae-c", "sae-b", step.key_id)
    assert xor(step.relayed, key1.material) == key2.material
    assert step.size == 256 and step.previous_key_id == key1.key_id and step.key_id != key1.key_id
    assert step.hop.as_dict() == {"node": "sae-b", "next_node": "sae-c", "link": "kme-test -> kme-peer",
                                  "key_id": key2.key_id}
    assert [r["operation"] for r in kme.requests[1:]] == ["status", "dec_keys", "enc_keys", "dec_keys"]
    assert_no_key(repr(step) + repr(step.as_dict()) + repr(step.hop), key1.material, key2.material)


def test_relay_takes_the_outgoing_key_with_the_incoming_size(pki, kme):
    key1 = origin_key(pki, kme, size=512)
    with client_as(pki, kme, "sae-b") as client:
        step = relay(client, "sae-a", key1.key_id, "sae-c")
    assert step.size == 512
    assert kme.requests[-1]["request"] == {"number": 1, "size": 512}


def test_a_key_id_is_relayed_once(pki, kme):
    key1 = origin_key(pki, kme)
    with client_as(pki, kme, "sae-b") as client:
        relay(client, "sae-a", key1.key_id, "sae-c")
        enc_before = kme.count("enc_keys")
        with pytest.raises(RelayError) as caught:
            relay(client, "sae-a", key1.key_id, "sae-c")
    message = caught.value.msg
    assert key1.key_id in message and "relayed once" in message and "not found on KME" in message
    assert caught.value.details["http_status"] == 400
    assert kme.count("enc_keys") == enc_before  # the refusal cost no outgoing key


def test_a_key_taken_for_another_sae_is_refused(pki, kme):
    key1 = origin_key(pki, kme, first="sae-c")  # shared with sae-c, not with the relaying sae-b
    with client_as(pki, kme, "sae-b") as client:
        with pytest.raises(RelayError) as caught:
            relay(client, "sae-a", key1.key_id, "sae-c")
    assert caught.value.details["http_status"] == 401
    assert kme.count("enc_keys") == 1
    assert take(pki, kme, "sae-c", "sae-a", key1.key_id).material == key1.material  # still there


def test_an_empty_outgoing_pool_costs_no_incoming_key(pki, kme):
    key1 = origin_key(pki, kme)
    body = kme.status_body("sae-b", "sae-c")
    body["stored_key_count"] = 0
    kme.reply(200, body)
    with client_as(pki, kme, "sae-b") as client:
        with pytest.raises(RelayError) as caught:
            relay(client, "sae-a", key1.key_id, "sae-c")
    assert "holds no key for sae-c" in caught.value.msg and "nothing was consumed" in caught.value.msg
    assert kme.count("dec_keys") == 0
    assert key1.key_id in kme.pool


def test_a_failed_outgoing_key_says_the_incoming_one_is_spent(pki, kme):
    key1 = origin_key(pki, kme)
    kme.reply(200, kme.status_body("sae-b", "sae-c"))
    kme.reply(200, {"keys": [{"key_ID": key1.key_id, "key": base64.b64encode(key1.material).decode()}]})
    kme.reply(503, {"message": "link down"})
    with client_as(pki, kme, "sae-b", retries=0) as client:
        with pytest.raises(RelayError) as caught:
            relay(client, "sae-a", key1.key_id, "sae-c")
    assert "incoming key is spent" in caught.value.msg and "link down" in caught.value.msg
    assert_no_key(caught.value.msg + repr(caught.value.details), key1.material)


@pytest.mark.parametrize("previous, key_id, following, option", [
    ("sae-a", "not-a-uuid", "sae-c", "previous_key_id"),
    ("sae-c", "65c6d26a-bb2d-442a-9258-982a3c4d1e1e", "sae-c", "next_sae_id"),
])
def test_bad_relay_input_is_refused_before_any_request(pki, kme, previous, key_id, following, option):
    with client_as(pki, kme, "sae-b") as client:
        with pytest.raises(RelayError) as caught:
            relay(client, previous, key_id, following)
    assert caught.value.details["option"] == option
    assert kme.requests == []


# -- chains ------------------------------------------------------------------------------------

def run_chain(pki, kme, path):
    """Relay from path[0] to path[-1] through the SAEs between: (origin key, steps, destination key)."""
    key1 = origin_key(pki, kme, path[0], path[1])
    steps, previous_id = [], key1.key_id
    for before, node, after in zip(path, path[1:], path[2:]):
        with client_as(pki, kme, node) as client:
            steps.append(relay(client, before, previous_id, after))
        previous_id = steps[-1].key_id
    final = take(pki, kme, path[-1], path[-2], previous_id)
    return key1, steps, final


@pytest.mark.parametrize("path", [["sae-a", "sae-b", "sae-c"],
                                  ["sae-a", "sae-b", "sae-c", "sae-d", "sae-e"]])
def test_chain_of_trusted_nodes_delivers_one_key_to_both_ends(saes, kme, path):
    key1, steps, final = run_chain(saes, kme, path)
    check_chain(key1.key_id, steps)
    assert recover(key1.material, steps) == final.material
    assert fingerprint(recover(key1.material, steps)) == fingerprint(final.material)
    assert [s.hop.node for s in steps] == path[1:-1] and steps[-1].hop.next_node == path[-1]


def test_relay_results_round_trip_through_task_results(saes, kme):
    key1, steps, final = run_chain(saes, kme, ["sae-a", "sae-b", "sae-c", "sae-d"])
    # As a registered task result: extra keys Ansible adds are ignored; 0x and capitals accepted.
    results = [dict(s.as_dict(), changed=True, invocation={}) for s in steps]
    results[0]["relayed"] = "0x" + results[0]["relayed"].upper()
    parsed = [RelayStep.from_dict(r, i) for i, r in enumerate(results)]
    check_chain(key1.key_id, parsed)
    assert recover(key1.material, parsed) == final.material


def test_a_tampered_relay_value_gives_another_key(saes, kme):
    key1, steps, final = run_chain(saes, kme, ["sae-a", "sae-b", "sae-c"])
    result = steps[0].as_dict()
    result["relayed"] = ("%x" % (int(result["relayed"][0], 16) ^ 1)) + result["relayed"][1:]
    tampered = recover(key1.material, [RelayStep.from_dict(result, 0)])
    assert tampered != final.material and fingerprint(tampered) != fingerprint(final.material)


def fake_step(previous, key_id=None, relayed="00" * 32):
    return RelayStep.from_dict({"key_id": key_id or str(uuid.uuid4()), "previous_key_id": previous,
                                "relayed": relayed}, 0)


def test_check_chain_refuses_steps_out_of_order_or_from_another_relay():
    origin = str(uuid.uuid4())
    first = fake_step(origin)
    second = fake_step(first.key_id)
    check_chain(origin, [first, second])
    with pytest.raises(RelayError, match=r"hops\[0\] relays key"):
        check_chain(origin, [second, first])
    with pytest.raises(RelayError, match=r"hops\[1\] relays key"):
        check_chain(origin, [first, fake_step(str(uuid.uuid4()))])
    with pytest.raises(RelayError, match="one key_ID twice"):
        check_chain(origin, [first, fake_step(first.key_id, key_id=origin)])
    with pytest.raises(RelayError, match="hops is empty"):
        check_chain(origin, [])


@pytest.mark.parametrize("item, problem", [
    ("abc", "must be the result of a key_relay task"),
    ({"key_id": "x", "previous_key_id": str(uuid.uuid4()), "relayed": "00"}, "key_id must be the key_ID"),
    ({"key_id": str(uuid.uuid4()), "previous_key_id": str(uuid.uuid4()), "relayed": "0g"}, "hexadecimal"),
    ({"key_id": str(uuid.uuid4()), "previous_key_id": str(uuid.uuid4()), "relayed": "abc"}, "hexadecimal"),
    ({"key_id": str(uuid.uuid4()), "previous_key_id": str(uuid.uuid4())}, "hexadecimal"),
])
def test_from_dict_names_the_bad_entry(item, problem):
    with pytest.raises(RelayError) as caught:
        RelayStep.from_dict(item, 3)
    assert caught.value.msg.startswith("hops[3]") and problem in caught.value.msg


def test_recover_refuses_a_relay_value_of_another_length():
    with pytest.raises(KeyLengthError):
        recover(secrets.token_bytes(32), [fake_step(str(uuid.uuid4()), relayed="00" * 16)])


# -- key files -------------------------------------------------------------------------------

class _Key:
    def __init__(self, key_id, material):
        self.key_id, self.material = key_id, material


def test_key_files_written_by_qkd_key_are_read_and_removed(tmp_path):
    material, key_id = secrets.token_bytes(32), str(uuid.uuid4())
    path, = write_key_files(str(tmp_path), [_Key(key_id, material)])
    assert read_key_file(path) == material
    assert remove_key_file(path) and not os.path.exists(path)
    assert read_key_file(path) is None and remove_key_file(path) is False


def test_a_key_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "k.key"
    path.write_bytes(secrets.token_bytes(32))
    path.chmod(0o640)
    with pytest.raises(RelayError, match="mode 0640"):
        read_key_file(str(path))


def test_a_symlinked_or_empty_key_file_is_refused(tmp_path):
    target = tmp_path / "real.key"
    target.write_bytes(secrets.token_bytes(32))
    target.chmod(0o600)
    link = tmp_path / "link.key"
    link.symlink_to(target)
    with pytest.raises(RelayError, match="cannot be read"):
        read_key_file(str(link))
    empty = tmp_path / "empty.key"
    empty.write_bytes(b"")
    empty.chmod(0o600)
    with pytest.raises(RelayError, match="is empty"):
        read_key_file(str(empty))
