# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hybrid, signed qstreams through the real transports (TCP on 127.0.0.1, SFTP to a real sshd), and a
compromised trusted node that knows the relayed QKD key: what it can and cannot make a DC install."""

from __future__ import annotations

import hashlib
import io
import os
import threading

import pytest

import sshd_fixture
from ansible_collections.qkd.nfv.plugins.module_utils import pqc, qstream, transport

QKD_KEY = os.urandom(32)
KEY_ID = "7a4c1e0b-3f5d-4b8e-9a61-2f0d8c3b5e17"
MiB = 1 << 20
DC_KEM = pqc.generate(pqc.KEM)
CO_SIGNING = pqc.generate(pqc.SIGNATURE)


def make_file(path, size):
    with open(str(path), "wb") as out:
        out.write(os.urandom(size))
    return str(path)


def co_sealer(recipient=True, signed=True, key=QKD_KEY, key_id=KEY_ID, chunk_size=MiB):
    return qstream.StreamSealer(key, key_id, master_sae_id="sae-co", chunk_size=chunk_size,
                                recipient=pqc.Recipient(DC_KEM.public_key()) if recipient else None,
                                signer=pqc.Signer(CO_SIGNING, "vnf.img", "tcp://dc", "sae-dc") if signed else None)


def dc_policy(require="hybrid", signer=True):
    return pqc.ReceiverPolicy(require, DC_KEM, CO_SIGNING.public_key() if signer else None)


class Receiver(threading.Thread):
    def __init__(self, dest, policy):
        super().__init__(daemon=True)
        self.listener = transport.listen("127.0.0.1", 0)
        self.port = self.listener.getsockname()[1]
        self.dest, self.policy, self.result, self.keys_taken = dest, policy, None, 0
        self.start()

    def key_for(self, header):
        self.keys_taken += 1
        return [QKD_KEY]

    def run(self):
        try:
            self.result = transport.receive_tcp(self.listener, self.dest, self.key_for, timeout=30, policy=self.policy)
        except Exception as exc:  # pylint: disable=broad-except
            self.result = exc

    def wait(self):
        self.join(60)
        assert not self.is_alive()
        return self.result


@pytest.mark.parametrize("size", [0, MiB + 1, 5 * MiB])
def test_hybrid_signed_round_trip_over_tcp(tmp_path, size):
    src = make_file(tmp_path / "image", size)
    (tmp_path / "dc").mkdir()
    receiver = Receiver(str(tmp_path / "dc" / "vnf.img"), dc_policy())
    sent = transport.send_tcp(src, "127.0.0.1", receiver.port, co_sealer(), timeout=30)
    received = receiver.wait()
    assert sent.mode == received.mode == "hybrid" and sent.key_bits == received.key_bits == 256
    assert sent.sha256 == received.sha256 == transport.file_sha256(src) == transport.file_sha256(received.dest)
    assert received.signature_verified and received.manifest == sent.manifest
    assert received.manifest["image"] == {"name": "vnf.img", "sha256": sent.sha256, "bytes": size}
    assert sorted(os.listdir(str(tmp_path / "dc"))) == ["vnf.img", "vnf.img.manifest.json", "vnf.img.manifest.json.sig"]
    # What vnf_instance checks later: the kept manifest verifies against the catalogue key.
    document = pqc.verify_manifest_file(received.manifest_path, CO_SIGNING.public_key(), sent.sha256, size)
    assert document["key_ids"] == [KEY_ID] and document["key_mode"] == "hybrid"


def test_pqc_round_trip_over_tcp(tmp_path):
    src = make_file(tmp_path / "image", 300000)
    receiver = Receiver(str(tmp_path / "out"), pqc.ReceiverPolicy("pqc", DC_KEM))
    sealer = qstream.StreamSealer(None, None, recipient=pqc.Recipient(DC_KEM.public_key()))
    sent = transport.send_tcp(src, "127.0.0.1", receiver.port, sealer, timeout=30)
    received = receiver.wait()
    assert sent.mode == received.mode == "pqc" and receiver.keys_taken == 0
    assert sent.key_bits == received.key_bits == 0 and received.sha256 == transport.file_sha256(src)


def test_a_downgrade_over_tcp_is_refused_before_any_key_and_the_sender_hears_why(tmp_path):
    src = make_file(tmp_path / "image", 3 * MiB)
    (tmp_path / "dc").mkdir()
    receiver = Receiver(str(tmp_path / "dc" / "vnf.img"), dc_policy())
    with pytest.raises(transport.ReceiverRefusedError, match="downgrade") as info:
        transport.send_tcp(src, "127.0.0.1", receiver.port, co_sealer(recipient=False), timeout=30)
    assert info.value.details["reason"] == "downgrade"
    assert isinstance(receiver.wait(), pqc.PqcError) and receiver.keys_taken == 0
    assert os.listdir(str(tmp_path / "dc")) == []


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not sshd_fixture.available():
        pytest.skip("OpenSSH sshd is not installed (apt-get install openssh-server)")
    with sshd_fixture.Sshd(str(tmp_path_factory.mktemp("sshd"))) as server:
        yield server


def test_hybrid_signed_round_trip_over_sftp(sshd, tmp_path):
    src = make_file(tmp_path / "image", 2 * MiB + 3)
    (tmp_path / "dc").mkdir()
    target = transport.SftpTarget(host="127.0.0.1", port=sshd.port, user=sshd.user, private_key=sshd.client_key,
                                  known_hosts=sshd.known_hosts, path=str(tmp_path / "dc" / "vnf.qstream"), timeout=20)
    sent = transport.send_sftp(src, co_sealer(), target)
    received = transport.receive_file(str(tmp_path / "dc" / "vnf.qstream"), str(tmp_path / "dc" / "vnf.img"),
                                      lambda header: [QKD_KEY], policy=dc_policy())
    assert sent.mode == received.mode == "hybrid" and received.signature_verified
    assert received.sha256 == sent.sha256 == transport.file_sha256(str(tmp_path / "dc" / "vnf.img"))


# --- a compromised trusted node knows the relayed QKD key -----------------------------------------------

def stream_of(sealer, data):
    out = io.BytesIO()
    qstream.encrypt(io.BytesIO(data), out, sealer)
    return out.getvalue()


def receive_blob(tmp_path, blob, policy):
    """The DC receives `blob` as a file; -> the result or the exception, and what it installed."""
    (tmp_path / "dc").mkdir(exist_ok=True)
    (tmp_path / "in.qstream").write_bytes(blob)
    try:
        outcome = transport.receive_file(str(tmp_path / "in.qstream"), str(tmp_path / "dc" / "vnf.img"),
                                         lambda header: [QKD_KEY], policy=policy)
    except Exception as exc:  # pylint: disable=broad-except
        outcome = exc
    return outcome, os.listdir(str(tmp_path / "dc"))


TAMPERED = b"a backdoored VNF image " * 1000


def test_trusted_node_re_encrypts_under_the_genuine_header_with_the_genuine_manifest(tmp_path):
    # QKD-only (aead) stream: the trusted node derives every key from the relayed QKD key, opens the CO's
    # stream, keeps its header and its signed manifest, and re-encrypts a tampered image. The signature is
    # genuine, but it signs the genuine image's SHA-256.
    genuine = co_sealer(recipient=False)
    blob = stream_of(genuine, os.urandom(5000))
    header = qstream.read_header(io.BytesIO(blob))
    trailer = _open_trailer(blob, header)
    forged = _reseal(header, QKD_KEY, TAMPERED, trailer)
    outcome, left = receive_blob(tmp_path, forged, dc_policy("qkd"))
    assert isinstance(outcome, pqc.PqcError) and outcome.details["reason"] == "manifest_mismatch"
    assert left == []


@pytest.mark.parametrize("mode", ["aead", "hybrid"])
def test_trusted_node_forges_a_fresh_stream_signed_with_its_own_key(tmp_path, mode):
    # In mode hybrid the trusted node cannot open the CO's stream, but the DC's public key is public: it can
    # encapsulate a secret of its own and seal a new stream under the relayed QKD key. Only the signature
    # check tells it from the CO's.
    attacker = pqc.Signer(pqc.generate(pqc.SIGNATURE), "vnf.img")
    sealer = qstream.StreamSealer(QKD_KEY, KEY_ID, master_sae_id="sae-co", signer=attacker,
                                  recipient=pqc.Recipient(DC_KEM.public_key()) if mode == "hybrid" else None)
    outcome, left = receive_blob(tmp_path, stream_of(sealer, TAMPERED), dc_policy("qkd"))
    assert isinstance(outcome, pqc.PqcError) and outcome.details["reason"] == "wrong_signer" and left == []


def test_trusted_node_copies_the_co_signer_fields_into_its_own_stream(tmp_path):
    # Announcing the CO's key in the header passes the first check; the trailer's signature then fails.
    attacker = pqc.Signer(pqc.generate(pqc.SIGNATURE), "vnf.img")
    attacker.fingerprint = bytes.fromhex(pqc.fingerprint(CO_SIGNING))
    sealer = qstream.StreamSealer(QKD_KEY, KEY_ID, master_sae_id="sae-co", signer=attacker,
                                  recipient=pqc.Recipient(DC_KEM.public_key()))
    outcome, left = receive_blob(tmp_path, stream_of(sealer, TAMPERED), dc_policy())
    assert isinstance(outcome, pqc.PqcError) and outcome.details["reason"] == "bad_signature" and left == []


def test_trusted_node_drops_the_signature(tmp_path):
    sealer = qstream.StreamSealer(QKD_KEY, KEY_ID, master_sae_id="sae-co", recipient=pqc.Recipient(DC_KEM.public_key()))
    outcome, left = receive_blob(tmp_path, stream_of(sealer, TAMPERED), dc_policy())
    assert isinstance(outcome, pqc.PqcError) and outcome.details["reason"] == "unsigned" and left == []


def test_without_a_pinned_signer_the_forged_hybrid_stream_would_be_installed(tmp_path):
    # Why the signature is needed: hybrid keys keep the image secret from the trusted node, but do not
    # authenticate the sender to the DC.
    sealer = qstream.StreamSealer(QKD_KEY, KEY_ID, master_sae_id="sae-co", recipient=pqc.Recipient(DC_KEM.public_key()))
    outcome, left = receive_blob(tmp_path, stream_of(sealer, TAMPERED), dc_policy(signer=False))
    assert isinstance(outcome, transport.Received) and "vnf.img" in left


def test_trusted_node_cannot_read_a_hybrid_stream(tmp_path):
    blob = stream_of(co_sealer(), b"the genuine image")
    header = qstream.read_header(io.BytesIO(blob))
    for guess in (bytes(32), os.urandom(32), pqc.generate(pqc.KEM).decapsulate(header.kem_ciphertext)):
        with pytest.raises(qstream.WrongKeyError):
            qstream.StreamOpener(header, QKD_KEY, guess)


def test_a_replayed_old_manifest_is_refused(tmp_path):
    sealer = qstream.StreamSealer(None, None, signer=pqc.Signer(CO_SIGNING, "vnf.img", clock=lambda: 1000000000.0),
                                  recipient=pqc.Recipient(DC_KEM.public_key()))
    outcome, left = receive_blob(tmp_path, stream_of(sealer, b"an old image"),
                                 pqc.ReceiverPolicy("pqc", DC_KEM, CO_SIGNING.public_key(), max_age=3600))
    assert isinstance(outcome, pqc.PqcError) and outcome.details["reason"] == "manifest_expired" and left == []


def _open_trailer(blob, header):
    """What the trusted node learns with the QKD key: the trailer (and so the signed manifest)."""
    opener = qstream.StreamOpener(header, QKD_KEY)
    pos, plain = len(header.raw), bytearray(header.chunk_size)
    while True:
        length, final = opener.parse_prefix(blob[pos:pos + 4])
        body = blob[pos + 4:pos + 4 + length + qstream.TAG_BYTES]
        pos += 4 + len(body)
        if final:
            return opener.open_trailer(body)
        opener.open_into(body, plain)


def _reseal(header, key, data, trailer):
    """A stream under exactly `header` (same salt, nonces, keys) with other data and the given trailer."""
    # pylint: disable=protected-access
    keys = qstream._Keys.for_header(header, key, None)
    frames, counter = [header.raw], 0
    for start in range(0, len(data), header.chunk_size):
        chunk = data[start:start + header.chunk_size]
        nonce = header.nonce_prefix + counter.to_bytes(4, "big") + b"\x00"
        frames.append(len(chunk).to_bytes(4, "big") + keys.aead.encrypt(nonce, chunk, header.raw))
        counter += 1
    body = qstream.Trailer(len(data), hashlib.sha256(data).digest(), trailer.manifest, trailer.signature).encode()
    nonce = header.nonce_prefix + counter.to_bytes(4, "big") + b"\x01"
    frames.append((0x80000000 | len(body)).to_bytes(4, "big") + keys.aead.encrypt(nonce, body, header.raw))
    return b"".join(frames)
