"""The lab's topology: the `lab` section of inventory/lab, loaded and validated.

Every error names the field that is wrong, so the lab refuses to start rather than half-start.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TOPOLOGY = REPO / "inventory" / "lab" / "group_vars" / "all" / "lab.yml"
DEFAULT_LAB_DIR = REPO / ".lab"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TopologyError(ValueError):
    """The topology is malformed; the message names the field."""


@dataclass(frozen=True)
class Endpoint:
    port: int
    username: str
    password: str


@dataclass(frozen=True)
class SwitchSpec:
    node_id: str
    ports: int
    insertion_loss_db: float
    switching_ms: float
    odl: Endpoint
    native: Endpoint
    light: dict  # port -> launch power (dBm) of a transmitter on that port
    cross_connects: tuple  # ((ingress, egress), ...) present at first start


@dataclass(frozen=True)
class KmeSpec:
    key_size: int = 256
    max_key_count: int = 10000
    max_key_per_request: int = 128
    min_key_size: int = 64
    max_key_size: int = 8192


@dataclass(frozen=True)
class NodeSpec:
    name: str
    kme_id: str
    kme_port: int
    saes: tuple


@dataclass(frozen=True)
class LinkSpec:
    name: str
    alice: str
    bob: str
    length_km: float
    alice_port: int = None  # None: a fibre of its own, always connected
    bob_port: int = None

    @property
    def switched(self):
        return self.alice_port is not None


@dataclass(frozen=True)
class Noise:
    init: float = 0.10
    rate_drift: float = 0.10
    rate_drift_period_s: float = 3600.0


@dataclass(frozen=True)
class Topology:
    time_scale: float
    qber_limit: float
    noise: Noise
    admin_port: int
    switch: SwitchSpec
    kme: KmeSpec
    nodes: dict  # name -> NodeSpec
    links: tuple
    lab_dir: Path = field(default=DEFAULT_LAB_DIR)
    vim: bool = False  # the real OpenStack of the DCs (slow to start): lab.vim.enabled
    port_offset: int = 0

    def node_of_sae(self, sae_id):
        for node in self.nodes.values():
            if sae_id in node.saes:
                return node
        return None

    def node_of_kme(self, kme_id):
        for node in self.nodes.values():
            if node.kme_id == kme_id:
                return node
        return None

    def link_between(self, node_a, node_b):
        """The QKD link joining two nodes (either direction), or None."""
        for link in self.links:
            if {link.alice, link.bob} == {node_a, node_b}:
                return link
        return None

    def ports(self):
        """Every TCP port the lab listens on, by what listens there."""
        used = {"admin": self.admin_port, "switch.odl": self.switch.odl.port,
                "switch.native": self.switch.native.port}
        for node in self.nodes.values():
            used["nodes.%s.kme_port" % node.name] = node.kme_port
        return used


def _get(data, key, where, kind, default=None, required=True):
    if not isinstance(data, dict):
        raise TopologyError("%s: expected a mapping" % where)
    if key not in data or data[key] is None:
        if required and default is None:
            raise TopologyError("%s.%s: missing" % (where, key))
        return default
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise TopologyError("%s.%s: expected %s, got %r" % (where, key, kind.__name__, value))
    return value


def _port(value, where, offset):
    if isinstance(value, bool) or not isinstance(value, int) or not 1024 <= value <= 65535 - offset:
        raise TopologyError("%s: expected a TCP port number 1024-65535, got %r" % (where, value))
    return value + offset


def _ident(value, where):
    if not isinstance(value, str) or not _ID.match(value):
        raise TopologyError("%s: expected an identifier (letters, digits, . _ -), got %r" % (where, value))
    return value


def _endpoint(data, where, offset):
    return Endpoint(port=_port(_get(data, "port", where, int), where + ".port", offset),
                    username=_get(data, "username", where, str),
                    password=_get(data, "password", where, str))


def _switch(data, offset):
    where = "lab.switch"
    ports = _get(data, "ports", where, int, default=16)
    if not 2 <= ports <= 384:
        raise TopologyError("lab.switch.ports: expected 2-384, got %r" % ports)

    def switch_port(value, at):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= ports:
            raise TopologyError("%s: port %r is not on the switch (1-%d)" % (at, value, ports))
        return value

    light = {}
    for port, power in (_get(data, "light", where, dict, default={}, required=False)).items():
        port = switch_port(int(port) if str(port).isdigit() else port, "lab.switch.light.%s" % port)
        if isinstance(power, bool) or not isinstance(power, (int, float)) or not -60 <= power <= 30:
            raise TopologyError("lab.switch.light.%s: expected a power in dBm, got %r" % (port, power))
        light[port] = float(power)
    pairs, used = [], {}
    for i, pair in enumerate(_get(data, "cross_connects", where, list, default=[], required=False)):
        at = "lab.switch.cross_connects[%d]" % i
        ingress = switch_port(_get(pair, "ingress", at, int), at + ".ingress")
        egress = switch_port(_get(pair, "egress", at, int), at + ".egress")
        if ingress == egress:
            raise TopologyError("%s: ingress and egress are both port %d" % (at, ingress))
        for port in (ingress, egress):
            if port in used:
                raise TopologyError("%s: port %d is already used by %s" % (at, port, used[port]))
            used[port] = at
        pairs.append((ingress, egress))
    return SwitchSpec(
        node_id=_ident(_get(data, "node_id", where, str), where + ".node_id"),
        ports=ports,
        insertion_loss_db=_get(data, "insertion_loss_db", where, float, default=1.5),
        switching_ms=_get(data, "switching_ms", where, float, default=25.0),
        odl=_endpoint(_get(data, "odl", where, dict), where + ".odl", offset),
        native=_endpoint(_get(data, "native", where, dict), where + ".native", offset),
        light=light, cross_connects=tuple(pairs))


def _kme(data):
    where = "lab.kme"
    spec = KmeSpec(**{name: _get(data, name, where, int, default=getattr(KmeSpec, name))
                      for name in KmeSpec.__dataclass_fields__})
    if spec.key_size % 8 or not spec.min_key_size <= spec.key_size <= spec.max_key_size:
        raise TopologyError("lab.kme.key_size: expected a multiple of 8 between min_key_size and max_key_size")
    if spec.max_key_count < 1 or spec.max_key_per_request < 1:
        raise TopologyError("lab.kme: max_key_count and max_key_per_request must be at least 1")
    return spec


def _nodes(data, offset):
    nodes, kme_ids, sae_ids = {}, {}, {}
    for name, spec in data.items():
        where = "lab.nodes.%s" % name
        _ident(name, where)
        kme_id = _ident(_get(spec, "kme_id", where, str), where + ".kme_id")
        if kme_id in kme_ids:
            raise TopologyError("%s.kme_id: %s is already the KME of %s" % (where, kme_id, kme_ids[kme_id]))
        kme_ids[kme_id] = name
        saes = _get(spec, "saes", where, list)
        if not saes:
            raise TopologyError("%s.saes: a node needs at least one SAE" % where)
        for sae in saes:
            _ident(sae, where + ".saes")
            if sae in sae_ids or sae in kme_ids:
                raise TopologyError("%s.saes: %s is already used by %s" % (where, sae, sae_ids.get(sae, "a KME")))
            sae_ids[sae] = name
        nodes[name] = NodeSpec(name=name, kme_id=kme_id, saes=tuple(saes),
                               kme_port=_port(_get(spec, "kme_port", where, int), where + ".kme_port", offset))
    if not nodes:
        raise TopologyError("lab.nodes: the lab needs at least two nodes")
    return nodes


def _links(data, nodes, switch):
    links, names, fibres = [], set(), {}
    for i, spec in enumerate(data):
        where = "lab.links[%d]" % i
        name = _ident(_get(spec, "name", where, str), where + ".name")
        if name in names:
            raise TopologyError("%s.name: link %s is defined twice" % (where, name))
        names.add(name)
        ends = {}
        for end in ("alice", "bob"):
            node = _get(spec, end, where, str)
            if node not in nodes:
                raise TopologyError("%s.%s: unknown node %r (known: %s)" % (where, end, node, ", ".join(nodes)))
            ends[end] = node
        if ends["alice"] == ends["bob"]:
            raise TopologyError("%s: alice and bob are the same node %s" % (where, ends["alice"]))
        length = _get(spec, "length_km", where, float)
        if not 0 <= length <= 200:
            raise TopologyError("%s.length_km: expected 0-200 km, got %r" % (where, length))
        ports = {}
        for end in ("alice_port", "bob_port"):
            port = spec.get(end)
            if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                                     or not 1 <= port <= switch.ports):
                raise TopologyError("%s.%s: port %r is not on the switch (1-%d)" % (where, end, port, switch.ports))
            ports[end] = port
        if (ports["alice_port"] is None) != (ports["bob_port"] is None):
            raise TopologyError("%s: give both alice_port and bob_port (switched link) or neither" % where)
        if ports["alice_port"] is not None:
            if ports["alice_port"] == ports["bob_port"]:
                raise TopologyError("%s: alice_port and bob_port are both port %d" % (where, ports["alice_port"]))
            # A Bob's port may serve several Alices (time-sharing); an Alice's port serves one link.
            owner = fibres.get(("alice", ports["alice_port"])) or fibres.get(("bob", ports["alice_port"]))
            if owner:
                raise TopologyError("%s.alice_port: port %d is already used by link %s"
                                    % (where, ports["alice_port"], owner))
            if ("alice", ports["bob_port"]) in fibres:
                raise TopologyError("%s.bob_port: port %d is the Alice port of link %s"
                                    % (where, ports["bob_port"], fibres[("alice", ports["bob_port"])]))
            bob_owner = fibres.get(("bob-node", ports["bob_port"]))
            if bob_owner and bob_owner != ends["bob"]:
                raise TopologyError("%s.bob_port: port %d already belongs to the Bob of node %s"
                                    % (where, ports["bob_port"], bob_owner))
            fibres[("alice", ports["alice_port"])] = name
            fibres[("bob", ports["bob_port"])] = name
            fibres[("bob-node", ports["bob_port"])] = ends["bob"]
        links.append(LinkSpec(name=name, length_km=length, **ends, **ports))
    return tuple(links)


def parse(data, lab_dir=None, port_offset=0):
    """Build a Topology from the parsed YAML of a lab section file."""
    lab = _get(data, "lab", "(file)", dict)
    time_scale = _get(lab, "time_scale", "lab", float, default=1.0)
    if not 0 < time_scale <= 1e6:
        raise TopologyError("lab.time_scale: expected a factor > 0, got %r" % time_scale)
    qber_limit = _get(lab, "qber_limit", "lab", float, default=0.08)
    if not 0 < qber_limit < 0.5:
        raise TopologyError("lab.qber_limit: expected a fraction between 0 and 0.5, got %r" % qber_limit)
    noise_data = _get(lab, "noise", "lab", dict, default={}, required=False)
    noise = Noise(**{name: _get(noise_data, name, "lab.noise", float, default=getattr(Noise, name))
                     for name in Noise.__dataclass_fields__})
    if not (0 <= noise.init < 1 and 0 <= noise.rate_drift < 1 and noise.rate_drift_period_s > 0):
        raise TopologyError("lab.noise: init and rate_drift are fractions below 1, the period is positive")
    vim = _get(_get(lab, "vim", "lab", dict, default={}, required=False), "enabled", "lab.vim", bool,
               default=False, required=False)
    switch = _switch(_get(lab, "switch", "lab", dict), port_offset)
    nodes = _nodes(_get(lab, "nodes", "lab", dict), port_offset)
    links = _links(_get(lab, "links", "lab", list), nodes, switch)
    topo = Topology(time_scale=time_scale, qber_limit=qber_limit, noise=noise,
                    admin_port=_port(_get(lab, "admin_port", "lab", int), "lab.admin_port", port_offset),
                    switch=switch, kme=_kme(_get(lab, "kme", "lab", dict, default={}, required=False)),
                    nodes=nodes, links=links, lab_dir=Path(lab_dir or DEFAULT_LAB_DIR).resolve(),
                    vim=vim, port_offset=port_offset)
    seen = {}
    for what, port in topo.ports().items():
        if port in seen:
            raise TopologyError("%s: TCP port %d is also used by %s" % (what, port, seen[port]))
        seen[port] = what
    return topo


def load(path=None, lab_dir=None, port_offset=None):
    """Load the topology; QKDLAB_TOPOLOGY, QKDLAB_DIR and QKDLAB_PORT_OFFSET override the defaults."""
    path = Path(path or os.environ.get("QKDLAB_TOPOLOGY") or DEFAULT_TOPOLOGY)
    lab_dir = lab_dir or os.environ.get("QKDLAB_DIR") or DEFAULT_LAB_DIR
    if port_offset is None:
        port_offset = int(os.environ.get("QKDLAB_PORT_OFFSET", "0") or 0)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise TopologyError("%s: cannot read the topology: %s" % (path, exc.strerror)) from None
    except yaml.YAMLError as exc:
        raise TopologyError("%s: not valid YAML: %s" % (path, exc)) from None
    return parse(data, lab_dir=lab_dir, port_offset=port_offset)
