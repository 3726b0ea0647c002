# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""qkd_key as master and as slave against the in-process HTTPS test KME."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat

import pytest

from ansible_collections.qkd.nfv.plugins.modules import qkd_key

UUID1 = "bc490419-7d60-487f-adc1-4ddcc177c139"


def as_sae(connection, pki, sae, **extra):
    result = {k: v for k, v in connection.items() if v is not None}
    result.update(client_cert=pki.path(sae), client_key=pki.key(sae))
    result.update(extra)
    return result


def master(connection, pki, dest, **extra):
    return as_sae(connection, pki, "sae-a", **dict({"slave_sae_id": "sae-b", "dest": str(dest)}, **extra))


def slave(connection, pki, dest, key_ids, sae="sae-b", **extra):
    return as_sae(connection, pki, sae, master_sae_id="sae-a", key_ids=key_ids, dest=str(dest), **extra)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def assert_no_material(result, *paths):
    """No spelling of any key file's content appears in the module's JSON output."""
    text = json.dumps(result)
    for path in paths:
        with open(path, "rb") as handle:
            data = handle.read()
        material = base64.b64decode(data) if path.endswith(".b64") else data
        for form in (base64.b64encode(material).decode(), material.hex(), material.hex().upper()):
            assert form not in text


def test_master_check_mode_consumes_nothing(run_main, connection, pki, kme, tmp_path):
    dest = tmp_path / "keys"
    result = run_main(qkd_key.main, master(connection, pki, dest, number=3, _ansible_check_mode=True))
    assert result["changed"] is True and result["key_ids"] == [] and result["role"] == "master"
    assert result["status"]["stored_key_count"] == 25
    assert [r["operation"] for r in kme.requests] == ["status"]
    assert not kme.pool and not dest.exists()


def test_master_writes_one_0600_file_per_key_and_returns_no_material(run_main, connection, pki, kme, tmp_path):
    dest = tmp_path / "keys"
    result = run_main(qkd_key.main, master(connection, pki, dest, number=2, size=512))
    assert result["changed"] is True and len(result["key_ids"]) == 2
    assert mode(dest) == 0o700
    assert sorted(os.listdir(dest)) == sorted(k + ".key" for k in result["key_ids"])
    for entry in result["qkd_keys"]:
        assert entry["size"] == 512 and entry["fetched"] is True and "key" not in entry
        assert entry["path"] == str(dest / (entry["key_id"] + ".key"))
        assert mode(entry["path"]) == 0o600
        with open(entry["path"], "rb") as handle:
            assert handle.read() == kme.pool[entry["key_id"]][2]
    assert_no_material(result, *[e["path"] for e in result["qkd_keys"]])


def test_slave_gets_the_same_keys_then_is_idempotent(run_main, connection, pki, kme, tmp_path):
    taken = run_main(qkd_key.main, master(connection, pki, tmp_path / "a", number=2))
    ids = taken["key_ids"]
    check = run_main(qkd_key.main, slave(connection, pki, tmp_path / "b", ids, _ansible_check_mode=True))
    assert check["changed"] is True and kme.count("dec_keys") == 0 and len(kme.pool) == 2

    got = run_main(qkd_key.main, slave(connection, pki, tmp_path / "b", ids, size=256))
    assert got["changed"] is True and got["key_ids"] == ids and got["role"] == "slave"
    for mine, theirs in zip(taken["qkd_keys"], got["qkd_keys"]):
        assert mine["key_id"] == theirs["key_id"] and sha256(mine["path"]) == sha256(theirs["path"])
        assert mode(theirs["path"]) == 0o600
    assert_no_material(got, *[e["path"] for e in got["qkd_keys"]])
    assert not kme.pool  # delivered on both sides

    for check_mode in (True, False):
        again = run_main(qkd_key.main, slave(connection, pki, tmp_path / "b", ids, _ansible_check_mode=check_mode))
        assert again["changed"] is False, again
        assert [e["fetched"] for e in again["qkd_keys"]] == [False, False]
    assert kme.count("dec_keys") == 1


def test_slave_fetches_only_missing_keys_and_tightens_modes(run_main, connection, pki, kme, tmp_path):
    ids = run_main(qkd_key.main, master(connection, pki, tmp_path / "a", number=2))["key_ids"]
    run_main(qkd_key.main, slave(connection, pki, tmp_path / "b", ids[:1]))
    os.chmod(tmp_path / "b" / (ids[0] + ".key"), 0o644)
    result = run_main(qkd_key.main, slave(connection, pki, tmp_path / "b", ids))
    assert result["changed"] is True
    assert [e["fetched"] for e in result["qkd_keys"]] == [False, True]
    assert kme.requests[-1]["body"] == {"key_IDs": [{"key_ID": ids[1]}]}
    assert mode(tmp_path / "b" / (ids[0] + ".key")) == 0o600


def test_a_third_sae_fails_clearly(run_main, connection, pki, kme, tmp_path):
    ids = run_main(qkd_key.main, master(connection, pki, tmp_path / "a"))["key_ids"]
    result = run_main(qkd_key.main, slave(connection, pki, tmp_path / "c", ids, sae="sae-c"))
    assert result["failed"] is True and result["http_status"] == 401
    assert "only the slave SAE named when the master took the keys may fetch them" in result["msg"]
    assert not (tmp_path / "c").exists() or not os.listdir(tmp_path / "c")


def test_base64_files(run_main, connection, pki, kme, tmp_path):
    ids = run_main(qkd_key.main, master(connection, pki, tmp_path / "a"))["key_ids"]
    result = run_main(qkd_key.main, slave(connection, pki, tmp_path / "b", ids, file_format="base64"))
    path = result["qkd_keys"][0]["path"]
    assert path.endswith(ids[0] + ".b64")
    with open(path, "rb") as handle, open(tmp_path / "a" / (ids[0] + ".key"), "rb") as raw:
        assert handle.read() == base64.b64encode(raw.read()) + b"\n"


def test_return_content_needs_no_log(run_main, connection, pki, kme):
    result = run_main(qkd_key.main, as_sae(connection, pki, "sae-a", slave_sae_id="sae-b", return_content=True))
    assert result["failed"] is True and "add no_log: true to the task" in result["msg"]
    assert kme.count() == 0


def test_return_content_with_no_log(run_main, connection, pki, kme):
    result = run_main(qkd_key.main, as_sae(connection, pki, "sae-a", slave_sae_id="sae-b", return_content=True,
                                           _ansible_no_log=True))
    entry = result["qkd_keys"][0]
    assert base64.b64decode(entry["key"]) == kme.pool[entry["key_id"]][2]
    assert "path" not in entry


def test_keys_need_somewhere_to_go(run_main, connection, pki, kme):
    result = run_main(qkd_key.main, as_sae(connection, pki, "sae-a", slave_sae_id="sae-b"))
    assert result["failed"] is True and "set dest" in result["msg"]
    assert kme.count() == 0


def test_number_above_max_key_per_request(run_main, connection, pki, make_kme, tmp_path):
    kme = make_kme(max_key_per_request=4)
    connection = dict(connection, kme_url=kme.url)
    result = run_main(qkd_key.main, master(connection, pki, tmp_path, number=5))
    assert result["failed"] is True
    assert result["msg"] == ("number 5 is above the KME's max_key_per_request 4; ask for at most 4 keys "
                             "per task")
    assert kme.count("enc_keys") == 0


@pytest.mark.parametrize("size, text", [(32, "size 32 is below the KME's min_key_size 64"),
                                        (16384, "size 16384 is above the KME's max_key_size 8192")])
def test_size_outside_the_kme_limits(run_main, connection, pki, kme, tmp_path, size, text):
    result = run_main(qkd_key.main, master(connection, pki, tmp_path, size=size))
    assert result["failed"] is True and result["msg"].startswith(text)
    assert kme.count("enc_keys") == 0


def test_size_not_a_multiple_of_8_where_the_kme_requires_it(run_main, connection, pki, kme, tmp_path):
    result = run_main(qkd_key.main, master(connection, pki, tmp_path, size=100))
    assert result["failed"] is True
    assert "size shall be a multiple of 8; set size to a multiple of 8 bits" in result["msg"]
    assert "exception" not in result and os.listdir(tmp_path) == []


def test_key_id_that_is_not_a_uuid(run_main, connection, pki, kme, tmp_path):
    result = run_main(qkd_key.main, slave(connection, pki, tmp_path, [UUID1, "key-1"]))
    assert result["failed"] is True
    assert result["msg"].startswith("key_ids[1] 'key-1' is not a key_ID: ETSI GS QKD 014 key_IDs are UUIDs")
    assert kme.count() == 0


def test_missing_certificate_fails_before_anything(run_main, connection, pki, kme, tmp_path):
    result = run_main(qkd_key.main, master(connection, pki, tmp_path, client_key=str(tmp_path / "none.key")))
    assert result["failed"] is True and result["msg"].startswith("client_key ")
    assert "set client_key to the SAE's private key" in result["msg"]
    assert kme.count() == 0


def test_dest_that_is_a_file_fails_before_taking_keys(run_main, connection, pki, kme, tmp_path):
    (tmp_path / "file").write_text("x")
    result = run_main(qkd_key.main, master(connection, pki, tmp_path / "file"))
    assert result["failed"] is True and "is not a directory" in result["msg"]
    assert kme.count() == 0


def test_a_key_id_already_in_dest_is_never_overwritten(run_main, connection, pki, kme, tmp_path):
    (tmp_path / (UUID1 + ".key")).write_bytes(b"earlier key")
    kme.reply(200, kme.status_body("sae-a", "sae-b"))
    kme.reply(200, {"keys": [{"key_ID": UUID1, "key": base64.b64encode(bytes(32)).decode()}]})
    result = run_main(qkd_key.main, master(connection, pki, tmp_path))
    assert result["failed"] is True
    assert "already exists" in result["msg"] and "lost on this side" in result["msg"]
    assert result["consumed_key_ids"] == [UUID1]
    assert (tmp_path / (UUID1 + ".key")).read_bytes() == b"earlier key"
    assert sorted(os.listdir(tmp_path)) == [UUID1 + ".key"]  # no temporary file left behind


@pytest.mark.parametrize("extra, text", [
    ({"master_sae_id": "sae-a", "key_ids": [UUID1]}, "mutually exclusive"),
    ({"slave_sae_id": None, "key_ids": [UUID1]}, "master_sae_id"),
    ({"method": "GET", "extension_optional": [{"abc_max_age": 1}]}, "use method POST"),
])
def test_contradictory_options(run_main, connection, pki, kme, tmp_path, extra, text):
    args = {k: v for k, v in master(connection, pki, tmp_path, **extra).items() if v is not None}
    result = run_main(qkd_key.main, args)
    assert result["failed"] is True and text in result["msg"]
    assert kme.count("enc_keys") == 0
