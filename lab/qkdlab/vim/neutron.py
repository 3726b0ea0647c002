"""A minimal Neutron v2.0 stand-in: just enough networking for Nova to boot servers with a fixed IP.

The lab's one emulated OpenStack piece (Keystone, Glance, Placement and Nova are the real
services). It serves one shared network `private` (192.0.2.0/24, TEST-NET-1, never routed), a
`default` security group per project, ports with fixed IPs and bindings that always succeed, and
empty floating IPs and routers. Any token is accepted: Nova and openstacksdk authenticate with
the real Keystone; this process only keeps the bookkeeping they expect. State is kept in a JSON
file so a restart does not orphan the ports of running servers.

    python -m qkdlab.vim.neutron --port 18505 --state DIR/neutron.json
"""

import argparse
import ipaddress
import json
import os
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

NETWORK_ID = "3f6d6a8e-6f0c-4b6e-9f55-7a2d1c0b9e01"
SUBNET_ID = "b1c2d3e4-5f60-4a7b-8c9d-0e1f2a3b4c5d"
CIDR = ipaddress.ip_network("192.0.2.0/24")
COLLECTIONS = {  # URL segment -> (collection key, member key)
    "networks": ("networks", "network"),
    "subnets": ("subnets", "subnet"),
    "ports": ("ports", "port"),
    "security-groups": ("security_groups", "security_group"),
    "floatingips": ("floatingips", "floatingip"),
    "routers": ("routers", "router"),
}
EXTENSIONS = ["binding", "security-group", "quotas", "external-net"]
_PAGING = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"}


def _initial_state():
    network = {
        "id": NETWORK_ID, "name": "private", "status": "ACTIVE", "admin_state_up": True,
        "shared": True, "router:external": False, "subnets": [SUBNET_ID], "mtu": 1450,
        "port_security_enabled": True, "provider:network_type": "flat",
        "provider:physical_network": "lab", "provider:segmentation_id": None,
        "tenant_id": "", "project_id": "", "description": "", "tags": [],
    }
    subnet = {
        "id": SUBNET_ID, "name": "private-subnet", "network_id": NETWORK_ID,
        "cidr": str(CIDR), "ip_version": 4, "gateway_ip": str(CIDR[1]), "enable_dhcp": True,
        "dns_nameservers": [], "host_routes": [], "ipv6_ra_mode": None, "ipv6_address_mode": None,
        "allocation_pools": [{"start": str(CIDR[10]), "end": str(CIDR[-2])}],
        "tenant_id": "", "project_id": "", "description": "", "tags": [],
    }
    state = {key: {} for key, _ in COLLECTIONS.values()}
    state["networks"][NETWORK_ID] = network
    state["subnets"][SUBNET_ID] = subnet
    return state


class Store:
    """The resources, guarded by one lock and saved atomically after every change."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                self.state = json.load(handle)
        else:
            self.state = _initial_state()
            self.save()

    def save(self):
        if not self.path:
            return
        tmp = "%s.%d.tmp" % (self.path, os.getpid())
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def default_security_group(self, project_id):
        groups = self.state["security_groups"]
        for group in groups.values():
            if group["name"] == "default" and group["tenant_id"] == project_id:
                return
        sg_id = str(uuid.uuid4())
        groups[sg_id] = {"id": sg_id, "name": "default", "description": "default",
                         "tenant_id": project_id, "project_id": project_id,
                         "security_group_rules": [], "stateful": True, "tags": []}
        self.save()

    def next_ip(self):
        used = {ip["ip_address"] for port in self.state["ports"].values() for ip in port["fixed_ips"]}
        for address in CIDR.hosts():
            if address >= CIDR[10] and str(address) not in used:
                return str(address)
        raise Conflict("IpAddressGenerationFailure", "No more IP addresses available on network")

    def new_port(self, body):
        port_id = str(uuid.uuid4())
        project = body.get("tenant_id") or body.get("project_id") or ""
        port = {
            "id": port_id, "name": body.get("name", ""), "network_id": body["network_id"],
            "tenant_id": project, "project_id": project, "admin_state_up": True, "status": "DOWN",
            "mac_address": "fa:16:3e:%02x:%02x:%02x" % tuple(uuid.UUID(port_id).bytes[:3]),
            "fixed_ips": [{"subnet_id": SUBNET_ID, "ip_address": self.next_ip()}],
            "device_id": body.get("device_id", ""), "device_owner": body.get("device_owner", ""),
            "security_groups": body.get("security_groups", []), "allowed_address_pairs": [],
            "extra_dhcp_opts": [], "port_security_enabled": True, "binding:host_id": "",
            "binding:vif_type": "unbound", "binding:vif_details": {}, "binding:vnic_type": "normal",
            "binding:profile": {}, "description": "", "tags": [], "dns_name": "",
        }
        port.update({k: v for k, v in body.items() if k in ("binding:host_id", "binding:profile")})
        self.bind(port)
        return port

    @staticmethod
    def bind(port):
        # Binding always succeeds once a host is named; the fake virt driver plugs nothing.
        if port.get("binding:host_id"):
            port.update({"binding:vif_type": "ovs", "status": "ACTIVE",
                         "binding:vif_details": {"port_filter": True, "ovs_hybrid_plug": False}})


class Conflict(Exception):
    def __init__(self, kind, message, code=409):
        super().__init__(message)
        self.kind, self.message, self.code = kind, message, code


def _matches(obj, filters):
    for key, wanted in filters.items():
        value = obj.get(key)
        if isinstance(value, bool):
            value = str(value)
            wanted = [w.capitalize() for w in wanted]
        elif value is None:
            value = ""
        if str(value) not in wanted:
            return False
    return True


def _project(obj, fields):
    return {k: v for k, v in obj.items() if k in fields} if fields else obj


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "neutron-standin"
    store = None  # set by serve()

    def log_message(self, fmt, *args):  # one line per request, to the service log
        print("%s %s" % (self.address_string(), fmt % args), flush=True)

    def _reply(self, code, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code, kind, message):
        self._reply(code, {"NeutronError": {"type": kind, "message": message, "detail": ""}})

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}") if length else {}

    def _route(self):
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        if parts and parts[-1].endswith(".json"):
            parts[-1] = parts[-1][:-5]
        return parts, parse_qs(url.query)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        parts, query = self._route()
        if not parts:
            return self._reply(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
                {"rel": "self", "href": "http://%s/v2.0/" % self.headers.get("Host")}]}]})
        if parts == ["v2.0"]:
            return self._reply(200, {"resources": [{"name": k, "collection": k} for k in COLLECTIONS]})
        if not self._authorised():
            return None
        if parts == ["v2.0", "extensions"]:
            return self._reply(200, {"extensions": [
                {"alias": a, "name": a, "description": a, "updated": "2013-01-01T00:00:00-00:00",
                 "links": []} for a in EXTENSIONS]})
        if len(parts) == 3 and parts[:2] == ["v2.0", "quotas"]:
            return self._reply(200, {"quota": {k: -1 for k in (
                "network", "subnet", "port", "router", "floatingip", "security_group",
                "security_group_rule")}})
        if len(parts) not in (2, 3) or parts[1] not in COLLECTIONS:
            return self._error(404, "HTTPNotFound", "The resource could not be found.")
        plural, single = COLLECTIONS[parts[1]]
        fields = query.pop("fields", [])
        with self.store.lock:
            if plural == "security_groups" and "tenant_id" in query:
                for project in query["tenant_id"]:
                    self.store.default_security_group(project)
            items = self.store.state[plural]
            if len(parts) == 3:
                obj = items.get(parts[2])
                if obj is None:
                    return self._error(404, "%sNotFound" % single.title().replace("_", ""),
                                       "%s %s could not be found." % (single, parts[2]))
                return self._reply(200, {single: _project(obj, fields)})
            filters = {k: v for k, v in query.items() if k not in _PAGING}
            found = [_project(o, fields) for o in items.values() if _matches(o, filters)]
        return self._reply(200, {plural: found})

    def do_POST(self):  # noqa: N802
        parts, _ = self._route()
        if not self._authorised():
            return None
        if parts != ["v2.0", "ports"]:
            return self._error(404, "HTTPNotFound", "Only ports can be created here.")
        body = self._body().get("port", {})
        with self.store.lock:
            if body.get("network_id") not in self.store.state["networks"]:
                return self._error(404, "NetworkNotFound", "Network %s could not be found."
                                   % body.get("network_id"))
            try:
                port = self.store.new_port(body)
            except Conflict as exc:
                return self._error(exc.code, exc.kind, exc.message)
            self.store.state["ports"][port["id"]] = port
            self.store.save()
        return self._reply(201, {"port": port})

    def do_PUT(self):  # noqa: N802
        parts, _ = self._route()
        if not self._authorised():
            return None
        if len(parts) != 3 or parts[1] != "ports":
            return self._error(404, "HTTPNotFound", "Only ports can be updated here.")
        body = self._body().get("port", {})
        with self.store.lock:
            port = self.store.state["ports"].get(parts[2])
            if port is None:
                return self._error(404, "PortNotFound", "Port %s could not be found." % parts[2])
            port.update({k: v for k, v in body.items() if k not in ("id", "fixed_ips", "network_id")})
            if not port.get("binding:host_id"):
                port.update({"binding:vif_type": "unbound", "status": "DOWN"})
            self.store.bind(port)
            self.store.save()
        return self._reply(200, {"port": port})

    def do_DELETE(self):  # noqa: N802
        parts, _ = self._route()
        if not self._authorised():
            return None
        if len(parts) != 3 or parts[1] != "ports":
            return self._error(404, "HTTPNotFound", "Only ports can be deleted here.")
        with self.store.lock:
            if self.store.state["ports"].pop(parts[2], None) is None:
                return self._error(404, "PortNotFound", "Port %s could not be found." % parts[2])
            self.store.save()
        return self._reply(204)

    def _authorised(self):
        # Tokens come from the real Keystone; the stand-in only insists that one is sent.
        if self.headers.get("X-Auth-Token"):
            return True
        self._error(401, "HTTPUnauthorized", "Authentication required")
        return False


def serve(port, state_path, host="127.0.0.1"):
    Handler.store = Store(state_path)
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", required=True, help="JSON file keeping networks and ports")
    args = parser.parse_args(argv)
    serve(args.port, args.state)


if __name__ == "__main__":
    main()
