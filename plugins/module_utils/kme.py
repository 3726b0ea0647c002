# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A client for one KME speaking ETSI GS QKD 014 v1.1.1 (REST key delivery), over mutual TLS.

API (stable; other modules and plain Python build on it)::

    client = KmeClient(url, ca_cert, client_cert, client_key, kme_id=None,
                       validate_hostname=True, timeout=10, retries=3, ciphers=None,
                       method='POST')
    client = kme_client_from_params(module.params)   # the same, from the shared argument spec

    client.status(slave_sae_id)                      -> dict, the Status fields verbatim
    client.enc_keys(slave_sae_id, number=None, size=None, additional_slave_sae_ids=None,
                    extension_mandatory=None, extension_optional=None)   -> [QkdKey]
    client.dec_keys(master_sae_id, key_ids, size=None)                   -> [QkdKey]
    stored_key_bits(status)                          -> stored_key_count * key_size
    client.close()  (or use the client as a context manager)

    check_key_ids(key_ids)                           raises KmeRequestError unless UUIDs, distinct
    write_key_files(directory, keys, file_format='raw')   -> [path]: one 0600 file per key, atomic
    key_file_path(directory, key_id, file_format='raw')   -> <directory>/<key_ID>.key (or .b64)

Errors, all KmeError(QkdNfvError) with `msg` and `details` (kme_id, kme_url, http_status,
kme_message, kme_details, option): KmeConfigError (local settings), KmeAuthenticationError (TLS,
KME ID, 401/403), KmeUnavailableError (connect, timeout, 409, 5xx), KmeProtocolError (a response
the standard does not allow), KmeRequestError (400/404/422, or refused before sending).

A QkdKey has .key_id (str, as the KME spelt it), .size (bits) and .material (bytes); its repr
and str never show the material.

Security: TLS >= 1.2; the KME's chain is verified against ca_cert, then the certificate must name
kme_id (subject CN or a DNS/URI subjectAltName) before any request is sent. Hostname checking
against the URL is on by default; turn it off only for KMEs reached by an address their
certificate does not name (the KME ID is still checked). `ciphers` (an OpenSSL cipher string)
is for KMEs stuck on TLS 1.2 suites the Python default excludes, e.g. 'DEFAULT'.

Retries (urllib3 Retry, exponential backoff): status and dec_keys retry on connection errors,
dropped connections and HTTP 503. enc_keys retries only where no key can have been taken:
failed connections (the request never left) and 503 (the KME answered that it delivered
nothing). It does not retry a timeout or a connection dropped after the request was sent,
because the KME may already have removed those keys from its pool; a retry would take fresh
keys and strand the first ones. TLS and certificate errors are never retried.

Every response is validated (JSON, required fields, UUID key_IDs, strict base64, the number of
keys, the size in bits) and every failure raises a KmeError subclass whose message names the
KME and, for bad input, the parameter and the fix. No message ever contains key material.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import re
import ssl
import tempfile
from urllib.parse import quote, urlencode

try:
    import urllib3
    from urllib3.exceptions import (
        HTTPError, MaxRetryError, NewConnectionError, ConnectTimeoutError, SSLError, LocationParseError,
    )
    from urllib3.util.retry import Retry
    from urllib3.util.timeout import Timeout
    URLLIB3_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the modules as a missing library
    urllib3 = None
    URLLIB3_IMPORT_ERROR = exc

from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError

API_PREFIX = "/api/v1/keys/"
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
STATUS_REQUIRED = ("source_KME_ID", "target_KME_ID", "key_size", "stored_key_count")
STATUS_STRINGS = ("source_KME_ID", "target_KME_ID", "master_SAE_ID", "slave_SAE_ID")
STATUS_INTEGERS = ("key_size", "stored_key_count", "max_key_count", "max_key_per_request",
                   "max_key_size", "min_key_size", "max_SAE_ID_count")

# The exact 400 messages of ETSI GS QKD 014 (clauses 6.2, 6.4) -> what the caller should change.
_SPEC_HINTS = {
    "size shall be a multiple of 8":
        "set size to a multiple of 8 bits (this KME supports no other sizes)",
    "not all extension_mandatory parameters are supported":
        "remove the unsupported entries from extension_mandatory",
    "not all extension_mandatory request options could be met":
        "relax the values in extension_mandatory",
    "not all extension_optional request options handled":
        "the KME ignored some of extension_optional; remove them to silence this",
    "one or more keys specified are not found on KME":
        "check key_ids: a key is delivered once on each side, so it may have been fetched "
        "already, or it was never shared with this SAE's KME",
}


class KmeError(QkdNfvError):
    """Any failure talking to a KME."""


class KmeConfigError(KmeError):
    """The client's own configuration is unusable (URL, certificate files, ciphers)."""


class KmeAuthenticationError(KmeError):
    """TLS verification failed, the certificate names another KME, or the KME answered 401/403."""


class KmeUnavailableError(KmeError):
    """The KME could not be reached, timed out, or reported a server-side error (5xx, 409)."""


class KmeProtocolError(KmeError):
    """The KME answered something ETSI GS QKD 014 does not allow (or an unexpected status)."""


class KmeRequestError(KmeError):
    """The request is invalid: rejected by the KME (400/404/422) or refused before sending."""


class QkdKey:
    """One QKD key. Its repr and str show key_id and size, never the material."""

    __slots__ = ("key_id", "size", "_material")

    def __init__(self, key_id, material, size=None):
        self.key_id = key_id
        self._material = bytes(material)
        self.size = len(self._material) * 8 if size is None else size

    @property
    def material(self):
        return self._material

    def __repr__(self):
        return "QkdKey(key_id=%r, size=%d)" % (self.key_id, self.size)

    __str__ = __repr__

    def __eq__(self, other):
        if not isinstance(other, QkdKey):
            return NotImplemented
        return self.key_id == other.key_id and hmac.compare_digest(self._material, other._material)

    __hash__ = None

    def __reduce__(self):
        raise TypeError("QkdKey is not picklable: key material stays in memory")


def is_key_id(value):
    """True when value is a key_ID in UUID form (any version, either case)."""
    return isinstance(value, str) and bool(_UUID.match(value))


def check_key_ids(key_ids, option="key_ids"):
    """Raise KmeRequestError unless key_ids is a non-empty list of distinct UUID key_IDs."""
    if isinstance(key_ids, str) or not isinstance(key_ids, (list, tuple)) or not key_ids:
        raise KmeRequestError("%s must be a non-empty list of key_IDs" % option, option=option)
    for index, key_id in enumerate(key_ids):
        if not is_key_id(key_id):
            raise KmeRequestError(
                "%s[%d] %r is not a key_ID: ETSI GS QKD 014 key_IDs are UUIDs such as "
                "550e8400-e29b-41d4-a716-446655440000; pass the key_IDs the master SAE received"
                % (option, index, key_id), option=option)
    if len(set(key_ids)) != len(key_ids):
        raise KmeRequestError("%s lists a key_ID twice; list each key once" % option, option=option)


def stored_key_bits(status):
    """The key material a status says is ready to deliver, in bits."""
    return status["stored_key_count"] * status["key_size"]


def kme_client_from_params(params):
    """A KmeClient from the shared argument spec (common.kme_argument_spec) as a plain dict."""
    return KmeClient(
        params["kme_url"], params.get("ca_cert"), params.get("client_cert"), params.get("client_key"),
        kme_id=params.get("kme_id"),
        validate_hostname=params.get("validate_hostname", True),
        timeout=params.get("timeout") or 10,
        retries=params.get("retries", 3),
        ciphers=params.get("ciphers"),
        method=params.get("method") or "POST",
    )


def _positive_int(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise KmeRequestError("%s must be a positive integer, got %r" % (name, value), option=name)
    return value


def _expected_bytes(size):
    # A size that is not a multiple of 8 comes as whole bytes, the last one partly used.
    return (size + 7) // 8


class KmeClient:
    """One KME, seen by one SAE (whose identity is the client certificate)."""

    def __init__(self, url, ca_cert=None, client_cert=None, client_key=None, kme_id=None,
                 validate_hostname=True, timeout=10, retries=3, ciphers=None, method="POST",
                 backoff_factor=0.5):
        if urllib3 is None:
            raise KmeConfigError("the Python library urllib3 is required to talk to a KME: %s"
                                 % URLLIB3_IMPORT_ERROR)
        self.url = url
        self.kme_id = kme_id
        self.ca_cert = ca_cert
        self.method = (method or "POST").upper()
        if self.method not in ("POST", "GET"):
            raise KmeConfigError("method must be POST or GET, got %r" % method, option="method")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise KmeConfigError("retries must be an integer >= 0, got %r" % retries, option="retries")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise KmeConfigError("timeout must be a number of seconds > 0, got %r" % timeout,
                                 option="timeout")
        self.retries = retries
        self.timeout = timeout
        self.backoff_factor = backoff_factor
        self._name = "KME %s at %s" % (kme_id, url) if kme_id else "KME at %s" % url
        host, port, self._base_path = self._parse_url(url)
        context = self._ssl_context(ca_cert, client_cert, client_key, validate_hostname, ciphers)
        self._pool = urllib3.HTTPSConnectionPool(
            host, port, maxsize=1, block=False, ssl_context=context, cert_reqs="CERT_REQUIRED",
            assert_hostname=None if validate_hostname else False,
            timeout=Timeout(connect=timeout, read=timeout), retries=False)
        self._pool.ConnectionCls = _kme_connection_class(kme_id, self._name, ca_cert)

    # -- the three methods of ETSI GS QKD 014 ----------------------------------------------

    def status(self, slave_sae_id):
        """Get status (GET .../{slave_SAE_ID}/status): the Status fields verbatim."""
        body = self._call("GET", slave_sae_id, "status", "slave_sae_id", retry=self._retry(safe=True))
        return self._checked_status(body)

    def enc_keys(self, slave_sae_id, number=None, size=None, additional_slave_sae_ids=None,
                 extension_mandatory=None, extension_optional=None):
        """Get key (master SAE): new keys shared with slave_sae_id. Each call consumes keys."""
        _positive_int("number", number)
        _positive_int("size", size)
        request = {}
        if number is not None:
            request["number"] = number
        if size is not None:
            request["size"] = size
        extras = (("additional_slave_sae_ids", "additional_slave_SAE_IDs", additional_slave_sae_ids),
                  ("extension_mandatory", "extension_mandatory", extension_mandatory),
                  ("extension_optional", "extension_optional", extension_optional))
        for option, field, value in extras:
            if value is None:
                continue
            if not isinstance(value, (list, tuple)):
                raise KmeRequestError("%s must be a list, got %r" % (option, value), option=option)
            if self.method == "GET":
                raise KmeRequestError(
                    "%s cannot be sent with method GET (ETSI GS QKD 014 5.2 allows only number "
                    "and size in a GET); use method POST" % option, option=option)
            request[field] = list(value)
        if self.method == "GET":
            body = self._call("GET", slave_sae_id, "enc_keys", "slave_sae_id", query=request,
                              retry=self._retry(safe=False))
        else:
            body = self._call("POST", slave_sae_id, "enc_keys", "slave_sae_id", json_body=request,
                              retry=self._retry(safe=False))
        return self._checked_keys(body, number=number or 1, size=size)

    def dec_keys(self, master_sae_id, key_ids, size=None):
        """Get key with key IDs (slave SAE): the keys the master took, by key_ID.

        size (bits), when given, is checked against every key delivered.
        """
        _positive_int("size", size)
        check_key_ids(key_ids)
        if self.method == "GET":
            if len(key_ids) > 1:
                raise KmeRequestError(
                    "method GET takes one key_ID per request (ETSI GS QKD 014 5.4); use method "
                    "POST or ask for one key at a time", option="key_ids")
            body = self._call("GET", master_sae_id, "dec_keys", "master_sae_id",
                              query={"key_ID": key_ids[0]}, retry=self._retry(safe=True))
        else:
            request = {"key_IDs": [{"key_ID": key_id} for key_id in key_ids]}
            body = self._call("POST", master_sae_id, "dec_keys", "master_sae_id", json_body=request,
                              retry=self._retry(safe=True))
        return self._checked_keys(body, key_ids=list(key_ids), size=size)

    def close(self):
        self._pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        return "KmeClient(%r, kme_id=%r)" % (self.url, self.kme_id)

    # -- configuration ---------------------------------------------------------------------

    @staticmethod
    def _parse_url(url):
        if not isinstance(url, str) or not url:
            raise KmeConfigError("kme_url is required: the KME's base URL, e.g. https://kme1:443",
                                 option="kme_url")
        try:
            parsed = urllib3.util.parse_url(url)
        except LocationParseError:
            parsed = None
        if parsed is None or parsed.scheme != "https" or not parsed.host:
            raise KmeConfigError(
                "kme_url %r is not an https:// URL (ETSI GS QKD 014 requires HTTPS), e.g. "
                "https://kme1:443" % url, option="kme_url")
        if parsed.query or parsed.fragment:
            raise KmeConfigError("kme_url %r must not carry a query or fragment" % url, option="kme_url")
        return parsed.host, parsed.port or 443, (parsed.path or "").rstrip("/")

    @staticmethod
    def _ssl_context(ca_cert, client_cert, client_key, validate_hostname, ciphers):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = bool(validate_hostname)
        if ciphers:
            try:
                context.set_ciphers(ciphers)
            except ssl.SSLError:
                raise KmeConfigError("ciphers %r selects no cipher suite; give an OpenSSL cipher "
                                     "string such as DEFAULT" % ciphers, option="ciphers") from None
        if ca_cert:
            _readable("ca_cert", ca_cert, "the CA bundle that signed the KME's certificate")
            try:
                context.load_verify_locations(cafile=ca_cert)
            except (ssl.SSLError, ValueError) as exc:
                raise KmeConfigError("ca_cert %s holds no usable PEM certificate (%s)"
                                     % (ca_cert, exc), option="ca_cert") from None
        else:
            context.load_default_certs()
        if not client_cert or not client_key:
            raise KmeConfigError(
                "client_cert and client_key are required: ETSI GS QKD 014 KMEs identify the SAE by "
                "its client certificate", option="client_cert" if not client_cert else "client_key")
        _readable("client_cert", client_cert, "the SAE's certificate (PEM)")
        _readable("client_key", client_key, "the SAE's private key (PEM)")
        try:
            # A password callback, so an encrypted key fails here instead of prompting on a tty.
            context.load_cert_chain(client_cert, client_key, password=lambda: b"")
        except (ssl.SSLError, ValueError) as exc:
            raise KmeConfigError(
                "client_cert %s and client_key %s cannot be loaded together (%s): both must be PEM, "
                "the key unencrypted and matching the certificate" % (client_cert, client_key, exc),
                option="client_key") from None
        return context

    # -- requests --------------------------------------------------------------------------

    def _retry(self, safe):
        """Retry policy: `safe` calls may be repeated after the request was sent."""
        return Retry(
            total=self.retries, connect=self.retries,
            read=self.retries if safe else 0,
            status=self.retries, other=0, redirect=0,
            status_forcelist=(503,), allowed_methods=frozenset(("GET", "POST")),
            backoff_factor=self.backoff_factor, raise_on_status=False,
            respect_retry_after_header=False)

    def _call(self, method, sae_id, operation, sae_option, query=None, json_body=None, retry=None):
        if not isinstance(sae_id, str) or not sae_id:
            raise KmeRequestError("%s is required: the SAE ID the KME knows the peer by" % sae_option,
                                  option=sae_option)
        path = "%s%s%s/%s" % (self._base_path, API_PREFIX, quote(sae_id, safe=""), operation)
        if query:
            path += "?" + urlencode(query)
        headers = {"Accept": "application/json"}
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            response = self._pool.request(method, path, body=body, headers=headers, retries=retry,
                                          redirect=False, preload_content=False)
            try:
                raw = response.read(MAX_RESPONSE_BYTES + 1)
            finally:
                response.release_conn()
        except MaxRetryError as exc:
            raise self._transport_error(exc.reason, operation, retried=True) from None
        except (HTTPError, OSError) as exc:
            raise self._transport_error(exc, operation, retried=False) from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise KmeProtocolError("%s sent a %s response larger than %d bytes"
                                   % (self._name, operation, MAX_RESPONSE_BYTES), kme_id=self.kme_id)
        if response.status != 200:
            raise self._http_error(response.status, raw, operation)
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            # Never quote the body: it may hold keys.
            raise KmeProtocolError("%s answered %s with HTTP 200 but the body is not JSON"
                                   % (self._name, operation), kme_id=self.kme_id) from None
        if not isinstance(data, dict):
            raise KmeProtocolError("%s answered %s with a JSON %s, not an object"
                                   % (self._name, operation, type(data).__name__), kme_id=self.kme_id)
        return data

    def _transport_error(self, reason, operation, retried):
        """An operator's message for a failure below HTTP: TLS, connect, timeout, dropped."""
        details = {"kme_id": self.kme_id, "kme_url": self.url}
        if isinstance(reason, SSLError) and reason.args and isinstance(reason.args[0], Exception):
            reason = reason.args[0]
        if isinstance(reason, ssl.SSLCertVerificationError):
            problem = str(reason.verify_message or reason)
            if "mismatch" in problem.lower():
                hint = ("the certificate does not name the host of kme_url; use a name it carries, "
                        "or set validate_hostname: false for a KME reached by IP (the KME ID is "
                        "still checked)")
            else:
                hint = ("check ca_cert: it must hold the CA that signed %s's certificate"
                        % (self.kme_id or "the KME"))
            return KmeAuthenticationError("TLS: the certificate of %s failed verification (%s); %s"
                                          % (self._name, problem, hint), **details)
        if isinstance(reason, (SSLError, ssl.SSLError)):
            return KmeAuthenticationError(
                "TLS handshake with %s failed (%s); check that client_cert and client_key are "
                "issued by a CA the KME trusts, and for a KME limited to old TLS 1.2 cipher suites "
                "set ciphers (e.g. DEFAULT)" % (self._name, reason), **details)
        attempts = " after %d retries" % self.retries if retried and self.retries else ""
        if isinstance(reason, (NewConnectionError, ConnectTimeoutError)):
            return KmeUnavailableError("cannot connect to %s%s: %s"
                                       % (self._name, attempts, _reason_text(reason)), **details)
        if operation == "enc_keys":
            return KmeUnavailableError(
                "%s did not complete enc_keys (%s); not retried because the KME may already have "
                "taken keys for this request, which are not delivered here"
                % (self._name, _reason_text(reason)), **details)
        return KmeUnavailableError("%s did not complete %s%s (%s)"
                                   % (self._name, operation, attempts, _reason_text(reason)), **details)

    def _http_error(self, status, raw, operation):
        message, error_details = _error_body(raw)
        details = {"kme_id": self.kme_id, "kme_url": self.url, "http_status": status}
        if message is not None:
            details["kme_message"] = message
        if error_details is not None:
            details["kme_details"] = error_details
        said = ": %s" % message if message else ""
        if status in (401, 403):
            who = ("for dec_keys only the slave SAE named when the master took the keys may fetch "
                   "them" if operation == "dec_keys" else
                   "the KME does not accept the SAE of client_cert for this peer")
            return KmeAuthenticationError("%s refused the SAE of client_cert (HTTP %d)%s; %s"
                                          % (self._name, status, said, who), **details)
        if status in (400, 404, 422):
            hint = _SPEC_HINTS.get(message or "")
            if hint is None and status == 404 and not message:
                hint = "check kme_url: the KME does not serve %s there" % operation
            return KmeRequestError("%s rejected %s (HTTP %d)%s%s"
                                   % (self._name, operation, status, said, "; " + hint if hint else ""),
                                   **details)
        if status == 409 or status >= 500:
            retried = " after %d retries" % self.retries if status == 503 and self.retries else ""
            return KmeUnavailableError("%s could not serve %s (HTTP %d%s)%s"
                                       % (self._name, operation, status, retried, said), **details)
        return KmeProtocolError("%s answered %s with unexpected HTTP %d%s"
                                % (self._name, operation, status, said), **details)

    # -- response validation ---------------------------------------------------------------

    def _checked_status(self, body):
        def bad(what):
            return KmeProtocolError("%s sent an invalid Status: %s" % (self._name, what), kme_id=self.kme_id)
        for field in STATUS_REQUIRED:
            if field not in body:
                raise bad("%s is missing" % field)
        for field in STATUS_STRINGS:
            if field in body and not isinstance(body[field], str):
                raise bad("%s is not a string" % field)
        for field in STATUS_INTEGERS:
            value = body.get(field)
            if field in body and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise bad("%s is %r, not an integer >= 0" % (field, value))
        if body["key_size"] < 1:
            raise bad("key_size is 0")
        return body

    def _checked_keys(self, body, number=None, key_ids=None, size=None):
        def bad(what):
            return KmeProtocolError("%s sent an invalid key container: %s" % (self._name, what),
                                    kme_id=self.kme_id)
        items = body.get("keys", body.get("Keys"))
        if not isinstance(items, list):
            raise bad("keys is missing or not a list")
        expected = number if key_ids is None else len(key_ids)
        if len(items) != expected:
            raise bad("%d keys where %d were asked for" % (len(items), expected))
        keys = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise bad("keys[%d] is not an object" % index)
            key_id = item.get("key_ID")
            if not is_key_id(key_id):
                raise bad("keys[%d].key_ID is not a UUID" % index)
            encoded = item.get("key")
            if not isinstance(encoded, str):
                raise bad("key %s has no key string" % key_id)
            try:
                material = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise bad("key %s is not valid base64" % key_id) from None
            if not material:
                raise bad("key %s is empty" % key_id)
            if size is not None and len(material) != _expected_bytes(size):
                raise bad("key %s has %d bits where %d were asked for"
                          % (key_id, len(material) * 8, size))
            keys.append(QkdKey(key_id, material, size))
        returned = [key.key_id for key in keys]
        if len(set(returned)) != len(returned):
            raise bad("a key_ID appears twice")
        if key_ids is not None and set(returned) != set(key_ids):
            raise bad("the key_IDs returned are not those asked for (missing: %s)"
                      % ", ".join(sorted(set(key_ids) - set(returned))))
        if size is None and len({key.size for key in keys}) > 1 and key_ids is None:
            raise bad("keys of one request differ in size")
        return keys


# -- key files: one 0600 file per key_ID, written atomically ---------------------------------

KEY_FILE_SUFFIX = {"raw": ".key", "base64": ".b64"}


def key_file_path(directory, key_id, file_format="raw"):
    """Where write_key_files puts a key: <directory>/<key_ID>.key (raw) or .b64 (base64 text)."""
    if not is_key_id(key_id):  # the name comes from the KME: never let it leave the directory
        raise KmeRequestError("%r is not a key_ID; refusing to use it as a file name" % (key_id,))
    return os.path.join(directory, key_id + KEY_FILE_SUFFIX[file_format])


def write_key_files(directory, keys, file_format="raw"):
    """Write each QkdKey to its own 0600 file, all or none as far as the file system allows.

    Every key goes to a temporary file in `directory` first (fsynced); only when all are written
    are they renamed into place, so a failure leaves no partial key file. Existing files are
    never replaced. Returns the paths, in the order of `keys`.
    """
    paths = [key_file_path(directory, key.key_id, file_format) for key in keys]
    for path in paths:
        if os.path.lexists(path):
            raise KmeConfigError("%s already exists; a key_ID names one key, so it is not overwritten"
                                 % path, option="dest")
    temporary = []
    try:
        for key in keys:
            handle, name = tempfile.mkstemp(prefix=".qkd-key-", dir=directory)  # mode 0600
            temporary.append(name)
            data = key.material if file_format == "raw" else base64.b64encode(key.material) + b"\n"
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
        for name, path in zip(temporary, paths):
            os.replace(name, path)
    except OSError as exc:
        for name in temporary:
            if os.path.exists(name):
                os.unlink(name)
        raise KmeConfigError("cannot write key files in %s: %s" % (directory, exc.strerror or exc),
                             option="dest") from None
    _fsync_directory(directory)
    return paths


def _fsync_directory(directory):
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _readable(option, path, what):
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise KmeConfigError("%s %s cannot be read (%s); set %s to %s"
                             % (option, path, exc.strerror or exc, option, what), option=option) from None


def _reason_text(reason):
    # urllib3 prefixes messages with the connection object; keep the useful tail.
    return re.sub(r"^(<[^>]*>|\w+\(host=[^)]*\)): ", "", str(reason))


def _error_body(raw):
    """(message, details) from an ETSI Error body; (None, None) for empty or non-JSON bodies."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    message = data.get("message")
    if message is None and isinstance(data.get("detail"), str):
        message = data["detail"]  # FastAPI-style KMEs (422)
    return (str(message)[:500] if message is not None else None), data.get("details")


def _kme_connection_class(kme_id, name, ca_cert):
    """An HTTPS connection class that checks the KME ID right after the handshake."""

    class KmeConnection(urllib3.connection.HTTPSConnection):
        def connect(self):
            super().connect()
            if kme_id is None:
                return
            names = certificate_names(self.sock.getpeercert())
            if kme_id not in names:
                self.close()
                raise KmeAuthenticationError(
                    "TLS: %s presented a certificate for %s, not for KME ID %s; check kme_url and "
                    "kme_id (the certificate is signed by a CA of ca_cert %s, so another KME answers "
                    "at this URL)" % (name, ", ".join(sorted(names)) or "no name", kme_id,
                                      ca_cert or "(system CAs)"),
                    kme_id=kme_id)

    return KmeConnection


def certificate_names(peer_cert):
    """The identities a verified peer certificate carries: subject CNs, DNS and URI SANs."""
    names = set()
    for rdn in (peer_cert or {}).get("subject", ()):
        for attribute, value in rdn:
            if attribute == "commonName":
                names.add(value)
    for kind, value in (peer_cert or {}).get("subjectAltName", ()):
        if kind in ("DNS", "URI"):
            names.add(value)
    return names
