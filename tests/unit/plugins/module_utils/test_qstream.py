# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""qstream: header encoding, AEAD and OTP round trips, and the errors a receiver must raise."""

from __future__ import annotations

import hashlib
import io
import os
import struct

import pytest

from ansible_collections.qkd.nfv.plugins.module_utils import qstream
from ansible_collections.qkd.nfv.plugins.module_utils.qstream import (
    MalformedError, NotQstreamError, QstreamError, TamperedError, TruncatedError, UnsupportedFormatError,
    WrongKeyError)

KEY = bytes(range(32))
KEY_ID = "bc490419-7d60-487f-adc1-4ddcc177c139"
CHUNK = 64


def seal(data, key=KEY, chunk_size=CHUNK, **options):
    sealer = qstream.StreamSealer(key, KEY_ID, master_sae_id="sae-node1", chunk_size=chunk_size, **options)
    out = io.BytesIO()
    size, sha256 = qstream.encrypt(io.BytesIO(data), out, sealer)
    assert (size, sha256) == (len(data), hashlib.sha256(data).hexdigest())
    return out.getvalue()


def unseal(blob, key=KEY):
    out = io.BytesIO()
    header, size, sha256 = qstream.decrypt(io.BytesIO(blob), out, lambda header: [key])
    assert size == len(out.getvalue()) and sha256 == hashlib.sha256(out.getvalue()).hexdigest()
    return header, out.getvalue()


def frames(blob):
    """Split an AEAD qstream into (header bytes, [frame bytes])."""
    header = qstream.read_header(io.BytesIO(blob))
    pos, parts = len(header.raw), []
    while pos < len(blob):
        (word,) = struct.unpack_from("!I", blob, pos)
        end = pos + 4 + (word & 0x7FFFFFFF) + qstream.TAG_BYTES
        parts.append(blob[pos:end])
        pos = end
    return header.raw, parts


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 10 * CHUNK + 7])
def test_round_trip(size):
    data = os.urandom(size)
    header, plain = unseal(seal(data))
    assert plain == data
    assert header.key_ids == (KEY_ID,) and header.master_sae_id == "sae-node1" and header.chunk_size == CHUNK


def test_layout_chunks_then_trailer():
    blob = seal(os.urandom(2 * CHUNK + 1))
    parts = frames(blob)[1]
    lengths = [struct.unpack_from("!I", part)[0] for part in parts]
    assert lengths == [CHUNK, CHUNK, 1, 0x80000000 | qstream.TRAILER_SIZE]
    assert len(blob) == len(frames(blob)[0]) + 3 * (4 + 16) + 2 * CHUNK + 1 + 4 + qstream.TRAILER_SIZE + 16


def test_header_is_versioned_and_length_prefixed():
    blob = seal(b"x")
    magic, version, mode, length = struct.unpack_from("!8sBBH", blob)
    assert (magic, version, mode) == (qstream.MAGIC, 1, qstream.MODE_AEAD)
    header = qstream.read_header(io.BytesIO(blob))
    assert len(header.raw) == 12 + length


def test_one_key_per_stream_whatever_the_size():
    sealer = qstream.StreamSealer(KEY, KEY_ID, chunk_size=CHUNK)
    qstream.encrypt(io.BytesIO(os.urandom(50 * CHUNK)), io.BytesIO(), sealer)
    assert sealer.key_bits == 256 and sealer.header.key_ids == (KEY_ID,)


def test_same_plaintext_and_key_give_different_streams():
    data = b"same image" * 10
    assert seal(data)[100:] != seal(data)[100:]


def test_wrong_key_is_named_as_such():
    with pytest.raises(WrongKeyError) as info:
        unseal(seal(b"image"), key=bytes(32))
    assert info.value.details["reason"] == "wrong_key" and KEY_ID in info.value.msg


def test_flipped_byte_in_a_chunk_is_tampering():
    blob = bytearray(seal(os.urandom(3 * CHUNK)))
    blob[len(frames(bytes(blob))[0]) + 4 + 10] ^= 1
    with pytest.raises(TamperedError):
        unseal(bytes(blob))


def test_flipped_byte_in_the_header_is_tampering():
    blob = bytearray(seal(os.urandom(CHUNK)))
    # The master SAE ID is authenticated as associated data, like every header byte.
    at = bytes(blob).index(b"sae-node1")
    blob[at] ^= 0x20
    with pytest.raises(TamperedError):
        unseal(bytes(blob))


def test_reordered_chunks_are_tampering():
    header, parts = frames(seal(os.urandom(3 * CHUNK)))
    with pytest.raises(TamperedError):
        unseal(header + parts[1] + parts[0] + b"".join(parts[2:]))


def test_dropping_a_chunk_is_detected():
    header, parts = frames(seal(os.urandom(3 * CHUNK)))
    with pytest.raises(TamperedError):
        unseal(header + parts[0] + b"".join(parts[2:]))


@pytest.mark.parametrize("cut", [1, 4, qstream.TAG_BYTES, CHUNK])
def test_truncation_is_detected(cut):
    blob = seal(os.urandom(3 * CHUNK))
    with pytest.raises(TruncatedError):
        unseal(blob[:-cut] if cut < len(blob) else b"")


def test_truncation_at_a_frame_boundary_is_detected():
    header, parts = frames(seal(os.urandom(3 * CHUNK)))
    with pytest.raises(TruncatedError):
        unseal(header + b"".join(parts[:-1]))


def test_appended_bytes_are_tampering():
    with pytest.raises(TamperedError, match="follows the final chunk"):
        unseal(seal(os.urandom(CHUNK)) + b"\x00")


def test_a_chunk_from_another_stream_is_tampering():
    header, parts = frames(seal(os.urandom(2 * CHUNK)))
    other = frames(seal(os.urandom(2 * CHUNK)))[1]
    with pytest.raises(TamperedError):
        unseal(header + parts[0] + other[1] + parts[2])


def test_final_flag_cannot_be_moved():
    header, parts = frames(seal(os.urandom(2 * CHUNK)))
    forged = bytearray(parts[1])
    forged[0] |= 0x80
    with pytest.raises(TamperedError):
        unseal(header + parts[0] + bytes(forged))


def test_announced_sha256_and_size_must_match():
    data = os.urandom(100)
    unseal(seal(data, plaintext_size=100, plaintext_sha256=hashlib.sha256(data).digest()))
    with pytest.raises(TamperedError, match="SHA-256"):
        unseal(seal(data, plaintext_sha256=hashlib.sha256(b"other").digest()))
    with pytest.raises(TamperedError, match="bytes"):
        unseal(seal(data, plaintext_size=99))


def test_not_a_qstream():
    for blob in (b"", b"qcow2 image...", b"\x89PNG\r\n\x1a\n" + bytes(100)):
        with pytest.raises(NotQstreamError) as info:
            unseal(blob)
        assert info.value.details["reason"] == "not_qstream"


def test_cut_inside_the_header_is_truncation():
    with pytest.raises(TruncatedError):
        unseal(seal(b"x")[:20])
    with pytest.raises(TruncatedError):
        unseal(qstream.MAGIC[:5])


def test_newer_version_asks_for_an_upgrade():
    blob = bytearray(seal(b"x"))
    blob[8] = 2
    with pytest.raises(UnsupportedFormatError, match="version 2.*upgrade") as info:
        unseal(bytes(blob))
    assert info.value.details["reason"] == "newer_format"


def test_unknown_key_mode_asks_for_an_upgrade():
    blob = bytearray(seal(b"x"))
    blob[9] = 0x7F  # a key mode from a later release (3 and 4 are now hybrid and pqc)
    with pytest.raises(UnsupportedFormatError, match="key mode 127.*upgrade"):
        unseal(bytes(blob))


def with_extra_field(blob, kind, value):
    header = qstream.read_header(io.BytesIO(blob))
    fields = header.raw[12:] + struct.pack("!BH", kind, len(value)) + value
    return struct.pack("!8sBBH", qstream.MAGIC, 1, header.mode, len(fields)) + fields, blob[len(header.raw):]


def test_unknown_critical_field_is_refused():
    raw = with_extra_field(seal(b"x"), 0x30, b"new")[0]
    with pytest.raises(UnsupportedFormatError, match="48"):
        qstream.parse_header(raw)


def test_unknown_optional_field_is_skipped_but_authenticated():
    sealer = qstream.StreamSealer(KEY, KEY_ID, chunk_size=CHUNK)
    raw = with_extra_field(sealer.header.raw, 0x90, b"a later manifest")[0]
    header = qstream.parse_header(raw)
    assert header.key_id == KEY_ID and header.raw == raw
    # A stream sealed under the original header does not open under the extended one.
    blob = seal(b"image")
    extended, payload = with_extra_field(blob, 0x90, b"x")
    with pytest.raises(TamperedError):
        unseal(extended + payload)


@pytest.mark.parametrize("mutate, error", [
    (lambda raw: raw[:12] + raw[12:] + struct.pack("!BH", qstream.F_SALT, 32) + bytes(32), MalformedError),
    (lambda raw: raw + b"\x01", MalformedError),
])
def test_malformed_headers(mutate, error):
    raw = qstream.StreamSealer(KEY, KEY_ID, chunk_size=CHUNK).header.raw
    bad = mutate(raw)
    bad = bad[:10] + struct.pack("!H", len(bad) - 12) + bad[12:]
    with pytest.raises(error):
        qstream.parse_header(bad)


def test_hostile_chunk_size_is_refused_before_any_allocation():
    header = qstream.Header(mode=qstream.MODE_AEAD, key_ids=(KEY_ID,), salt=bytes(32), nonce_prefix=bytes(7),
                            chunk_size=1 << 30, key_check=bytes(32))
    with pytest.raises(MalformedError, match="chunk size"):
        qstream.parse_header(header.encode())


def test_a_short_key_is_refused():
    with pytest.raises(QstreamError, match="256 bits"):
        qstream.StreamSealer(bytes(16), KEY_ID)


def test_otp_round_trip_reports_key_bits():
    data = b"router config\n" * 30
    keys = [("k1", os.urandom(128)), ("k2", os.urandom(1024))]
    sealer = qstream.OtpSealer(keys, master_sae_id="sae-node1")
    out = io.BytesIO()
    qstream.encrypt(io.BytesIO(data), out, sealer)
    blob = out.getvalue()
    assert sealer.key_bits == (128 + 1024) * 8
    assert len(blob) == len(sealer.header.raw) + len(data) + 16
    plain = io.BytesIO()
    header = qstream.decrypt(io.BytesIO(blob), plain, lambda header: [pair[1] for pair in keys])[0]
    assert plain.getvalue() == data and header.key_ids == ("k1", "k2") and header.mode_name == "otp"
    assert header.plaintext_sha256 is None  # a clear-text hash would leak what the pad hides


def test_otp_detects_any_change():
    data = os.urandom(200)
    keys = [("k1", os.urandom(qstream.OtpSealer.key_bytes_needed(200)))]
    blob = qstream.OtpSealer(keys).seal(data)
    for at in (5, len(blob) - 100, len(blob) - 1):
        bad = bytearray(blob)
        bad[at] ^= 4
        with pytest.raises((TamperedError, NotQstreamError, MalformedError)):
            qstream.decrypt(io.BytesIO(bytes(bad)), io.BytesIO(), lambda header: [keys[0][1]])
    with pytest.raises(TruncatedError):
        qstream.decrypt(io.BytesIO(blob[:-1]), io.BytesIO(), lambda header: [keys[0][1]])
    with pytest.raises(TamperedError):
        qstream.decrypt(io.BytesIO(blob + b"x"), io.BytesIO(), lambda header: [keys[0][1]])
    with pytest.raises(TamperedError, match="wrong key"):
        qstream.decrypt(io.BytesIO(blob), io.BytesIO(), lambda header: [os.urandom(len(keys[0][1]))])


def test_otp_needs_enough_key_and_a_small_file():
    with pytest.raises(QstreamError, match="needs 1024 key bits"):
        qstream.OtpSealer([("k", bytes(64))]).seal(bytes(96))
    with pytest.raises(QstreamError, match="up to 65536 bytes.*aead") as info:
        qstream.OtpSealer([("k", bytes(70000))]).seal(bytes(65537))
    assert info.value.details["reason"] == "too_large"
    assert qstream.OtpSealer([("k", bytes(1 << 20))], limit=1 << 20).seal(bytes(100000))


def test_confirmation_binds_key_size_and_digest():
    sealer = qstream.StreamSealer(KEY, KEY_ID, chunk_size=CHUNK)
    opener = qstream.StreamOpener(sealer.header, KEY)
    digest = hashlib.sha256(b"x").digest()
    assert sealer.confirmation(1, digest) == opener.confirmation(1, digest)
    assert sealer.confirmation(2, digest) != opener.confirmation(1, digest)


def test_errors_never_carry_key_material():
    blob = seal(b"secret image")
    for key in (bytes(32), KEY):
        bad = bytearray(blob)
        bad[-1] ^= 1
        try:
            unseal(bytes(bad), key=key)
        except QstreamError as exc:
            text = exc.msg + repr(exc.details)
            assert KEY.hex() not in text and repr(KEY) not in text


class WithoutIntoMethods:
    """AESGCM as cryptography releases before encrypt_into/decrypt_into offer it."""

    def __init__(self, aead):
        self.encrypt, self.decrypt = aead.encrypt, aead.decrypt


def test_streams_are_the_same_without_the_into_methods():
    data = os.urandom(3 * CHUNK + 5)
    sealer = qstream.StreamSealer(KEY, KEY_ID, chunk_size=CHUNK)
    sealer._keys.aead = WithoutIntoMethods(sealer._keys.aead)  # pylint: disable=protected-access
    out = io.BytesIO()
    qstream.encrypt(io.BytesIO(data), out, sealer)
    assert unseal(out.getvalue())[1] == data
    header = qstream.read_header(io.BytesIO(out.getvalue()))
    opener = qstream.StreamOpener(header, KEY)
    opener._keys.aead = WithoutIntoMethods(opener._keys.aead)  # pylint: disable=protected-access
    frames_ = frames(out.getvalue())[1]
    plain = bytearray(CHUNK)
    assert opener.open_into(memoryview(frames_[0])[4:], plain) == CHUNK and bytes(plain) == data[:CHUNK]
    with pytest.raises(TamperedError):
        opener.open_into(memoryview(frames_[2])[4:], plain)  # out of order
