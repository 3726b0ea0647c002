# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""KmeClient's TLS: mutual authentication, the KME ID check, hostname checking, ciphers, config errors."""

from __future__ import annotations

import ssl

import pytest

from ansible_collections.qkd.nfv.plugins.module_utils.kme import (
    KmeAuthenticationError, KmeClient, KmeConfigError, certificate_names)


def client(pki, url, sae="sae-a", ca="ca", kme_id="kme-test", **options):
    return KmeClient(url, pki.path(ca), pki.path(sae), pki.key(sae), kme_id=kme_id,
                     backoff_factor=0, **options)


@pytest.mark.parametrize("cert", ["kme-test", "kme-san-only"])
def test_kme_id_in_cn_or_san_is_accepted(pki, make_kme, cert):
    kme = make_kme(cert=cert)
    assert client(pki, kme.url).status("sae-b")["source_KME_ID"] == "kme-test"


def test_a_certificate_for_another_kme_is_refused_before_any_request(pki, make_kme):
    kme = make_kme(cert="kme-other")
    with pytest.raises(KmeAuthenticationError,
                       match="certificate for kme-other, localhost, not for KME ID kme-test") as info:
        client(pki, kme.url).enc_keys("sae-b")
    assert info.value.details["kme_id"] == "kme-test"
    assert kme.count() == 0  # the API is not used until the KME ID is verified


def test_without_kme_id_only_the_chain_and_hostname_are_checked(pki, make_kme):
    kme = make_kme(cert="kme-other")
    assert client(pki, kme.url, kme_id=None).status("sae-b")


def test_a_kme_signed_by_another_ca_fails_naming_the_kme_and_ca_cert(pki, make_kme):
    kme = make_kme(cert="kme-rogue")
    with pytest.raises(KmeAuthenticationError,
                       match="TLS: the certificate of KME kme-test .*certificate verify failed|"
                             "TLS: the certificate of KME kme-test .*unable to get local issuer"
                       ) as info:
        client(pki, kme.url).status("sae-b")
    assert "check ca_cert" in info.value.msg
    assert kme.count() == 0


def test_wrong_ca_bundle_fails_without_retries(pki, kme):
    with pytest.raises(KmeAuthenticationError, match="kme-test.*check ca_cert"):
        client(pki, kme.url, ca="rogue-ca", retries=3).status("sae-b")
    assert kme.settled_handshake_failures() == 1


@pytest.mark.parametrize("cert", ["kme-cn-only", "kme-no-ip"])
def test_hostname_mismatch_hints_at_validate_hostname(pki, make_kme, cert):
    kme = make_kme(cert=cert)
    with pytest.raises(KmeAuthenticationError, match="validate_hostname: false"):
        client(pki, kme.url).status("sae-b")
    # Reached by IP with hostname checking off: the KME ID (CN or SAN) is still verified.
    assert client(pki, kme.url, validate_hostname=False).status("sae-b")
    with pytest.raises(KmeAuthenticationError, match="not for KME ID kme-x"):
        client(pki, kme.url, kme_id="kme-x", validate_hostname=False).status("sae-b")


def test_hostname_checked_by_name(pki, kme):
    assert client(pki, "https://localhost:%d" % kme.port).status("sae-b")


def test_a_client_certificate_the_kme_does_not_trust_is_refused(pki, kme):
    with pytest.raises(KmeAuthenticationError, match="TLS handshake with KME kme-test.*client_cert"):
        client(pki, kme.url, sae="sae-rogue", retries=3).status("sae-b")
    assert kme.count() == 0 and kme.settled_handshake_failures() == 1


def test_the_kme_sees_the_sae_of_the_client_certificate(pki, kme):
    client(pki, kme.url, sae="sae-c").status("sae-b")
    assert kme.requests[0]["caller"] == "sae-c"


def test_old_cipher_kme_needs_the_ciphers_option(pki, make_kme):
    kme = make_kme(max_tls=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES256-SHA")
    with pytest.raises(KmeAuthenticationError, match="set ciphers"):
        client(pki, kme.url).status("sae-b")
    assert client(pki, kme.url, ciphers="DEFAULT").status("sae-b")


# -- configuration errors: named, never a traceback, never a password prompt ---------------

@pytest.mark.parametrize("option", ["ca_cert", "client_cert", "client_key"])
def test_missing_certificate_files_name_the_option(pki, kme, tmp_path, option):
    paths = {"ca_cert": pki.path("ca"), "client_cert": pki.path("sae-a"), "client_key": pki.key("sae-a")}
    paths[option] = str(tmp_path / "missing.pem")
    with pytest.raises(KmeConfigError, match="^%s .*missing.pem cannot be read.*set %s to" % (option, option)) as info:
        KmeClient(kme.url, **paths)
    assert info.value.details["option"] == option


def test_mismatched_key_and_certificate(pki, kme):
    with pytest.raises(KmeConfigError, match="cannot be loaded together") as info:
        KmeClient(kme.url, pki.path("ca"), pki.path("sae-a"), pki.key("sae-b"))
    assert info.value.details["option"] == "client_key"


def test_encrypted_key_fails_instead_of_prompting(pki, kme, tmp_path):
    from cryptography.hazmat.primitives import serialization
    with open(pki.key("sae-a"), "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), None)
    encrypted = tmp_path / "enc.key"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(KmeConfigError, match="unencrypted"):
        KmeClient(kme.url, pki.path("ca"), pki.path("sae-a"), str(encrypted))


def test_a_ca_file_without_certificates(pki, kme, tmp_path):
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")
    with pytest.raises(KmeConfigError, match="ca_cert .* holds no usable PEM certificate"):
        KmeClient(kme.url, str(empty), pki.path("sae-a"), pki.key("sae-a"))


@pytest.mark.parametrize("kwargs, option", [
    ({"url": "http://127.0.0.1:1"}, "kme_url"),
    ({"url": "kme1:443"}, "kme_url"),
    ({"url": ""}, "kme_url"),
    ({"url": "https://kme1/?x=1"}, "kme_url"),
    ({"ciphers": "NO-SUCH-CIPHER"}, "ciphers"),
    ({"method": "PUT"}, "method"),
    ({"retries": -1}, "retries"),
    ({"timeout": 0}, "timeout"),
    ({"client_cert": None}, "client_cert"),
])
def test_bad_settings_name_the_option(pki, kme, kwargs, option):
    settings = {"url": kme.url, "ca_cert": pki.path("ca"), "client_cert": pki.path("sae-a"),
                "client_key": pki.key("sae-a")}
    settings.update(kwargs)
    with pytest.raises(KmeConfigError) as info:
        KmeClient(**settings)
    assert info.value.details["option"] == option and option in info.value.msg


def test_certificate_names_reads_cn_dns_and_uri():
    cert = {"subject": ((("countryName", "EU"),), (("commonName", "kme-a"),)),
            "subjectAltName": (("DNS", "kme-a.example"), ("URI", "urn:kme:a"), ("IP Address", "10.0.0.1"))}
    assert certificate_names(cert) == {"kme-a", "kme-a.example", "urn:kme:a"}
