# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Key demand for the scheduler test: takes keys from each link at a steady rate until told to stop.

    consume.py CONFIG.json STATS.json STOP_FILE

CONFIG: {"master": {kme connection of the Bob's SAE}, "period": seconds,
         "links": [{"name", "slave_sae_id", "bits_per_second", "slave": {kme connection of the Alice's SAE}}]}
Every period, each link owes rate x elapsed bits of 256-bit keys: the master SAE takes them
(enc_keys) and the Alice's SAE fetches the same keys by ID (dec_keys), so both ends' pools fall
alike, as they would for a real application. A request the pool cannot serve (HTTP 503) is a
miss: counted, timed, and dropped (it is not retried later). STATS gets, per link, the keys
asked for, served and missed, and the times of the misses. Keys are never written anywhere.
"""

import json
import math
import os
import sys
import tempfile
import time

try:
    from ansible_collections.qkd.nfv.plugins.module_utils import kme
except ImportError:  # a plain checkout: make it importable as the collection it is
    ROOT = tempfile.mkdtemp(prefix="qkd-nfv-consume-")
    os.makedirs(os.path.join(ROOT, "ansible_collections", "qkd"))
    os.symlink(os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 5)),
               os.path.join(ROOT, "ansible_collections", "qkd", "nfv"))
    sys.path.insert(0, ROOT)
    from ansible_collections.qkd.nfv.plugins.module_utils import kme

KEY_BITS = 256
MAX_PER_REQUEST = 64


def client(options):
    return kme.KmeClient(options["kme_url"], options.get("ca_cert"), options["client_cert"], options["client_key"],
                         kme_id=options["kme_id"], timeout=10, retries=0)


def main(config_path, stats_path, stop_path):
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    master = client(config["master"])
    master_sae = config["master_sae_id"]
    links = config["links"]
    slaves = {link["name"]: client(link["slave"]) for link in links}
    stats = {link["name"]: {"asked": 0, "served": 0, "missed": 0, "misses": []} for link in links}
    started = time.time()
    try:
        while not os.path.exists(stop_path):
            elapsed = time.time() - started
            for link in links:
                counts = stats[link["name"]]
                owed = math.floor(link["bits_per_second"] * elapsed / KEY_BITS) - counts["asked"]
                while owed > 0:
                    number = min(owed, MAX_PER_REQUEST)
                    owed -= number
                    counts["asked"] += number
                    try:
                        keys = master.enc_keys(link["slave_sae_id"], number=number)
                    except kme.KmeUnavailableError:
                        counts["missed"] += number
                        counts["misses"].append(round(time.time(), 3))
                        continue
                    slaves[link["name"]].dec_keys(master_sae, [key.key_id for key in keys])
                    counts["served"] += len(keys)
            time.sleep(config.get("period", 0.5))
    finally:
        master.close()
        for slave in slaves.values():
            slave.close()
        with open(stats_path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump({"started": started, "stopped": time.time(), "links": stats}, handle)
        os.replace(stats_path + ".tmp", stats_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
