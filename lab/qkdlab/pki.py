"""The lab's PKI: a lab CA, a server certificate per KME and a client certificate per SAE.

ETSI GS QKD 014 puts identity in the certificate: the KME reads the caller's SAE ID from the
client certificate's CN, and the SAE checks the KME ID in the server certificate. Keys are ECDSA
P-256 (fast handshakes). ensure() is idempotent: it keeps what is valid and reissues what is
missing, expired, mismatched or signed by another CA. Private keys are 0600 and written atomically.
"""

import datetime
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 825
RENEW_BEFORE = datetime.timedelta(days=30)
_BACKDATE = datetime.timedelta(hours=1)  # tolerate small clock differences


@dataclass(frozen=True)
class Pki:
    ca: Path    # lab_dir/pki/ca.crt (ca.key beside it)
    kme: dict   # kme_id -> (cert Path, key Path)
    sae: dict   # sae_id -> (cert Path, key Path)


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name="qkdlab CA", days=CA_DAYS):
    """A new self-signed CA: (certificate, private key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    public = key.public_key()
    cert = (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def issue(ca_cert, ca_key, common_name, server=False, dns=(), ips=(), days=LEAF_DAYS):
    """A leaf certificate signed by the CA: (certificate, private key).

    server=True: a TLS server certificate (serverAuth) with the given SANs; else a client one.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    public = key.public_key()
    builder = (x509.CertificateBuilder()
               .subject_name(_name(common_name)).issuer_name(ca_cert.subject)
               .public_key(public).serial_number(x509.random_serial_number())
               .not_valid_before(now - _BACKDATE).not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=False, crl_sign=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                     else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _atomic_write(path, data, mode):
    """Write data to path through a temporary file in the same directory, then rename.

    Readers see the old file or the new one, never a part. Not synced to disk: should a power cut
    truncate a file, the next ensure() finds the pair unusable and issues it again.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_pair(cert, key, cert_path, key_path):
    """Store a certificate (0644) and its private key (0600, unencrypted PEM), key first."""
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _atomic_write(Path(key_path), key_pem, 0o600)
    _atomic_write(Path(cert_path), cert.public_bytes(serialization.Encoding.PEM), 0o644)


def load_pair(cert_path, key_path):
    """(certificate, private key) from PEM files, or None when either is missing or unreadable."""
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return cert, key


def _public_der(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _sans(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _usable(pair, common_name, ca_cert=None, dns=()):
    """True when the pair matches, names common_name (and dns in its SAN), is valid for a while
    and (if given) chains to ca_cert."""
    if pair is None:
        return False
    cert, key = pair
    if dns:
        sans = _sans(cert)
        if sans is None or not set(dns) <= set(sans.get_values_for_type(x509.DNSName)):
            return False
    if _public_der(cert.public_key()) != _public_der(key.public_key()):
        return False
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or cns[0].value != common_name:
        return False
    now = _now()
    if not cert.not_valid_before_utc <= now or cert.not_valid_after_utc - now < RENEW_BEFORE:
        return False
    if ca_cert is not None:
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
    return True


def _fix_key_mode(key_path):
    if key_path.exists() and key_path.stat().st_mode & 0o777 != 0o600:
        os.chmod(key_path, 0o600)


def ensure(topo):
    """Create what is missing of the lab PKI under topo.lab_dir/pki and return its paths."""
    base = Path(topo.lab_dir) / "pki"
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o700)

    ca_path, ca_key_path = base / "ca.crt", base / "ca.key"
    ca_pair = load_pair(ca_path, ca_key_path)
    if not _usable(ca_pair, "qkdlab CA"):
        ca_pair = make_ca("qkdlab CA")
        write_pair(*ca_pair, ca_path, ca_key_path)
    _fix_key_mode(ca_key_path)
    ca_cert, ca_key = ca_pair

    def leaf(common_name, server):
        cert_path, key_path = base / (common_name + ".crt"), base / (common_name + ".key")
        extra = dict(dns=(common_name, "localhost"), ips=("127.0.0.1",)) if server else {}
        if not _usable(load_pair(cert_path, key_path), common_name, ca_cert, extra.get("dns", ())):
            write_pair(*issue(ca_cert, ca_key, common_name, server=server, **extra), cert_path, key_path)
        _fix_key_mode(key_path)
        return cert_path, key_path

    kme = {node.kme_id: leaf(node.kme_id, True) for node in topo.nodes.values()}
    sae = {sae_id: leaf(sae_id, False) for node in topo.nodes.values() for sae_id in node.saes}
    return Pki(ca=ca_path, kme=kme, sae=sae)
