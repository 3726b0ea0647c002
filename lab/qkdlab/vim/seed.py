"""Fill the running services with what the data centres need, idempotently, over plain REST:
the service catalog, service users, a project and user per DC, and Nova flavors.

Runs at every start (a few requests), so a changed port or a wiped database heals itself.
"""

import json
import urllib.error
import urllib.request

from .configs import url
from .layout import DATACENTRES, REGION, SERVICE_USERS

CATALOG = {  # service -> (type, name)
    "keystone": ("identity", "keystone"),
    "glance": ("image", "glance"),
    "placement": ("placement", "placement"),
    "nova": ("compute", "nova"),
    "neutron": ("network", "neutron"),
}
# vCPU, RAM MiB, disk GB. vnf.oversized is larger than the lab's compute host (10 vCPU, 8 GiB,
# RAM overcommit 1.5) yet within the default quota, so booting it gets a real "No valid host".
FLAVORS = {
    "vnf.tiny": (1, 256, 1),
    "vnf.small": (1, 1024, 2),
    "vnf.oversized": (4, 32768, 10),
}


class Rest:
    """A tiny JSON client with a Keystone token."""

    def __init__(self, token=None):
        self.token = token

    def call(self, method, address, body=None, headers=None, ok=(200, 201, 202, 204)):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(address, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json")
        if self.token:
            req.add_header("X-Auth-Token", self.token)
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw, status, resp_headers = resp.read(), resp.status, resp.headers
        except urllib.error.HTTPError as exc:
            raw, status, resp_headers = exc.read(), exc.code, exc.headers
        if status not in ok:
            raise RuntimeError("%s %s -> %d: %s" % (method, address, status, raw[:300]))
        return status, (json.loads(raw) if raw else {}), resp_headers


def admin_token(ports, password):
    """A project-scoped admin token (the admin project), as Nova's flavor policy wants."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    _, _, headers = Rest().call("POST", url(ports, "keystone") + "/auth/tokens", body)
    return headers["X-Subject-Token"]


def _one(rest, address, key, name):
    _, doc, _ = rest.call("GET", address)
    found = [x for x in doc[key] if x.get("name") == name]
    return found[0] if found else None


def _ensure(rest, keystone, collection, single, name, body):
    base = keystone + "/" + collection
    existing = _one(rest, "%s?name=%s" % (base, name), collection, name)
    if existing:
        return existing["id"]
    _, doc, _ = rest.call("POST", base, {single: dict(body, name=name)})
    return doc[single]["id"]


def identity(ports, passwords):
    """Service catalog, service project and users, and a project and user per data centre."""
    rest = Rest(admin_token(ports, passwords["admin"]))
    keystone = url(ports, "keystone")
    _, roles, _ = rest.call("GET", keystone + "/roles")
    role = {r["name"]: r["id"] for r in roles["roles"]}
    domain = {"domain_id": "default"}
    service_project = _ensure(rest, keystone, "projects", "project", "service", domain)
    for user in SERVICE_USERS:
        uid = _ensure(rest, keystone, "users", "user", user,
                      dict(domain, password=passwords[user], default_project_id=service_project))
        for name in ("admin", "service"):
            rest.call("PUT", "%s/projects/%s/users/%s/roles/%s" % (
                keystone, service_project, uid, role[name]))
    for dc in DATACENTRES:
        pid = _ensure(rest, keystone, "projects", "project", dc,
                      dict(domain, description="data centre " + dc))
        uid = _ensure(rest, keystone, "users", "user", dc,
                      dict(domain, password=passwords[dc], default_project_id=pid))
        for name in ("member", "reader"):
            rest.call("PUT", "%s/projects/%s/users/%s/roles/%s" % (keystone, pid, uid, role[name]))
    for service, (stype, sname) in CATALOG.items():
        _ensure_endpoints(rest, keystone, stype, sname, url(ports, service))
    return rest.token


def _ensure_endpoints(rest, keystone, stype, sname, address):
    _, doc, _ = rest.call("GET", keystone + "/services?type=" + stype)
    if doc["services"]:
        sid = doc["services"][0]["id"]
    else:
        _, created, _ = rest.call("POST", keystone + "/services",
                                  {"service": {"type": stype, "name": sname, "enabled": True}})
        sid = created["service"]["id"]
    _, doc, _ = rest.call("GET", keystone + "/endpoints?service_id=" + sid)
    have = {e["interface"]: e for e in doc["endpoints"]}
    for interface in ("public", "internal", "admin"):
        endpoint = have.get(interface)
        if endpoint is None:
            rest.call("POST", keystone + "/endpoints", {"endpoint": {
                "service_id": sid, "interface": interface, "url": address, "region_id": REGION}})
        elif endpoint["url"] != address:
            rest.call("PATCH", keystone + "/endpoints/" + endpoint["id"],
                      {"endpoint": {"url": address}})


def flavors(ports, token):
    rest = Rest(token)
    base = url(ports, "nova")
    _, doc, _ = rest.call("GET", base + "/flavors/detail?is_public=None")
    have = {f["name"] for f in doc["flavors"]}
    for name, (vcpus, ram, disk) in FLAVORS.items():
        if name not in have:
            rest.call("POST", base + "/flavors", {"flavor": {
                "name": name, "vcpus": vcpus, "ram": ram, "disk": disk, "os-flavor-access:is_public": True}})


def compute_up(ports, token):
    """True when nova-compute reports up (it then also has its resource provider)."""
    _, doc, _ = Rest(token).call("GET", url(ports, "nova") + "/os-services?binary=nova-compute")
    return any(s["state"] == "up" and s["status"] == "enabled" for s in doc["services"])
