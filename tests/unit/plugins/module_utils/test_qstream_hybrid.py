# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""qstream key modes hybrid and pqc, and signed trailers: both secrets count, the header binds them,
a downgrade and every forged or transplanted manifest are refused (serial reference implementation)."""

from __future__ import annotations

import hashlib
import io
import os
import struct

import pytest

from ansible_collections.qkd.nfv.plugins.module_utils import pqc, qstream
from ansible_collections.qkd.nfv.plugins.module_utils.qstream import (
    KemKeyError, MalformedError, TamperedError, UnsupportedFormatError, WrongKeyError)

QKD_KEY = bytes(range(32))
KEY_ID = "bc490419-7d60-487f-adc1-4ddcc177c139"
CHUNK = 64
DC_KEM = pqc.generate(pqc.KEM)
CO_SIGNING = pqc.generate(pqc.SIGNATURE)


def seal(data, key=QKD_KEY, key_id=KEY_ID, recipient=DC_KEM.public_key(), signer_key=CO_SIGNING, **options):
    signer = pqc.Signer(signer_key, "vnf.img", "tcp://dc:5700", "sae-dc") if signer_key is not None else None
    sealer = qstream.StreamSealer(key, key_id, master_sae_id="sae-co", chunk_size=CHUNK,
                                  recipient=pqc.Recipient(recipient) if recipient is not None else None,
                                  signer=signer, **options)
    out = io.BytesIO()
    qstream.encrypt(io.BytesIO(data), out, sealer)
    return out.getvalue()


def policy(require="hybrid", kem_key=DC_KEM, signer_key=CO_SIGNING.public_key(), **options):
    return pqc.ReceiverPolicy(require, kem_key, signer_key, **options)


def unseal(blob, key=QKD_KEY, receiver=None):
    out = io.BytesIO()
    receiver = receiver if receiver is not None else policy()
    header, size, sha256 = qstream.decrypt(io.BytesIO(blob), out, lambda header: [key], receiver)
    assert size == len(out.getvalue()) and sha256 == hashlib.sha256(out.getvalue()).hexdigest()
    return header, out.getvalue()


def replace_field(raw, kind, value):
    """The header `raw` with field `kind`'s value replaced (lengths kept consistent)."""
    fields, pos, body = [], qstream.PREFIX_SIZE, b""
    while pos < len(raw):
        field_kind, length = struct.unpack_from("!BH", raw, pos)
        old = raw[pos + 3:pos + 3 + length]
        body += struct.pack("!BH", field_kind, len(value) if field_kind == kind else length) + (
            value if field_kind == kind else old)
        fields.append(field_kind)
        pos += 3 + length
    assert kind in fields
    return raw[:10] + struct.pack("!H", len(body)) + body


@pytest.mark.parametrize("size", [0, 1, CHUNK, 10 * CHUNK + 7])
def test_hybrid_round_trip(size):
    data = os.urandom(size)
    receiver = policy()
    header, plain = unseal(seal(data), receiver=receiver)
    assert plain == data and header.mode_name == "hybrid" and header.protected_by == ("qkd", "ml-kem-768")
    assert header.key_ids == (KEY_ID,) and len(header.kem_ciphertext) == qstream.KEM_CIPHERTEXT_BYTES
    assert header.recipient.hex() == pqc.fingerprint(DC_KEM) and receiver.signature_verified


def test_the_default_mode_follows_the_secrets_given():
    assert qstream.StreamSealer(QKD_KEY, KEY_ID).header.mode_name == "aead"
    recipient = pqc.Recipient(DC_KEM.public_key())
    assert qstream.StreamSealer(QKD_KEY, KEY_ID, recipient=recipient).header.mode_name == "hybrid"
    assert qstream.StreamSealer(None, None, recipient=recipient).header.mode_name == "pqc"


def test_pqc_round_trip_uses_no_qkd_key():
    data = os.urandom(300)
    blob = seal(data, key=None, key_id=None)
    out = io.BytesIO()
    header = qstream.decrypt(io.BytesIO(blob), out, None, policy("pqc"))[0]
    assert out.getvalue() == data and header.mode_name == "pqc" and header.key_ids == ()
    assert header.protected_by == ("ml-kem-768",) and header.master_sae_id == "sae-co"


def test_right_qkd_key_with_a_wrong_ml_kem_secret_is_rejected():
    blob = seal(b"image")
    other = pqc.generate(pqc.KEM)
    # The receiver's policy would stop a stream for another key pair at once; past that check, an ML-KEM
    # secret that is not the sender's (decapsulated with another private key) gives the wrong key.
    header = qstream.read_header(io.BytesIO(blob))
    with pytest.raises(WrongKeyError, match="ML-KEM-768"):
        qstream.StreamOpener(header, QKD_KEY, other.decapsulate(header.kem_ciphertext))
    with pytest.raises(WrongKeyError):
        qstream.StreamOpener(header, QKD_KEY, os.urandom(32))
    assert qstream.StreamOpener(header, QKD_KEY, DC_KEM.decapsulate(header.kem_ciphertext))


def test_wrong_qkd_key_with_the_right_ml_kem_secret_is_rejected():
    with pytest.raises(WrongKeyError, match="QKD key obtained for key_ID"):
        unseal(seal(b"image"), key=bytes(32))


def test_a_substituted_kem_ciphertext_is_rejected():
    # Someone who knows the QKD key (a trusted node) replaces the KEM ciphertext with its own encapsulation:
    # the receiver's secret changes, so does the key, and the stream no longer opens.
    blob = seal(b"image")
    header = qstream.read_header(io.BytesIO(blob))
    ciphertext = DC_KEM.public_key().encapsulate()[1]
    raw = replace_field(header.raw, qstream.F_KEM_CIPHERTEXT, ciphertext)
    with pytest.raises(WrongKeyError):
        unseal(raw + blob[len(header.raw):])


@pytest.mark.parametrize("kind, value", [
    (qstream.F_MASTER_SAE_ID, b"sae-evil"),
    (qstream.F_KEY_ID, b"00000000-7d60-487f-adc1-4ddcc177c139"),
    (qstream.F_SIGNER, bytes(32)),
])
def test_the_keys_are_bound_to_the_header_transcript(kind, value):
    blob = seal(b"image")
    header = qstream.read_header(io.BytesIO(blob))
    raw = replace_field(header.raw, kind, value)
    receiver = policy(signer_key=None)  # the pinned-signer check would refuse F_SIGNER earlier
    with pytest.raises(WrongKeyError):
        unseal(raw + blob[len(header.raw):], receiver=receiver)


def test_a_hybrid_stream_needs_the_kem_secret():
    blob = seal(b"image")
    header = qstream.read_header(io.BytesIO(blob))
    with pytest.raises(KemKeyError):
        qstream.StreamOpener(header, QKD_KEY)


def test_mode_byte_rewritten_to_aead_is_refused():
    blob = bytearray(seal(b"image"))
    blob[9] = qstream.MODE_AEAD  # a downgrade on the wire: the algorithm and fields no longer match the mode
    with pytest.raises(UnsupportedFormatError):
        unseal(bytes(blob))


@pytest.mark.parametrize("require, modes_accepted", [
    ("hybrid", {"hybrid"}),
    ("qkd", {"aead", "otp", "hybrid"}),
    ("pqc", {"pqc", "hybrid"}),
    ("any", {"aead", "otp", "hybrid", "pqc"}),
])
def test_requirements_accept_only_streams_protected_by_what_they_name(require, modes_accepted):
    accepted = {name for mode, name in qstream.MODE_NAMES.items() if qstream.satisfies(mode, require)}
    assert accepted == modes_accepted


@pytest.mark.parametrize("require", ["hybrid", "pqc"])
def test_a_plain_qkd_stream_is_a_downgrade_for_a_receiver_with_a_key_pair(require):
    blob = seal(b"image", recipient=None)
    with pytest.raises(pqc.PqcError, match="downgrade") as info:
        unseal(blob, receiver=policy(require))
    assert info.value.details["reason"] == "downgrade" and info.value.details["option"] == "require_mode"


def test_an_unsigned_stream_is_refused_when_a_signer_is_pinned():
    keys_asked = []
    blob = seal(b"image", signer_key=None)
    with pytest.raises(pqc.PqcError, match="unsigned"):
        qstream.decrypt(io.BytesIO(blob), io.BytesIO(), keys_asked.append, policy())
    assert keys_asked == []  # refused on the header, before any key was taken


def test_a_stream_signed_by_another_key_is_refused_before_any_key():
    keys_asked = []
    blob = seal(b"image", signer_key=pqc.generate(pqc.SIGNATURE))
    with pytest.raises(pqc.PqcError, match="wrong signer") as info:
        qstream.decrypt(io.BytesIO(blob), io.BytesIO(), keys_asked.append, policy())
    assert info.value.details["reason"] == "wrong_signer" and keys_asked == []


def test_signed_trailer_is_inside_the_encryption():
    data = b"vnf image bytes " * 10
    blob = seal(data)
    assert b"vnf.img" not in blob and b"manifest" not in blob  # the manifest travels encrypted


def test_a_stream_announcing_a_signature_must_carry_one():
    sealer = qstream.StreamSealer(QKD_KEY, KEY_ID, chunk_size=CHUNK,
                                  signer=pqc.Signer(CO_SIGNING, "vnf.img"))
    sealer.signer = None  # a sender that announces a manifest and then writes a plain trailer
    out = io.BytesIO()
    qstream.encrypt(io.BytesIO(b"x"), out, sealer)
    with pytest.raises(TamperedError):
        unseal(out.getvalue(), receiver=policy("qkd", kem_key=None))


def test_otp_streams_carry_no_kem_or_signature_fields():
    header = qstream.Header(mode=qstream.MODE_OTP, key_ids=("k",), plaintext_size=1, signature_algorithm="ML-DSA-65",
                            signer=bytes(32))
    with pytest.raises(MalformedError):
        qstream.parse_header(header.encode())


def test_hybrid_streams_are_fresh_per_transfer():
    data = os.urandom(100)
    first, second = seal(data), seal(data)
    assert qstream.read_header(io.BytesIO(first)).kem_ciphertext != qstream.read_header(io.BytesIO(second)).kem_ciphertext
    assert first[-200:] != second[-200:]
