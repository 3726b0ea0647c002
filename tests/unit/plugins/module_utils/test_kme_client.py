# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""KmeClient against a real HTTPS KME: request shapes, response shapes, validation, HTTP errors."""

from __future__ import annotations

import base64
import pickle

import pytest

from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError
from ansible_collections.qkd.nfv.plugins.module_utils.kme import (
    KmeAuthenticationError, KmeClient, KmeProtocolError, KmeRequestError, KmeUnavailableError,
    QkdKey, kme_client_from_params, stored_key_bits)

UUID1 = "bc490419-7d60-487f-adc1-4ddcc177c139"
UUID2 = "0a782fb5-3434-48fe-aa4d-14f41d46cf92"
KEY256 = base64.b64encode(bytes(range(32))).decode()  # recognisable, to prove it never leaks


@pytest.fixture
def client(connection):
    with kme_client_from_params(connection) as c:
        yield c


def client_as(pki, kme, sae, **options):
    return KmeClient(kme.url, pki.path("ca"), pki.path(sae), pki.key(sae), kme_id="kme-test",
                     backoff_factor=0, **options)


def key_reply(*key_ids, key=KEY256):
    return {"keys": [{"key_ID": k, "key": key} for k in key_ids]}


def assert_no_key(exc):
    text = str(exc) + repr(exc.details)
    assert KEY256 not in text and bytes(range(32)).hex() not in text


# -- status ----------------------------------------------------------------------------------

def test_status_fields_verbatim_and_stored_bits(client, kme):
    status = client.status("sae-b")
    assert status == kme.status_body("sae-a", "sae-b")
    assert stored_key_bits(status) == 25 * 256
    assert kme.requests[0]["method"] == "GET"
    assert kme.requests[0]["path"] == "/api/v1/keys/sae-b/status"


def test_status_keeps_extension_and_tolerates_missing_optional_fields(client, kme):
    kme.reply(200, {"source_KME_ID": "kme-test", "target_KME_ID": "kme-peer", "key_size": 352,
                    "stored_key_count": 3, "status_extension": {"vendor_link": "l1"}})
    status = client.status("sae-b")
    assert status["status_extension"] == {"vendor_link": "l1"}
    assert "max_key_per_request" not in status
    assert stored_key_bits(status) == 3 * 352


@pytest.mark.parametrize("body, problem", [
    ({"target_KME_ID": "k", "key_size": 256, "stored_key_count": 1}, "source_KME_ID is missing"),
    ({"source_KME_ID": "a", "target_KME_ID": "k", "key_size": 256}, "stored_key_count is missing"),
    ({"source_KME_ID": "a", "target_KME_ID": "k", "key_size": "256", "stored_key_count": 1}, "key_size"),
    ({"source_KME_ID": "a", "target_KME_ID": "k", "key_size": 256, "stored_key_count": -1}, "stored_key_count"),
    ({"source_KME_ID": "a", "target_KME_ID": "k", "key_size": 256, "stored_key_count": True}, "stored_key_count"),
    ({"source_KME_ID": 7, "target_KME_ID": "k", "key_size": 256, "stored_key_count": 1}, "source_KME_ID"),
])
def test_status_rejects_invalid_status(client, kme, body, problem):
    kme.reply(200, body)
    with pytest.raises(KmeProtocolError, match=problem):
        client.status("sae-b")


def test_sae_id_is_url_encoded_in_the_path(client, kme):
    client.status("sae b/1")
    assert kme.requests[0]["sae_id"] == "sae b/1"
    assert kme.requests[0]["path"] == "/api/v1/keys/sae%20b%2F1/status"


def test_base_url_with_a_path_prefix(pki, kme):
    kme.reply(200, kme.status_body("sae-a", "sae-b"))
    client = KmeClient(kme.url + "/qkd/", pki.path("ca"), pki.path("sae-a"), pki.key("sae-a"))
    client.status("sae-b")
    assert kme.requests[0]["path"] == "/qkd/api/v1/keys/sae-b/status"


# -- enc_keys / dec_keys request shapes ------------------------------------------------------

def test_enc_keys_posts_an_empty_object_by_default(client, kme):
    keys = client.enc_keys("sae-b")
    assert kme.requests[0]["method"] == "POST" and kme.requests[0]["body"] == {}
    assert len(keys) == 1 and keys[0].size == 256 and len(keys[0].material) == 32


def test_enc_keys_posts_every_field(client, kme):
    kme.reply(200, key_reply(UUID1, UUID2))
    keys = client.enc_keys("sae-b", number=2, size=256, additional_slave_sae_ids=["sae-c"],
                           extension_mandatory=[{"abc_route_type": "direct"}],
                           extension_optional=[{"abc_max_age": 30000}])
    assert kme.requests[0]["body"] == {
        "number": 2, "size": 256, "additional_slave_SAE_IDs": ["sae-c"],
        "extension_mandatory": [{"abc_route_type": "direct"}],
        "extension_optional": [{"abc_max_age": 30000}]}
    assert [k.key_id for k in keys] == [UUID1, UUID2]


def test_enc_keys_get_puts_number_and_size_in_the_query(pki, kme):
    keys = client_as(pki, kme, "sae-a", method="GET").enc_keys("sae-b", number=3, size=512)
    request = kme.requests[0]
    assert request["method"] == "GET" and request["body"] is None
    assert request["query"] == {"number": "3", "size": "512"}
    assert [k.size for k in keys] == [512] * 3


def test_enc_keys_get_refuses_fields_a_get_cannot_carry(pki, kme):
    client = client_as(pki, kme, "sae-a", method="GET")
    with pytest.raises(KmeRequestError, match="extension_mandatory.*use method POST") as info:
        client.enc_keys("sae-b", extension_mandatory=[{"x_a": 1}])
    assert info.value.details["option"] == "extension_mandatory"
    assert kme.count() == 0


def test_dec_keys_posts_key_ids_with_the_master_in_the_path(pki, kme):
    master, slave = client_as(pki, kme, "sae-a"), client_as(pki, kme, "sae-b")
    taken = master.enc_keys("sae-b", number=2)
    delivered = slave.dec_keys("sae-a", [k.key_id for k in taken], size=256)
    assert delivered == taken
    request = kme.requests[1]
    assert request["path"] == "/api/v1/keys/sae-a/dec_keys"
    assert request["body"] == {"key_IDs": [{"key_ID": k.key_id} for k in taken]}


def test_dec_keys_get_sends_one_key_id_in_the_query(pki, kme):
    taken = client_as(pki, kme, "sae-a").enc_keys("sae-b")
    delivered = client_as(pki, kme, "sae-b", method="GET").dec_keys("sae-a", [taken[0].key_id])
    assert delivered == taken
    assert kme.requests[1]["method"] == "GET" and kme.requests[1]["query"] == {"key_ID": taken[0].key_id}


def test_dec_keys_get_refuses_two_key_ids(pki, kme):
    with pytest.raises(KmeRequestError, match="one key_ID per request"):
        client_as(pki, kme, "sae-b", method="GET").dec_keys("sae-a", [UUID1, UUID2])
    assert kme.count() == 0


def test_keys_are_delivered_once(pki, kme):
    taken = client_as(pki, kme, "sae-a").enc_keys("sae-b")
    slave = client_as(pki, kme, "sae-b")
    slave.dec_keys("sae-a", [taken[0].key_id])
    with pytest.raises(KmeRequestError, match="not found on KME; check key_ids") as info:
        slave.dec_keys("sae-a", [taken[0].key_id])
    assert info.value.details["http_status"] == 400


def test_a_third_sae_is_refused_with_401(pki, kme):
    taken = client_as(pki, kme, "sae-a").enc_keys("sae-b")
    with pytest.raises(KmeAuthenticationError, match="HTTP 401.*only the slave SAE") as info:
        client_as(pki, kme, "sae-c").dec_keys("sae-a", [taken[0].key_id])
    assert info.value.details["http_status"] == 401
    assert_no_key(info.value)


# -- client-side input checks: refused before anything is sent ------------------------------

@pytest.mark.parametrize("call, option", [
    (lambda c: c.enc_keys("sae-b", number=0), "number"),
    (lambda c: c.enc_keys("sae-b", size=-8), "size"),
    (lambda c: c.enc_keys("sae-b", size="256"), "size"),
    (lambda c: c.enc_keys("sae-b", number=True), "number"),
    (lambda c: c.enc_keys("sae-b", additional_slave_sae_ids="sae-c"), "additional_slave_sae_ids"),
    (lambda c: c.enc_keys("", number=1), "slave_sae_id"),
    (lambda c: c.dec_keys("sae-a", ["not-a-uuid"]), "key_ids"),
    (lambda c: c.dec_keys("sae-a", UUID1), "key_ids"),
    (lambda c: c.dec_keys("sae-a", []), "key_ids"),
    (lambda c: c.dec_keys("sae-a", [UUID1, UUID1]), "key_ids"),
    (lambda c: c.dec_keys(None, [UUID1]), "master_sae_id"),
])
def test_bad_input_names_the_option_and_sends_nothing(client, kme, call, option):
    with pytest.raises(KmeRequestError) as info:
        call(client)
    assert info.value.details.get("option") == option or info.value.msg.startswith(option)
    assert option in info.value.msg
    assert kme.count() == 0


def test_non_uuid_key_id_message_says_what_to_pass(client):
    with pytest.raises(KmeRequestError, match=r"key_ids\[0\] 'abc' is not a key_ID.*UUID"):
        client.dec_keys("sae-a", ["abc"])


# -- response shapes real KMEs send ---------------------------------------------------------

def test_capitalised_keys_item_and_uppercase_non_v4_key_ids(client, kme):
    odd_ids = ["8844CBA7-29E1-3251-A1B2-0123456789AB", "ffffffff-ffff-ffff-ffff-ffffffffffff"]
    kme.reply(200, {"Keys": [{"key_ID": k, "key": KEY256, "key_extension": {}} for k in odd_ids],
                    "key_container_extension": {}})
    keys = client.enc_keys("sae-b", number=2, size=256)
    assert [k.key_id for k in keys] == odd_ids  # kept as spelt, for the peer's dec_keys


def test_sizes_not_a_multiple_of_8_arrive_as_whole_bytes(pki, make_kme):
    kme = make_kme(sizes_multiple_of_8=False)
    keys = client_as(pki, kme, "sae-a").enc_keys("sae-b", size=100)
    assert keys[0].size == 100 and len(keys[0].material) == 13


def test_size_not_a_multiple_of_8_refused_by_the_kme_says_what_to_do(client, kme):
    with pytest.raises(KmeRequestError, match="size shall be a multiple of 8; set size to a multiple of 8"):
        client.enc_keys("sae-b", size=100)


@pytest.mark.parametrize("body, problem", [
    (b"<html>oops</html>", "not JSON"),
    ([1, 2], "JSON list"),
    ({"key_IDs": []}, "keys is missing"),
    ({"keys": "x"}, "keys is missing"),
    ({"keys": [{"key_ID": UUID1, "key": KEY256}]}, "1 keys where 2"),
    ({"keys": [{"key_ID": UUID1, "key": KEY256}, {"key_ID": "k2", "key": KEY256}]}, r"keys\[1\].key_ID is not a UUID"),
    ({"keys": [{"key_ID": UUID1, "key": KEY256}, {"key_ID": UUID2, "key": KEY256[:-2] + "!="}]}, "not valid base64"),
    ({"keys": [{"key_ID": UUID1, "key": KEY256}, {"key_ID": UUID2}]}, "no key string"),
    ({"keys": [{"key_ID": UUID1, "key": KEY256}, {"key_ID": UUID2, "key": ""}]}, "is empty"),
    ({"keys": [{"key_ID": UUID1, "key": KEY256}, {"key_ID": UUID1, "key": KEY256}]}, "appears twice"),
    ({"keys": [{"key_ID": UUID1, "key": KEY256}, {"key_ID": UUID2, "key": KEY256[:12]}]}, "72 bits where 256"),
    ({"keys": [{"key_ID": UUID1, "key": KEY256}, 5]}, r"keys\[1\] is not an object"),
])
def test_invalid_key_containers_are_protocol_errors_without_key_material(client, kme, body, problem):
    kme.reply(200, body)
    with pytest.raises(KmeProtocolError, match=problem) as info:
        client.enc_keys("sae-b", number=2, size=256)
    assert_no_key(info.value)


def test_bits_bytes_bug_is_caught(client, kme):
    # A KME that treats size as bytes sends 256 bytes for size 256.
    kme.reply(200, key_reply(UUID1, key=base64.b64encode(bytes(256)).decode()))
    with pytest.raises(KmeProtocolError, match="2048 bits where 256"):
        client.enc_keys("sae-b", size=256)


def test_floor_to_bytes_bug_is_caught(client, kme):
    kme.reply(200, key_reply(UUID1, key=base64.b64encode(bytes(12)).decode()))
    with pytest.raises(KmeProtocolError, match="96 bits where 100"):
        client.enc_keys("sae-b", size=100)


def test_default_size_keys_must_agree(client, kme):
    kme.reply(200, {"keys": [{"key_ID": UUID1, "key": KEY256},
                             {"key_ID": UUID2, "key": base64.b64encode(bytes(16)).decode()}]})
    with pytest.raises(KmeProtocolError, match="differ in size"):
        client.enc_keys("sae-b", number=2)


def test_dec_keys_must_return_the_keys_asked_for(client, kme):
    kme.reply(200, key_reply(UUID2))
    with pytest.raises(KmeProtocolError, match="not those asked for"):
        client.dec_keys("sae-a", [UUID1])


def test_dec_keys_checks_the_expected_size(client, kme):
    kme.reply(200, key_reply(UUID1))
    with pytest.raises(KmeProtocolError, match="256 bits where 512"):
        client.dec_keys("sae-a", [UUID1], size=512)


# -- HTTP errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("status, body, error, text", [
    (400, {"message": "not all extension_mandatory parameters are supported",
           "details": [{"extension_mandatory_unsupported": "abc_route_type is not supported"}]},
     KmeRequestError, "HTTP 400.*remove the unsupported entries from extension_mandatory"),
    (400, {"message": "keys exhausted"}, KmeRequestError, "HTTP 400\\): keys exhausted$"),
    (401, None, KmeAuthenticationError, "refused the SAE of client_cert \\(HTTP 401\\)"),
    (401, b"<html><body>401 Unauthorized</body></html>", KmeAuthenticationError, "HTTP 401"),
    (403, None, KmeAuthenticationError, "HTTP 403"),
    (404, None, KmeRequestError, "HTTP 404.*check kme_url"),
    (404, {"message": "key not found"}, KmeRequestError, "HTTP 404\\): key not found"),
    (409, {"message": "resource on a remote KME are not synced"}, KmeUnavailableError, "HTTP 409"),
    (422, {"detail": "size: value is not a valid integer"}, KmeRequestError, "HTTP 422.*valid integer"),
    (500, b"Internal Server Error", KmeUnavailableError, "HTTP 500"),
    (504, {"message": "maybe a remote KME is down"}, KmeUnavailableError, "HTTP 504\\): maybe"),
    (302, None, KmeProtocolError, "unexpected HTTP 302"),
])
def test_http_errors_are_typed(client, kme, status, body, error, text):
    kme.reply(status, body, content_type="text/html" if isinstance(body, bytes) else "application/json")
    with pytest.raises(error, match=text) as info:
        client.enc_keys("sae-b", number=1)
    assert info.value.details["http_status"] == status
    assert info.value.details["kme_id"] == "kme-test"
    assert kme.count() == 1  # none of these is retried
    if isinstance(body, dict) and "details" in body:
        assert info.value.details["kme_details"] == body["details"]


def test_errors_are_collection_errors(client, kme):
    kme.reply(400, {"message": "bad"})
    with pytest.raises(QkdNfvError):
        client.status("sae-b")


# -- keys as objects ------------------------------------------------------------------------

def test_key_repr_and_str_never_show_material():
    material = bytes(range(32))
    key = QkdKey(UUID1, material)
    for text in (repr(key), str(key), "%s" % key, "{}".format([key])):
        assert UUID1 in text and "size=256" in text
        assert base64.b64encode(material).decode() not in text and material.hex() not in text
        assert repr(material)[2:-1] not in text
    assert key.material == material and key.size == 256


def test_key_equality_and_no_pickling():
    assert QkdKey(UUID1, b"\x01" * 32) == QkdKey(UUID1, b"\x01" * 32)
    assert QkdKey(UUID1, b"\x01" * 32) != QkdKey(UUID1, b"\x02" * 32)
    with pytest.raises(TypeError):
        pickle.dumps(QkdKey(UUID1, b"\x01" * 32))
