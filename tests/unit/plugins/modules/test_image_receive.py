# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_receive against the in-process HTTPS test KME: check mode, idempotency, refusals, bad input."""

from __future__ import annotations

import base64
import os
import socket

import pytest

from ansible_collections.qkd.nfv.plugins.module_utils import audit, pqc, transport
from ansible_collections.qkd.nfv.plugins.module_utils.kme import KmeClient
from ansible_collections.qkd.nfv.plugins.modules import image_receive, image_send


@pytest.fixture(autouse=True)
def audit_trail(tmp_path_factory, monkeypatch):
    """Each test's key-usage audit trail, away from the home directory and from tmp_path."""
    path = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    monkeypatch.setenv("QKD_NFV_AUDIT_LOG", str(path))
    return path


def as_sae(connection, pki, sae, **extra):
    args = {k: v for k, v in connection.items() if v is not None}
    args.update(client_cert=pki.path(sae), client_key=pki.key(sae))
    args.update(extra)
    return args


def make_file(path, size):
    with open(str(path), "wb") as out:
        out.write(os.urandom(size))
    return str(path)


@pytest.fixture
def sent(run_main, connection, pki, kme, tmp_path):
    """An image sent by sae-a for sae-b into the qstream file tmp_path/q; -> image_send's result."""
    src = make_file(tmp_path / "image", 300000)
    result = run_main(image_send.main, as_sae(connection, pki, "sae-a", src=src, slave_sae_id="sae-b",
                                              dest=str(tmp_path / "q"), chunk_size=65536))
    assert result["changed"]
    return result


def receive(connection, pki, tmp_path, sae="sae-b", **extra):
    """image_receive's arguments: from tmp_path/q into tmp_path/out, unless extra says otherwise (None: unset)."""
    args = as_sae(connection, pki, sae, **dict(dict(src=str(tmp_path / "q"), dest=str(tmp_path / "out")), **extra))
    return {name: value for name, value in args.items() if value is not None}


def test_check_mode_reads_the_header_and_takes_no_key(run_main, connection, pki, kme, tmp_path, sent):
    result = run_main(image_receive.main, receive(connection, pki, tmp_path, _ansible_check_mode=True, _ansible_diff=True))
    assert result["changed"] is True and result["key_id"] == sent["key_id"] and result["key_mode"] == "aead"
    assert result["master_sae_id"] == "sae-a" and result["key_bits"] == 0
    assert result["diff"] == {"before": {"sha256": None}, "after": {"sha256": "(the received image)"}}
    assert kme.count("dec_keys") == 0 and not os.path.exists(str(tmp_path / "out"))


def test_install_then_idempotent_with_sha256(run_main, connection, pki, kme, tmp_path, sent):
    first = run_main(image_receive.main, receive(connection, pki, tmp_path, sha256=sent["sha256"], mode="0640",
                                                 _ansible_diff=True))
    assert first["changed"] and first["sha256"] == sent["sha256"] and first["bytes"] == 300000
    assert first["diff"] == {"before": {"sha256": None}, "after": {"sha256": sent["sha256"]}}
    assert oct(os.stat(str(tmp_path / "out")).st_mode & 0o777) == "0o640"
    for check_mode in (True, False):
        again = run_main(image_receive.main, receive(connection, pki, tmp_path, sha256=sent["sha256"], mode="0640",
                                                     _ansible_check_mode=check_mode))
        assert again["changed"] is False and again["key_bits"] == 0
    assert kme.count("dec_keys") == 1


def test_present_image_with_other_file_mode_is_a_change_without_a_key(run_main, connection, pki, kme, tmp_path,
                                                                      sent):
    run_main(image_receive.main, receive(connection, pki, tmp_path))
    result = run_main(image_receive.main, receive(connection, pki, tmp_path, sha256=sent["sha256"], mode="0644"))
    assert result["changed"] is True and kme.count("dec_keys") == 1
    assert oct(os.stat(str(tmp_path / "out")).st_mode & 0o777) == "0o644"


def test_listen_skips_when_the_image_is_present(run_main, connection, pki, kme, tmp_path, sent):
    run_main(image_receive.main, receive(connection, pki, tmp_path))
    result = run_main(image_receive.main, receive(connection, pki, tmp_path, src=None, sha256=sent["sha256"],
                                                  listen=dict(bind="127.0.0.1", port=1, timeout=1)))
    assert result["changed"] is False  # did not listen: port 1 would have failed


def test_tampered_file_is_refused_and_nothing_installed(run_main, connection, pki, kme, tmp_path, sent):
    with open(str(tmp_path / "q"), "r+b") as qstream_file:
        qstream_file.seek(200000)
        byte = qstream_file.read(1)
        qstream_file.seek(200000)
        qstream_file.write(bytes([byte[0] ^ 0x10]))
    result = run_main(image_receive.main, receive(connection, pki, tmp_path))
    assert result["failed"] and result["reason"] == "tampered" and "nothing was installed" in result["msg"]
    assert sorted(os.listdir(str(tmp_path))) == ["image", "q"]


def test_truncated_file_is_refused(run_main, connection, pki, kme, tmp_path, sent):
    os.truncate(str(tmp_path / "q"), os.path.getsize(str(tmp_path / "q")) - 100)
    result = run_main(image_receive.main, receive(connection, pki, tmp_path))
    assert result["failed"] and result["reason"] == "truncated"
    assert sorted(os.listdir(str(tmp_path))) == ["image", "q"]


def test_an_existing_image_survives_a_failed_receive(run_main, connection, pki, kme, tmp_path, sent):
    (tmp_path / "out").write_bytes(b"the previous image")
    os.truncate(str(tmp_path / "q"), 1000)
    result = run_main(image_receive.main, receive(connection, pki, tmp_path))
    assert result["failed"] and (tmp_path / "out").read_bytes() == b"the previous image"


def test_pinned_master_refuses_another_before_the_kme(run_main, connection, pki, kme, tmp_path, sent):
    result = run_main(image_receive.main, receive(connection, pki, tmp_path, master_sae_id="sae-c"))
    assert result["failed"] and result["reason"] == "unexpected_master" and result["option"] == "master_sae_id"
    assert kme.count("dec_keys") == 0


def test_a_relayed_key_header_without_master_needs_the_option(run_main, connection, pki, kme, tmp_path):
    with KmeClient(kme.url, pki.path("ca"), pki.path("sae-a"), pki.key("sae-a"), kme_id="kme-test") as client:
        key = client.enc_keys("sae-b", number=1, size=256)[0]
    key_file = tmp_path / (key.key_id + ".key")
    key_file.write_bytes(key.material)
    src = make_file(tmp_path / "image", 1000)
    run_main(image_send.main, dict(src=src, key_file=str(key_file), key_id=key.key_id, dest=str(tmp_path / "q")))
    result = run_main(image_receive.main, receive(connection, pki, tmp_path))
    assert result["failed"] and result["option"] == "master_sae_id" and kme.count("dec_keys") == 0
    result = run_main(image_receive.main, receive(connection, pki, tmp_path, master_sae_id="sae-a"))
    assert result["changed"] and result["sha256"] == transport.file_sha256(src)


def test_newer_format_asks_for_an_upgrade(run_main, connection, pki, kme, tmp_path, sent):
    with open(str(tmp_path / "q"), "r+b") as qstream_file:
        qstream_file.seek(8)
        qstream_file.write(b"\x07")
    result = run_main(image_receive.main, receive(connection, pki, tmp_path))
    assert result["failed"] and result["reason"] == "newer_format" and "upgrade" in result["msg"]
    assert kme.count("dec_keys") == 0


def test_not_a_qstream(run_main, connection, pki, kme, tmp_path):
    make_file(tmp_path / "q", 5000)
    for check_mode in (True, False):
        result = run_main(image_receive.main, receive(connection, pki, tmp_path, _ansible_check_mode=check_mode))
        assert result["failed"] and result["reason"] == "not_qstream" and "not a qstream" in result["msg"]
    assert kme.count() == 0 and sorted(os.listdir(str(tmp_path))) == ["q"]


@pytest.mark.parametrize("extra, option, text", [
    (dict(src="/nonexistent/q"), "src", "does not exist"),
    (dict(dest="/nonexistent/dir/image"), "dest", "does not exist"),
    (dict(sha256="xyz"), "sha256", "64 digits"),
])
def test_bad_input(run_main, connection, pki, kme, tmp_path, extra, option, text):
    make_file(tmp_path / "q", 10)
    result = run_main(image_receive.main, receive(connection, pki, tmp_path, **extra))
    assert result["failed"] and text in result["msg"] and result["option"] == option and option in result["msg"]
    assert kme.count() == 0 and sorted(os.listdir(str(tmp_path))) == ["q"]


def test_port_in_use_names_the_option(run_main, connection, pki, kme, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        for check_mode in (True, False):
            result = run_main(image_receive.main, receive(connection, pki, tmp_path, src=None, _ansible_check_mode=check_mode,
                                                          listen=dict(bind="127.0.0.1", port=port, timeout=5)))
            assert result["failed"] and result["reason"] == "port_in_use" and "listen.port" in result["msg"]
    assert os.listdir(str(tmp_path)) == []


def test_listen_timeout_without_a_sender(run_main, connection, pki, kme, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_main(image_receive.main, receive(connection, pki, tmp_path, src=None,
                                                  listen=dict(bind="127.0.0.1", port=port, timeout=0.3)))
    assert result["failed"] and result["reason"] == "timeout" and os.listdir(str(tmp_path)) == []


# --- key modes, key pairs and the audit trail ----------------------------------------------------------

@pytest.fixture
def dc_kem(tmp_path):
    """This DC's ML-KEM-768 key pair: (private key path, public key PEM)."""
    key = pqc.generate(pqc.KEM)
    (tmp_path / "keys").mkdir()
    path = str(tmp_path / "keys" / "kem.key")
    pqc.write_private_key(path, key)
    return path, pqc.public_pem(key)


def test_check_mode_refuses_a_downgrade_without_a_key(run_main, connection, pki, kme, tmp_path, sent, dc_kem,
                                                      audit_trail):
    result = run_main(image_receive.main, receive(connection, pki, tmp_path, kem_private_key=dc_kem[0],
                                                  _ansible_check_mode=True))
    assert result["failed"] and result["reason"] == "downgrade" and "key mode aead" in result["msg"]
    assert kme.count("dec_keys") == 0 and audit.read(str(audit_trail), actor="image_receive") == ([], 0)


@pytest.mark.parametrize("require, accepted", [("qkd", True), ("any", True), ("hybrid", False)])
def test_require_mode_is_explicit(run_main, connection, pki, kme, tmp_path, sent, dc_kem, require, accepted):
    result = run_main(image_receive.main, receive(connection, pki, tmp_path, kem_private_key=dc_kem[0],
                                                  require_mode=require))
    assert result.get("changed", False) is accepted and result["require_mode" if accepted else "reason"] == (
        require if accepted else "downgrade")


def test_a_key_pair_others_may_read_is_refused(run_main, connection, pki, kme, tmp_path, sent, dc_kem):
    os.chmod(dc_kem[0], 0o644)
    result = run_main(image_receive.main, receive(connection, pki, tmp_path, kem_private_key=dc_kem[0]))
    assert result["failed"] and result["reason"] == "key_permissions" and result["option"] == "kem_private_key"
    assert kme.count("dec_keys") == 0


def test_a_pqc_only_dc_has_no_kme_and_cannot_take_a_qkd_key(run_main, tmp_path, dc_kem):
    src = make_file(tmp_path / "image", 2000)
    run_main(image_send.main, dict(src=src, dest=str(tmp_path / "q"), key=base64.b64encode(bytes(32)).decode(),
                                   key_id="k-1", master_sae_id="sae-a", receiver_public_key=dc_kem[1]))
    result = run_main(image_receive.main, dict(src=str(tmp_path / "q"), dest=str(tmp_path / "out"),
                                               kem_private_key=dc_kem[0]))
    assert result["failed"] and result["reason"] == "kme_options" and "no KME options" in result["msg"]
    assert not os.path.exists(str(tmp_path / "out"))


@pytest.mark.parametrize("extra, option", [
    (dict(kme_url=None, kme_id=None, client_cert=None, client_key=None), "kme_url"),
    (dict(kme_id=None), "kme_id"),
    (dict(require_mode="pqc"), "kem_private_key"),
    (dict(signer_public_key="not a key"), "signer_public_key"),
    (dict(manifest_max_age=-1), "manifest_max_age"),
])
def test_bad_pq_options_fail_before_any_key(run_main, connection, pki, kme, tmp_path, sent, extra, option):
    result = run_main(image_receive.main, receive(connection, pki, tmp_path, **extra))
    assert result["failed"] and result["option"] == option and kme.count("dec_keys") == 0


def test_a_refused_stream_is_recorded_as_refused(run_main, connection, pki, kme, tmp_path, sent, dc_kem, audit_trail):
    run_main(image_receive.main, receive(connection, pki, tmp_path, kem_private_key=dc_kem[0]))
    record = audit.read(str(audit_trail))[0][-1]
    assert record["actor"] == "image_receive" and record["result"] == "refused" and record["reason"] == "downgrade"
    assert record["key_ids"] == [sent["key_id"]] and record["key_taken"] is False
    assert record["require_mode"] == "hybrid" and record["source"] == "file://" + str(tmp_path / "q")


def test_a_tampered_stream_is_recorded_with_the_spent_key(run_main, connection, pki, kme, tmp_path, sent, audit_trail):
    with open(str(tmp_path / "q"), "r+b") as qstream_file:
        qstream_file.seek(100000)
        qstream_file.write(b"\x00\x01\x02")
    run_main(image_receive.main, receive(connection, pki, tmp_path))
    record = audit.read(str(audit_trail), actor="image_receive")[0][-1]
    assert record["result"] == "failed" and record["reason"] == "tampered" and record["key_taken"] is True
