# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rebuild every key of a relay path for the leak check, and check what each end holds.

    rebuild_keys.py RECORD.json DESTINATION_KEY_DIR COPY_DIR OUT_DIR

The last key comes from the destination's copy (DESTINATION_KEY_DIR/<key_ID>.key) or, when an
image used it, from the origin's copy taken before image_send deleted the key file (COPY_DIR).
Then key_i = relayed_i XOR key_i+1, back to the origin's key; each is written to
OUT_DIR/<key_ID>.key (0600). Prints key_IDs only.
"""

from __future__ import annotations

import json
import os
import sys


def check(condition, problem):
    if not condition:
        sys.exit("rebuild_keys: " + problem)


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def main(record_path, destination_dir, copy_dir, out_dir):
    with open(record_path, encoding="utf-8") as handle:
        record = json.load(handle)
    relay_key = record["relay_key"]
    name = relay_key["key_id"] + ".key"
    origin_file = os.path.join(os.path.dirname(relay_key["key_file"]), record["origin_key_id"] + ".key")
    check(not os.path.exists(origin_file), "the origin's first-hop key file was not deleted")
    if record["image_received"]:
        key = read(os.path.join(copy_dir, name))
        check(not os.path.exists(relay_key["key_file"]), "image_send left the used key file")
        check(not os.path.exists(os.path.join(destination_dir, name)), "the destination took the key early")
    else:
        key = read(os.path.join(destination_dir, name))
        check(read(relay_key["key_file"]) == key, "the origin and the destination hold different keys")
        check(os.stat(relay_key["key_file"]).st_mode & 0o777 == 0o600, "the origin's key file is not 0600")
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    keys = {relay_key["key_id"]: key}
    for hop in reversed(record["hops"]):
        key = bytes(a ^ b for a, b in zip(bytes.fromhex(hop["relayed"]), key))
        keys[hop["previous_key_id"]] = key
    for key_id, material in keys.items():
        descriptor = os.open(os.path.join(out_dir, key_id + ".key"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(material)
    print("%d trusted node(s), %d keys on the path: %s" % (len(record["hops"]), len(keys), ", ".join(keys)))


if __name__ == "__main__":
    main(*sys.argv[1:])
