# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""qstream: the encrypted container for images, keyed by QKD (specification: docs/qstream.md).

Pure: builds and checks bytes; the only I/O is on file objects handed in by the caller.

  header  = magic(8) version(1) mode(1) fields_length(2) fields      (the associated data)
  field   = type(1) length(2) value
  AEAD    : header, frames; frame = prefix(4: final bit | plaintext length) ciphertext tag(16)
            AES-256-GCM under HKDF-SHA256(QKD key, salt, key_ID); nonce = prefix(7) counter(4) final(1)
            (Tink's AES-GCM-HKDF streaming AEAD nonce layout). The final frame is the trailer:
            plaintext size and SHA-256, so nothing may be cut, reordered or appended unseen.
  HYBRID  : as AEAD, keyed by HKDF-SHA256 over the QKD key and an ML-KEM-768 shared secret, with
            the header (the transcript) as context; the KEM ciphertext travels in the header.
  PQC     : as HYBRID with the ML-KEM-768 secret alone, for a receiver without a QKD link.
  signed  : any AEAD-family stream may end with a manifest signed by the sender (ML-DSA-65),
            inside the encrypted trailer; the signing and the KEM are the caller's objects.
  OTP     : header, ciphertext = plaintext XOR pad, Poly1305 one-time tag over header || ciphertext.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass, field

try:
    from cryptography.exceptions import InvalidSignature, InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    from cryptography.hazmat.primitives.poly1305 import Poly1305
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as exc:  # reported by require_cryptography() when a stream is sealed or opened
    CRYPTOGRAPHY_IMPORT_ERROR = exc
    InvalidSignature = InvalidTag = type("Unavailable", (Exception,), {})

from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError

# PNG-style magic: the high byte catches 7-bit channels, CR LF and LF catch newline conversion.
MAGIC = b"\x89QST\r\n\x1a\n"
VERSION = 1
MODE_AEAD = 1   # one QKD key -> HKDF-SHA256 -> AES-256-GCM in chunks
MODE_OTP = 2    # one-time pad as long as the data, Poly1305 one-time authenticator
MODE_HYBRID = 3  # QKD key and ML-KEM-768 secret -> HKDF-SHA256 -> AES-256-GCM in chunks
MODE_PQC = 4    # ML-KEM-768 secret alone (no QKD link to the receiver)
MODE_NAMES = {MODE_AEAD: "aead", MODE_OTP: "otp", MODE_HYBRID: "hybrid", MODE_PQC: "pqc"}
ALGORITHMS = {MODE_AEAD: "AES-256-GCM-STREAM/HKDF-SHA256", MODE_OTP: "OTP-XOR/POLY1305",
              MODE_HYBRID: "AES-256-GCM-STREAM/HKDF-SHA256/QKD+ML-KEM-768",
              MODE_PQC: "AES-256-GCM-STREAM/HKDF-SHA256/ML-KEM-768"}
_KEM_MODES = (MODE_HYBRID, MODE_PQC)

# What keeps a stream of each mode confidential, and what a receiver may require (require_mode):
# a stream satisfies a requirement when it is protected by everything the requirement names.
QKD, ML_KEM = "qkd", "ml-kem-768"
PROTECTED_BY = {MODE_AEAD: (QKD,), MODE_OTP: (QKD,), MODE_HYBRID: (QKD, ML_KEM), MODE_PQC: (ML_KEM,)}
REQUIREMENTS = {"any": (), "qkd": (QKD,), "pqc": (ML_KEM,), "hybrid": (QKD, ML_KEM)}

DEFAULT_CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 1 << 24            # bounds what a receiver allocates for a header it cannot trust yet
KEY_BYTES = 32                       # one 256-bit QKD key per AEAD transfer
SALT_BYTES = 32
NONCE_PREFIX_BYTES = 7
TAG_BYTES = 16
KEY_CHECK_BYTES = 32
OTP_DEFAULT_LIMIT = 64 * 1024
OTP_MAX_SIZE = 16 << 20              # hard cap: OTP data is handled in memory
OTP_MAC_KEY_BYTES = 32               # Poly1305 (r, s), taken from the pad before the data
KEM_CIPHERTEXT_BYTES = 1088          # ML-KEM-768 (FIPS 203)
KEM_SECRET_BYTES = 32
FINGERPRINT_BYTES = 32               # SHA-256 of a public key's DER SubjectPublicKeyInfo
MAX_SIGNED_TRAILER = 1 << 16         # bounds the final frame of a signed stream (manifest + signature)

_PREFIX = struct.Struct("!8sBBH")
PREFIX_SIZE = _PREFIX.size
_FIELD = struct.Struct("!BH")
_FRAME = struct.Struct("!I")
FRAME_PREFIX_SIZE = _FRAME.size
_FINAL = 0x80000000
_TRAILER = struct.Struct("!Q32s")
TRAILER_SIZE = _TRAILER.size
_MAX_SEGMENTS = 1 << 32

# Field types. Types below 0x80 are critical: a reader that does not know one must refuse the
# stream. Types from 0x80 up are informational and skipped when unknown (still authenticated).
F_ALGORITHM, F_KEY_ID, F_MASTER_SAE_ID, F_SALT, F_NONCE_PREFIX = 1, 2, 3, 4, 5
F_CHUNK_SIZE, F_PLAINTEXT_SIZE, F_PLAINTEXT_SHA256, F_KEY_CHECK = 6, 7, 8, 9
F_KEM_CIPHERTEXT, F_RECIPIENT, F_SIGNATURE, F_SIGNER = 10, 11, 12, 13
_OPTIONAL_FIELDS = 0x80
_REPEATABLE = {F_KEY_ID}

_INFO = b"qkd.nfv/qstream/v1/"


class QstreamError(QkdNfvError):
    """The stream cannot be accepted; `reason` says why in one word (also in the task result)."""

    reason = "invalid"

    def __init__(self, msg, **details):
        details.setdefault("reason", self.reason)
        super().__init__(msg, **details)


class NotQstreamError(QstreamError):
    reason = "not_qstream"


class UnsupportedFormatError(QstreamError):
    reason = "newer_format"


class MalformedError(QstreamError):
    reason = "malformed"


class WrongKeyError(QstreamError):
    reason = "wrong_key"


class TamperedError(QstreamError):
    reason = "tampered"


class TruncatedError(QstreamError):
    reason = "truncated"


class KemKeyError(QstreamError):
    reason = "kem_key"


@dataclass(frozen=True)
class Header:
    """What travels in clear before the payload; `raw` is its encoding, the associated data."""

    mode: int
    key_ids: tuple
    master_sae_id: str | None = None
    salt: bytes = b""
    nonce_prefix: bytes = b""
    chunk_size: int = 0
    plaintext_size: int | None = None
    plaintext_sha256: bytes | None = None
    key_check: bytes = b""
    kem_ciphertext: bytes = b""
    recipient: bytes = b""               # SHA-256 of the receiver's ML-KEM public key
    signature_algorithm: str | None = None
    signer: bytes = b""                  # SHA-256 of the signer's public key
    version: int = VERSION
    raw: bytes = field(default=b"", repr=False, compare=False)
    key_check_at: int = field(default=0, repr=False, compare=False)

    @property
    def key_id(self):
        return self.key_ids[0] if self.key_ids else None

    @property
    def mode_name(self):
        return MODE_NAMES[self.mode]

    @property
    def protected_by(self):
        return PROTECTED_BY[self.mode]

    @property
    def signed(self):
        return self.signature_algorithm is not None

    @property
    def transcript(self):
        """H with the key_check value zeroed: the context the hybrid and pqc keys are derived under
        (key_check is itself derived from those keys)."""
        if not self.key_check_at:
            return self.raw
        end = self.key_check_at + KEY_CHECK_BYTES
        return self.raw[:self.key_check_at] + bytes(KEY_CHECK_BYTES) + self.raw[end:]

    def encode(self):
        fields = [(F_ALGORITHM, ALGORITHMS[self.mode].encode())]
        fields += [(F_KEY_ID, key_id.encode()) for key_id in self.key_ids]
        if self.master_sae_id:
            fields.append((F_MASTER_SAE_ID, self.master_sae_id.encode()))
        if self.mode in _KEM_MODES:
            fields += [(F_KEM_CIPHERTEXT, self.kem_ciphertext), (F_RECIPIENT, self.recipient)]
        if self.signed:
            fields += [(F_SIGNATURE, self.signature_algorithm.encode()), (F_SIGNER, self.signer)]
        if self.mode != MODE_OTP:
            fields += [(F_SALT, self.salt), (F_NONCE_PREFIX, self.nonce_prefix),
                       (F_CHUNK_SIZE, struct.pack("!I", self.chunk_size)), (F_KEY_CHECK, self.key_check)]
        if self.plaintext_size is not None:
            fields.append((F_PLAINTEXT_SIZE, struct.pack("!Q", self.plaintext_size)))
        if self.plaintext_sha256 is not None:
            fields.append((F_PLAINTEXT_SHA256, self.plaintext_sha256))
        body = b"".join(_FIELD.pack(kind, len(value)) + value for kind, value in fields)
        if len(body) > 0xFFFF:
            raise MalformedError("qstream header too long (%d bytes of fields)" % len(body))
        return _PREFIX.pack(MAGIC, self.version, self.mode, len(body)) + body


def satisfies(mode, requirement):
    """True when a stream of key mode `mode` is protected by all that `requirement` names."""
    return set(REQUIREMENTS[requirement]) <= set(PROTECTED_BY[mode])


def read_header(fin):
    """Read and check the header from a file object; the payload follows at the file position."""
    prefix = read_exact(fin, PREFIX_SIZE)
    if len(prefix) < PREFIX_SIZE and prefix and MAGIC.startswith(prefix[:len(MAGIC)]):
        raise TruncatedError("truncated: the qstream ends inside its header (%d bytes)" % len(prefix))
    if len(prefix) < PREFIX_SIZE or prefix[:len(MAGIC)] != MAGIC:
        raise NotQstreamError("not a qstream: it does not start with the qstream magic bytes")
    length = _PREFIX.unpack(prefix)[3]
    body = read_exact(fin, length)
    if len(body) < length:
        raise TruncatedError("truncated: the qstream ends inside its header")
    return parse_header(prefix + body)


def parse_header(raw):
    """Decode and validate an encoded header (bytes)."""
    if len(raw) < PREFIX_SIZE or raw[:len(MAGIC)] != MAGIC:
        raise NotQstreamError("not a qstream: it does not start with the qstream magic bytes")
    version, mode, length = _PREFIX.unpack_from(raw)[1:]
    if version != VERSION:
        raise UnsupportedFormatError(
            "this qstream has format version %d; this qkd.nfv reads version %d: upgrade the qkd.nfv "
            "collection on the receiving host" % (version, VERSION), version=version)
    if mode not in ALGORITHMS:
        raise UnsupportedFormatError(
            "this qstream uses key mode %d, unknown to this qkd.nfv (it knows %s): upgrade the "
            "qkd.nfv collection on the receiving host" % (mode, ", ".join(sorted(MODE_NAMES.values()))),
            mode=mode)
    if len(raw) != PREFIX_SIZE + length:
        raise MalformedError("qstream header length does not match its fields")
    values, offsets = _parse_fields(memoryview(raw)[PREFIX_SIZE:])
    key_check_at = PREFIX_SIZE + offsets[F_KEY_CHECK] if F_KEY_CHECK in offsets else 0
    return _header_from_fields(mode, values, bytes(raw), key_check_at)


def _parse_fields(view):
    """-> ({type: [values]}, {type: offset of its first value in view})"""
    values, offsets, pos = {}, {}, 0
    while pos < len(view):
        if pos + _FIELD.size > len(view):
            raise MalformedError("qstream header field cut short")
        kind, length = _FIELD.unpack_from(view, pos)
        pos += _FIELD.size
        value = bytes(view[pos:pos + length])
        offsets.setdefault(kind, pos)
        pos += length
        if len(value) != length:
            raise MalformedError("qstream header field %d cut short" % kind)
        if kind in values and kind not in _REPEATABLE:
            raise MalformedError("qstream header field %d appears twice" % kind)
        values.setdefault(kind, []).append(value)
    unknown = [kind for kind in values if kind not in _KNOWN_FIELDS and kind < _OPTIONAL_FIELDS]
    if unknown:
        raise UnsupportedFormatError(
            "this qstream has header fields unknown to this qkd.nfv (%s): upgrade the qkd.nfv "
            "collection on the receiving host" % ", ".join(str(kind) for kind in unknown))
    return values, offsets


_KNOWN_FIELDS = {F_ALGORITHM, F_KEY_ID, F_MASTER_SAE_ID, F_SALT, F_NONCE_PREFIX, F_CHUNK_SIZE,
                 F_PLAINTEXT_SIZE, F_PLAINTEXT_SHA256, F_KEY_CHECK, F_KEM_CIPHERTEXT, F_RECIPIENT,
                 F_SIGNATURE, F_SIGNER}
_KEY_IDS_NEEDED = {MODE_AEAD: (1, 1, "one"), MODE_HYBRID: (1, 1, "one"), MODE_PQC: (0, 0, "none"),
                   MODE_OTP: (1, None, "one or more")}


def _header_from_fields(mode, values, raw, key_check_at):  # pylint: disable=too-many-locals
    def one(kind, size=None, required=True):
        if kind not in values:
            if required:
                raise MalformedError("qstream header lacks field %d" % kind)
            return None
        value = values[kind][0]
        if size is not None and len(value) != size:
            raise MalformedError("qstream header field %d has %d bytes, not %d" % (kind, len(value), size))
        return value

    def text(value):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise MalformedError("qstream header holds a name that is not UTF-8") from None

    if text(one(F_ALGORITHM)) != ALGORITHMS[mode]:
        raise UnsupportedFormatError("this qstream names algorithm %r, which key mode %s does not use"
                                     % (text(one(F_ALGORITHM)), MODE_NAMES[mode]))
    key_ids = tuple(text(value) for value in values.get(F_KEY_ID, ()))
    least, most, words = _KEY_IDS_NEEDED[mode]
    if not all(key_ids) or len(key_ids) < least or (most is not None and len(key_ids) > most):
        raise MalformedError("qstream header has %d key_IDs; key mode %s needs %s"
                             % (len(key_ids), MODE_NAMES[mode], words))
    size = one(F_PLAINTEXT_SIZE, 8, required=mode == MODE_OTP)
    master = one(F_MASTER_SAE_ID, required=False)
    common = dict(mode=mode, key_ids=key_ids, master_sae_id=text(master) if master else None,
                  plaintext_size=struct.unpack("!Q", size)[0] if size else None,
                  plaintext_sha256=one(F_PLAINTEXT_SHA256, 32, required=False), raw=raw)
    if mode == MODE_OTP:
        if F_SIGNATURE in values or F_KEM_CIPHERTEXT in values:
            raise MalformedError("an OTP qstream carries neither a KEM ciphertext nor a signature")
        otp_size = common["plaintext_size"] or 0
        if otp_size > OTP_MAX_SIZE:
            raise MalformedError("OTP qstream of %d bytes exceeds the %d-byte limit" % (otp_size, OTP_MAX_SIZE))
        return Header(**common)
    chunk_size = struct.unpack("!I", one(F_CHUNK_SIZE, 4))[0]
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise MalformedError("qstream chunk size %d is outside 1..%d" % (chunk_size, MAX_CHUNK_SIZE))
    kem = mode in _KEM_MODES
    if not kem and (F_KEM_CIPHERTEXT in values or F_RECIPIENT in values):
        raise MalformedError("key mode %s carries no KEM ciphertext" % MODE_NAMES[mode])
    signature = one(F_SIGNATURE, required=False)
    signer = one(F_SIGNER, FINGERPRINT_BYTES, required=signature is not None)
    if signer is not None and signature is None:
        raise MalformedError("qstream header names a signer but no signature algorithm")
    return Header(salt=one(F_SALT, SALT_BYTES), nonce_prefix=one(F_NONCE_PREFIX, NONCE_PREFIX_BYTES),
                  chunk_size=chunk_size, key_check=one(F_KEY_CHECK, KEY_CHECK_BYTES),
                  kem_ciphertext=one(F_KEM_CIPHERTEXT, KEM_CIPHERTEXT_BYTES) if kem else b"",
                  recipient=one(F_RECIPIENT, FINGERPRINT_BYTES) if kem else b"",
                  signature_algorithm=text(signature) if signature is not None else None,
                  signer=signer or b"", key_check_at=key_check_at, **common)


def require_cryptography():
    """Fail clearly where the Python library cryptography is missing."""
    if CRYPTOGRAPHY_IMPORT_ERROR is not None:
        raise QstreamError("the Python library cryptography (>= 42) is required on this host to encrypt or decrypt "
                           "images: %s" % CRYPTOGRAPHY_IMPORT_ERROR, reason="missing_library")


@dataclass(frozen=True)
class Trailer:
    """The final frame: what the sender wrote, and (signed streams) its manifest and signature."""

    size: int
    sha256: bytes
    manifest: bytes = b""
    signature: bytes = field(default=b"", repr=False)

    def encode(self):
        if not self.manifest:
            return _TRAILER.pack(self.size, self.sha256)
        return _TRAILER.pack(self.size, self.sha256) + _FRAME.pack(len(self.manifest)) + self.manifest + self.signature


def _trailer_from(body, signed):
    size, sha256 = _TRAILER.unpack_from(body)
    if not signed:
        return Trailer(size, sha256)
    (length,) = _FRAME.unpack_from(body, TRAILER_SIZE)
    start = TRAILER_SIZE + _FRAME.size
    if not 0 < length < len(body) - start:
        raise TamperedError("tampered: the signed trailer of the qstream is malformed")
    return Trailer(size, sha256, bytes(body[start:start + length]), bytes(body[start + length:]))


class _Keys:
    """The keys one stream's secrets yield, each for one purpose (HKDF info labels).

    Mode aead: IKM = the QKD key, context = key_ID. Modes hybrid and pqc: IKM = QKD key || ML-KEM
    secret (or the ML-KEM secret alone), context = SHA-256 of the header transcript, so that the
    keys are bound to the KEM ciphertext, the recipient, the signer and every other header field.
    """

    def __init__(self, ikm, salt, context):
        require_cryptography()

        def derive(purpose):
            return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                        info=_INFO + purpose + b"\x00" + context).derive(bytes(ikm))
        self.aead = AESGCM(derive(b"aes-256-gcm"))
        self.check = derive(b"key-check")
        self.confirm = derive(b"confirm")

    @classmethod
    def for_header(cls, header, qkd_key, kem_secret):
        """The keys of `header`'s mode from the secrets it needs (a QKD key, an ML-KEM secret or both)."""
        if PROTECTED_BY[header.mode] != (ML_KEM,):
            _check_qkd_key(qkd_key, header.mode_name)
        if header.mode == MODE_AEAD:
            return cls(qkd_key, header.salt, header.key_id.encode())
        if kem_secret is None or len(kem_secret) != KEM_SECRET_BYTES:
            raise KemKeyError("key mode %s needs the receiver's ML-KEM-768 secret: decapsulate the header's "
                              "KEM ciphertext with the receiver's private key" % header.mode_name)
        ikm = bytes(qkd_key) + bytes(kem_secret) if header.mode == MODE_HYBRID else bytes(kem_secret)
        return cls(ikm, header.salt, hashlib.sha256(header.transcript).digest())

    def seal_into(self, nonce, data, aad, out):
        if hasattr(self.aead, "encrypt_into"):  # cryptography releases without it allocate and copy
            self.aead.encrypt_into(nonce, data, aad, out)
        else:
            out[:] = self.aead.encrypt(nonce, bytes(data), aad)

    def open_into(self, nonce, data, aad, out):
        if hasattr(self.aead, "decrypt_into"):
            self.aead.decrypt_into(nonce, data, aad, out)
        else:
            out[:] = self.aead.decrypt(nonce, bytes(data), aad)


def _check_qkd_key(key, mode_name):
    if key is None:
        raise QstreamError("key mode %s needs a QKD key" % mode_name, reason="key_size")
    if len(key) < KEY_BYTES:
        raise QstreamError("a qstream key must have at least %d bits, this one has %d"
                           % (KEY_BYTES * 8, len(key) * 8), reason="key_size")


def _nonce(prefix, counter, final):
    return prefix + struct.pack("!IB", counter, 1 if final else 0)


def confirmation_tag(confirm_key, size, sha256):
    """The receiver's proof that it holds the key and installed exactly this plaintext."""
    return hmac.new(confirm_key, b"installed" + struct.pack("!Q", size) + sha256, hashlib.sha256).digest()


class StreamSealer:
    """Encrypts one AEAD-family stream: `header.raw`, then seal_into() per chunk in order, then trailer().

    The key mode follows from the secrets given: a QKD key alone is mode aead; with `recipient` (the
    receiver's pinned ML-KEM-768 public key: encapsulate() -> (secret, ciphertext), fingerprint) it
    is mode hybrid, or mode pqc when no QKD key is given. With `signer` (algorithm, fingerprint,
    sign(header, size, sha256) -> (manifest, signature)) the trailer carries a signed manifest.
    """

    def __init__(self, key, key_id, master_sae_id=None, chunk_size=DEFAULT_CHUNK_SIZE,  # pylint: disable=too-many-arguments
                 plaintext_size=None, plaintext_sha256=None, recipient=None, signer=None):
        mode = MODE_AEAD if recipient is None else (MODE_HYBRID if key is not None else MODE_PQC)
        if mode == MODE_PQC and key_id:
            raise QstreamError("a pqc-mode qstream carries no QKD key_ID", reason="key_id")
        if mode != MODE_PQC and not key_id:
            raise QstreamError("a qstream needs the key_ID of its key", reason="key_id")
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise QstreamError("chunk size must be within 1..%d bytes, not %d" % (MAX_CHUNK_SIZE, chunk_size),
                               reason="chunk_size")
        if mode != MODE_PQC:
            _check_qkd_key(key, MODE_NAMES[mode])
        secret, ciphertext = recipient.encapsulate() if recipient is not None else (None, b"")
        fields = dict(mode=mode, key_ids=(key_id,) if key_id else (), master_sae_id=master_sae_id,
                      salt=os.urandom(SALT_BYTES), nonce_prefix=os.urandom(NONCE_PREFIX_BYTES),
                      chunk_size=chunk_size, plaintext_size=plaintext_size, plaintext_sha256=plaintext_sha256,
                      kem_ciphertext=ciphertext, recipient=recipient.fingerprint if recipient is not None else b"",
                      signature_algorithm=signer.algorithm if signer is not None else None,
                      signer=signer.fingerprint if signer is not None else b"")
        draft = parse_header(Header(key_check=bytes(KEY_CHECK_BYTES), **fields).encode())
        keys = _Keys.for_header(draft, key, secret)
        self.header = parse_header(Header(key_check=keys.check, **fields).encode())
        self.chunk_size = chunk_size
        self.key_bits = len(key) * 8 if key is not None else 0
        self.mode = mode
        self.signer = signer
        self.manifest = None  # the signed manifest (bytes), once trailer() has run
        self._keys = keys
        self._counter = 0
        self._done = False

    @property
    def frame_capacity(self):
        return FRAME_PREFIX_SIZE + self.chunk_size + TAG_BYTES

    def seal_into(self, data, out):
        """Encrypt one chunk (1..chunk_size bytes) as a frame into `out`; return the frame length."""
        length = len(data)
        if not 1 <= length <= self.chunk_size:
            raise ValueError("a chunk holds 1..%d bytes, not %d" % (self.chunk_size, length))
        nonce = self._next_nonce(final=False)
        view = memoryview(out)
        _FRAME.pack_into(view, 0, length)
        self._keys.seal_into(nonce, data, self.header.raw, view[FRAME_PREFIX_SIZE:FRAME_PREFIX_SIZE + length + TAG_BYTES])
        return FRAME_PREFIX_SIZE + length + TAG_BYTES

    def trailer(self, size, sha256):
        """The final frame: the plaintext size and SHA-256 (and the signed manifest), which the receiver checks."""
        trailer = Trailer(size, sha256)
        if self.signer is not None:
            manifest, signature = self.signer.sign(self.header, size, sha256)
            trailer = Trailer(size, sha256, manifest, signature)
            if len(trailer.encode()) > MAX_SIGNED_TRAILER:
                raise QstreamError("the signed manifest is too large (%d bytes)" % len(manifest), reason="manifest")
            self.manifest = manifest
        body = trailer.encode()
        nonce = self._next_nonce(final=True)
        self._done = True
        return _FRAME.pack(_FINAL | len(body)) + self._keys.aead.encrypt(nonce, body, self.header.raw)

    def confirmation(self, size, sha256):
        return confirmation_tag(self._keys.confirm, size, sha256)

    def _next_nonce(self, final):
        if self._done:
            raise ValueError("this qstream is already finished")
        if self._counter >= _MAX_SEGMENTS:
            raise QstreamError("a qstream holds at most 2^32 chunks; use a larger chunk size", reason="too_large")
        nonce = _nonce(self.header.nonce_prefix, self._counter, final)
        self._counter += 1
        return nonce


class StreamOpener:
    """Decrypts one AEAD-family stream: parse_prefix() then open_into() per frame, in order.

    `key` is the QKD key (None in mode pqc); `kem_secret` the ML-KEM-768 shared secret the receiver
    decapsulated from the header (modes hybrid and pqc).
    """

    def __init__(self, header, key, kem_secret=None):
        keys = _Keys.for_header(header, key, kem_secret)
        if not hmac.compare_digest(keys.check, header.key_check):
            raise WrongKeyError(_wrong_key_message(header))
        self.header = header
        self.key_bits = len(key) * 8 if key is not None and header.mode != MODE_PQC else 0
        self._keys = keys
        self._counter = 0
        self._trailer_limit = MAX_SIGNED_TRAILER if header.signed else TRAILER_SIZE
        self.finished = False

    @property
    def frame_capacity(self):
        """The largest frame body (ciphertext and tag): a full chunk, or the trailer."""
        return max(self.header.chunk_size, self._trailer_limit) + TAG_BYTES

    def parse_prefix(self, prefix):
        """-> (plaintext length, final) of the next frame; rejects what no sender writes."""
        if self.finished:
            raise TamperedError("tampered: data follows the final chunk of the qstream")
        (word,) = _FRAME.unpack(prefix)
        length, final = word & ~_FINAL, bool(word & _FINAL)
        if final:
            bad = length != TRAILER_SIZE if not self.header.signed else not TRAILER_SIZE < length <= self._trailer_limit
        else:
            bad = not 1 <= length <= self.header.chunk_size
        if bad:
            raise TamperedError("tampered: chunk %d has an impossible length (%d bytes)" % (self._counter, length))
        return length, final

    def open_into(self, body, out, final=False):
        """Verify and decrypt one frame body (ciphertext and tag) into `out`; return the length."""
        nonce = self._nonce(final)
        length = len(body) - TAG_BYTES
        try:
            self._keys.open_into(nonce, body, self.header.raw, memoryview(out)[:length])
        except InvalidTag:
            raise TamperedError("tampered: chunk %d of the qstream failed authentication (modified, "
                                "reordered or from another stream)" % (self._counter - 1)) from None
        return length

    def open_trailer(self, body):
        """Verify the final frame; -> Trailer (plaintext size, SHA-256, manifest) as the sender wrote it."""
        out = bytearray(len(body) - TAG_BYTES)
        self.open_into(body, out, final=True)
        self.finished = True
        return _trailer_from(out, self.header.signed)

    def confirmation(self, size, sha256):
        return confirmation_tag(self._keys.confirm, size, sha256)

    def _nonce(self, final):
        if self._counter >= _MAX_SEGMENTS:
            raise TamperedError("tampered: the qstream has more than 2^32 chunks")
        nonce = _nonce(self.header.nonce_prefix, self._counter, final)
        self._counter += 1
        return nonce


def _wrong_key_message(header):
    if header.mode == MODE_AEAD:
        return ("wrong key: the key obtained for key_ID %s is not the one this qstream was encrypted with "
                "(or its header was modified)" % header.key_id)
    secrets = ("the QKD key obtained for key_ID %s and the ML-KEM-768 secret" % header.key_id
               if header.mode == MODE_HYBRID else "the ML-KEM-768 secret")
    return ("wrong key: %s do not give the key this qstream was encrypted with (a wrong QKD key, a KEM "
            "ciphertext not made for this receiver's key pair, or a modified header)" % secrets)


class OtpSealer:
    """One-time-pad container for small files: pad = the keys concatenated in order.

    The first 32 pad bytes key a Poly1305 one-time authenticator (a Wegman-Carter polynomial MAC
    over the prime field 2^130 - 5), the next bytes are XORed with the data; the rest of the last
    key is discarded, since a QKD key is used once. key_bits counts every bit taken from the KME.
    """

    mode = MODE_OTP

    def __init__(self, keys, master_sae_id=None, limit=OTP_DEFAULT_LIMIT):
        if not keys or not all(pair[0] for pair in keys):
            raise QstreamError("OTP mode needs one or more keys, each with its key_ID", reason="key_id")
        self.keys = keys
        self.master_sae_id = master_sae_id
        self.limit = min(limit, OTP_MAX_SIZE)
        self.key_bits = sum(len(pair[1]) for pair in keys) * 8
        self.header = None

    @staticmethod
    def key_bytes_needed(size):
        return OTP_MAC_KEY_BYTES + size

    def seal(self, data):
        """-> the whole container (header, ciphertext, tag)."""
        require_cryptography()
        if len(data) > self.limit:
            raise QstreamError("OTP mode is for files up to %d bytes; this one has %d: use mode aead"
                               % (self.limit, len(data)), reason="too_large")
        pad = b"".join(pair[1] for pair in self.keys)
        if len(pad) < self.key_bytes_needed(len(data)):
            raise QstreamError("OTP mode needs %d key bits for %d bytes; %d were given"
                               % (self.key_bytes_needed(len(data)) * 8, len(data), len(pad) * 8), reason="key_size")
        header = Header(mode=MODE_OTP, key_ids=tuple(pair[0] for pair in self.keys),
                        master_sae_id=self.master_sae_id, plaintext_size=len(data))
        self.header = parse_header(header.encode())
        ciphertext = _xor(data, pad[OTP_MAC_KEY_BYTES:OTP_MAC_KEY_BYTES + len(data)])
        tag = Poly1305.generate_tag(pad[:OTP_MAC_KEY_BYTES], self.header.raw + ciphertext)
        return self.header.raw + ciphertext + tag


def otp_open(header, body, keys):
    """Verify and decrypt an OTP container's payload (ciphertext and tag) with its keys, in order."""
    require_cryptography()
    size = header.plaintext_size
    if len(body) < size + TAG_BYTES:
        raise TruncatedError("truncated: the OTP qstream ends %d bytes early" % (size + TAG_BYTES - len(body)))
    if len(body) > size + TAG_BYTES:
        raise TamperedError("tampered: data follows the end of the OTP qstream")
    pad = b"".join(keys)
    if len(pad) < OtpSealer.key_bytes_needed(size):
        raise WrongKeyError("wrong key: %d key bits were obtained for this OTP qstream, it needs %d"
                            % (len(pad) * 8, OtpSealer.key_bytes_needed(size) * 8))
    ciphertext, tag = body[:size], body[size:]
    try:
        Poly1305.verify_tag(pad[:OTP_MAC_KEY_BYTES], header.raw + ciphertext, tag)
    except InvalidSignature:
        raise TamperedError("tampered or wrong key: the OTP qstream failed authentication") from None
    return _xor(ciphertext, pad[OTP_MAC_KEY_BYTES:OTP_MAC_KEY_BYTES + size])


def _xor(data, pad):
    return (int.from_bytes(data, "big") ^ int.from_bytes(pad, "big")).to_bytes(len(data), "big")


def read_exact(fin, size):
    """Read size bytes from a file object; fewer only when EOF comes first."""
    parts, left = [], size
    while left:
        part = fin.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


# A serial reference implementation on file objects; transport.py runs the same steps pipelined.

def encrypt(fin, fout, sealer):
    """Write the qstream of fin's data to fout; -> (plaintext size, SHA-256 hex)."""
    digest, size = hashlib.sha256(), 0
    if sealer.mode == MODE_OTP:
        data = fin.read(sealer.limit + 1)
        fout.write(sealer.seal(data))
        return len(data), hashlib.sha256(data).hexdigest()
    fout.write(sealer.header.raw)
    chunk, frame = bytearray(sealer.chunk_size), bytearray(sealer.frame_capacity)
    while True:
        length = readinto_full(fin, chunk)
        if not length:
            break
        digest.update(memoryview(chunk)[:length])
        size += length
        fout.write(memoryview(frame)[:sealer.seal_into(memoryview(chunk)[:length], frame)])
    fout.write(sealer.trailer(size, digest.digest()))
    return size, digest.hexdigest()


def decrypt(fin, fout, key_for, policy=None):
    """Check and decrypt the qstream in fin into fout; key_for(header) -> list of QKD keys (bytes).

    `policy` (see pqc.ReceiverPolicy) admits the header before any key is asked for, gives the
    ML-KEM secret of modes hybrid and pqc, and approves the trailer (its signed manifest).
    -> (header, plaintext size, SHA-256 hex). Chunks reach fout only after they verified, but a
    failure can come after some did: the caller writes to a temporary file and discards it on error.
    """
    header = read_header(fin)
    if policy is not None:
        policy.admit(header)
    kem_secret = policy.kem_secret(header) if policy is not None else None
    keys = key_for(header) if header.key_ids else []
    if header.mode == MODE_OTP:
        data = otp_open(header, read_exact(fin, header.plaintext_size + TAG_BYTES + 1), keys)
        fout.write(data)
        return header, len(data), hashlib.sha256(data).hexdigest()
    opener = StreamOpener(header, keys[0] if keys else None, kem_secret)
    digest, size = hashlib.sha256(), 0
    body, plain = bytearray(opener.frame_capacity), bytearray(header.chunk_size)
    while True:
        prefix = read_exact(fin, FRAME_PREFIX_SIZE)
        if len(prefix) < FRAME_PREFIX_SIZE:
            raise TruncatedError("truncated: the qstream ends after %d plaintext bytes, before its final "
                                 "chunk" % size)
        length, final = opener.parse_prefix(prefix)
        view = memoryview(body)[:length + TAG_BYTES]
        if readinto_full(fin, view) < len(view):
            raise TruncatedError("truncated: the qstream ends inside a chunk, after %d plaintext bytes" % size)
        if final:
            trailer = opener.open_trailer(view)
            break
        opener.open_into(view, plain)
        digest.update(memoryview(plain)[:length])
        fout.write(memoryview(plain)[:length])
        size += length
    if fin.read(1):
        raise TamperedError("tampered: data follows the final chunk of the qstream")
    check_trailer(header, trailer, size, digest.digest())
    if policy is not None:
        policy.approve(header, trailer)
    return header, size, digest.hexdigest()


def check_trailer(header, trailer, size, sha256):
    """Compare what was received with the authenticated trailer (and header, when it tells)."""
    if size != trailer.size or (header.plaintext_size is not None and size != header.plaintext_size):
        raise TamperedError("tampered: %d plaintext bytes arrived, the sender wrote %d" % (size, trailer.size))
    if header.plaintext_sha256 is not None and not hmac.compare_digest(sha256, header.plaintext_sha256):
        raise TamperedError("tampered: the SHA-256 of the received image differs from the sender's")
    if not hmac.compare_digest(sha256, trailer.sha256):
        # Every chunk verified, so this is what the sender read: a file that is not the image whose
        # SHA-256 the sender stated (from its catalogue, without hashing the file itself).
        raise QstreamError("checksum_mismatch: the image arrived intact but its SHA-256 is %s, not the %s its "
                           "sender stated: the sender's file is not the catalogued image (changed on disk, or "
                           "a stale catalogue entry); nothing was installed" % (sha256.hex(), trailer.sha256.hex()),
                           reason="checksum_mismatch")
    if header.signed and not trailer.manifest:
        raise TamperedError("tampered: the header announces a signed manifest, the trailer holds none")


def readinto_full(fin, buf):
    """Fill buf from fin unless EOF comes first; -> bytes read."""
    view, pos = memoryview(buf), 0
    while pos < len(view):
        count = fin.readinto(view[pos:])
        if not count:
            break
        pos += count
    return pos
