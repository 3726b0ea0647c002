# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""key_relay and key_relay_recover end to end against a real HTTPS KME: origin sae-a, trusted
node sae-b, destination sae-c."""

from __future__ import annotations

import base64
import json
import os
import stat
import uuid

import pytest
from ansible.module_utils.common import warnings as module_warnings
from ansible.module_utils.testing import patch_module_args

from ansible_collections.qkd.nfv.plugins.module_utils.kme import KmeClient, write_key_files
from ansible_collections.qkd.nfv.plugins.module_utils.relay import fingerprint
from ansible_collections.qkd.nfv.plugins.modules import key_relay, key_relay_recover


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Module warnings are process-global; keep one test's warning out of the next test's results."""
    monkeypatch.setattr(module_warnings, "_global_warnings", {})


def client_as(pki, kme, sae):
    return KmeClient(kme.url, pki.path("ca"), pki.path(sae), pki.key(sae), kme_id="kme-test",
                     backoff_factor=0)


def kme_options(pki, kme, sae):
    return dict(kme_url=kme.url, kme_id="kme-test", ca_cert=pki.path("ca"), client_cert=pki.path(sae),
                client_key=pki.key(sae), retries=0)


def run(capfd, module, check=False, diff=False, **args):
    """Run a module once: (result, raw output)."""
    args.update(_ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    out = capfd.readouterr().out
    return json.loads(out), out


def call(capfd, module, check=False, diff=False, **args):
    """Run a module once: its result."""
    return run(capfd, module, check, diff, **args)[0]


def assert_no_key(text, *keys):
    for key in keys:
        for form in (key.hex(), key.hex().upper(), base64.b64encode(key).decode(),
                     base64.b64encode(key).decode().rstrip("=")):
            assert form not in text


class _Key:
    def __init__(self, key_id, material):
        self.key_id, self.material = key_id, material


@pytest.fixture
def origin(pki, kme, tmp_path):
    """The origin's key for the trusted node, in key_dir as qkd_key writes it: (key, key_dir)."""
    with client_as(pki, kme, "sae-a") as client:
        key = client.enc_keys("sae-b")[0]
    key_dir = tmp_path / "keys"
    key_dir.mkdir(mode=0o700)
    write_key_files(str(key_dir), [_Key(key.key_id, key.material)])
    return key, str(key_dir)


def relay_args(pki, kme, key_id):
    return dict(kme_options(pki, kme, "sae-b"), previous_sae_id="sae-a", previous_key_id=key_id,
                next_sae_id="sae-c")


# -- key_relay ---------------------------------------------------------------------------------

def test_check_mode_reads_both_pools_and_consumes_nothing(capfd, pki, kme, origin):
    key = origin[0]
    result = call(capfd, key_relay, check=True, **relay_args(pki, kme, key.key_id))
    assert result["changed"] and "relayed" not in result and "key_id" not in result
    assert sorted(result["pools"]) == ["next", "previous"]
    assert result["pools"]["next"]["slave_SAE_ID"] == "sae-c"
    assert result["pools"]["previous"]["slave_SAE_ID"] == "sae-a"
    assert [r["operation"] for r in kme.requests[1:]] == ["status", "status"]
    assert key.key_id in kme.pool


def test_check_mode_warns_about_an_empty_outgoing_pool(capfd, pki, kme, origin):
    key = origin[0]
    body = kme.status_body("sae-b", "sae-c")
    body["stored_key_count"] = 0
    kme.reply(200, kme.status_body("sae-b", "sae-a"))
    kme.reply(200, body)
    result = call(capfd, key_relay, check=True, **relay_args(pki, kme, key.key_id))
    assert result["changed"] and "holds no key for sae-c" in json.dumps(result["warnings"])
    assert kme.count("dec_keys") == kme.count("enc_keys") - 1 == 0


def test_relay_returns_the_next_key_id_and_the_xor_only(capfd, pki, kme, origin):
    key = origin[0]
    result, out = run(capfd, key_relay, **relay_args(pki, kme, key.key_id))
    with client_as(pki, kme, "sae-c") as client:
        key2 = client.dec_keys("sae-b", [result["key_id"]])[0]
    assert result["changed"] and result["size"] == 256
    assert result["previous_key_id"] == key.key_id and result["next_sae_id"] == "sae-c"
    assert bytes(a ^ b for a, b in zip(bytes.fromhex(result["relayed"]), key.material)) == key2.material
    assert result["hop"] == {"node": "sae-b", "next_node": "sae-c", "link": "kme-test -> kme-peer",
                             "key_id": key2.key_id}
    assert list(result["pools"]) == ["next"]
    assert_no_key(out, key.material, key2.material)


def test_a_reused_key_id_fails_with_a_clear_message(capfd, pki, kme, origin):
    key = origin[0]
    call(capfd, key_relay, **relay_args(pki, kme, key.key_id))
    result, out = run(capfd, key_relay, **relay_args(pki, kme, key.key_id))
    assert result["failed"] and "exception" not in result
    assert "could not take the incoming key %s" % key.key_id in result["msg"]
    assert "relayed once" in result["msg"] and result["http_status"] == 400
    assert_no_key(out, key.material)


def test_bad_key_id_names_the_option(capfd, pki, kme):
    result = call(capfd, key_relay, **relay_args(pki, kme, "1234"))
    assert result["failed"] and result["option"] == "previous_key_id" and "exception" not in result


# -- key_relay_recover -----------------------------------------------------------------------

def relayed_to_destination(capfd, pki, kme, key):
    """Run the trusted node's step; the destination takes its key: (relay result, destination key)."""
    step = call(capfd, key_relay, **relay_args(pki, kme, key.key_id))
    with client_as(pki, kme, "sae-c") as client:
        return step, client.dec_keys("sae-b", [step["key_id"]])[0]


def test_recover_in_four_passes(capfd, pki, kme, origin):
    key, key_dir = origin
    step, final = relayed_to_destination(capfd, pki, kme, key)
    args = dict(key_dir=key_dir, key_id=key.key_id, hops=[step])
    origin_file = os.path.join(key_dir, key.key_id + ".key")
    final_file = os.path.join(key_dir, final.key_id + ".key")

    first = call(capfd, key_relay_recover, check=True, diff=True, **args)
    assert first["changed"] and os.path.exists(origin_file) and not os.path.exists(final_file)
    assert first["diff"] == {"before": origin_file + "\n", "after": final_file + "\n"}

    real, out = run(capfd, key_relay_recover, diff=True, **args)
    assert real["changed"] and real["key_file"] == final_file and real["key_id"] == final.key_id
    assert real["key_sha256"] == fingerprint(final.material) == first["key_sha256"]
    assert real["master_sae_id"] == "sae-b" and real["size"] == 256
    assert real["hops"] == [step["hop"]] and real["origin_key_file"] == origin_file
    with open(final_file, "rb") as handle:
        assert handle.read() == final.material
    assert stat.S_IMODE(os.stat(final_file).st_mode) == 0o600
    assert not os.path.exists(origin_file)
    assert sorted(os.listdir(key_dir)) == [final.key_id + ".key"]  # no temporary file left
    assert_no_key(out, key.material, final.material)

    again = [call(capfd, key_relay_recover, check=check, diff=True, **args) for check in (True, False)]
    assert [r["changed"] for r in again] == [False, False]
    assert all(r["key_sha256"] == real["key_sha256"] for r in again)
    assert again[1]["diff"]["before"] == again[1]["diff"]["after"] == final_file + "\n"


def test_recover_a_chain_of_two_trusted_nodes(capfd, pki, kme, tmp_path):
    with client_as(pki, kme, "sae-a") as client:
        key = client.enc_keys("sae-b")[0]
    write_key_files(str(tmp_path), [_Key(key.key_id, key.material)])
    hop1 = call(capfd, key_relay, **relay_args(pki, kme, key.key_id))
    hop2 = call(capfd, key_relay, **dict(kme_options(pki, kme, "sae-c"), previous_sae_id="sae-b",
                                         previous_key_id=hop1["key_id"], next_sae_id="sae-a"))
    with client_as(pki, kme, "sae-a") as client:
        final = client.dec_keys("sae-c", [hop2["key_id"]])[0]
    result = call(capfd, key_relay_recover, key_dir=str(tmp_path), key_id=key.key_id, hops=[hop1, hop2])
    assert result["key_sha256"] == fingerprint(final.material) and result["master_sae_id"] == "sae-c"
    reversed_order = call(capfd, key_relay_recover, key_dir=str(tmp_path), key_id=key.key_id,
                          hops=[hop2, hop1])
    assert reversed_order["failed"] and "path order" in reversed_order["msg"]


def test_a_tampered_relay_value_gives_a_key_the_destination_does_not_have(capfd, pki, kme, origin):
    key, key_dir = origin
    step, final = relayed_to_destination(capfd, pki, kme, key)
    step["relayed"] = step["relayed"][:-1] + ("0" if step["relayed"][-1] != "0" else "1")
    result = call(capfd, key_relay_recover, key_dir=key_dir, key_id=key.key_id, hops=[step])
    assert result["changed"] and result["key_sha256"] != fingerprint(final.material)


def test_recover_without_the_origin_key_says_what_to_do(capfd, tmp_path):
    step = {"key_id": str(uuid.uuid4()), "previous_key_id": str(uuid.uuid4()), "relayed": "00" * 32}
    result = call(capfd, key_relay_recover, key_dir=str(tmp_path), key_id=step["previous_key_id"],
                  hops=[step])
    assert result["failed"] and "holds neither" in result["msg"] and result["option"] == "key_dir"


def test_recover_refuses_a_different_key_already_under_the_name(capfd, pki, kme, origin):
    key, key_dir = origin
    step = relayed_to_destination(capfd, pki, kme, key)[0]
    write_key_files(key_dir, [_Key(step["key_id"], os.urandom(32))])
    result = call(capfd, key_relay_recover, key_dir=key_dir, key_id=key.key_id, hops=[step])
    assert result["failed"] and "different key" in result["msg"]
    assert os.path.exists(os.path.join(key_dir, key.key_id + ".key"))  # nothing was removed


def test_recover_refuses_hops_of_another_relay(capfd, pki, kme, origin):
    key, key_dir = origin
    step = relayed_to_destination(capfd, pki, kme, key)[0]
    step["previous_key_id"] = str(uuid.uuid4())
    result = call(capfd, key_relay_recover, key_dir=key_dir, key_id=key.key_id, hops=[step])
    assert result["failed"] and "hops[0] relays key" in result["msg"] and result["option"] == "hops"


def test_relay_is_audited_without_keys(capfd, pki, kme, tmp_path):
    from ansible_collections.qkd.nfv.plugins.module_utils import audit
    trail = str(tmp_path / "audit.jsonl")
    with client_as(pki, kme, "sae-a") as origin_client:
        first = origin_client.enc_keys("sae-b", number=1, size=256)[0]
    opts = dict(previous_sae_id="sae-a", previous_key_id=first.key_id, next_sae_id="sae-c", audit_log=trail,
                **kme_options(pki, kme, "sae-b"))
    result, again = call(capfd, key_relay, **opts), call(capfd, key_relay, **opts)
    records = audit.read(trail)[0]
    assert [r["result"] for r in records] == ["ok", "failed"] and again["failed"]
    assert records[0]["key_ids"] == [first.key_id, result["key_id"]]
    text = open(trail).read()
    assert result["relayed"] not in text
    assert_no_key(text, first.material)
