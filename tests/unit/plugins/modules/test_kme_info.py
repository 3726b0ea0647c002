# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kme_info against the in-process HTTPS test KME."""

from __future__ import annotations

import pytest

from ansible_collections.qkd.nfv.plugins.modules import kme_info


def args(connection, **extra):
    result = {k: v for k, v in connection.items() if v is not None}
    result.update(slave_sae_id="sae-b")
    result.update(extra)
    return result


@pytest.mark.parametrize("check_mode", [False, True])
def test_status_verbatim_plus_stored_key_bits(run_main, connection, kme, check_mode):
    result = run_main(kme_info.main, args(connection, _ansible_check_mode=check_mode))
    assert result["changed"] is False and "failed" not in result
    assert result["status"] == kme.status_body("sae-a", "sae-b")
    assert result["stored_key_bits"] == 25 * 256
    assert [r["operation"] for r in kme.requests] == ["status"]


def test_extension_fields_are_returned_verbatim(run_main, connection, kme):
    body = dict(kme.status_body("sae-a", "sae-b"), status_extension={"abc_link": "node1-node2"})
    kme.reply(200, body)
    assert run_main(kme_info.main, args(connection))["status"] == body


def test_connection_from_environment_and_inventory_aliases(run_main, connection, kme, pki, monkeypatch):
    monkeypatch.setenv("QKD_KME_URL", kme.url)
    monkeypatch.setenv("QKD_KME_ID", "kme-test")
    monkeypatch.setenv("QKD_SAE_CERT", pki.path("sae-c"))
    monkeypatch.setenv("QKD_SAE_KEY", pki.key("sae-c"))
    result = run_main(kme_info.main, {"slave_sae_id": "sae-b", "kme_ca_cert": pki.path("ca")})
    assert result["status"]["slave_SAE_ID"] == "sae-b"
    assert kme.requests[0]["caller"] == "sae-c"


def test_missing_certificate_file_is_a_clear_failure(run_main, connection, tmp_path):
    result = run_main(kme_info.main, args(connection, client_cert=str(tmp_path / "sae.crt")))
    assert result["failed"] is True
    assert result["msg"].startswith("client_cert %s cannot be read" % (tmp_path / "sae.crt"))
    assert "set client_cert to the SAE's certificate" in result["msg"]
    assert "exception" not in result


def test_wrong_kme_id_names_both(run_main, connection, kme):
    result = run_main(kme_info.main, args(connection, kme_id="kme-node9"))
    assert result["failed"] is True
    assert "not for KME ID kme-node9" in result["msg"] and "kme-test" in result["msg"]
    assert result["kme_id"] == "kme-node9"
    assert kme.count() == 0


def test_unavailable_kme_after_retries(run_main, connection, kme):
    for _attempt in range(3):
        kme.reply(503, {"message": "key data access error"})
    result = run_main(kme_info.main, args(connection, retries=1))
    assert result["failed"] is True
    assert "HTTP 503 after 1 retries" in result["msg"] and result["http_status"] == 503
    assert kme.count() == 2


def test_required_connection_options(run_main, monkeypatch):
    for name in ("QKD_KME_URL", "QKD_KME_ID", "QKD_SAE_CERT", "QKD_SAE_KEY", "QKD_KME_CA_CERT"):
        monkeypatch.delenv(name, raising=False)
    result = run_main(kme_info.main, {"slave_sae_id": "sae-b"})
    assert result["failed"] is True
    for option in ("kme_url", "kme_id", "client_cert", "client_key"):
        assert option in result["msg"]
