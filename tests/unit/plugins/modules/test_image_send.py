# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_send against the in-process HTTPS test KME (sae-a sends to sae-b), and image_receive after it."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys

import pytest

import sshd_fixture
from ansible_collections.qkd.nfv.plugins.module_utils import audit, pqc, qstream, transport
from ansible_collections.qkd.nfv.plugins.module_utils.kme import KmeClient
from ansible_collections.qkd.nfv.plugins.modules import image_receive, image_send, pqc_keypair

MiB = 1 << 20


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


def send_args(connection, pki, src, **extra):
    return as_sae(connection, pki, "sae-a", src=str(src), **dict({"slave_sae_id": "sae-b"}, **extra))


def receive_args(connection, pki, dest, sae="sae-b", **extra):
    return as_sae(connection, pki, sae, dest=str(dest), **extra)


def make_file(path, size):
    with open(str(path), "wb") as out:
        out.write(os.urandom(size))
    return str(path)


def assert_no_key_material(result, *keys):
    text = result if isinstance(result, str) else json.dumps(result)
    for key in keys:
        for form in (base64.b64encode(key).decode(), base64.b64encode(key).decode().rstrip("="), key.hex(),
                     key.hex().upper()):
            assert form not in text


def test_check_mode_takes_no_key_and_writes_nothing(run_main, connection, pki, kme, tmp_path):
    src = make_file(tmp_path / "image", 1000)
    result = run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "image.qstream"),
                                                 _ansible_check_mode=True))
    assert result["changed"] is True and result["key_bits"] == 0 and result["status"]["stored_key_count"] == 25
    assert kme.count("enc_keys") == 0 and kme.count("status") == 1
    assert sorted(os.listdir(str(tmp_path))) == ["image"]


def test_send_to_a_file_then_receive_it(run_main, connection, pki, kme, tmp_path):
    src = make_file(tmp_path / "image", 3 * MiB + 11)
    qstream_file = tmp_path / "image.qstream"
    sent = run_main(image_send.main, send_args(connection, pki, src, dest=str(qstream_file)))
    assert sent["changed"] is True and sent["key_bits"] == 256 and sent["bytes"] == 3 * MiB + 11
    assert sent["sha256"] == transport.file_sha256(src) and sent["master_sae_id"] == "sae-a"
    assert sent["mb_per_s"] > 0 and sent["wire_bytes"] > sent["bytes"] and kme.count("enc_keys") == 1
    assert_no_key_material(sent, kme.pool[sent["key_id"]][2])  # the key the KME keeps for the slave
    received = run_main(image_receive.main, receive_args(connection, pki, tmp_path / "installed",
                                                         src=str(qstream_file)))
    assert received["changed"] is True and received["key_id"] == sent["key_id"]
    assert received["sha256"] == sent["sha256"] == transport.file_sha256(str(tmp_path / "installed"))
    assert received["master_sae_id"] == "sae-a" and received["key_bits"] == 256 and kme.pool == {}
    assert oct(os.stat(str(tmp_path / "installed")).st_mode & 0o777) == "0o600"


def test_one_256_bit_key_whatever_the_size(run_main, connection, pki, kme, tmp_path):
    src = make_file(tmp_path / "image", 12 * MiB)
    sent = run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "q")))
    assert sent["key_bits"] == 256 and sent["key_ids"] == [sent["key_id"]]
    request = [r for r in kme.requests if r["operation"] == "enc_keys"][0]
    assert request["request"] == {"number": 1, "size": 256}


def test_skip_if_remote_sha256_takes_no_key_and_sends_nothing(run_main, connection, pki, kme, tmp_path):
    src = make_file(tmp_path / "image", 1000)
    result = run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "q"),
                                                 skip_if_remote_sha256=transport.file_sha256(src).upper()))
    assert result["changed"] is False and result["key_bits"] == 0 and kme.count() == 0
    assert not os.path.exists(str(tmp_path / "q"))
    result = run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "q"),
                                                 skip_if_remote_sha256="0" * 64))
    assert result["changed"] is True and kme.count("enc_keys") == 1


def test_a_stated_sha256_is_what_the_receiver_checks(run_main, connection, pki, kme, tmp_path):
    src = make_file(tmp_path / "image", 2 * MiB + 1)
    digest = transport.file_sha256(src)
    sent = run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "good.q"), sha256=digest.upper()))
    assert sent["changed"] and sent["sha256"] == digest
    received = run_main(image_receive.main, receive_args(connection, pki, tmp_path / "good", src=str(tmp_path / "good.q")))
    assert received["changed"] and received["sha256"] == digest
    # A catalogue entry that no longer matches the file: the DC refuses it and installs nothing.
    stale = run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "stale.q"), sha256="ab" * 32))
    assert stale["changed"] and stale["sha256"] == "ab" * 32
    refused = run_main(image_receive.main, receive_args(connection, pki, tmp_path / "stale", src=str(tmp_path / "stale.q")))
    assert refused["failed"] and refused["reason"] == "checksum_mismatch" and digest in refused["msg"]
    assert not os.path.exists(str(tmp_path / "stale"))
    # With skip_if_remote_sha256 the stated SHA-256 is compared, and the file is not read.
    skipped = run_main(image_send.main, send_args(connection, pki, str(tmp_path / "good.q"), dest=str(tmp_path / "x"),
                                                  sha256=digest, skip_if_remote_sha256=digest))
    assert skipped["changed"] is False and not os.path.exists(str(tmp_path / "x"))


def test_otp_mode_reports_the_key_bits(run_main, connection, pki, kme, tmp_path):
    src = make_file(tmp_path / "config", 3000)
    sent = run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "q"), key_mode="otp"))
    # 24256 bits needed, at most 8192 per key: three keys of 8088 bits.
    assert sent["key_mode"] == "otp" and sent["key_bits"] == 3 * 8088 and len(sent["key_ids"]) == 3
    received = run_main(image_receive.main, receive_args(connection, pki, tmp_path / "out", src=str(tmp_path / "q")))
    assert received["key_mode"] == "otp" and received["sha256"] == sent["sha256"]
    assert received["key_bits"] == sent["key_bits"]


def test_otp_mode_splits_large_pads_into_several_keys(run_main, connection, pki, kme, tmp_path):
    src = make_file(tmp_path / "config", 60000)  # 480 kbit: more than one 8192-bit key
    sent = run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "q"), key_mode="otp"))
    assert len(sent["key_ids"]) == 59 and sent["key_bits"] < (60000 + 32) * 8 + 59 * 8
    received = run_main(image_receive.main, receive_args(connection, pki, tmp_path / "out", src=str(tmp_path / "q")))
    assert received["sha256"] == transport.file_sha256(src)


def test_otp_mode_refuses_large_files_before_taking_keys(run_main, connection, pki, kme, tmp_path):
    src = make_file(tmp_path / "image", 70000)
    for check_mode in (True, False):
        result = run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "q"), key_mode="otp",
                                                     _ansible_check_mode=check_mode))
        assert result["failed"] and "otp_max_size" in result["msg"] and result["reason"] == "too_large"
    assert kme.count("enc_keys") == 0


def test_relayed_key_from_a_file(run_main, connection, pki, kme, tmp_path):
    # As after key_relay_recover: a key file named by key_ID; the receiver takes its copy from its KME.
    with KmeClient(kme.url, pki.path("ca"), pki.path("sae-a"), pki.key("sae-a"), kme_id="kme-test") as client:
        key = client.enc_keys("sae-b", number=1, size=256)[0]
    key_file = tmp_path / (key.key_id + ".key")
    key_file.write_bytes(key.material)
    src = make_file(tmp_path / "image", 5000)
    sent = run_main(image_send.main, dict(src=src, key_file=str(key_file), key_id=key.key_id,
                                          master_sae_id="sae-a", dest=str(tmp_path / "q")))
    assert sent["changed"] and sent["key_id"] == key.key_id and not key_file.exists()
    assert_no_key_material(sent, key.material)
    received = run_main(image_receive.main, receive_args(connection, pki, tmp_path / "out", src=str(tmp_path / "q")))
    assert received["sha256"] == transport.file_sha256(src)


def test_given_key_never_appears_in_the_result(run_main, connection, pki, kme, tmp_path):
    material = os.urandom(32)
    src = make_file(tmp_path / "image", 100)
    sent = run_main(image_send.main, dict(src=src, key=base64.b64encode(material).decode(),
                                          key_id="bc490419-7d60-487f-adc1-4ddcc177c139", dest=str(tmp_path / "q")))
    assert sent["changed"] and sent["key_bits"] == 256
    assert_no_key_material(sent, material)


def test_wrong_key_is_reported_by_the_receiver(run_main, connection, pki, kme, tmp_path):
    with KmeClient(kme.url, pki.path("ca"), pki.path("sae-a"), pki.key("sae-a"), kme_id="kme-test") as client:
        key = client.enc_keys("sae-b", number=1, size=256)[0]
    src = make_file(tmp_path / "image", 2 * MiB)
    run_main(image_send.main, dict(src=src, key=base64.b64encode(os.urandom(32)).decode(), key_id=key.key_id,
                                   master_sae_id="sae-a", dest=str(tmp_path / "q")))
    received = run_main(image_receive.main, receive_args(connection, pki, tmp_path / "out", src=str(tmp_path / "q")))
    assert received["failed"] and received["reason"] == "wrong_key" and "wrong key" in received["msg"]
    assert sorted(os.listdir(str(tmp_path))) == ["image", "q"]
    assert_no_key_material(received, key.material)


def test_a_receiver_that_is_not_the_slave_is_refused_by_the_kme(run_main, connection, pki, kme, tmp_path):
    src = make_file(tmp_path / "image", 1000)
    run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "q")))
    received = run_main(image_receive.main, receive_args(connection, pki, tmp_path / "out", sae="sae-c",
                                                         src=str(tmp_path / "q")))
    assert received["failed"] and received["reason"] == "kme_refused" and received["http_status"] == 401
    assert "slave" in received["msg"] and not os.path.exists(str(tmp_path / "out"))


def test_a_key_can_be_taken_only_once(run_main, connection, pki, kme, tmp_path):
    src = make_file(tmp_path / "image", 1000)
    run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "q")))
    first = run_main(image_receive.main, receive_args(connection, pki, tmp_path / "out", src=str(tmp_path / "q")))
    assert first["changed"]
    os.unlink(str(tmp_path / "out"))
    again = run_main(image_receive.main, receive_args(connection, pki, tmp_path / "out", src=str(tmp_path / "q")))
    assert again["failed"] and again["reason"] == "unknown_key_id" and first["key_id"] in again["msg"]
    assert not os.path.exists(str(tmp_path / "out"))


# --- TCP: image_receive in its own process, as with async on the data centre --------------------

def start_receiver(args, tmp_path):
    """image_receive run as Ansible runs a module: a separate Python process with an args file."""
    path = tmp_path / "receive-args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.Popen([sys.executable, "-m", "ansible_collections.qkd.nfv.plugins.modules.image_receive",  # pylint: disable=consider-using-with
                             str(path)], stdout=subprocess.PIPE, env=env, text=True)


def finish(process):
    out = process.communicate(timeout=60)[0]
    return json.loads(out)


def test_send_over_tcp_to_image_receive(run_main, connection, pki, kme, tmp_path):
    port = sshd_fixture.free_port()
    receiver = start_receiver(receive_args(connection, pki, tmp_path / "installed",
                                           listen=dict(bind="127.0.0.1", port=port, timeout=30)), tmp_path)
    src = make_file(tmp_path / "image", 4 * MiB + 3)
    sent = run_main(image_send.main, send_args(connection, pki, src,
                                               tcp=dict(host="127.0.0.1", port=port, timeout=30)))
    received = finish(receiver)
    assert sent["changed"] and received["changed"] and received["key_id"] == sent["key_id"]
    assert sent["sha256"] == received["sha256"] == transport.file_sha256(str(tmp_path / "installed"))


def test_tcp_refusal_reaches_the_sender(run_main, connection, pki, kme, tmp_path):
    port = sshd_fixture.free_port()
    receiver = start_receiver(receive_args(connection, pki, tmp_path / "installed", sae="sae-c",
                                           listen=dict(bind="127.0.0.1", port=port, timeout=30)), tmp_path)
    src = make_file(tmp_path / "image", 4 * MiB)
    sent = run_main(image_send.main, send_args(connection, pki, src,
                                               tcp=dict(host="127.0.0.1", port=port, timeout=30)))
    received = finish(receiver)
    assert received["failed"] and received["reason"] == "kme_refused"
    assert sent["failed"] and sent["reason"] == "kme_refused" and "refused" in sent["msg"]
    assert sent["spent_key_ids"] == [received["key_ids"][0]]
    assert not os.path.exists(str(tmp_path / "installed"))


# --- SFTP -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not sshd_fixture.available():
        pytest.skip("OpenSSH sshd is not installed (apt-get install openssh-server)")
    with sshd_fixture.Sshd(str(tmp_path_factory.mktemp("sshd"))) as server:
        yield server


def sftp_options(sshd, path, **extra):
    return dict(dict(host="127.0.0.1", port=sshd.port, user=sshd.user, private_key=sshd.client_key,
                     known_hosts=sshd.known_hosts, path=str(path)), **extra)


def test_send_by_sftp_then_receive_the_file(run_main, connection, pki, kme, sshd, tmp_path):
    src = make_file(tmp_path / "image", 2 * MiB + 5)
    uploaded = tmp_path / "image.qstream"
    sent = run_main(image_send.main, send_args(connection, pki, src, sftp=sftp_options(sshd, uploaded)))
    assert sent["changed"] and uploaded.exists()
    received = run_main(image_receive.main, receive_args(connection, pki, tmp_path / "out", src=str(uploaded),
                                                         sha256=sent["sha256"]))
    assert received["changed"] and received["sha256"] == sent["sha256"]
    # The idempotent pattern: the same tasks again, with the SHA-256 each side knows.
    again = run_main(image_send.main, send_args(connection, pki, src, sftp=sftp_options(sshd, uploaded),
                                                skip_if_remote_sha256=received["sha256"]))
    again_received = run_main(image_receive.main, receive_args(connection, pki, tmp_path / "out", src=str(uploaded),
                                                               sha256=again["sha256"]))
    assert again["changed"] is False and again_received["changed"] is False and kme.count("enc_keys") == 1


def test_sftp_check_mode_refuses_an_unknown_host_key(run_main, connection, pki, kme, sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    src = make_file(tmp_path / "image", 10)
    result = run_main(image_send.main, send_args(connection, pki, src, _ansible_check_mode=True,
                                                 sftp=sftp_options(sshd, tmp_path / "q", known_hosts=str(empty))))
    assert result["failed"] and result["option"] == "sftp.known_hosts" and result["reason"] == "host_key_unknown"
    assert kme.count("enc_keys") == 0


# --- bad input: a clear message naming the option, nothing taken, nothing written -------------------

@pytest.mark.parametrize("extra, option, text", [
    (dict(src="/nonexistent/image"), "src", "does not exist"),
    (dict(dest="/nonexistent/dir/q"), "dest", "does not exist"),
    (dict(chunk_size=100), "chunk_size", "between 4096"),
    (dict(skip_if_remote_sha256="abc"), "skip_if_remote_sha256", "64 digits"),
    (dict(sha256="sha256:" + "0" * 64), "sha256", "64 digits"),
    (dict(tcp=dict(host="127.0.0.1", port=70000)), "tcp.port", "between 1 and 65535"),
])
def test_bad_input(run_main, connection, pki, kme, tmp_path, extra, option, text):
    args = send_args(connection, pki, make_file(tmp_path / "image", 10), dest=str(tmp_path / "q"))
    args.update(extra)
    if "tcp" in extra:
        del args["dest"]
    result = run_main(image_send.main, args)
    assert result["failed"] and text in result["msg"] and option in result["msg"]
    assert result.get("option") == option
    assert kme.count("enc_keys") == 0 and sorted(os.listdir(str(tmp_path))) == ["image"]


def test_given_key_needs_its_key_id_and_enough_bits(run_main, tmp_path):
    src = make_file(tmp_path / "image", 10)
    result = run_main(image_send.main, dict(src=src, key=base64.b64encode(bytes(32)).decode(), dest=str(tmp_path / "q")))
    assert result["failed"] and "key_id" in result["msg"]
    result = run_main(image_send.main, dict(src=src, key=base64.b64encode(bytes(16)).decode(), key_id="k",
                                            dest=str(tmp_path / "q")))
    assert result["failed"] and "256 bits" in result["msg"] and result["option"] == "key"
    result = run_main(image_send.main, dict(src=src, key_file=str(tmp_path / "none.key"), key_id="k",
                                            dest=str(tmp_path / "q")))
    assert result["failed"] and result["option"] == "key_file"
    assert sorted(os.listdir(str(tmp_path))) == ["image"]


def test_kme_options_are_required_without_a_given_key(run_main, tmp_path):
    src = make_file(tmp_path / "image", 10)
    result = run_main(image_send.main, dict(src=src, slave_sae_id="sae-b", dest=str(tmp_path / "q")))
    assert result["failed"] and "kme_url" in result["msg"] and "required" in result["msg"]


# --- hybrid QKD + ML-KEM keys, signed manifests, the audit trail --------------------------------------

@pytest.fixture
def pq_keys(run_main, tmp_path):
    """The DC's ML-KEM-768 key pair and the CO's ML-DSA-65 signing key, made by pqc_keypair."""
    keys = tmp_path / "keys"
    dc = run_main(pqc_keypair.main, dict(path=str(keys / "dc-mlkem768.key"), type="ml-kem-768"))
    co = run_main(pqc_keypair.main, dict(path=str(keys / "co-mldsa65.key"), type="ml-dsa-65"))
    return dict(kem_private_key=dc["path"], receiver_public_key=dc["public_key"],
                signing_key=co["path"], signer_public_key=co["public_key"])


def pq_send(pq_keys, **extra):
    return dict(dict(receiver_public_key=pq_keys["receiver_public_key"], signing_key=pq_keys["signing_key"]), **extra)


def pq_receive(pq_keys, **extra):
    return dict(dict(kem_private_key=pq_keys["kem_private_key"], signer_public_key=pq_keys["signer_public_key"]),
                **extra)


def secrets_of(pq_keys, qkd_key, qstream_file):
    """Every secret of a hybrid transfer: the QKD key, the ML-KEM secret and both private keys."""
    dc_key = pqc.load_private_key(pq_keys["kem_private_key"], pqc.KEM, "test")
    co_key = pqc.load_private_key(pq_keys["signing_key"], pqc.SIGNATURE, "test")
    with open(str(qstream_file), "rb") as fin:
        kem_secret = dc_key.decapsulate(qstream.read_header(fin).kem_ciphertext)
    return [qkd_key, kem_secret, dc_key.private_bytes_raw(), co_key.private_bytes_raw()]


def test_hybrid_signed_transfer_with_an_audit_line_at_each_end(run_main, connection, pki, kme, tmp_path, pq_keys,
                                                               audit_trail):
    src = make_file(tmp_path / "image", 2 * MiB + 5)
    sent = run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "q"), **pq_send(pq_keys)))
    assert sent["changed"] and sent["key_mode"] == "hybrid" and sent["protected_by"] == ["qkd", "ml-kem-768"]
    assert sent["key_bits"] == 256 and sent["signed"] and sent["manifest"]["image"]["sha256"] == sent["sha256"]
    assert sent["receiver_key_sha256"] == sent["manifest"]["recipient_key_sha256"]
    qkd_key = kme.pool[sent["key_id"]][2]
    received = run_main(image_receive.main, receive_args(connection, pki, tmp_path / "vnf.img", src=str(tmp_path / "q"),
                                                         **pq_receive(pq_keys)))
    assert received["changed"] and received["require_mode"] == "hybrid" and received["key_mode"] == "hybrid"
    assert received["signature_verified"] and received["manifest"] == sent["manifest"]
    assert received["sha256"] == sent["sha256"] == transport.file_sha256(str(tmp_path / "vnf.img"))
    assert received["manifest_path"] == str(tmp_path / "vnf.img.manifest.json")
    records = audit.read(str(audit_trail))[0]
    assert [(r["actor"], r["result"]) for r in records] == [("image_send", "ok"), ("image_receive", "ok")]
    for record in records:
        assert record["key_ids"] == [sent["key_id"]] and record["key_mode"] == "hybrid" and record["signed"]
        assert record["image"]["sha256"] == sent["sha256"] and record["image"]["bytes"] == 2 * MiB + 5
    assert records[0]["destination"] == "file://" + str(tmp_path / "q") and records[1]["signature_verified"]
    assert sent["audit_log"] == received["audit_log"] == str(audit_trail)
    secrets = secrets_of(pq_keys, qkd_key, tmp_path / "q")
    assert_no_key_material(sent, *secrets)
    assert_no_key_material(received, *secrets)
    assert_no_key_material(audit_trail.read_text(), *secrets)


def test_hybrid_over_tcp_between_the_modules(run_main, connection, pki, kme, tmp_path, pq_keys):
    port = sshd_fixture.free_port()
    receiver = start_receiver(receive_args(connection, pki, tmp_path / "vnf.img", **pq_receive(
        pq_keys, listen=dict(bind="127.0.0.1", port=port, timeout=30))), tmp_path)
    src = make_file(tmp_path / "image", 3 * MiB)
    sent = run_main(image_send.main, send_args(connection, pki, src, tcp=dict(host="127.0.0.1", port=port, timeout=30),
                                               **pq_send(pq_keys)))
    received = finish(receiver)
    assert sent["changed"] and received["changed"] and received["signature_verified"]
    assert sent["key_mode"] == received["key_mode"] == "hybrid" and received["key_id"] == sent["key_id"]
    assert sent["manifest"]["destination"] == "tcp://127.0.0.1:%d" % port


def test_a_plain_qkd_stream_is_refused_by_a_dc_with_a_key_pair(run_main, connection, pki, kme, tmp_path, pq_keys,
                                                               audit_trail):
    src = make_file(tmp_path / "image", 1000)
    sent = run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "q"), key_mode="aead",
                                               signing_key=pq_keys["signing_key"]))
    assert sent["key_mode"] == "aead" and sent["protected_by"] == ["qkd"]
    args = receive_args(connection, pki, tmp_path / "vnf.img", src=str(tmp_path / "q"), **pq_receive(pq_keys))
    refused = run_main(image_receive.main, args)
    assert refused["failed"] and refused["reason"] == "downgrade" and refused["option"] == "require_mode"
    assert kme.count("dec_keys") == 0 and not os.path.exists(str(tmp_path / "vnf.img"))
    assert audit.read(str(audit_trail), actor="image_receive")[0][0]["result"] == "refused"
    accepted = run_main(image_receive.main, dict(args, require_mode="qkd"))  # told otherwise
    assert accepted["changed"] and accepted["signature_verified"] and accepted["key_mode"] == "aead"


def test_pqc_mode_needs_no_kme_and_says_so(run_main, tmp_path, pq_keys):
    src = make_file(tmp_path / "image", 5000)
    sent = run_main(image_send.main, dict(src=src, dest=str(tmp_path / "q"), key_mode="pqc", **pq_send(pq_keys)))
    assert sent["changed"] and sent["key_mode"] == "pqc" and sent["protected_by"] == ["ml-kem-768"]
    assert sent["key_bits"] == 0 and sent["key_ids"] == [] and sent["key_id"] is None
    assert "ML-KEM-768 alone" in json.dumps(sent["warnings"])
    received = run_main(image_receive.main, dict(src=str(tmp_path / "q"), dest=str(tmp_path / "vnf.img"),
                                                 **pq_receive(pq_keys)))
    assert received["changed"] and received["require_mode"] == "pqc" and received["key_mode"] == "pqc"
    assert received["protected_by"] == ["ml-kem-768"] and received["signature_verified"]


def test_an_unsigned_image_is_refused_and_nothing_installed(run_main, connection, pki, kme, tmp_path, pq_keys):
    src = make_file(tmp_path / "image", 1000)
    run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "q"),
                                        receiver_public_key=pq_keys["receiver_public_key"]))
    refused = run_main(image_receive.main, receive_args(connection, pki, tmp_path / "vnf.img", src=str(tmp_path / "q"),
                                                        **pq_receive(pq_keys)))
    assert refused["failed"] and refused["reason"] == "unsigned" and kme.count("dec_keys") == 0
    assert not [name for name in os.listdir(str(tmp_path)) if name.startswith("vnf.img")]


@pytest.mark.parametrize("extra, option, text", [
    (dict(key_mode="hybrid"), "receiver_public_key", "needs receiver_public_key"),
    (dict(key_mode="aead", receiver_public_key="PEM"), "key_mode", "would not use it"),
    (dict(key_mode="pqc", receiver_public_key="PEM"), "key_mode", "uses no QKD key"),
    (dict(key_mode="otp", signing_key="KEY"), "signing_key", "not otp"),
    (dict(receiver_public_key="not a key"), "receiver_public_key", "not an ML-KEM-768 public key"),
    (dict(signing_key="/nonexistent/key"), "signing_key", "does not exist"),
    (dict(audit_log="/proc/no/audit.jsonl"), "audit_log", "cannot open"),
])
def test_bad_pq_input_takes_no_key(run_main, connection, pki, kme, tmp_path, pq_keys, extra, option, text):
    extra = {name: pq_keys["receiver_public_key"] if value == "PEM" else
             pq_keys["signing_key"] if value == "KEY" else value for name, value in extra.items()}
    src = make_file(tmp_path / "image", 10)
    result = run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "q"), **extra))
    assert result["failed"] and text in result["msg"] and result["option"] == option
    assert kme.count("enc_keys") == 0 and not os.path.exists(str(tmp_path / "q"))


def test_check_mode_loads_the_pq_keys_and_writes_no_audit_line(run_main, connection, pki, kme, tmp_path,
                                                               pq_keys, audit_trail):
    src = make_file(tmp_path / "image", 10)
    result = run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "q"),
                                                 _ansible_check_mode=True, **pq_send(pq_keys)))
    assert result["changed"] and result["key_mode"] == "hybrid" and result["signed"] and result["key_bits"] == 0
    assert not audit_trail.exists() and kme.count("enc_keys") == 0


def test_audit_false_writes_nothing(run_main, connection, pki, kme, tmp_path, audit_trail):
    src = make_file(tmp_path / "image", 10)
    sent = run_main(image_send.main, send_args(connection, pki, src, dest=str(tmp_path / "q"), audit=False))
    assert sent["changed"] and "audit_log" not in sent and not audit_trail.exists()


def test_a_failed_send_is_recorded_with_the_spent_key(run_main, connection, pki, kme, tmp_path, audit_trail):
    src = make_file(tmp_path / "image", 10)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_main(image_send.main, send_args(connection, pki, src, tcp=dict(host="127.0.0.1", port=port, timeout=1)))
    assert result["failed"]
    record = audit.read(str(audit_trail))[0][0]
    assert record["result"] == "failed" and record["key_ids"] == result["spent_key_ids"]
    assert record["reason"] == result["reason"] and record["destination"] == "tcp://127.0.0.1:%d" % port
