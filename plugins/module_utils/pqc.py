# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Post-quantum cryptography beside QKD: the DCs' ML-KEM-768 key pairs, the CO's ML-DSA-65
catalogue key, and the signed manifest that travels at the end of a qstream (docs/security.md).

Plain Python over the library cryptography (>= 47, which brings ML-KEM and ML-DSA)::

    KEM, SIGNATURE                         "ml-kem-768", "ml-dsa-65": the two key types
    generate(kind)                         -> a new private key
    load_private_key(path, kind, option)   -> private key; refuses a file others may read
    load_public_key(value, kind, option)   -> public key from PEM text, a PEM file or base64
    write_private_key(path, key)           atomically, 0600 (the key never leaves the host)
    public_pem(key), fingerprint(key)      the public key as PEM; SHA-256 (hex) of its DER form
    Recipient(public_key)                  a sender's pinned receiver key: encapsulate()
    Signer(private_key, image_name, ...)   signs one stream's manifest when its SHA-256 is known
    ReceiverPolicy(...)                    what a receiver demands: key mode, recipient, signer
    write_manifest(dest, trailer)          <dest>.manifest.json and its detached .sig, atomically
    verify_manifest_file(path, key, ...)   -> the manifest of an installed image, or PqcError

No function returns, logs or puts into an error message a private key or a shared secret.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import hmac
import json
import os
import stat
import tempfile
import time

try:
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem
    IMPORT_ERROR = None
except ImportError as exc:  # reported by _require() when a post-quantum key is needed
    IMPORT_ERROR = exc
    InvalidSignature = UnsupportedAlgorithm = type("Unavailable", (Exception,), {})

from ansible_collections.qkd.nfv.plugins.module_utils import qstream
from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError

KEM = "ml-kem-768"
SIGNATURE = "ml-dsa-65"
KINDS = (KEM, SIGNATURE)
ALGORITHMS = {KEM: "ML-KEM-768", SIGNATURE: "ML-DSA-65"}
MANIFEST_FORMAT = "qkd.nfv/manifest/v1"
SIGNATURE_CONTEXT = b"qkd.nfv/manifest/v1"   # ML-DSA context string: these signatures mean nothing elsewhere
MANIFEST_SUFFIX = ".manifest.json"
SIGNATURE_SUFFIX = ".sig"
MAX_MANIFEST_BYTES = 16384
MAX_KEY_FILE_BYTES = 65536
MAX_CLOCK_SKEW = 300                          # seconds a manifest may seem to come from the future
DEFAULT_MAX_AGE = 86400


class PqcError(QkdNfvError):
    """A post-quantum key or a signed manifest is missing, wrong or unusable; `reason` says which."""

    def __init__(self, msg, reason="pqc", **details):
        super().__init__(msg, reason=reason, **details)


def _require():
    if IMPORT_ERROR is not None:
        raise PqcError("the Python library cryptography >= 47 (with ML-KEM and ML-DSA) is required on this "
                       "host for post-quantum keys and signed manifests: %s" % IMPORT_ERROR,
                       reason="missing_library")


def _classes(kind):
    _require()
    return {KEM: (mlkem.MLKEM768PrivateKey, mlkem.MLKEM768PublicKey),
            SIGNATURE: (mldsa.MLDSA65PrivateKey, mldsa.MLDSA65PublicKey)}[kind]


# --- keys ------------------------------------------------------------------------------------------

def generate(kind):
    """A new ML-KEM-768 or ML-DSA-65 private key."""
    try:
        return _classes(kind)[0].generate()
    except UnsupportedAlgorithm as exc:
        raise PqcError("%s is not available in this host's cryptography/OpenSSL build: %s"
                       % (ALGORITHMS[kind], exc), reason="missing_library") from None


def kind_of(key):
    """KEM or SIGNATURE for a private or public key of either type, else None."""
    for kind in KINDS:
        if isinstance(key, _classes(kind)):
            return kind
    return None


def _public(key):
    return key.public_key() if hasattr(key, "public_key") else key


def public_der(key):
    return _public(key).public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_pem(key):
    """The public key (of a private or public key) as PEM text (SubjectPublicKeyInfo)."""
    return _public(key).public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def fingerprint(key):
    """SHA-256 (hex) of the public key's DER SubjectPublicKeyInfo: what the CO pins and the logs show."""
    return hashlib.sha256(public_der(key)).hexdigest()


def private_pem(key):
    """PKCS #8 PEM of a private key, unencrypted: for write_private_key only."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def read_private_file(path, option, any_mode=False):
    """-> (bytes, mode) of a private key file; refuses links, non-files and (unless any_mode) files
    others may read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise PqcError("%s: %s does not exist; create the key with qkd.nfv.pqc_keypair" % (option, path),
                       reason="key_file", option=option) from None
    except OSError as exc:
        raise PqcError("%s: cannot read %s: %s" % (option, path, exc.strerror or exc), reason="key_file",
                       option=option) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        mode = stat.S_IMODE(info.st_mode)
        if not stat.S_ISREG(info.st_mode):
            raise PqcError("%s: %s is not a regular file" % (option, path), reason="key_file", option=option)
        if mode & 0o077 and not any_mode:
            raise PqcError("%s: %s is open to other users (mode %04o): private keys must be 0600. Treat the key "
                           "as exposed: make a new one (qkd.nfv.pqc_keypair with force=true) and pin its public key"
                           % (option, path, mode), reason="key_permissions", option=option)
        return handle.read(MAX_KEY_FILE_BYTES), mode


def parse_private_key(data, kind, option, path):
    """The private key of type `kind` in PEM `data` (read from `path`, named in errors only)."""
    _require()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PqcError("%s: %s holds no unencrypted PEM private key" % (option, path), reason="key_file",
                       option=option) from None
    if kind_of(key) != kind:
        raise PqcError("%s: %s holds a %s key, not an %s key" % (option, path, _name(key), ALGORITHMS[kind]),
                       reason="key_type", option=option)
    return key


def load_private_key(path, kind, option):
    """The private key of type `kind` in the 0600 PEM file `path` (as write_private_key writes it)."""
    return parse_private_key(read_private_file(path, option)[0], kind, option, path)


def load_public_key(value, kind, option):
    """An ML-KEM-768 or ML-DSA-65 public key from PEM text, a PEM (or DER) file, or base64 (DER or raw)."""
    _require()
    text = (value or "").strip()
    if not text:
        raise PqcError("%s is empty: give the %s public key as PEM text or the path of a PEM file"
                       % (option, ALGORITHMS[kind]), option=option, reason="public_key")
    if text.startswith("-----BEGIN"):
        key = _parse_public(text.encode(), kind)
    elif os.path.isfile(os.path.expanduser(text)):
        with open(os.path.expanduser(text), "rb") as handle:
            key = _parse_public(handle.read(MAX_KEY_FILE_BYTES), kind)
    else:
        try:
            key = _parse_public(base64.b64decode(text, validate=True), kind)
        except (binascii.Error, ValueError):
            key = None
        if key is None and os.sep in text:
            raise PqcError("%s: %s does not exist" % (option, text), option=option, reason="public_key")
    if key is None:
        raise PqcError("%s is not an %s public key: give its PEM text (as qkd.nfv.pqc_keypair returns it), the "
                       "path of a PEM file, or base64" % (option, ALGORITHMS[kind]), option=option,
                       reason="public_key")
    if kind_of(key) != kind:
        raise PqcError("%s is a %s public key, not an %s one" % (option, _name(key), ALGORITHMS[kind]),
                       option=option, reason="key_type")
    return key


def _parse_public(data, kind):
    loaders = (serialization.load_pem_public_key,) if data.lstrip().startswith(b"-----BEGIN") else (
        serialization.load_der_public_key, _classes(kind)[1].from_public_bytes)
    for loader in loaders:
        try:
            return loader(data)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
    return None


def _name(key):
    kind = kind_of(key)
    return ALGORITHMS[kind] if kind else type(key).__name__


def write_private_key(path, key):
    """Write `key` as PKCS #8 PEM to `path`: a 0600 temporary file beside it, fsync, rename."""
    _atomic_write(path, private_pem(key), 0o600)


def write_public_key(path, key):
    _atomic_write(path, public_pem(key).encode(), 0o644)


def _atomic_write(path, data, mode):
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".part", dir=directory)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.replace(temp, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# --- the sender's side -----------------------------------------------------------------------------

class Recipient:
    """A receiver's pinned ML-KEM-768 public key, as qstream.StreamSealer uses it."""

    algorithm = "ML-KEM-768"

    def __init__(self, public_key):
        self.key = public_key
        self.sha256 = fingerprint(public_key)
        self.fingerprint = bytes.fromhex(self.sha256)

    def encapsulate(self):
        """-> (shared secret, ciphertext): a fresh secret only the private key's holder recovers."""
        return self.key.encapsulate()

    def __repr__(self):
        return "Recipient(ML-KEM-768 %s)" % self.sha256


def utc_text(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def parse_utc(text):
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        return None


def encode_manifest(document):
    """The canonical bytes of a manifest (sorted keys, no spaces, ASCII): what is signed."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("ascii")


class Signer:
    """The CO's catalogue key: signs each stream's manifest at its end, once the SHA-256 is known.

    The manifest names the image (name, SHA-256, size), the key_IDs and key mode, the SAEs, the
    receiver's ML-KEM key, the destination, the time, and the SHA-256 of the stream's header, which
    binds it to this one stream (its salt and KEM ciphertext).
    """

    algorithm = "ML-DSA-65"

    def __init__(self, private_key, image_name, destination=None, slave_sae_id=None, clock=time.time):
        if kind_of(private_key) != SIGNATURE:
            raise PqcError("a manifest is signed with an ML-DSA-65 key", reason="key_type")
        self._key = private_key
        self.sha256 = fingerprint(private_key)
        self.fingerprint = bytes.fromhex(self.sha256)
        self.image_name, self.destination, self.slave_sae_id = image_name, destination, slave_sae_id
        self._clock = clock
        self.document = None

    def sign(self, header, size, sha256):
        """-> (manifest bytes, signature) for the stream `header` of `size` bytes with `sha256` (bytes)."""
        self.document = {
            "format": MANIFEST_FORMAT,
            "image": {"name": self.image_name, "sha256": sha256.hex(), "bytes": size},
            "key_ids": list(header.key_ids),
            "key_mode": header.mode_name,
            "protected_by": list(header.protected_by),
            "master_sae_id": header.master_sae_id,
            "slave_sae_id": self.slave_sae_id,
            "recipient_key_sha256": header.recipient.hex() or None,
            "destination": self.destination,
            "stream_sha256": hashlib.sha256(header.raw).hexdigest(),
            "signer_key_sha256": self.sha256,
            "time": utc_text(self._clock()),
        }
        manifest = encode_manifest(self.document)
        return manifest, self._key.sign(manifest, SIGNATURE_CONTEXT)

    def __repr__(self):
        return "Signer(ML-DSA-65 %s)" % self.sha256


# --- the receiver's side ---------------------------------------------------------------------------

def parse_manifest(manifest):
    """The manifest's JSON document; refuses what no sender writes."""
    if len(manifest) > MAX_MANIFEST_BYTES:
        raise PqcError("the manifest has %d bytes, more than a sender writes" % len(manifest), reason="bad_manifest")
    try:
        document = json.loads(manifest.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise PqcError("the manifest is not JSON", reason="bad_manifest") from None
    image = document.get("image") if isinstance(document, dict) else None
    if (document.get("format") if isinstance(document, dict) else None) != MANIFEST_FORMAT or not isinstance(image, dict):
        raise PqcError("the manifest is not a %s manifest" % MANIFEST_FORMAT, reason="bad_manifest")
    return document


def verify_manifest(public_key, manifest, signature):
    """Check the ML-DSA-65 signature of `manifest` by the pinned `public_key`; -> the document."""
    try:
        public_key.verify(signature, manifest, SIGNATURE_CONTEXT)
    except InvalidSignature:
        raise PqcError("bad signature: the manifest is not signed by the pinned catalogue key (SHA-256 %s); "
                       "the image is not the one the catalogue signed" % fingerprint(public_key),
                       reason="bad_signature") from None
    return parse_manifest(manifest)


def _mismatch(what, signed, actual):
    return PqcError("manifest mismatch: the signed manifest names %s %s, the stream has %s; refused"
                    % (what, signed, actual), reason="manifest_mismatch")


def check_stream_manifest(document, header, trailer, max_age=DEFAULT_MAX_AGE, now=None):
    """The verified manifest must describe exactly this stream and image, and be recent enough."""
    image = document["image"]
    if image.get("sha256") != trailer.sha256.hex() or image.get("bytes") != trailer.size:
        raise _mismatch("image", "%s (%s bytes)" % (image.get("sha256"), image.get("bytes")),
                        "%s (%d bytes)" % (trailer.sha256.hex(), trailer.size))
    if document.get("stream_sha256") != hashlib.sha256(header.raw).hexdigest():
        raise _mismatch("stream", document.get("stream_sha256"), "another header (a re-encrypted or replayed "
                        "manifest)")
    if document.get("key_ids") != list(header.key_ids) or document.get("key_mode") != header.mode_name:
        raise _mismatch("key", "%s %s" % (document.get("key_mode"), document.get("key_ids")),
                        "%s %s" % (header.mode_name, list(header.key_ids)))
    if (document.get("recipient_key_sha256") or "") != header.recipient.hex():
        raise _mismatch("recipient key", document.get("recipient_key_sha256"), header.recipient.hex() or None)
    check_age(document, max_age, now)


def check_age(document, max_age, now=None):
    signed_at = parse_utc(document.get("time"))
    now = time.time() if now is None else now
    if signed_at is None:
        raise PqcError("the manifest has no valid time", reason="bad_manifest")
    if signed_at > now + MAX_CLOCK_SKEW:
        raise PqcError("the manifest was signed at %s, in the future of this host's clock (%s): check both clocks"
                       % (document["time"], utc_text(now)), reason="manifest_time")
    if max_age and now - signed_at > max_age:
        raise PqcError("the manifest was signed at %s, more than %d seconds ago (manifest_max_age): a replayed "
                       "stream is refused" % (document["time"], max_age), reason="manifest_expired",
                       option="manifest_max_age")


class ReceiverPolicy:
    """What a receiver demands of a stream.

    admit(header) runs on the clear header, before any key is taken: the key mode must satisfy
    `require` (a downgrade is refused), a KEM stream must be for this receiver's key pair, and with
    a pinned signer the stream must announce a manifest signed by that key. kem_secret(header)
    decapsulates. approve(header, trailer) runs after the last chunk, before the image is
    installed: it verifies the signature and that the manifest describes this stream and image.
    """

    def __init__(self, require="qkd", kem_key=None, signer_key=None, max_age=DEFAULT_MAX_AGE):
        if require not in qstream.REQUIREMENTS:
            raise PqcError("require_mode must be one of %s" % ", ".join(qstream.REQUIREMENTS),
                           option="require_mode", reason="require_mode")
        self.require = require
        self.kem_key, self.signer_key, self.max_age = kem_key, signer_key, max_age
        self.kem_sha256 = fingerprint(kem_key) if kem_key is not None else None
        self.signer_sha256 = fingerprint(signer_key) if signer_key is not None else None
        self.signature_verified = False

    @staticmethod
    def default_requirement(has_kme, has_kem_key):
        """Every protection the receiver is equipped for: hybrid with a KME and a key pair."""
        if has_kme and has_kem_key:
            return "hybrid"
        return "pqc" if has_kem_key else "qkd"

    def admit(self, header):
        if not qstream.satisfies(header.mode, self.require):
            raise PqcError("downgrade refused: the stream is in key mode %s (protected by %s), and this receiver "
                           "requires %s (require_mode=%s); nothing was taken or installed"
                           % (header.mode_name, " + ".join(header.protected_by),
                              " + ".join(qstream.REQUIREMENTS[self.require]) or "nothing", self.require),
                           reason="downgrade", option="require_mode", key_mode=header.mode_name)
        if header.recipient:
            if self.kem_key is None:
                raise PqcError("the stream (key mode %s) is encrypted for an ML-KEM-768 key pair: set "
                               "kem_private_key to this receiver's private key" % header.mode_name,
                               reason="kem_key", option="kem_private_key")
            if not hmac.compare_digest(header.recipient, bytes.fromhex(self.kem_sha256)):
                raise PqcError("wrong recipient: the stream is for the ML-KEM-768 key %s, this receiver's key is "
                               "%s (sent to another DC, or the sender pinned a stale key)"
                               % (header.recipient.hex(), self.kem_sha256), reason="wrong_recipient",
                               option="kem_private_key")
        if self.signer_key is not None:
            if not header.signed:
                raise PqcError("unsigned: the stream carries no signed manifest and signer_public_key requires "
                               "one; nothing was taken or installed", reason="unsigned", option="signer_public_key")
            if header.signature_algorithm != Signer.algorithm or not hmac.compare_digest(
                    header.signer, bytes.fromhex(self.signer_sha256)):
                raise PqcError("wrong signer: the stream's manifest is signed (%s) by the key %s, not by the "
                               "pinned catalogue key %s" % (header.signature_algorithm, header.signer.hex(),
                                                            self.signer_sha256),
                               reason="wrong_signer", option="signer_public_key")

    def kem_secret(self, header):
        """The ML-KEM-768 shared secret of a hybrid or pqc stream (None for the others)."""
        if not header.kem_ciphertext:
            return None
        if self.kem_key is None:
            raise PqcError("the stream needs kem_private_key", reason="kem_key", option="kem_private_key")
        try:
            return self.kem_key.decapsulate(header.kem_ciphertext)
        except ValueError:
            raise qstream.MalformedError("the stream's ML-KEM-768 ciphertext is malformed") from None

    def approve(self, header, trailer):
        """-> the manifest document (None for an unsigned stream); raises unless it may be installed."""
        self.signature_verified = False
        if not trailer.manifest:
            return None
        if self.signer_key is None:
            return parse_manifest(trailer.manifest)  # kept beside the image, for vnf_instance to verify
        document = verify_manifest(self.signer_key, trailer.manifest, trailer.signature)
        check_stream_manifest(document, header, trailer, self.max_age)
        self.signature_verified = True
        return document


# --- manifests beside installed images -------------------------------------------------------------

def manifest_paths(dest):
    manifest = dest + MANIFEST_SUFFIX
    return manifest, manifest + SIGNATURE_SUFFIX


def write_manifest(dest, trailer):
    """<dest>.manifest.json (the signed bytes) and <dest>.manifest.json.sig (base64), atomically."""
    manifest_path, signature_path = manifest_paths(dest)
    _atomic_write(signature_path, base64.b64encode(trailer.signature) + b"\n", 0o644)
    _atomic_write(manifest_path, trailer.manifest + b"\n", 0o644)
    return manifest_path


def verify_manifest_file(manifest_path, public_key, sha256, size=None, option="manifest"):
    """The manifest of an installed image: signed by `public_key`, naming this SHA-256 (and size)."""
    signature_path = manifest_path + SIGNATURE_SUFFIX
    try:
        with open(manifest_path, "rb") as handle:
            manifest = handle.read(MAX_MANIFEST_BYTES + 2).rstrip(b"\n")
        with open(signature_path, "rb") as handle:
            signature = base64.b64decode(handle.read(MAX_KEY_FILE_BYTES).strip(), validate=True)
    except FileNotFoundError as exc:
        raise PqcError("%s: %s does not exist: the image has no signed manifest (it was not received from the "
                       "catalogue with image_receive, or was sent unsigned); refusing it"
                       % (option, exc.filename), reason="unsigned", option=option) from None
    except (OSError, binascii.Error, ValueError) as exc:
        raise PqcError("%s: cannot read the manifest or its signature: %s" % (option, exc), reason="bad_manifest",
                       option=option) from None
    document = verify_manifest(public_key, manifest, signature)
    image = document["image"]
    if image.get("sha256") != sha256 or (size is not None and image.get("bytes") != size):
        raise PqcError("manifest mismatch: the catalogue signed image %s (%s bytes), this image is %s%s; refusing it"
                       % (image.get("sha256"), image.get("bytes"), sha256,
                          "" if size is None else " (%d bytes)" % size), reason="manifest_mismatch", option=option)
    return document
