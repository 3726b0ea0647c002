"""RESTCONF northbounds of the lab's optical switch, over plain HTTP on 127.0.0.1.

flavour 'odl': an OpenDaylight-style controller with the switch NETCONF-mounted as node
spec.node_id, under the RFC 8040 root /rests and the older draft-bierman-02 root /restconf.
flavour 'native': the switch's own RESTCONF under /api.
Each answers with the status codes, error bodies and JSON names that the real one emits.
"""

import base64
import hmac
import json
import logging
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from .switch import SwitchError

log = logging.getLogger(__name__)

MODULE = "optical-switch"
NT = "network-topology:network-topology"
TOPOLOGY_ID = "topology-netconf"
MOUNT = "yang-ext:mount"
CAPABILITY = "(http://www.polatis.com/yang/optical-switch?revision=2018-03-22)optical-switch"
MAX_BODY = 1 << 20
_LISTS = {"topology", "node", "pair", "port"}  # draft-02 paths give their key as the next segment

MSG_MISSING = "Request could not be completed because the relevant data model content does not exist"
MSG_NO_MOUNT = "Mount point does not exist."
MSG_KEY = ("The value '%s' for key 'ingress' specified in the URI doesn't match the value '%s' "
           "specified in the message body. ")

_STATUS = {"in-use": 409, "invalid-value": 400, "too-big": 413, "missing-attribute": 400,
           "bad-attribute": 400, "unknown-attribute": 400, "missing-element": 400, "bad-element": 400,
           "unknown-element": 400, "unknown-namespace": 400, "access-denied": 403, "lock-denied": 409,
           "resource-denied": 409, "rollback-failed": 500, "data-exists": 409, "data-missing": 409,
           "operation-not-supported": 501, "operation-failed": 500, "partial-operation": 500,
           "malformed-message": 400, "resource-denied-transport": 503}


@dataclass(frozen=True)
class _Era:
    """What differs between the RESTCONF dialects."""
    name: str
    qualified: bool       # module-qualified top-level JSON names
    errors_key: str
    missing: int          # status of data-missing
    missing_type: str
    put_replaced: int
    post_created: int
    deleted: int
    msg_exists: str
    msg_delete_missing: str
    media: str


RFC8040 = _Era("rfc8040", True, "errors", 409, "protocol", 204, 201, 204,
               "Data already exists", "Data does not exist", "application/yang-data+json")
DRAFT02 = _Era("draft02", False, "errors", 404, "application", 200, 204, 200,
               "Data already exists for path: %s", "Data specified for delete doesn't exist.",
               "application/json")
NATIVE = _Era("native", True, "ietf-restconf:errors", 404, "protocol", 204, 201, 204,
              "Data already exists", "Data does not exist", "application/yang-data+json")


class _Fail(Exception):
    def __init__(self, tag, message, status=None, error_type="protocol", headers=None):
        super().__init__(message)
        self.tag, self.message, self.error_type = tag, message, error_type
        self.status = status or _STATUS.get(tag, 400)
        self.headers = headers or {}


def _missing(era, message=MSG_MISSING):
    return _Fail("data-missing", message, era.missing, era.missing_type)


def _malformed(detail):
    return _Fail("malformed-message", "Error parsing input: %s" % detail)


def _not_allowed(allowed):
    return _Fail("operation-not-supported", "Method not allowed; allowed: %s" % ", ".join(allowed),
                 405, headers={"Allow": ", ".join(allowed)})


def _device_failure(exc, era):
    if exc.tag == "data-missing":
        return _Fail("data-missing", exc.message, era.missing, "application")
    return _Fail(exc.tag, exc.message, error_type="application")


# -- request bodies ----------------------------------------------------------------------------

def _document(body):
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _malformed(exc) from None
    if not isinstance(doc, dict):
        raise _malformed("expected a JSON object")
    return doc


def _member(doc, name):
    """The one top-level member `name`, module-qualified or not."""
    keys = [k for k in doc if k in (name, "%s:%s" % (MODULE, name))]
    if len(doc) != 1 or len(keys) != 1:
        raise _malformed("expected the single top-level member %s:%s, got %s"
                         % (MODULE, name, ", ".join(doc) or "none"))
    return doc[keys[0]]


def _port_value(value, what):
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _malformed("%s: expected a port number, got %r" % (what, value))
    if not 1 <= value <= 65535:
        raise _Fail("invalid-value", "%s: %d is out of range 1..65535" % (what, value))
    return value


def _pair_entries(value):
    entries = value if isinstance(value, list) else [value]
    pairs = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise _malformed("a pair is an object with ingress and egress")
        extra = set(entry) - {"ingress", "egress"}
        if extra:
            raise _malformed("unknown leaf %s in pair" % ", ".join(sorted(extra)))
        for leaf in ("ingress", "egress"):
            if leaf not in entry:
                raise _malformed("pair: mandatory leaf %s is missing" % leaf)
        pairs.append((_port_value(entry["ingress"], "ingress"), _port_value(entry["egress"], "egress")))
    return pairs


def _key(value, what):
    if value is None:
        raise _Fail("missing-attribute", "the list key %s is missing from the path" % what)
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise _Fail("invalid-value", "invalid value %r for key %s" % (value, what))
    return int(value)


def _segments(raw, draft02):
    """Path segments as [(name, key or None), ...]; list keys `name=key` or (draft-02) `name/key`."""
    parts = [p for p in raw if p]
    result, i = [], 0
    while i < len(parts):
        name, sep, key = parts[i].partition("=")
        name = unquote(name)
        key = unquote(key) if sep else None
        local = name.rpartition(":")[2]
        if draft02 and local in _LISTS and i + 1 < len(parts):
            key = unquote(parts[i + 1])
            i += 1
        result.append((name, key))
        i += 1
    return result


# -- the emulated resources --------------------------------------------------------------------

class _Device:
    """The optical-switch data tree of one switch, in any dialect."""

    def __init__(self, switch, spec):
        self.switch = switch
        self.spec = spec

    def handle(self, req, era, content, segs, location):
        if not segs:
            if req.method != "GET":
                raise _not_allowed(["GET"])
            tops = ["cross-connects", "port-config"]
            if content != "config":
                tops += ["opm-power", "product-information"]
            return 200, dict(self._container(era, top, content) for top in tops)
        top, top_key = segs[0]
        prefix, _, local = top.partition(":")
        if prefix != MODULE or not local or top_key is not None:
            raise _Fail("unknown-element", "Schema node %s does not exist" % top)
        rest = [(n.rpartition(":")[2] if n.startswith(MODULE + ":") else n, k) for n, k in segs[1:]]
        if local == "cross-connects":
            return self._cross_connects(req, era, content, rest, location)
        if local in ("port-config", "opm-power", "product-information"):
            if req.method != "GET":
                raise _not_allowed(["GET"])
            if not rest:
                return 200, dict([self._container(era, local, content)])
            if local != "product-information" and len(rest) == 1 and rest[0][0] == "port":
                return 200, self._port(era, local, content, _key(rest[0][1], "port-id"))
        raise _Fail("unknown-element", "Schema node %s does not exist" % "/".join(n for n, _ in segs))

    @staticmethod
    def _name(era, local):
        return "%s:%s" % (MODULE, local) if era.qualified else local

    def _container(self, era, local, content):
        switch = self.switch
        if local == "cross-connects":
            pairs = switch.settled_pairs() if content == "nonconfig" else switch.pairs()
            value = {"pair": [{"ingress": i, "egress": e} for i, e in pairs]} if pairs else {}
        elif local == "port-config":
            ports = switch.port_config()
            if content == "config":
                ports = [{k: v for k, v in p.items() if k != "status"} for p in ports]
            value = {"port": ports}
        elif content == "config":  # opm-power and product-information are state only
            raise _missing(era)
        elif local == "opm-power":
            value = {"port": [{"port-id": p, "power": round(switch.power_dbm(p), 2)}
                              for p in range(1, self.spec.ports + 1)]}
        else:
            value = {"manufacturer": "Polatis", "serial-number": "QKDLAB-%s" % self.spec.node_id,
                     "model-name": "N-OST-%dxCC-LU1-DMHNS" % self.spec.ports,
                     "software-version": "qkdlab-1"}
        return self._name(era, local), value

    def _port(self, era, local, content, port):
        if not 1 <= port <= self.spec.ports:
            raise _missing(era)
        _, value = self._container(era, local, content)
        entry = [p for p in value["port"] if p["port-id"] == port]
        return {self._name(era, "port"): entry}

    def _cross_connects(self, req, era, content, rest, location):
        switch = self.switch
        try:
            if not rest:
                if req.method == "GET":
                    return 200, dict([self._container(era, "cross-connects", content)])
                if req.method == "POST":
                    pairs = _pair_entries(_member(_document(req.body), "pair"))
                    if len(pairs) != 1:
                        raise _malformed("POST creates exactly one pair")
                    (ingress, egress), = pairs
                    try:
                        switch.create(ingress, egress)
                    except SwitchError as exc:
                        if exc.tag != "data-exists":
                            raise
                        raise _Fail("data-exists", era.msg_exists.replace("%s", req.path_only)) from None
                    return era.post_created, None, {"Location": location(ingress)}
                if req.method == "PUT":
                    value = _member(_document(req.body), "cross-connects")
                    if not isinstance(value, dict) or set(value) - {"pair"}:
                        raise _malformed("cross-connects holds only the pair list")
                    switch.replace_all(_pair_entries(value.get("pair", [])))
                    return era.put_replaced, None
                if req.method == "DELETE":
                    switch.replace_all([])
                    return era.deleted, None
                raise _not_allowed(["GET", "POST", "PUT", "DELETE"])
            if len(rest) == 1 and rest[0][0] == "pair":
                ingress = _key(rest[0][1], "ingress")
                if req.method == "GET":
                    egress = switch.egress_of(ingress, settled=content == "nonconfig")
                    if egress is None:
                        raise _missing(era)
                    return 200, {self._name(era, "pair"): [{"ingress": ingress, "egress": egress}]}
                if req.method == "PUT":
                    pairs = _pair_entries(_member(_document(req.body), "pair"))
                    if len(pairs) != 1:
                        raise _malformed("PUT of a pair carries exactly one pair")
                    (body_ingress, egress), = pairs
                    if body_ingress != ingress:
                        raise _Fail("invalid-value", MSG_KEY % (ingress, body_ingress))
                    return (201 if switch.replace(ingress, egress) else era.put_replaced), None
                if req.method == "DELETE":
                    try:
                        switch.delete(ingress)
                    except SwitchError as exc:
                        if exc.tag not in ("data-missing", "invalid-value"):
                            raise
                        raise _missing(era, era.msg_delete_missing) from None
                    return era.deleted, None
                raise _not_allowed(["GET", "PUT", "DELETE"])
        except SwitchError as exc:
            raise _device_failure(exc, era) from None
        raise _Fail("unknown-element", "Schema node %s does not exist"
                    % "/".join(["cross-connects"] + [n for n, _ in rest]))

    def rpc(self, req, era, name):
        if name not in ("%s:port-set-state" % MODULE,):
            raise _Fail("unknown-element", "RPC %s does not exist" % name)
        if req.method != "POST":
            raise _not_allowed(["POST"])
        doc = _document(req.body) if req.body.strip() else {}
        keys = [k for k in doc if k in ("input", "%s:input" % MODULE)]
        if len(doc) != 1 or len(keys) != 1 or not isinstance(doc[keys[0]], dict):
            raise _malformed("expected the single top-level member input")
        given = doc[keys[0]]
        extra = set(given) - {"port-enab", "port-disab"}
        if extra:
            raise _malformed("unknown leaf %s in input" % ", ".join(sorted(extra)))
        lists = {}
        for leaf in ("port-enab", "port-disab"):
            value = given.get(leaf, [])
            lists[leaf] = [_port_value(v, leaf) for v in (value if isinstance(value, list) else [value])]
        try:
            self.switch.set_port_state(enable=lists["port-enab"], disable=lists["port-disab"])
        except SwitchError as exc:
            raise _device_failure(exc, era) from None
        return 204, None


# -- the controller and the device as HTTP applications -----------------------------------------

@dataclass
class _Request:
    method: str
    path_only: str
    query: dict
    headers: object
    body: bytes


def _content(req):
    values = req.query.get("content", ["all"])
    if len(values) != 1 or values[0] not in ("config", "nonconfig", "all"):
        raise _Fail("invalid-value", "Invalid content parameter: %s" % ", ".join(values))
    return values[0]


class _OdlApp:
    """OpenDaylight with one NETCONF node, the switch, mounted and connected."""

    def __init__(self, switch, spec):
        self.spec = spec
        self.device = _Device(switch, spec)

    def era_of(self, path):
        return DRAFT02 if path.startswith("/restconf") else RFC8040

    def handle(self, req, host):
        parts = req.path_only.split("/")[1:]
        if parts[:2] == ["rests", "data"]:
            return self._data(req, RFC8040, _content(req), _segments(parts[2:], False), host)
        if parts[:2] == ["rests", "operations"]:
            return self._operations(req, RFC8040, _segments(parts[2:], False))
        if parts[:1] == ["restconf"] and len(parts) > 1 and parts[1] in ("config", "operational"):
            if parts[1] == "operational" and req.method not in ("GET", "HEAD"):
                raise _not_allowed(["GET"])
            content = "config" if parts[1] == "config" else "nonconfig"
            return self._data(req, DRAFT02, content, _segments(parts[2:], True), host)
        if parts[:2] == ["restconf", "operations"]:
            return self._operations(req, DRAFT02, _segments(parts[2:], True))
        raise _Fail("data-missing", "No RESTCONF resource at %s" % req.path_only, 404)

    def _node_path(self, era, segs):
        """Split segs at the netconf node: (node id or None, segments after it); raises if neither."""
        if segs[:1] != [(NT, None)]:
            raise _Fail("unknown-element", "Schema node %s does not exist" % (segs[0][0] if segs else "/"))
        if len(segs) < 3:
            return None, segs
        if segs[1] != ("topology", TOPOLOGY_ID) or segs[2][0] != "node" or segs[2][1] is None:
            raise _missing(era)
        return segs[2][1], segs[3:]

    def _mount(self, era, node_id):
        if node_id != self.spec.node_id:
            if era is RFC8040:
                raise _Fail("resource-denied-transport", MSG_NO_MOUNT, error_type="application")
            raise _missing(era, MSG_NO_MOUNT)

    def _data(self, req, era, content, segs, host):
        node_id, rest = self._node_path(era, segs)
        if node_id is None or not rest:
            if req.method != "GET":
                raise _not_allowed(["GET"])
            return 200, self._topology(era, content, segs, node_id)
        if rest[0] != (MOUNT, None):
            raise _Fail("unknown-element", "Schema node %s does not exist" % rest[0][0])
        self._mount(era, node_id)
        base = req.path_only.split("/" + MOUNT)[0] + "/" + MOUNT + "/%s:cross-connects" % MODULE
        sep = "/pair/%d" if era is DRAFT02 else "/pair=%d"

        def location(ingress):
            return "http://%s%s%s" % (host, base, sep % ingress)
        return self.device.handle(req, era, content, rest[1:], location)

    def _operations(self, req, era, segs):
        node_id, rest = self._node_path(era, segs)
        if node_id is None or len(rest) != 2 or rest[0] != (MOUNT, None):
            raise _Fail("unknown-element", "No RPC at %s" % req.path_only)
        self._mount(era, node_id)
        return self.device.rpc(req, era, rest[1][0])

    def _node(self, content):
        node = {"node-id": self.spec.node_id, "netconf-node-topology:host": "127.0.0.1",
                "netconf-node-topology:port": 830}
        if content == "config":
            node.update({"netconf-node-topology:username": self.spec.native.username,
                         "netconf-node-topology:tcp-only": False})
        else:
            node.update({
                "netconf-node-topology:connection-status": "connected",
                "netconf-node-topology:session-id": 1,
                "netconf-node-topology:available-capabilities": {"available-capability": [
                    {"capability": CAPABILITY, "capability-origin": "device-advertised"},
                    {"capability": "urn:ietf:params:netconf:base:1.1", "capability-origin": "device-advertised"}]},
                "netconf-node-topology:unavailable-capabilities": {"unavailable-capability": []}})
        return node

    def _topology(self, era, content, segs, node_id):
        def name(local):
            return "network-topology:" + local if era.qualified else local
        if node_id is not None:
            if node_id != self.spec.node_id:
                raise _missing(era)
            return {name("node"): [self._node(content)]}
        topology = {"topology-id": TOPOLOGY_ID, "node": [self._node(content)]}
        if len(segs) == 1:
            return {NT: {"topology": [topology]}}
        if segs[1] == ("topology", TOPOLOGY_ID):
            return {name("topology"): [topology]}
        raise _missing(era)


class _NativeApp:
    """The switch's own RESTCONF server."""

    def __init__(self, switch, spec):
        self.device = _Device(switch, spec)

    def era_of(self, path):
        return NATIVE

    def handle(self, req, host):
        parts = req.path_only.rstrip("/").split("/")[1:]
        if parts == ["api"]:
            if req.method != "GET":
                raise _not_allowed(["GET"])
            return 200, {"ietf-restconf:restconf": {"data": {}, "operations": {},
                                                    "yang-library-version": "2016-06-21"}}
        if parts[:2] == ["api", "data"]:

            def location(ingress):
                return "http://%s/api/data/%s:cross-connects/pair=%d" % (host, MODULE, ingress)
            return self.device.handle(req, NATIVE, _content(req), _segments(parts[2:], False), location)
        if parts[:2] == ["api", "operations"] and len(parts) == 3:
            return self.device.rpc(req, NATIVE, unquote(parts[2]))
        raise _Fail("data-missing", "No RESTCONF resource at %s" % req.path_only, 404)


# -- HTTP ----------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "qkdlab-restconf/1"
    timeout = 30  # an idle keep-alive connection does not hold a thread forever

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_OPTIONS(self):
        self._dispatch("OPTIONS")

    def log_message(self, fmt, *args):
        log.debug("%s " + fmt, self.address_string(), *args)

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    self.close_connection = True  # the rest of the body is never read
                    raise _Fail("too-big", "request body over %d bytes" % MAX_BODY)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            raise _Fail("too-big", "request body over %d bytes" % MAX_BODY)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self, method):
        app = self.server.app
        split = urlsplit(self.path)
        era = app.era_of(split.path)
        media = era.media
        try:
            try:
                body = self._read_body()
            except ValueError:
                self.close_connection = True
                raise _malformed("bad Content-Length or chunked encoding") from None
            if not self.server.authorised(self.headers.get("Authorization")):
                raise _Fail("access-denied", "Authentication required", 401,
                            headers={"WWW-Authenticate": 'Basic realm="%s"' % self.server.realm})
            media = self._negotiate(media)
            if body.strip() and "json" not in self.headers.get("Content-Type", "application/json"):
                raise _Fail("invalid-value", "Unsupported Media Type %s: send JSON"
                            % self.headers.get("Content-Type"), 415)
            req = _Request("GET" if method == "HEAD" else method, split.path,
                           parse_qs(split.query, keep_blank_values=True), self.headers, body)
            answer = app.handle(req, self.headers.get("Host") or "127.0.0.1:%d" % self.server.server_port)
            status, doc, headers = (answer + ({},))[:3]
        except _Fail as fail:
            status, headers = fail.status, fail.headers
            doc = {era.errors_key: {"error": [{"error-type": fail.error_type, "error-tag": fail.tag,
                                               "error-message": fail.message}]}}
        except Exception:  # a bug must not kill the server thread silently
            log.exception("%s %s", method, self.path)
            status, headers = 500, {}
            doc = {era.errors_key: {"error": [{"error-type": "application", "error-tag": "operation-failed",
                                               "error-message": "internal error"}]}}
        payload = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and method != "HEAD":
            self.wfile.write(payload)

    def _negotiate(self, default):
        accept = self.headers.get("Accept", "")
        if not accept.strip():
            return default
        for media in ("application/yang-data+json", "application/json"):
            if media in accept:
                return media
        if "*/*" in accept or "application/*" in accept:
            return default
        raise _Fail("invalid-value", "Not Acceptable: only JSON is served", 406)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, app, endpoint, realm):
        super().__init__(address, _Handler)
        self.app = app
        self.realm = realm
        self._credentials = ("%s:%s" % (endpoint.username, endpoint.password)).encode()
        self._open = set()
        self._open_lock = threading.Lock()

    def authorised(self, header):
        scheme, _, value = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(value.strip(), validate=True)
        except ValueError:
            return False
        return hmac.compare_digest(given, self._credentials)

    def process_request(self, request, client_address):
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open(self):
        """Cut keep-alive connections so no client keeps talking to a stopped server."""
        with self._open_lock:
            for sock in list(self._open):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class RestconfServer:
    def __init__(self, switch, spec, flavour):
        if flavour == "odl":
            self.endpoint, self._app, self._realm = spec.odl, _OdlApp(switch, spec), "opendaylight"
        elif flavour == "native":
            self.endpoint, self._app, self._realm = spec.native, _NativeApp(switch, spec), spec.node_id
        else:
            raise ValueError("flavour: expected 'odl' or 'native', got %r" % flavour)
        self.flavour = flavour
        self._server = None
        self._thread = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.endpoint.port

    def start(self):
        if self._server is not None:
            return
        server = _HttpServer(("127.0.0.1", self.endpoint.port), self._app, self.endpoint, self._realm)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                  name="restconf-%s" % self.flavour, daemon=True)
        thread.start()
        self._server, self._thread = server, thread

    def stop(self):
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_open()
        server.server_close()
        self._thread.join()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
