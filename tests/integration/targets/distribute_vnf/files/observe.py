#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The far side's state, read without the collection's code, for distribute_vnf's runme.sh.

    observe.py state CLOUDS_YAML VNF_NAME IMAGE_NAME DC...     state as JSON on stdout
    observe.py snapshot OUT_FILE                               the first blocks of every pool (0600)
    observe.py witness SNAPSHOT OUT_DIR                        keys taken since the snapshot

`state` is the switch's pairs and the links' key counts (the lab's status), the first free block
and the reserved keys of every KME's store, and per DC the VIM's images and servers of that name.
The lab's KMEs hand out keys from the front of a link's pool (one 256-bit block per key), so the
blocks that left the front since a snapshot are exactly the keys taken meanwhile: `witness` writes
them as OUT_DIR/<block_id>.key for tests/leakcheck.py, provided the snapshot reached past them.
QKDLAB_DIR selects the lab (default: the repository's .lab); its Python package is in lab/.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", ".."))
LAB_DIR = os.environ.get("QKDLAB_DIR") or os.path.join(REPO, ".lab")
SNAPSHOT_BLOCKS = 512


def lab_status():
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "lab"))
    out = subprocess.run([sys.executable, "-m", "qkdlab", "status", "--json"], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def stores():
    """{kme_id: read-only connection} for every KME store of the lab."""
    directory = os.path.join(LAB_DIR, "kme")
    return {name[:-len(".sqlite")]: sqlite3.connect("file:%s?mode=ro" % os.path.join(directory, name), uri=True)
            for name in sorted(os.listdir(directory)) if name.endswith(".sqlite")}


def pools(limit):
    """{kme_id: {link: [(block_id, block), ...] from the front}}"""
    found = {}
    for kme_id, db in stores().items():
        links = [row[0] for row in db.execute("SELECT DISTINCT link FROM pool ORDER BY link")]
        found[kme_id] = {link: db.execute("SELECT block_id, block FROM pool WHERE link = ? ORDER BY seq LIMIT ?",
                                          (link, limit)).fetchall() for link in links}
        db.close()
    return found


def vim(clouds_yaml, vnf_name, image_name, dcs):
    os.environ["OS_CLIENT_CONFIG_FILE"] = clouds_yaml
    import openstack  # pylint: disable=import-outside-toplevel
    seen = {}
    for dc in dcs:
        conn = openstack.connect(cloud=dc)
        seen[dc] = {
            "images": sorted((i.id, i.status) for i in conn.image.images(name=image_name)),
            "servers": sorted((s.id, s.status, s.image.id) for s in conn.compute.servers() if s.name == vnf_name),
        }
    return seen


def state(clouds_yaml, vnf_name, image_name, *dcs):
    status = lab_status()
    reserved = {}
    for kme_id, db in stores().items():
        reserved[kme_id] = db.execute("SELECT count(*) FROM reserved").fetchone()[0]
        db.close()
    doc = {
        "pairs": sorted((p["ingress"], p["egress"]) for p in status["switch"]["pairs"]),
        "stored_keys": {link["name"]: link["stored_keys"] for link in status["links"]},
        "front": {kme_id: {link: blocks[0][0] if blocks else None for link, blocks in links.items()}
                  for kme_id, links in pools(1).items()},
        "reserved": reserved,
        "vim": vim(clouds_yaml, vnf_name, image_name, dcs),
    }
    json.dump(doc, sys.stdout, indent=1, sort_keys=True)
    print()


def snapshot(out_file):
    doc = {kme_id: {link: [[block_id, block.hex()] for block_id, block in blocks] for link, blocks in links.items()}
           for kme_id, links in pools(SNAPSHOT_BLOCKS).items()}
    descriptor = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(doc, handle)


def witness(snapshot_file, out_dir):
    with open(snapshot_file, encoding="utf-8") as handle:
        before = json.load(handle)
    now = pools(SNAPSHOT_BLOCKS)
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    taken = {}
    for kme_id, links in before.items():
        for link, blocks in links.items():
            left = {row[0] for row in now.get(kme_id, {}).get(link, [])}
            gone = [(block_id, block) for block_id, block in blocks if block_id not in left]
            if gone and len(gone) == len(blocks):
                sys.exit("witness: every snapshot block of %s at %s was taken; keys beyond the snapshot may "
                         "have been used, so the leak check would not cover them" % (link, kme_id))
            for block_id, block in gone:
                taken[block_id] = bytes.fromhex(block)
    for block_id, material in taken.items():
        descriptor = os.open(os.path.join(out_dir, block_id + ".key"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(material)
    print(len(taken))


if __name__ == "__main__":
    {"state": state, "snapshot": snapshot, "witness": witness}[sys.argv[1]](*sys.argv[2:])
