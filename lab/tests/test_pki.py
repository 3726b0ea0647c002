"""The lab PKI: files, modes, names, chains, idempotence."""

import stat

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from qkdlab import pki


def _cert(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def _cn(cert):
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_files_and_modes(lab_topology):
    result = pki.ensure(lab_topology)
    base = lab_topology.lab_dir / "pki"
    assert result.ca == base / "ca.crt" and (base / "ca.key").exists()
    assert set(result.kme) == {n.kme_id for n in lab_topology.nodes.values()}
    assert set(result.sae) == {sae for n in lab_topology.nodes.values() for sae in n.saes}
    assert {"sae-node1", "sae-node1-ops", "sae-node2"} <= set(result.sae)
    for cert_path, key_path in [*result.kme.values(), *result.sae.values()]:
        assert cert_path.parent == base and key_path == cert_path.with_suffix(".key")
        assert _mode(key_path) == 0o600
    assert _mode(base / "ca.key") == 0o600
    assert _mode(base) == 0o700
    assert not [p for p in base.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_kme_certificates(lab_topology):
    result = pki.ensure(lab_topology)
    ca = _cert(result.ca)
    for kme_id, (cert_path, _) in result.kme.items():
        cert = _cert(cert_path)
        assert _cn(cert) == kme_id
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [kme_id, "localhost"]
        assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.SERVER_AUTH in eku
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert cert.public_key().curve.name == "secp256r1"
        cert.verify_directly_issued_by(ca)


def test_sae_certificates(lab_topology):
    result = pki.ensure(lab_topology)
    ca = _cert(result.ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for sae_id, (cert_path, _) in result.sae.items():
        cert = _cert(cert_path)
        assert _cn(cert) == sae_id
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
        cert.verify_directly_issued_by(ca)


def test_ensure_is_idempotent(lab_topology):
    first = pki.ensure(lab_topology)
    before = _snapshot(lab_topology.lab_dir / "pki")
    assert pki.ensure(lab_topology) == first
    assert _snapshot(lab_topology.lab_dir / "pki") == before


def test_missing_pair_is_reissued_alone(lab_topology):
    result = pki.ensure(lab_topology)
    before = _snapshot(lab_topology.lab_dir / "pki")
    result.sae["sae-node2"][1].unlink()
    pki.ensure(lab_topology)
    after = _snapshot(lab_topology.lab_dir / "pki")
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"sae-node2.crt", "sae-node2.key"}
    assert _mode(result.sae["sae-node2"][1]) == 0o600


def test_loose_key_mode_is_tightened(lab_topology):
    result = pki.ensure(lab_topology)
    key = result.kme["kme-node1"][1]
    key.chmod(0o644)
    pki.ensure(lab_topology)
    assert _mode(key) == 0o600


def test_new_ca_reissues_everything(lab_topology):
    result = pki.ensure(lab_topology)
    (lab_topology.lab_dir / "pki" / "ca.key").unlink()
    old_ca = _cert(result.ca)
    pki.ensure(lab_topology)
    new_ca = _cert(result.ca)
    assert new_ca.serial_number != old_ca.serial_number
    for cert_path, _ in [*result.kme.values(), *result.sae.values()]:
        _cert(cert_path).verify_directly_issued_by(new_ca)


def test_foreign_ca_helpers(tmp_path, lab_topology):
    lab_ca = _cert(pki.ensure(lab_topology).ca)
    ca_cert, ca_key = pki.make_ca("foreign CA")
    cert, key = pki.issue(ca_cert, ca_key, "sae-node1")
    pki.write_pair(cert, key, tmp_path / "f.crt", tmp_path / "f.key")
    assert _mode(tmp_path / "f.key") == 0o600
    loaded, _ = pki.load_pair(tmp_path / "f.crt", tmp_path / "f.key")
    loaded.verify_directly_issued_by(ca_cert)
    with pytest.raises((ValueError, InvalidSignature)):
        loaded.verify_directly_issued_by(lab_ca)
