# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A test KME for unit tests: a real HTTPS server on 127.0.0.1 with mutual TLS and a test CA.

TestPki writes a CA, KME server certificates (right, wrong and odd names) and SAE client
certificates. KmeServer serves ETSI GS QKD 014 from a small in-memory key store (keys delivered
once per side, 401 for an SAE that is not the slave), unless a test scripts the next answers
with reply(). Every request is recorded, so tests count retries on the server side.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import secrets
import socket
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KME_ID = "kme-test"


class TestPki:
    """Certificates as PEM files in a directory; path(name) -> .crt, key(name) -> .key."""

    __test__ = False

    def __init__(self, directory):
        self.directory = directory
        self.ca = self._ca("qkd-nfv test CA")
        self.rogue_ca = self._ca("rogue CA")
        self._write("ca", *self.ca)
        self._write("rogue-ca", *self.rogue_ca)
        ip = ipaddress.ip_address("127.0.0.1")
        self.issue("kme-test", cn=KME_ID, dns=[KME_ID, "localhost"], ips=[ip])
        self.issue("kme-other", cn="kme-other", dns=["kme-other", "localhost"], ips=[ip])
        self.issue("kme-san-only", cn=None, dns=[KME_ID], ips=[ip])
        self.issue("kme-cn-only", cn=KME_ID)
        self.issue("kme-no-ip", cn=KME_ID, dns=[KME_ID])
        self.issue("kme-rogue", cn=KME_ID, dns=[KME_ID, "localhost"], ips=[ip], ca=self.rogue_ca)
        for sae in ("sae-a", "sae-b", "sae-c"):
            self.issue(sae, cn=sae, client=True)
        self.issue("sae-rogue", cn="sae-a", client=True, ca=self.rogue_ca)

    def path(self, name):
        return os.path.join(self.directory, name + ".crt")

    def key(self, name):
        return os.path.join(self.directory, name + ".key")

    def _ca(self, name):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (self._builder(subject, subject, key.public_key())
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                               critical=True)
                .sign(key, hashes.SHA256()))
        return cert, key

    def issue(self, name, cn=None, dns=(), ips=(), client=False, ca=None):
        ca_cert, ca_key = ca or self.ca
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
        usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        builder = (self._builder(subject, ca_cert.subject, key.public_key())
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        alt_names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(i) for i in ips]
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=not cn)
        self._write(name, builder.sign(ca_key, hashes.SHA256()), key)

    @staticmethod
    def _builder(subject, issuer, public_key):
        now = datetime.datetime.now(datetime.timezone.utc)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                .public_key(public_key).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1)))

    def _write(self, name, cert, key):
        with open(self.path(name), "wb") as handle:
            handle.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(self.key(name), "wb") as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        os.chmod(self.key(name), 0o600)


class Reply:
    """One scripted answer: an HTTP status and body, or a dropped connection, after a delay."""

    def __init__(self, status=200, body=None, delay=0.0, drop=False, content_type="application/json"):
        self.status = status
        self.body = body
        self.delay = delay
        self.drop = drop
        self.content_type = content_type

    def payload(self):
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode("utf-8")


class KmeServer:
    """An ETSI GS QKD 014 KME on 127.0.0.1:<free port>; use as a context manager."""

    __test__ = False

    def __init__(self, pki, cert="kme-test", max_tls=None, ciphers=None, key_size=256,
                 max_key_per_request=128, sizes_multiple_of_8=True):
        self.pki = pki
        self.requests = []   # dicts: method, path, operation, sae_id, query, body, caller
        self.handshake_failures = 0
        self.replies = []
        self.key_size = key_size
        self.max_key_per_request = max_key_per_request
        self.sizes_multiple_of_8 = sizes_multiple_of_8
        self.pool = {}   # key_ID -> (master caller, slave SAE, material); deleted on dec_keys
        self._lock = threading.Lock()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.path(cert), pki.key(cert))
        context.load_verify_locations(pki.path("ca"))
        context.verify_mode = ssl.CERT_REQUIRED
        if max_tls is not None:
            context.maximum_version = max_tls
        if ciphers:
            context.set_ciphers(ciphers)
        self.context = context
        self.httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self.port = self.httpd.server_address[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self.httpd.shutdown()
        self.httpd.server_close()

    def reply(self, status=200, body=None, **kwargs):
        """Script the next answer (answers are used in order, then the key store answers)."""
        self.replies.append(Reply(status, body, **kwargs))

    def settled_handshake_failures(self, expected_at_least=1, timeout=5.0):
        """The failed handshakes once the server threads have caught up with the client.

        A client sees its handshake fail slightly before the server thread records it; wait for
        the first, then a moment more so that any further attempt (a retry) would be counted too.
        """
        deadline = time.monotonic() + timeout
        while self.handshake_failures < expected_at_least and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        return self.handshake_failures

    def count(self, operation=None):
        return sum(1 for r in self.requests if operation in (None, r["operation"]))

    # -- the default behaviour: a small, honest KME ---------------------------------------

    def status_body(self, caller, slave):
        return {"source_KME_ID": KME_ID, "target_KME_ID": "kme-peer", "master_SAE_ID": caller,
                "slave_SAE_ID": slave, "key_size": self.key_size, "stored_key_count": 25,
                "max_key_count": 1000, "max_key_per_request": self.max_key_per_request,
                "max_key_size": 8192, "min_key_size": 64, "max_SAE_ID_count": 0}

    def serve(self, record):
        caller, sae, op, req = record["caller"], record["sae_id"], record["operation"], record["request"]
        if op == "status":
            return Reply(200, self.status_body(caller, sae))
        if op == "enc_keys":
            number, size = req.get("number", 1), req.get("size", self.key_size)
            if not isinstance(number, int) or number < 1 or number > self.max_key_per_request:
                return Reply(400, {"message": "number of keys out of range"})
            if not isinstance(size, int) or size < 64:
                return Reply(400, {"message": "size out of range"})
            if size % 8 and self.sizes_multiple_of_8:
                return Reply(400, {"message": "size shall be a multiple of 8"})
            keys = []
            with self._lock:
                for _count in range(number):
                    key_id, material = str(uuid.uuid4()), secrets.token_bytes((size + 7) // 8)
                    self.pool[key_id] = (caller, sae, material)
                    keys.append({"key_ID": key_id, "key": base64.b64encode(material).decode()})
            return Reply(200, {"keys": keys})
        if op == "dec_keys":
            ids = [k.get("key_ID") for k in req.get("key_IDs", [])]
            with self._lock:
                if not ids or any(i not in self.pool for i in ids):
                    return Reply(400, {"message": "one or more keys specified are not found on KME"})
                if any(self.pool[i][0] != sae for i in ids):
                    return Reply(400, {"message": "one or more keys specified are not found on KME"})
                if any(self.pool[i][1] != caller for i in ids):
                    return Reply(401, None)
                found = [(i, self.pool.pop(i)[2]) for i in ids]
            return Reply(200, {"keys": [{"key_ID": i, "key": base64.b64encode(m).decode()}
                                        for i, m in found]})
        return Reply(404, {"message": "no such endpoint"})


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # failed handshakes are counted, not printed


def _handler_for(server):

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            try:
                self.request = server.context.wrap_socket(self.request, server_side=True)
            except (ssl.SSLError, OSError):
                server.handshake_failures += 1
                raise
            super().setup()

        def log_message(self, *args):  # keep test output quiet
            pass

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def _serve(self, method):
            url = urlsplit(self.path)
            parts = url.path.split("/")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            request = dict(body) if isinstance(body, dict) else {}
            if method == "GET":
                request.update({k: int(v) if v.isdigit() else v for k, v in query.items()
                                if k in ("number", "size")})
                if "key_ID" in query:
                    request["key_IDs"] = [{"key_ID": query["key_ID"]}]
            cert = self.request.getpeercert()
            caller = dict(x[0] for x in cert["subject"]).get("commonName")
            record = {"method": method, "path": url.path, "query": query, "body": body,
                      "request": request, "caller": caller,
                      "sae_id": unquote(parts[4]) if len(parts) == 6 else None,
                      "operation": parts[5] if len(parts) == 6 else None}
            server.requests.append(record)
            reply = server.replies.pop(0) if server.replies else server.serve(record)
            if reply.delay:
                time.sleep(reply.delay)
            if reply.drop:
                self.close_connection = True
                self.request.shutdown(socket.SHUT_RDWR)
                return
            payload = reply.payload()
            self.send_response(reply.status)
            if payload:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler
