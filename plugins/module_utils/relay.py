# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Trusted-node key relay: hop-by-hop one-time pad over keys taken by ETSI GS QKD 014.

A path origin -> TN1 -> ... -> TNk -> destination crosses k+1 QKD links; key_i is shared over
link i. The origin takes key_1 for TN1 (qkd_key, into a 0600 file). Trusted node i takes key_i by
key_ID, takes key_{i+1} of the same size for the next link and hands back
relayed_i = key_i XOR key_{i+1} (relay). The origin recovers key_{i+1} = relayed_i XOR key_i in
turn (recover) and uses only the last key; the destination takes that key from its own KME by
key_ID, as it would a key shared over a direct link.

API (plain Python; the key_relay and key_relay_recover modules are thin layers over it)::

    xor(a, b)                                                   -> bytes (equal lengths only)
    relay(client, previous_sae_id, previous_key_id, next_sae_id) -> RelayStep
    RelayStep.from_dict(result, index)                          -> RelayStep (a relay's task result)
    check_chain(first_key_id, steps)                            -> raises unless steps follow on
    recover(key, steps)                                         -> bytes: the last step's key
    read_key_file(path) / remove_key_file(path)                 -> bytes or None / bool
    fingerprint(material)                                       -> SHA-256 hex, safe to compare

Raw keys live in memory for one call, or in 0600 files on the origin; no message, repr or
result ever holds one. A relayed value is one-time-pad ciphertext and is safe to carry.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat

from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError
from ansible_collections.qkd.nfv.plugins.module_utils.kme import KmeError, is_key_id

_HEX = re.compile(r"^(?:0[xX])?((?:[0-9a-fA-F]{2})+)$")


class RelayError(QkdNfvError):
    """A relay step cannot be done; the message says which hop and what to do."""


class KeyLengthError(RelayError):
    """Two keys of different lengths cannot be combined."""


def xor(a, b):
    """a XOR b for byte strings of one length; other lengths are refused (a pad never stretches)."""
    if len(a) != len(b):
        raise KeyLengthError(
            "cannot combine keys of %d and %d bits: a relay XORs keys of equal length only; "
            "take the outgoing key with the size of the incoming one" % (len(a) * 8, len(b) * 8))
    if not a:
        raise KeyLengthError("cannot combine empty keys")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def fingerprint(material):
    """SHA-256 of a key, hex: two ends compare it to show they hold the same key."""
    return hashlib.sha256(material).hexdigest()


class Hop:
    """One QKD link a relayed key crosses: the node that took the key (its SAE ID, the master),
    the node at the far end (slave SAE ID), the link (KME to KME) and the key's key_ID."""

    __slots__ = ("node", "next_node", "link", "key_id")

    def __init__(self, node, next_node, key_id, link=None):
        self.node, self.next_node, self.key_id, self.link = node, next_node, key_id, link

    @classmethod
    def from_status(cls, status, next_sae_id, key_id):
        """The hop as the master's KME describes it in its Status (master_SAE_ID, KME IDs)."""
        link = "%s -> %s" % (status["source_KME_ID"], status["target_KME_ID"])
        return cls(status.get("master_SAE_ID"), next_sae_id, key_id, link)

    def as_dict(self):
        return {"node": self.node, "next_node": self.next_node, "link": self.link, "key_id": self.key_id}

    def __repr__(self):
        return "Hop(%s -> %s, key_id=%s)" % (self.node, self.next_node, self.key_id)


class RelayStep:
    """What a trusted node hands on: its outgoing hop and key_i XOR key_{i+1}."""

    __slots__ = ("previous_key_id", "previous_sae_id", "hop", "relayed", "status")

    def __init__(self, previous_key_id, hop, relayed, previous_sae_id=None, status=None):
        self.previous_key_id, self.previous_sae_id = previous_key_id, previous_sae_id
        self.hop, self.relayed = hop, bytes(relayed)
        self.status = status  # the KME's Status of the outgoing pool, when known

    @property
    def key_id(self):
        return self.hop.key_id

    @property
    def size(self):
        return len(self.relayed) * 8

    def as_dict(self):
        return {"key_id": self.key_id, "previous_key_id": self.previous_key_id,
                "previous_sae_id": self.previous_sae_id, "next_sae_id": self.hop.next_node,
                "relayed": self.relayed.hex(), "size": self.size, "hop": self.hop.as_dict()}

    @classmethod
    def from_dict(cls, item, index, option="hops"):
        """A step from a relay result: a dict with key_id, previous_key_id and relayed (hex)."""
        where = "%s[%d]" % (option, index)
        if not isinstance(item, dict):
            raise RelayError("%s must be the result of a key_relay task (a dict with key_id, "
                             "previous_key_id and relayed)" % where, option=option)
        for name in ("key_id", "previous_key_id"):
            if not is_key_id(item.get(name)):
                raise RelayError("%s.%s must be the key_ID (a UUID) that key_relay returned"
                                 % (where, name), option=option)
        relayed = item.get("relayed")
        match = _HEX.match(relayed) if isinstance(relayed, str) else None
        if match is None:
            raise RelayError("%s.relayed must be the hexadecimal value that key_relay returned"
                             % where, option=option)
        hop = item.get("hop") if isinstance(item.get("hop"), dict) else {}
        return cls(item["previous_key_id"],
                   Hop(hop.get("node"), hop.get("next_node"), item["key_id"], hop.get("link")),
                   bytes.fromhex(match.group(1)), item.get("previous_sae_id"))


def pool_status(client, slave_sae_id, what):
    """The Status of the pool toward slave_sae_id, wrapped so a failure names the hop."""
    try:
        return client.status(slave_sae_id)
    except KmeError as exc:
        raise RelayError("%s: cannot read the key pool shared with %s: %s" % (what, slave_sae_id, exc.msg),
                         **exc.details) from None


def relay(client, previous_sae_id, previous_key_id, next_sae_id):
    """One trusted node's step: key_i by key_ID, key_{i+1} of the same size, their XOR.

    The outgoing pool is checked first so that an empty pool costs no incoming key; the incoming
    key is taken before the outgoing one so that a spent or foreign key_ID costs no new key.
    """
    if previous_sae_id == next_sae_id:
        raise RelayError("previous_sae_id and next_sae_id are both %s: a trusted node forwards a key "
                         "to another node than the one it came from" % next_sae_id, option="next_sae_id")
    if not is_key_id(previous_key_id):
        raise RelayError("previous_key_id %r is not a key_ID: pass the key_ID (a UUID) of the key the "
                         "previous node took for this node" % (previous_key_id,), option="previous_key_id")
    status = pool_status(client, next_sae_id, "relay")
    if status["stored_key_count"] < 1:
        raise RelayError(
            "relay: %s holds no key for %s (stored_key_count 0); nothing was consumed: wait for the QKD "
            "link to produce keys and run the relay again" % (status["source_KME_ID"], next_sae_id),
            status=status)
    try:
        incoming = client.dec_keys(previous_sae_id, [previous_key_id])[0]
    except KmeError as exc:
        raise RelayError(
            "relay: could not take the incoming key %s (from %s): %s. A key is relayed once: a key_ID "
            "used before is refused; start again at the origin with a new key"
            % (previous_key_id, previous_sae_id, exc.msg), **exc.details) from None
    try:
        outgoing = client.enc_keys(next_sae_id, number=1, size=incoming.size)[0]
    except KmeError as exc:
        raise RelayError(
            "relay: took the incoming key %s but could not take a %d-bit key for %s: %s. The incoming "
            "key is spent; start again at the origin with a new key"
            % (previous_key_id, incoming.size, next_sae_id, exc.msg), **exc.details) from None
    relayed = xor(incoming.material, outgoing.material)
    return RelayStep(previous_key_id, Hop.from_status(status, next_sae_id, outgoing.key_id), relayed,
                     previous_sae_id, status)


def check_chain(first_key_id, steps):
    """Steps must follow each other: step i relays the key_ID step i-1 (or the origin) took."""
    if not steps:
        raise RelayError("hops is empty: give the results of the key_relay tasks in path order",
                         option="hops")
    expected = first_key_id
    for index, step in enumerate(steps):
        if step.previous_key_id.lower() != expected.lower():
            raise RelayError(
                "hops[%d] relays key %s, but the key before it on the path is %s: give the key_relay "
                "results of this relay in path order, starting at the trusted node next to the origin"
                % (index, step.previous_key_id, expected), option="hops")
        expected = step.key_id
    seen = [key_id.lower() for key_id in [first_key_id] + [step.key_id for step in steps]]
    if len(set(seen)) != len(seen):
        raise RelayError("hops names one key_ID twice: a key crosses one link only", option="hops")


def recover(key, steps):
    """key_{i+1} = relayed_i XOR key_i, hop after hop: the key shared with the destination."""
    for step in steps:
        key = xor(step.relayed, key)
    return key


def read_key_file(path):
    """A raw key file (as qkd_key writes it), or None if absent. Refuses files others may read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RelayError("key file %s cannot be read (%s)" % (path, exc.strerror or exc),
                         option="key_dir") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise RelayError("key file %s is not a regular file" % path, option="key_dir")
        if info.st_mode & 0o077:
            raise RelayError("key file %s is open to other users (mode %04o): key files must be 0600. "
                             "Treat the key as exposed and relay a new one"
                             % (path, stat.S_IMODE(info.st_mode)), option="key_dir")
        material = handle.read()
    if not material:
        raise RelayError("key file %s is empty" % path, option="key_dir")
    return material


def remove_key_file(path):
    """Delete a spent key file (and make the deletion durable); True if there was one."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    descriptor = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return True
