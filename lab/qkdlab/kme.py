"""A lab KME: ETSI GS QKD 014 v1.1.1 over HTTPS with mutual TLS.

  GET       /api/v1/keys/{slave_SAE_ID}/status
  POST|GET  /api/v1/keys/{slave_SAE_ID}/enc_keys     (GET: number, size in the query)
  POST|GET  /api/v1/keys/{master_SAE_ID}/dec_keys    (GET: one key_ID in the query)

The caller's SAE ID is the CN of its client certificate; an SAE that is not one of this node's
gets 401 with no body. Errors are 400 or 503 with an Error object {"message": ..., "details": ...}
(unknown paths 404, wrong methods 405). Keys live in the KeyNetwork (SQLite), so they survive a
restart and are delivered once on each side. Key material is never logged.
"""

import base64
import json
import logging
import re
import socket
import socketserver
import ssl
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote

from .keystore import KeyNotFound, KeyStoreError, NotAuthorised, NotEnoughKey

log = logging.getLogger("qkdlab.kme")

_PATH = re.compile(r"^/api/v1/keys/([^/]*)/(status|enc_keys|dec_keys)/?$")
_INT = re.compile(r"^[+-]?[0-9]+$")
_METHODS = {"status": ("GET",), "enc_keys": ("GET", "POST"), "dec_keys": ("GET", "POST")}
# TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are all of that kind already).
_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"
MAX_BODY = 1 << 20
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0

NOT_FOUND = "one or more keys specified are not found on KME"
NOT_MULTIPLE_OF_8 = "size shall be a multiple of 8"
EXTENSION_UNSUPPORTED = "not all extension_mandatory parameters are supported"


class BadRequest(Exception):
    """400 with an Error object."""

    def __init__(self, message, details=None):
        super().__init__(message)
        self.message, self.details = message, details


class Unauthorised(Exception):
    """401, no body."""


def server_context(cert, key, ca):
    """TLS >= 1.2 server context asking for (not requiring) a client certificate from the lab CA.

    CERT_OPTIONAL lets a caller without a certificate in, to be answered 401; a certificate from
    another CA still fails the handshake.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.load_cert_chain(str(cert), str(key))
    ctx.load_verify_locations(cafile=str(ca))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


# -- request parsing --------------------------------------------------------------------------

def _json_object(body, what):
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body shall be a JSON object (%s)" % what)
    return data


def _query(query):
    try:
        return parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=32)
    except ValueError:
        raise BadRequest("the query string is malformed") from None


def _query_int(params, name):
    values = params.get(name)
    if values is None:
        return None
    if len(values) != 1:
        raise BadRequest("%s is given more than once" % name)
    if not _INT.match(values[0].strip()):
        raise BadRequest("%s shall be an integer" % name)
    try:
        return int(values[0])
    except ValueError:  # more digits than Python converts
        raise BadRequest("%s is out of range" % name) from None


def _body_int(data, name):
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest("%s shall be an integer" % name)
    return value


def key_request(method, query, body):
    """(number, size or None, additional_slave_SAE_IDs, extension_mandatory) of an enc_keys call."""
    if method == "GET":
        params = _query(query)
        return _query_int(params, "number"), _query_int(params, "size"), [], []
    data = _json_object(body, "Key request")
    extras = data.get("additional_slave_SAE_IDs")
    if extras is None:
        extras = []
    if not isinstance(extras, list) or not all(isinstance(sae, str) for sae in extras):
        raise BadRequest("additional_slave_SAE_IDs shall be an array of SAE IDs")
    mandatory = data.get("extension_mandatory")
    if mandatory is None:
        mandatory = []
    if not isinstance(mandatory, list) or not all(isinstance(ext, dict) for ext in mandatory):
        raise BadRequest("extension_mandatory shall be an array of objects")
    # extension_optional: the KME may ignore it, and does.
    return _body_int(data, "number"), _body_int(data, "size"), extras, mandatory


def key_ids_request(method, query, body):
    """The list of key_ID strings of a dec_keys call."""
    if method == "GET":
        values = _query(query).get("key_ID", [])
        if len(values) != 1:
            raise BadRequest("GET dec_keys takes exactly one key_ID in the query string; use POST for several")
        return values
    data = _json_object(body, "Key IDs")
    entries = data.get("key_IDs")
    if (not isinstance(entries, list) or not entries
            or not all(isinstance(e, dict) and isinstance(e.get("key_ID"), str) for e in entries)):
        raise BadRequest('key_IDs shall be a non-empty array of objects, each with a "key_ID" string')
    # Other members of the entries (key_ID_extension, even a whole key) are accepted and ignored.
    return [e["key_ID"] for e in entries]


# -- the API ----------------------------------------------------------------------------------

class KmeApi:
    """The three ETSI 014 methods of one node's KME, free of HTTP."""

    def __init__(self, topo, node, network):
        self.topo, self.node, self.network = topo, node, network
        self.spec = topo.kme

    def authenticate(self, sae_id):
        if sae_id is None or sae_id not in self.node.saes:
            raise Unauthorised()
        return sae_id

    def _peer(self, caller, other, role):
        """The QKD link toward the node of SAE `other` and that node; 400 when there is none."""
        if not other:
            raise BadRequest("%s is missing in the path" % role)
        if other == caller:
            raise BadRequest("master_SAE_ID and slave_SAE_ID are the same SAE (%s)" % other)
        node = self.topo.node_of_sae(other)
        if node is None:
            raise BadRequest("unknown %s %s: no such SAE in this QKD network" % (role, other))
        if node.name == self.node.name:
            raise BadRequest("%s %s is attached to this KME (%s); keys are shared only across a QKD link"
                             % (role, other, self.node.kme_id))
        link = self.topo.link_between(self.node.name, node.name)
        if link is None:
            raise BadRequest("no QKD link joins %s (%s) and %s (%s): %s %s cannot be reached from this KME"
                             % (self.node.name, self.node.kme_id, node.name, node.kme_id, role, other))
        return link, node

    def status(self, caller, slave):
        link, node = self._peer(caller, slave, "slave_SAE_ID")
        spec = self.spec
        return {
            "source_KME_ID": self.node.kme_id,
            "target_KME_ID": node.kme_id,
            "master_SAE_ID": caller,
            "slave_SAE_ID": slave,
            "key_size": spec.key_size,
            # Pool blocks are key_size bits each, so blocks are keys of the default size.
            "stored_key_count": min(self.network.stored_blocks(link), spec.max_key_count),
            "max_key_count": spec.max_key_count,
            "max_key_per_request": spec.max_key_per_request,
            "max_key_size": spec.max_key_size,
            "min_key_size": spec.min_key_size,
            "max_SAE_ID_count": 0,
        }

    def enc_keys(self, caller, slave, number, size, extras, mandatory):
        link, _ = self._peer(caller, slave, "slave_SAE_ID")
        spec = self.spec
        number = 1 if number is None else number
        size = spec.key_size if size is None else size
        if not 1 <= number <= spec.max_key_per_request:
            raise BadRequest("number shall be between 1 and %d (max_key_per_request)" % spec.max_key_per_request)
        if size % 8:
            raise BadRequest(NOT_MULTIPLE_OF_8)
        if not spec.min_key_size <= size <= spec.max_key_size:
            raise BadRequest("size shall be between %d (min_key_size) and %d (max_key_size) bits"
                             % (spec.min_key_size, spec.max_key_size))
        if extras:
            raise BadRequest("key multicast is not supported: additional_slave_SAE_IDs shall be empty"
                             " (max_SAE_ID_count is 0)")
        if mandatory:
            names = [name for ext in mandatory for name in ext] or ["(empty extension object)"]
            raise BadRequest(EXTENSION_UNSUPPORTED,
                             [{"extension_mandatory_unsupported": "%s is not supported" % name} for name in names])
        keys = self.network.take(link, self.node.name, caller, slave, number, size)
        return {"keys": [{"key_ID": key_id, "key": base64.b64encode(key).decode("ascii")} for key_id, key in keys]}

    def dec_keys(self, caller, master, key_ids):
        if not master:
            raise BadRequest("master_SAE_ID is missing in the path")
        if len(key_ids) > self.spec.max_key_per_request:
            raise BadRequest("at most %d key IDs per request (max_key_per_request)" % self.spec.max_key_per_request)
        wanted = []
        for key_id in key_ids:
            try:
                wanted.append(str(uuid.UUID(key_id)))
            except ValueError:
                raise BadRequest(NOT_FOUND, [{"key_ID_not_a_UUID": key_id[:64]}]) from None
        if len(set(wanted)) != len(wanted):
            raise BadRequest("key_IDs names the same key_ID more than once")
        try:
            keys = self.network.deliver(self.node.name, caller, master, wanted)
        except NotAuthorised:
            raise Unauthorised() from None
        except KeyNotFound:
            raise BadRequest(NOT_FOUND) from None
        return {"keys": [{"key_ID": key_id, "key": base64.b64encode(key).decode("ascii")} for key_id, key in keys]}


# -- HTTP -------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "qkdlab-kme/1"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # headers and body leave in one write, flushed after each request

    def handle_expect_100(self):
        answered = super().handle_expect_100()
        self.wfile.flush()  # the buffered "100 Continue" must leave before the body is read
        return answered

    def log_message(self, fmt, *args):
        log.debug("%s: %s", self.server.api.node.kme_id, fmt % args)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def _reply(self, code, payload=None, headers=()):
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(code)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code, message, details=None, headers=()):
        payload = {"message": message}
        if details:
            payload["details"] = details
        self._reply(code, payload, headers)

    def _read_body(self):
        """The request body, or None after answering 400 (then the connection closes)."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._error(400, "chunked request bodies are not supported; send Content-Length")
            return None
        length = self.headers.get("Content-Length", "0").strip() or "0"
        if not length.isdigit() or int(length) > MAX_BODY:
            self.close_connection = True
            self._error(400, "the request body is missing a valid Content-Length or exceeds %d bytes" % MAX_BODY)
            return None
        return self.rfile.read(int(length)) if int(length) else b""

    def _caller(self):
        cert = self.connection.getpeercert()
        for rdn in (cert or {}).get("subject", ()):
            for name, value in rdn:
                if name == "commonName":
                    return value
        return None

    def _dispatch(self, method):
        body = self._read_body()
        if body is None:
            return
        api = self.server.api
        path, _, query = self.path.partition("?")
        try:
            caller = api.authenticate(self._caller())
            match = _PATH.match(path)
            if not match:
                return self._error(404, "no such resource: %s" % path[:200])
            sae_id, op = unquote(match[1]), match[2]
            if method not in _METHODS[op]:
                allowed = ", ".join(_METHODS[op])
                return self._error(405, "%s is not allowed on %s (allowed: %s)" % (method, op, allowed),
                                   headers=[("Allow", allowed)])
            if op == "status":
                result = api.status(caller, sae_id)
            elif op == "enc_keys":
                result = api.enc_keys(caller, sae_id, *key_request(method, query, body))
            else:
                result = api.dec_keys(caller, sae_id, key_ids_request(method, query, body))
        except Unauthorised:
            return self._reply(401)
        except BadRequest as exc:
            return self._error(400, exc.message, exc.details)
        except NotEnoughKey as exc:
            return self._error(503, str(exc))
        except KeyStoreError as exc:
            return self._error(503, "key store error: %s" % exc)
        except Exception as exc:  # noqa: BLE001 - any other failure is the server's, reported as 503
            log.error("%s: %s %s failed: %s", api.node.kme_id, method, path, type(exc).__name__)
            log.debug("%s: failure detail", api.node.kme_id, exc_info=True)
            return self._error(503, "internal error of the KME")
        self._reply(200, result)


class _TlsServer(ThreadingHTTPServer):
    """A thread per connection; the TLS handshake runs in that thread, not in the accept loop."""

    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, context, api):
        self.context, self.api = context, api
        self._live = {}  # TLS socket -> thread, closed on stop
        self._live_lock = threading.Lock()
        self._stopping = False
        super().__init__(address, _Handler)

    def server_bind(self):
        # HTTPServer.server_bind would resolve the host name; the lab needs none.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request, client_address):
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("%s: TLS handshake with %s failed: %s", self.api.node.kme_id, client_address[0], exc)
            return
        with self._live_lock:
            if self._stopping:  # accepted just before stop(): serve nothing more
                tls.close()
                return
            self._live[tls] = threading.current_thread()
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (ssl.SSLError, OSError) as exc:
            log.debug("%s: connection from %s ended: %s", self.api.node.kme_id, client_address[0], exc)
        finally:
            with self._live_lock:
                self._live.pop(tls, None)
            try:
                tls.close()
            except OSError:
                pass

    def close_connections(self, timeout=5.0):
        """Cut every open connection (idle keep-alive ones too) and wait for their threads."""
        with self._live_lock:
            self._stopping = True
            live = list(self._live.items())
        for tls, _ in live:
            try:
                tls.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _, thread in live:
            if thread is not threading.current_thread():
                thread.join(timeout)


class KmeServer:
    """One node's KME on 127.0.0.1:node.kme_port."""

    def __init__(self, topo, node, network, pki):
        self.topo, self.node, self.network, self.pki = topo, node, network, pki
        cert, key = pki.kme[node.kme_id]
        self.context = server_context(cert, key, pki.ca)
        self.api = KmeApi(topo, node, network)
        self._server = None
        self._thread = None

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.node.kme_port

    def start(self):
        """Bind and serve in a daemon thread; returns once the socket listens."""
        if self._server is not None:
            return
        try:
            self._server = _TlsServer(("127.0.0.1", self.node.kme_port), self.context, self.api)
        except OSError as exc:
            raise OSError(exc.errno, "KME %s cannot listen on 127.0.0.1:%d: %s"
                          % (self.node.kme_id, self.node.kme_port, exc.strerror)) from None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="kme-%s" % self.node.name, daemon=True)
        self._thread.start()

    def stop(self):
        """Stop accepting, cut open connections, wait for the handlers; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        stopper = threading.Thread(target=server.shutdown)
        stopper.start()
        try:  # wake the accept loop now rather than at its next poll
            socket.create_connection(("127.0.0.1", self.node.kme_port), timeout=1).close()
        except OSError:
            pass
        stopper.join()
        server.close_connections()
        server.server_close()
        self._thread.join()
        self._thread = None
