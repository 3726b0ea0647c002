"""The lab's optical switch: a single-sided (NxCC) Polatis beam-steering switch.

Pairs are keyed by ingress; a port is in at most one pair. A new or re-pointed pair carries light
only once switching_ms has passed after the call returned (break-before-make). The configuration
is kept as JSON, replaced atomically on every change, so a restart keeps it (MODE_PRESERVE).

Readers (connected, power_dbm, pairs, ...) never take the lock: every change builds a new
immutable snapshot and swaps it in with one assignment.
"""

import json
import os
import tempfile
import threading
import time
from collections import namedtuple
from pathlib import Path

UNLIT_DBM = -60.0
_SETTLED = float("-inf")
_STATE_VERSION = 1

# pairs: ingress -> (egress, settle_at); links: port -> (peer, settle_at) for pairs whose ports
# are both enabled (a disabled port blocks the light but keeps its pair).
_Snapshot = namedtuple("_Snapshot", "pairs disabled labels links")


class SwitchError(Exception):
    """A refused request; tag is the RESTCONF error-tag the device reports."""

    def __init__(self, tag, message):
        super().__init__(message)
        self.tag = tag
        self.message = message


class Switch:
    def __init__(self, spec, state_path, clock=time.monotonic):
        self.spec = spec
        self._path = Path(state_path)
        self._clock = clock
        self._delay = spec.switching_ms / 1000.0
        self._lock = threading.Lock()
        self._snap = None
        with self._lock:
            self._load()

    # -- reads (lock-free) -------------------------------------------------------------------

    def pairs(self):
        """Configured pairs [(ingress, egress), ...] sorted by ingress."""
        return sorted((i, e) for i, (e, _) in self._snap.pairs.items())

    def settled_pairs(self):
        """The pairs whose switching has finished (the operational view)."""
        now = self._clock()
        return sorted((i, e) for i, (e, t) in self._snap.pairs.items() if now >= t)

    def egress_of(self, ingress, settled=False):
        """The egress paired with ingress, or None (also None while switching if settled)."""
        entry = self._snap.pairs.get(ingress)
        if entry is None or settled and self._clock() < entry[1]:
            return None
        return entry[0]

    def connected(self, port_a, port_b):
        entry = self._snap.links.get(port_a)
        return entry is not None and entry[0] == port_b and self._clock() >= entry[1]

    def connected_since(self, port_a, port_b):
        """When (on the clock) the pair joining a and b settled; -inf if before this start; None if not joined."""
        entry = self._snap.links.get(port_a)
        if entry is None or entry[0] != port_b or self._clock() < entry[1]:
            return None
        return entry[1]

    def power_dbm(self, port):
        self.check_port(port)
        light = self.spec.light
        if port in light:
            return light[port]
        entry = self._snap.links.get(port)
        if entry is None or entry[0] not in light or self._clock() < entry[1]:
            return UNLIT_DBM
        return max(UNLIT_DBM, light[entry[0]] - self.spec.insertion_loss_db)

    def port_config(self):
        snap = self._snap
        return [{"port-id": port, "status": "DISABLED" if port in snap.disabled else "ENABLED",
                 "label": snap.labels.get(port, "")}
                for port in range(1, self.spec.ports + 1)]

    def check_port(self, port):
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= self.spec.ports:
            raise SwitchError("invalid-value", "port %r is not on the switch (1-%d)" % (port, self.spec.ports))

    # -- changes -----------------------------------------------------------------------------

    def create(self, ingress, egress):
        with self._lock:
            self._check_pair(ingress, egress)
            snap = self._snap
            if ingress in snap.pairs:
                raise SwitchError("data-exists", "ingress %d is already connected to egress %d"
                                  % (ingress, snap.pairs[ingress][0]))
            self._check_free(snap.pairs, ingress, egress)
            self._check_enabled(ingress, egress)
            pairs = dict(snap.pairs)
            pairs[ingress] = (egress, self._clock() + self._delay)
            self._commit(pairs, snap.disabled, snap.labels)

    def replace(self, ingress, egress):
        """Create or re-point the pair of ingress; True if it was created."""
        with self._lock:
            self._check_pair(ingress, egress)
            snap = self._snap
            old = snap.pairs.get(ingress)
            if old is not None and old[0] == egress:
                return False
            self._check_free(snap.pairs, ingress, egress)
            self._check_enabled(ingress, egress)
            pairs = dict(snap.pairs)
            pairs[ingress] = (egress, self._clock() + self._delay)
            self._commit(pairs, snap.disabled, snap.labels)
            return old is None

    def delete(self, ingress):
        with self._lock:
            self.check_port(ingress)
            snap = self._snap
            if ingress not in snap.pairs:
                raise SwitchError("data-missing", "no cross-connect on ingress %d" % ingress)
            pairs = dict(snap.pairs)
            del pairs[ingress]
            self._commit(pairs, snap.disabled, snap.labels)

    def replace_all(self, pairs):
        """Make the pairs exactly these; unchanged pairs stay settled."""
        with self._lock:
            snap = self._snap
            new = self._validated(pairs)
            now = self._clock() + self._delay
            result = {}
            for ingress, egress in new:
                old = snap.pairs.get(ingress)
                if old is not None and old[0] == egress:
                    result[ingress] = old
                else:
                    self._check_enabled(ingress, egress)
                    result[ingress] = (egress, now)
            self._commit(result, snap.disabled, snap.labels)

    def set_port_enabled(self, port, enabled):
        if enabled:
            self.set_port_state(enable=[port])
        else:
            self.set_port_state(disable=[port])

    def set_port_state(self, enable=(), disable=()):
        """Enable and disable ports in one change (the port-set-state RPC)."""
        with self._lock:
            enable, disable = list(enable), list(disable)
            for port in enable + disable:
                self.check_port(port)
            both = set(enable) & set(disable)
            if both:
                raise SwitchError("invalid-value", "port %d is both enabled and disabled" % min(both))
            snap = self._snap
            disabled = (snap.disabled - set(enable)) | set(disable)
            self._commit(snap.pairs, frozenset(disabled), snap.labels)

    def set_label(self, port, label):
        with self._lock:
            self.check_port(port)
            if not isinstance(label, str) or len(label) > 128 or any(not " " <= c <= "~" for c in label):
                raise SwitchError("invalid-value", "a label is up to 128 printable ASCII characters")
            labels = dict(self._snap.labels)
            labels[port] = label
            self._commit(self._snap.pairs, self._snap.disabled, labels)

    # -- internals (called with the lock held) ----------------------------------------------

    def _check_pair(self, ingress, egress):
        self.check_port(ingress)
        self.check_port(egress)
        if ingress == egress:
            raise SwitchError("invalid-value", "ingress and egress are both port %d" % ingress)

    @staticmethod
    def _check_free(pairs, ingress, egress):
        """Neither port may be used by a pair other than the one keyed by ingress."""
        for i, (e, _) in pairs.items():
            if i == ingress:
                continue
            for port in (ingress, egress):
                if port in (i, e):
                    raise SwitchError("in-use", "port %d is already in use (pair %d-%d)" % (port, i, e))

    def _check_enabled(self, *ports):
        for port in ports:
            if port in self._snap.disabled:
                raise SwitchError("resource-denied", "port %d is disabled" % port)

    def _validated(self, pairs):
        used, result = {}, []
        for pair in pairs:
            ingress, egress = pair
            self._check_pair(ingress, egress)
            for port in (ingress, egress):
                if port in used:
                    raise SwitchError("in-use", "port %d is in two pairs (%d-%d and %d-%d)"
                                      % (port, *used[port], ingress, egress))
                used[port] = (ingress, egress)
            result.append((ingress, egress))
        return result

    def _commit(self, pairs, disabled, labels):
        """Persist first, then publish: a change that cannot be saved is not made."""
        self._save(pairs, disabled, labels)
        self._publish(pairs, disabled, labels)

    def _publish(self, pairs, disabled, labels):
        links = {}
        for ingress, (egress, settle_at) in pairs.items():
            if ingress not in disabled and egress not in disabled:
                links[ingress] = (egress, settle_at)
                links[egress] = (ingress, settle_at)
        self._snap = _Snapshot(pairs, frozenset(disabled), labels, links)

    def _save(self, pairs, disabled, labels):
        state = {"version": _STATE_VERSION,
                 "pairs": [{"ingress": i, "egress": e} for i, (e, _) in sorted(pairs.items())],
                 "disabled": sorted(disabled),
                 "labels": {str(p): label for p, label in sorted(labels.items()) if label}}
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=self._path.name + ".")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(state, out, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def _load(self):
        try:
            text = self._path.read_text()
        except FileNotFoundError:
            pairs = {i: (e, _SETTLED) for i, e in self.spec.cross_connects}
            self._commit(pairs, frozenset(), {})
            return
        try:
            state = json.loads(text)
            pairs = self._validated((p["ingress"], p["egress"]) for p in state["pairs"])
            disabled = frozenset(state.get("disabled", []))
            for port in disabled:
                self.check_port(port)
            labels = {int(p): str(label) for p, label in state.get("labels", {}).items()}
        except (ValueError, TypeError, KeyError, SwitchError) as exc:
            raise SwitchError("operation-failed", "%s: unusable switch state (%s); remove it to start "
                              "from the topology's cross_connects" % (self._path, exc)) from None
        # Pairs that survived a restart were made long ago: they are settled.
        self._publish({i: (e, _SETTLED) for i, e in pairs}, disabled, labels)
