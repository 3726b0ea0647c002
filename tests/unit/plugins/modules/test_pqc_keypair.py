# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pqc_keypair: check mode, create, idempotent rerun, rotation, permissions, removal, no private key out."""

from __future__ import annotations

import base64
import json
import os

import pytest

from ansible_collections.qkd.nfv.plugins.module_utils import pqc
from ansible_collections.qkd.nfv.plugins.modules import pqc_keypair


@pytest.mark.parametrize("kind", ["ml-kem-768", "ml-dsa-65"])
def test_check_real_check_real(run_main, tmp_path, kind):
    path = str(tmp_path / "keys" / "key.pem")
    args = dict(path=path, type=kind, _ansible_diff=True)
    check = run_main(pqc_keypair.main, dict(args, _ansible_check_mode=True))
    assert check["changed"] and "public_key" not in check and not os.path.exists(str(tmp_path / "keys"))
    assert check["diff"] == {"before": {}, "after": {"type": kind, "public_key_sha256": "(a new key)"}}
    made = run_main(pqc_keypair.main, args)
    assert made["changed"] and made["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert made["diff"]["after"] == {"type": kind, "public_key_sha256": made["public_key_sha256"]}
    assert oct(os.stat(path).st_mode & 0o777) == "0o600" and oct(os.stat(os.path.dirname(path)).st_mode & 0o777) == "0o700"
    assert os.listdir(os.path.dirname(path)) == ["key.pem"]
    for check_mode in (True, False):
        again = run_main(pqc_keypair.main, dict(args, _ansible_check_mode=check_mode))
        assert not again["changed"] and again["public_key"] == made["public_key"]
    key = pqc.load_private_key(path, kind, "path")
    assert pqc.fingerprint(key) == made["public_key_sha256"]
    assert pqc.fingerprint(pqc.load_public_key(made["public_key"], kind, "x")) == made["public_key_sha256"]


def test_the_private_key_never_leaves_the_file(run_main, tmp_path):
    path = str(tmp_path / "kem.key")
    results = [run_main(pqc_keypair.main, dict(path=path, type="ml-kem-768", _ansible_diff=True)) for run in (1, 2)]
    key = pqc.load_private_key(path, pqc.KEM, "path")
    text = json.dumps(results)
    for form in (key.private_bytes_raw(), pqc.private_pem(key)):
        assert form.hex() not in text and base64.b64encode(form).decode()[:40] not in text
    assert "PRIVATE" not in text


def test_force_rotates_the_key(run_main, tmp_path):
    path = str(tmp_path / "kem.key")
    first = run_main(pqc_keypair.main, dict(path=path, type="ml-kem-768"))
    rotated = run_main(pqc_keypair.main, dict(path=path, type="ml-kem-768", force=True))
    assert rotated["changed"] and rotated["public_key_sha256"] != first["public_key_sha256"]


def test_a_key_open_to_others_is_made_0600_with_a_warning(run_main, tmp_path):
    path = str(tmp_path / "kem.key")
    made = run_main(pqc_keypair.main, dict(path=path, type="ml-kem-768"))
    os.chmod(path, 0o644)
    check = run_main(pqc_keypair.main, dict(path=path, type="ml-kem-768", _ansible_check_mode=True))
    assert check["changed"] and oct(os.stat(path).st_mode & 0o777) == "0o644"
    fixed = run_main(pqc_keypair.main, dict(path=path, type="ml-kem-768"))
    assert fixed["changed"] and "exposed" in json.dumps(fixed["warnings"])
    assert fixed["public_key_sha256"] == made["public_key_sha256"] and oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_a_file_of_another_type_fails_unless_forced(run_main, tmp_path):
    path = str(tmp_path / "key.pem")
    run_main(pqc_keypair.main, dict(path=path, type="ml-dsa-65"))
    wrong = run_main(pqc_keypair.main, dict(path=path, type="ml-kem-768"))
    assert wrong["failed"] and "ML-DSA-65 key" in wrong["msg"] and "force=true" in wrong["msg"]
    (tmp_path / "junk.pem").write_text("junk")
    junk = run_main(pqc_keypair.main, dict(path=str(tmp_path / "junk.pem"), type="ml-kem-768"))
    assert junk["failed"] and junk["option"] == "path"
    forced = run_main(pqc_keypair.main, dict(path=str(tmp_path / "junk.pem"), type="ml-kem-768", force=True))
    assert forced["changed"] and pqc.load_private_key(str(tmp_path / "junk.pem"), pqc.KEM, "path")


def test_public_key_file_is_published_idempotently(run_main, tmp_path):
    args = dict(path=str(tmp_path / "sign.key"), type="ml-dsa-65", public_key_path=str(tmp_path / "sign.pub.pem"))
    made = run_main(pqc_keypair.main, args)
    assert (tmp_path / "sign.pub.pem").read_text() == made["public_key"]
    assert oct(os.stat(str(tmp_path / "sign.pub.pem")).st_mode & 0o777) == "0o644"
    assert not run_main(pqc_keypair.main, args)["changed"]
    (tmp_path / "sign.pub.pem").write_text("stale")
    assert run_main(pqc_keypair.main, args)["changed"] and (tmp_path / "sign.pub.pem").read_text() == made["public_key"]


def test_absent_removes_the_key_and_its_public_file(run_main, tmp_path):
    args = dict(path=str(tmp_path / "kem.key"), type="ml-kem-768", public_key_path=str(tmp_path / "kem.pub"))
    run_main(pqc_keypair.main, args)
    check = run_main(pqc_keypair.main, dict(args, state="absent", _ansible_check_mode=True))
    assert check["changed"] and os.path.exists(args["path"])
    gone = run_main(pqc_keypair.main, dict(args, state="absent"))
    assert gone["changed"] and os.listdir(str(tmp_path)) == []
    assert not run_main(pqc_keypair.main, dict(args, state="absent"))["changed"]


def test_a_directory_is_not_a_key_path(run_main, tmp_path):
    result = run_main(pqc_keypair.main, dict(path=str(tmp_path), type="ml-kem-768"))
    assert result["failed"] and result["option"] == "path" and "directory" in result["msg"]
