"""The key stores of every KME of one lab, and the inter-KME synchronisation between them.

Each KME keeps one SQLite database (WAL) at lab_dir/kme/<kme_id>.sqlite with two tables:
  pool      free key blocks per link (key_size bits each), identical at both ends of the link;
  reserved  keys handed to a master SAE, kept at the slave's KME for the slave SAE until
            dec_keys delivers them once.
All KMEs run in one process, so the "key sync" of a real QKD network is done here, in-process,
under one lock per link: both directions of a link never take the same blocks.

Crash safety across two files: a take commits the slave's store (blocks out, reservation in)
before the master's store (blocks out), and a deposit commits Alice's store before Bob's. An
interruption between the two commits leaves blocks present at one end only. Such blocks are never
served: a take checks that the slave end still holds every block it picked and discards those it
does not, and opening the network reconciles both ends of every link. No key is ever delivered
from blocks the other end does not hold, and none is delivered twice.

Durability: every commit survives a crash or restart of the process (WAL, synchronous=NORMAL),
which is what the lab needs. KeyNetwork(topo, durable=True) also syncs to disk the two commits the
once-only rule rests on, the slave's side of a take and a dec_keys delivery, before the KME
answers, so that not even a power cut brings a served key back; it costs two disk syncs per
enc_keys + dec_keys pair. The other commits (deposits, the master's side of a take) are never
synced: losing them only loses key or leaves blocks at one end, which the reconciliation discards.
"""

import logging
import os
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("qkdlab.keystore")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pool (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    link     TEXT NOT NULL,
    block_id TEXT NOT NULL,
    block    BLOB NOT NULL,
    UNIQUE (link, block_id)
);
CREATE INDEX IF NOT EXISTS pool_link ON pool (link);
CREATE TABLE IF NOT EXISTS reserved (
    key_id     TEXT PRIMARY KEY,
    master_sae TEXT NOT NULL,
    slave_sae  TEXT NOT NULL,
    link       TEXT NOT NULL,
    key        BLOB NOT NULL,
    created    REAL NOT NULL
) WITHOUT ROWID;
"""
_CHUNK = 500  # bound parameters per statement, well under SQLite's limit


class KeyStoreError(Exception):
    """A key store cannot serve the request; the message never contains key material."""


class NotEnoughKey(KeyStoreError):
    def __init__(self, link, have, need):
        super().__init__("not enough key on link %s: %d blocks stored, the request needs %d"
                         % (link, have, need))
        self.link, self.have, self.need = link, have, need


class KeyNotFound(KeyStoreError):
    """One or more of the requested key IDs is not reserved at this KME."""


class NotAuthorised(KeyStoreError):
    """A requested key was reserved for another (master SAE, slave SAE) pair."""


def _chunks(items, size=_CHUNK):
    for i in range(0, len(items), size):
        yield items[i:i + size]


class _Store:
    """One KME's database; one connection shared by the server threads under a lock."""

    def __init__(self, path):
        path = Path(path)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)  # SQLite gives the -wal and -shm files the database's mode
        self.path = path
        self.lock = threading.Lock()
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit survives a process crash or restart; transaction(durable=True) also
        # syncs it to disk (see KeyNetwork's durable).
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA secure_delete=ON")  # spent key bytes are overwritten, not just unlinked
        self.db.executescript(_SCHEMA)

    def _conn(self):
        if self.db is None:
            raise KeyStoreError("the key store %s is closed" % self.path.name)
        return self.db

    @contextmanager
    def read(self):
        with self.lock:
            yield self._conn()

    @contextmanager
    def transaction(self, durable=False):
        """BEGIN IMMEDIATE ... COMMIT under the store lock; ROLLBACK on any error.

        durable: the commit is on disk (fsync) before this returns, so even a power cut keeps it.
        """
        with self.lock:
            db = self._conn()
            if durable:
                db.execute("PRAGMA synchronous=FULL")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            finally:
                if durable:
                    db.execute("PRAGMA synchronous=NORMAL")

    def count(self, link):
        with self.read() as db:
            return db.execute("SELECT count(*) FROM pool WHERE link = ?", (link,)).fetchone()[0]

    def block_ids(self, link):
        with self.read() as db:
            return {row[0] for row in db.execute("SELECT block_id FROM pool WHERE link = ?", (link,))}

    def discard(self, link, block_ids):
        """Remove blocks from the link's pool; returns how many were there."""
        with self.transaction() as db:
            return db.executemany("DELETE FROM pool WHERE link = ? AND block_id = ?",
                                  [(link, block_id) for block_id in block_ids]).rowcount

    def close(self):
        with self.lock:
            if self.db is not None:
                self.db.close()
                self.db = None


class KeyNetwork:
    """All KMEs' key stores of one lab, with the in-process inter-KME synchronisation."""

    def __init__(self, topo, durable=False):
        """durable=True: sync the once-only commits to disk (safe even in a power cut; slower)."""
        self.topo = topo
        self._durable = durable
        self.key_size = topo.kme.key_size
        self.block_bytes = topo.kme.key_size // 8
        base = Path(topo.lab_dir) / "kme"
        base.mkdir(parents=True, exist_ok=True)
        os.chmod(base, 0o700)
        self._stores = {}
        try:
            for node in topo.nodes.values():
                self._stores[node.kme_id] = _Store(base / (node.kme_id + ".sqlite"))
        except BaseException:
            self.close()
            raise
        self._locks = {link.name: threading.Lock() for link in topo.links}
        # Free blocks per (KME, link), kept in memory: a COUNT over a full pool costs about a
        # millisecond, and the link emulator deposits many times a second. Every change to a pool
        # goes through this class under the link's lock, which keeps these exact.
        self._free = {}
        for link in topo.links:
            self._reconcile(link)
            for store in self._ends(link):
                self._free[store.path.name, link.name] = store.count(link.name)

    # -- helpers ---------------------------------------------------------------------------

    def _store(self, node_name):
        return self._stores[self.topo.nodes[node_name].kme_id]

    def _ends(self, link):
        return self._store(link.alice), self._store(link.bob)

    def _add(self, store, link, delta):
        self._free[store.path.name, link.name] += delta

    def _reconcile(self, link):
        """Drop blocks that only one end of the link holds (an interrupted deposit or take)."""
        alice, bob = self._ends(link)
        with self._locks[link.name]:
            a_ids, b_ids = alice.block_ids(link.name), bob.block_ids(link.name)
            for store, extra in ((alice, a_ids - b_ids), (bob, b_ids - a_ids)):
                if extra:
                    log.warning("link %s: discarding %d unmatched blocks at %s",
                                link.name, len(extra), store.path.name)
                    store.discard(link.name, sorted(extra))

    # -- the link side: key generation ------------------------------------------------------

    def deposit(self, link, blocks):
        """Add the same blocks, [(block_id, bytes)], to both ends' pools; returns how many fitted."""
        if not blocks:
            return 0
        seen = set()
        for block_id, block in blocks:
            if not isinstance(block_id, str) or not block_id:
                raise ValueError("link %s: a block ID must be a non-empty string" % link.name)
            if not isinstance(block, (bytes, bytearray)) or len(block) != self.block_bytes:
                raise ValueError("link %s: block %s is not %d bytes (key_size %d bits)"
                                 % (link.name, block_id, self.block_bytes, self.key_size))
            if block_id in seen:
                raise ValueError("link %s: block %s appears twice in one deposit" % (link.name, block_id))
            seen.add(block_id)
        alice, bob = self._ends(link)
        with self._locks[link.name]:
            free = self.capacity_blocks(link) - max(self._free[alice.path.name, link.name],
                                                    self._free[bob.path.name, link.name])
            accepted = [(link.name, block_id, bytes(block)) for block_id, block in blocks[:max(free, 0)]]
            if not accepted:
                return 0
            insert = "INSERT INTO pool (link, block_id, block) VALUES (?, ?, ?)"
            try:
                with alice.transaction() as db:
                    db.executemany(insert, accepted)
            except sqlite3.IntegrityError:
                raise ValueError("link %s: a block ID of this deposit is already stored" % link.name) from None
            self._add(alice, link, len(accepted))
            try:
                with bob.transaction() as db:
                    db.executemany(insert, accepted)
            except sqlite3.IntegrityError:
                self._add(alice, link, -alice.discard(link.name, [row[1] for row in accepted]))
                raise ValueError("link %s: a block ID of this deposit is already stored" % link.name) from None
            self._add(bob, link, len(accepted))
            return len(accepted)

    def stored_blocks(self, link):
        """Free blocks of the link's pool (those both ends hold)."""
        alice, bob = self._ends(link)
        return min(self._free[alice.path.name, link.name], self._free[bob.path.name, link.name])

    def capacity_blocks(self, link):
        return self.topo.kme.max_key_count

    # -- the KME side: key delivery ---------------------------------------------------------

    def take(self, link, master_node, master_sae, slave_sae, number, size):
        """enc_keys: number keys of size bits for master_sae at master_node toward slave_sae.

        Returns [(key_id, key bytes)]. The keys leave both pools; the slave's KME keeps each one
        reserved for (master_sae, slave_sae). Raises NotEnoughKey when the pool is short.
        """
        if size % 8 or size <= 0 or number <= 0:
            raise ValueError("size must be a positive multiple of 8 and number positive")
        per_key = -(-size // self.key_size)
        need = number * per_key
        nbytes = size // 8
        slave_node = link.bob if master_node == link.alice else link.alice
        master, slave = self._store(master_node), self._store(slave_node)
        with self._locks[link.name]:
            while True:
                with master.read() as db:
                    picked = db.execute("SELECT block_id, block FROM pool WHERE link = ? ORDER BY seq LIMIT ?",
                                        (link.name, need)).fetchall()
                if len(picked) < need:
                    raise NotEnoughKey(link.name, len(picked), need)
                ids = [row[0] for row in picked]
                key_ids = [str(uuid.uuid4()) for _ in range(number)]
                with slave.transaction(durable=self._durable) as db:
                    theirs = {}
                    for part in _chunks(ids):
                        theirs.update(db.execute(
                            "SELECT block_id, block FROM pool WHERE link = ? AND block_id IN (%s)"
                            % ",".join("?" * len(part)), [link.name, *part]))
                    missing = [block_id for block_id in ids if block_id not in theirs]
                    if not missing:
                        taken = db.executemany("DELETE FROM pool WHERE link = ? AND block_id = ?",
                                               [(link.name, block_id) for block_id in ids]).rowcount
                        now = time.time()
                        db.executemany(
                            "INSERT INTO reserved (key_id, master_sae, slave_sae, link, key, created)"
                            " VALUES (?, ?, ?, ?, ?, ?)",
                            [(key_id, master_sae, slave_sae, link.name,
                              b"".join(theirs[b] for b in ids[i * per_key:(i + 1) * per_key])[:nbytes], now)
                             for i, key_id in enumerate(key_ids)])
                if missing:
                    log.warning("link %s: %d blocks held by %s only, discarded",
                                link.name, len(missing), master.path.name)
                    self._add(master, link, -master.discard(link.name, missing))
                    continue
                self._add(slave, link, -taken)
                self._add(master, link, -master.discard(link.name, ids))
                return [(key_id, b"".join(row[1] for row in picked[i * per_key:(i + 1) * per_key])[:nbytes])
                        for i, key_id in enumerate(key_ids)]

    def deliver(self, node, caller_sae, master_sae, key_ids):
        """dec_keys at node's KME: the reserved keys, once, all or nothing.

        Raises NotAuthorised when a key was reserved for another (master, slave) pair, KeyNotFound
        when a key ID is not reserved here. One transaction: of two concurrent callers on one key
        ID exactly one gets it.
        """
        if len(set(key_ids)) != len(key_ids):
            raise ValueError("a key ID is requested twice")
        store = self._store(node)
        with store.transaction(durable=self._durable) as db:
            found, missing = [], False
            for key_id in key_ids:
                row = db.execute("SELECT master_sae, slave_sae, key FROM reserved WHERE key_id = ?",
                                 (key_id,)).fetchone()
                if row is None:
                    missing = True
                elif (row[0], row[1]) != (master_sae, caller_sae):
                    raise NotAuthorised("a requested key is reserved for another SAE pair")
                else:
                    found.append((key_id, row[2]))
            if missing:
                raise KeyNotFound("one or more keys specified are not found on KME")
            db.executemany("DELETE FROM reserved WHERE key_id = ?", [(key_id,) for key_id, _ in found])
        return found

    def reserved_keys(self, node):
        """How many keys node's KME holds for slave SAEs (taken by a master, not yet delivered)."""
        with self._store(node).read() as db:
            return db.execute("SELECT count(*) FROM reserved").fetchone()[0]

    def close(self):
        for store in self._stores.values():
            store.close()
