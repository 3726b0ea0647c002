# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pqc: ML-KEM-768 and ML-DSA-65 key files, pinned public keys in every form, signed manifests."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest

from ansible_collections.qkd.nfv.plugins.module_utils import pqc, qstream
from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError
from ansible_collections.qkd.nfv.plugins.module_utils.pqc import PqcError

KEM_KEY = pqc.generate(pqc.KEM)
SIGNING_KEY = pqc.generate(pqc.SIGNATURE)


def test_private_keys_are_written_0600_and_read_back(tmp_path):
    for kind, key in ((pqc.KEM, KEM_KEY), (pqc.SIGNATURE, SIGNING_KEY)):
        path = str(tmp_path / kind)
        pqc.write_private_key(path, key)
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        assert pqc.fingerprint(pqc.load_private_key(path, kind, "opt")) == pqc.fingerprint(key)
    assert sorted(os.listdir(str(tmp_path))) == sorted(pqc.KINDS)  # no temporary file left


def test_a_private_key_others_may_read_is_refused(tmp_path):
    path = str(tmp_path / "kem.key")
    pqc.write_private_key(path, KEM_KEY)
    os.chmod(path, 0o640)
    with pytest.raises(PqcError, match="open to other users.*0640.*exposed") as info:
        pqc.load_private_key(path, pqc.KEM, "kem_private_key")
    assert info.value.details == {"reason": "key_permissions", "option": "kem_private_key"}


def test_a_key_of_the_other_type_is_refused(tmp_path):
    path = str(tmp_path / "k")
    pqc.write_private_key(path, SIGNING_KEY)
    with pytest.raises(PqcError, match="ML-DSA-65 key, not an ML-KEM-768 key"):
        pqc.load_private_key(path, pqc.KEM, "kem_private_key")
    with pytest.raises(PqcError, match="not an ML-KEM-768 one|ML-DSA-65 public key"):
        pqc.load_public_key(pqc.public_pem(SIGNING_KEY), pqc.KEM, "receiver_public_key")


def test_missing_and_garbage_key_files(tmp_path):
    with pytest.raises(PqcError, match="does not exist.*pqc_keypair"):
        pqc.load_private_key(str(tmp_path / "none"), pqc.KEM, "kem_private_key")
    (tmp_path / "junk").write_bytes(b"not a key")
    os.chmod(str(tmp_path / "junk"), 0o600)
    with pytest.raises(PqcError, match="no unencrypted PEM private key"):
        pqc.load_private_key(str(tmp_path / "junk"), pqc.KEM, "kem_private_key")
    os.symlink(str(tmp_path / "junk"), str(tmp_path / "link"))
    with pytest.raises(PqcError, match="cannot read"):
        pqc.load_private_key(str(tmp_path / "link"), pqc.KEM, "kem_private_key")


def test_public_key_from_pem_text_file_and_base64(tmp_path):
    pem = pqc.public_pem(KEM_KEY)
    (tmp_path / "dc.pem").write_text(pem)
    der = pqc.public_der(KEM_KEY)
    raw = KEM_KEY.public_key().public_bytes_raw()
    for value in (pem, "\n" + pem + "\n", str(tmp_path / "dc.pem"), base64.b64encode(der).decode(),
                  base64.b64encode(raw).decode()):
        assert pqc.fingerprint(pqc.load_public_key(value, pqc.KEM, "receiver_public_key")) == pqc.fingerprint(KEM_KEY)


@pytest.mark.parametrize("value, text", [
    ("", "is empty"),
    ("/no/such/dc.pem", "does not exist"),
    ("hello", "is not an ML-KEM-768 public key"),
    ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "is not an ML-KEM-768 public key"),
])
def test_bad_public_keys_name_the_option(value, text):
    with pytest.raises(PqcError, match=text) as info:
        pqc.load_public_key(value, pqc.KEM, "receiver_public_key")
    assert info.value.details["option"] == "receiver_public_key"


def test_fingerprint_is_the_sha256_of_the_der_public_key():
    assert pqc.fingerprint(KEM_KEY) == hashlib.sha256(pqc.public_der(KEM_KEY.public_key())).hexdigest()
    assert pqc.fingerprint(KEM_KEY) == pqc.fingerprint(KEM_KEY.public_key())


def sealed_header(**options):
    return qstream.StreamSealer(bytes(32), "key-1", master_sae_id="sae-co", **options).header


def test_manifest_is_canonical_signed_and_bound_to_the_stream():
    header = sealed_header(recipient=pqc.Recipient(KEM_KEY.public_key()))
    signer = pqc.Signer(SIGNING_KEY, "vnf.img", "tcp://dc2:5700", "sae-dc2", clock=lambda: 1777000000.0)
    manifest, signature = signer.sign(header, 42, hashlib.sha256(b"x").digest())
    document = json.loads(manifest)
    assert manifest == pqc.encode_manifest(document)  # sorted keys, no spaces: what was signed is what is kept
    assert document == {
        "format": "qkd.nfv/manifest/v1",
        "image": {"name": "vnf.img", "sha256": hashlib.sha256(b"x").hexdigest(), "bytes": 42},
        "key_ids": ["key-1"], "key_mode": "hybrid", "protected_by": ["qkd", "ml-kem-768"],
        "master_sae_id": "sae-co", "slave_sae_id": "sae-dc2", "recipient_key_sha256": pqc.fingerprint(KEM_KEY),
        "destination": "tcp://dc2:5700", "stream_sha256": hashlib.sha256(header.raw).hexdigest(),
        "signer_key_sha256": pqc.fingerprint(SIGNING_KEY), "time": "2026-04-24T03:06:40Z"}
    assert pqc.verify_manifest(SIGNING_KEY.public_key(), manifest, signature) == document


def test_a_signature_for_another_context_or_changed_byte_fails():
    manifest = pqc.encode_manifest({"format": pqc.MANIFEST_FORMAT, "image": {}})
    elsewhere = SIGNING_KEY.sign(manifest)  # no context: a signature made for another purpose
    with pytest.raises(PqcError, match="bad signature"):
        pqc.verify_manifest(SIGNING_KEY.public_key(), manifest, elsewhere)
    signature = SIGNING_KEY.sign(manifest, pqc.SIGNATURE_CONTEXT)
    with pytest.raises(PqcError, match="bad signature"):
        pqc.verify_manifest(SIGNING_KEY.public_key(), manifest.replace(b"{}", b'{"a":1}'), signature)


def check(document, header=None, size=42, sha256=hashlib.sha256(b"x").digest(), **options):
    header = header or sealed_header()
    trailer = qstream.Trailer(size, sha256, b"m", b"s")
    pqc.check_stream_manifest(document, header, trailer, **options)


def genuine(header, **changes):
    signer = pqc.Signer(SIGNING_KEY, "vnf.img")
    document = json.loads(signer.sign(header, 42, hashlib.sha256(b"x").digest())[0])
    document.update(changes)
    return document


@pytest.mark.parametrize("changes, reason", [
    (dict(image={"name": "vnf.img", "sha256": "00" * 32, "bytes": 42}), "manifest_mismatch"),
    (dict(stream_sha256="00" * 32), "manifest_mismatch"),
    (dict(key_ids=["key-2"]), "manifest_mismatch"),
    (dict(key_mode="pqc"), "manifest_mismatch"),
    (dict(recipient_key_sha256="00" * 32), "manifest_mismatch"),
    (dict(time="2001-09-09T01:46:40Z"), "manifest_expired"),
    (dict(time="2999-01-01T00:00:00Z"), "manifest_time"),
    (dict(time="yesterday"), "bad_manifest"),
])
def test_the_manifest_must_describe_this_stream(changes, reason):
    header = sealed_header()
    check(genuine(header), header)
    with pytest.raises(PqcError) as info:
        check(genuine(header, **changes), header)
    assert info.value.details["reason"] == reason


def test_max_age_zero_accepts_an_old_manifest():
    header = sealed_header()
    check(genuine(header, time="2001-09-09T01:46:40Z"), header, max_age=0)


def test_policy_defaults_to_every_protection_the_receiver_has():
    assert pqc.ReceiverPolicy.default_requirement(True, True) == "hybrid"
    assert pqc.ReceiverPolicy.default_requirement(False, True) == "pqc"
    assert pqc.ReceiverPolicy.default_requirement(True, False) == "qkd"
    with pytest.raises(PqcError, match="require_mode"):
        pqc.ReceiverPolicy("strong")


def test_a_kem_stream_needs_a_kem_key_and_the_right_one():
    header = sealed_header(recipient=pqc.Recipient(KEM_KEY.public_key()))
    with pytest.raises(PqcError, match="set kem_private_key") as info:
        pqc.ReceiverPolicy("qkd").admit(header)
    assert info.value.details["reason"] == "kem_key"
    with pytest.raises(PqcError, match="wrong recipient") as info:
        pqc.ReceiverPolicy("qkd", pqc.generate(pqc.KEM)).admit(header)
    assert info.value.details["reason"] == "wrong_recipient"
    pqc.ReceiverPolicy("hybrid", KEM_KEY).admit(header)


def test_malformed_kem_ciphertext_is_malformed_not_a_crash():
    header = sealed_header(recipient=pqc.Recipient(KEM_KEY.public_key()))
    bad = qstream.Header(**dict(vars(header), kem_ciphertext=b"\x00" * 10, raw=b""))
    with pytest.raises(qstream.MalformedError):
        pqc.ReceiverPolicy("hybrid", KEM_KEY).kem_secret(bad)


def test_unverified_manifests_are_parsed_but_not_trusted():
    header = sealed_header(signer=pqc.Signer(SIGNING_KEY, "vnf.img"))
    manifest, signature = pqc.Signer(SIGNING_KEY, "vnf.img").sign(header, 42, hashlib.sha256(b"x").digest())
    policy = pqc.ReceiverPolicy("qkd")
    document = policy.approve(header, qstream.Trailer(42, hashlib.sha256(b"x").digest(), manifest, signature))
    assert document["image"]["name"] == "vnf.img" and not policy.signature_verified
    with pytest.raises(PqcError, match="not JSON"):
        policy.approve(header, qstream.Trailer(1, bytes(32), b"\xff{", b"s"))


def test_manifest_files_beside_the_image(tmp_path):
    header = sealed_header()
    sha256 = hashlib.sha256(b"x").digest()
    manifest, signature = pqc.Signer(SIGNING_KEY, "vnf.img").sign(header, 42, sha256)
    dest = str(tmp_path / "vnf.img")
    path = pqc.write_manifest(dest, qstream.Trailer(42, sha256, manifest, signature))
    assert path == dest + ".manifest.json" and os.path.exists(path + ".sig")
    public = SIGNING_KEY.public_key()
    assert pqc.verify_manifest_file(path, public, sha256.hex(), 42)["image"]["bytes"] == 42
    with pytest.raises(PqcError, match="manifest mismatch") as info:
        pqc.verify_manifest_file(path, public, "00" * 32)
    assert info.value.details == {"reason": "manifest_mismatch", "option": "manifest"}
    with pytest.raises(PqcError, match="bad signature"):
        pqc.verify_manifest_file(path, pqc.generate(pqc.SIGNATURE).public_key(), sha256.hex())
    os.unlink(path + ".sig")
    with pytest.raises(PqcError, match="no signed manifest") as info:
        pqc.verify_manifest_file(path, public, sha256.hex())
    assert info.value.details["reason"] == "unsigned"


def test_errors_never_carry_keys_or_secrets(tmp_path):
    qkd_key = os.urandom(32)
    header = qstream.StreamSealer(qkd_key, "key-1", recipient=pqc.Recipient(KEM_KEY.public_key())).header
    secret = KEM_KEY.decapsulate(header.kem_ciphertext)
    pqc.write_private_key(str(tmp_path / "open.key"), KEM_KEY)
    os.chmod(str(tmp_path / "open.key"), 0o644)
    failing = [
        lambda: pqc.ReceiverPolicy("qkd", pqc.generate(pqc.KEM)).admit(header),
        lambda: qstream.StreamOpener(header, qkd_key, os.urandom(32)),
        lambda: qstream.StreamOpener(header, os.urandom(32), secret),
        lambda: pqc.verify_manifest(SIGNING_KEY.public_key(), b"{}", b"sig"),
        lambda: pqc.load_private_key(str(tmp_path / "open.key"), pqc.KEM, "kem_private_key"),
    ]
    texts = [repr(pqc.Recipient(KEM_KEY.public_key())), repr(pqc.Signer(SIGNING_KEY, "x"))]
    for call in failing:
        with pytest.raises(QkdNfvError) as info:
            call()
        texts.append(info.value.msg + repr(info.value.details))
    secrets = [qkd_key, secret, KEM_KEY.private_bytes_raw(), SIGNING_KEY.private_bytes_raw()]
    for text in texts:
        assert "PRIVATE KEY" not in text
        for material in secrets:
            assert material.hex() not in text and base64.b64encode(material).decode().rstrip("=") not in text
