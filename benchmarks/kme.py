"""Lab KME throughput: enc_keys (master KME) + dec_keys (slave KME) pairs per second over mutual TLS.

Brings the lab's KMEs up in-process on free ports in a temporary directory, fills the node1-node2
link, then runs pairs for a few seconds: first over keep-alive connections (the figure against the
target), then with a fresh TLS connection per request (the baseline beside it). The client is
urllib3, as in the collection's KME client.

Client and KMEs share this process and the machine's cores, so the pairs/s figure is a lower bound
that also moves with the machine's load. The KMEs' own CPU time per pair (process CPU minus the
client threads' CPU) does not, and is printed too. --sync measures KeyNetwork(durable=True), which
adds two disk syncs per pair (once-only delivery even across a power cut).

    python benchmarks/kme.py [--seconds 3] [--clients 1] [--sync]
"""

import argparse
import json
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

import urllib3
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))

from qkdlab import kme, pki, topology  # noqa: E402
from qkdlab.keystore import KeyNetwork  # noqa: E402

TARGET = 200.0  # pairs per second, on 2 cores
MASTER, SLAVE = ("node1", "sae-node1"), ("node2", "sae-node2")


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def lab_topology(lab_dir):
    """The inventory's lab topology with every port moved to a free one."""
    data = yaml.safe_load(topology.DEFAULT_TOPOLOGY.read_text())
    lab = data["lab"]
    ports = iter(free_ports(3 + len(lab["nodes"])))
    lab["admin_port"] = next(ports)
    lab["switch"]["odl"]["port"] = next(ports)
    lab["switch"]["native"]["port"] = next(ports)
    for node in lab["nodes"].values():
        node["kme_port"] = next(ports)
    return topology.parse(data, lab_dir=lab_dir, port_offset=0)


class Bench:
    def __init__(self, lab_dir, durable=False):
        self.topo = lab_topology(lab_dir)
        self.pki = pki.ensure(self.topo)
        self.network = KeyNetwork(self.topo, durable=durable)
        self.servers = [kme.KmeServer(self.topo, node, self.network, self.pki) for node in self.topo.nodes.values()]
        for server in self.servers:
            server.start()
        self.link = self.topo.link_between(MASTER[0], SLAVE[0])
        self._serial = 0
        self._refill_lock = threading.Lock()

    def refill(self):
        size = self.topo.kme.key_size // 8
        free = self.network.capacity_blocks(self.link) - self.network.stored_blocks(self.link)
        start, self._serial = self._serial, self._serial + free
        self.network.deposit(self.link, [("bench-%d" % i, os.urandom(size)) for i in range(start, start + free)])

    def connection(self, node, sae_id):
        """A keep-alive connection pool to node's KME presenting sae_id's certificate."""
        ctx = ssl.create_default_context(cafile=str(self.pki.ca))
        ctx.load_cert_chain(*(str(p) for p in self.pki.sae[sae_id]))
        return urllib3.HTTPSConnectionPool("127.0.0.1", self.topo.nodes[node].kme_port, maxsize=1,
                                           ssl_context=ctx, retries=False, timeout=10)

    @staticmethod
    def _post(pool, path, body, fresh):
        headers = {"Content-Type": "application/json"}
        if fresh:
            headers["Connection"] = "close"  # the KME closes it: the next request handshakes anew
        r = pool.request("POST", path, body=json.dumps(body).encode(), headers=headers)
        return r.status, r.data

    def pair(self, master, slave, fresh=False):
        enc = "/api/v1/keys/%s/enc_keys" % SLAVE[1]
        status, data = self._post(master, enc, {}, fresh)
        if status == 503:  # a long run drained the link: top it up (counted in the time)
            with self._refill_lock:
                self.refill()
            status, data = self._post(master, enc, {}, fresh)
        if status != 200:
            raise RuntimeError("enc_keys answered %d: %s" % (status, data[:200]))
        [key] = json.loads(data)["keys"]
        status, data = self._post(slave, "/api/v1/keys/%s/dec_keys" % MASTER[1],
                                  {"key_IDs": [{"key_ID": key["key_ID"]}]}, fresh)
        if status != 200:
            raise RuntimeError("dec_keys answered %d: %s" % (status, data[:200]))
        if json.loads(data)["keys"] != [key]:
            raise AssertionError("the slave KME returned another key")

    def run(self, seconds, clients, fresh):
        """(pairs per second, KME CPU ms per pair) over `seconds`, with `clients` client threads."""
        self.refill()
        counts, client_cpu = [0] * clients, [0.0] * clients
        deadline = [None]
        errors = []
        ready, go = threading.Barrier(clients + 1), threading.Event()

        def client(i):
            master, slave = self.connection(*MASTER), self.connection(*SLAVE)
            try:
                self.pair(master, slave)   # warm-up: connections and handshakes
                ready.wait()
                go.wait()
                cpu = time.thread_time()
                while time.perf_counter() < deadline[0]:
                    self.pair(master, slave, fresh)
                    counts[i] += 1
                client_cpu[i] = time.thread_time() - cpu
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                ready.abort()
            finally:
                master.close()
                slave.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            pass
        cpu = time.process_time()
        began = time.perf_counter()
        deadline[0] = began + seconds
        go.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        kme_cpu = time.process_time() - cpu - sum(client_cpu)
        if errors:  # the first real failure, not the broken barrier it caused in other threads
            raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
        pairs = sum(counts)
        return pairs / elapsed, 1000.0 * kme_cpu / max(pairs, 1)

    def close(self):
        for server in self.servers:
            server.stop()
        self.network.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    parser.add_argument("--clients", type=int, default=1, help="client threads running pairs in parallel")
    parser.add_argument("--sync", action="store_true",
                        help="KeyNetwork(durable=True): two disk syncs per pair, to show what they cost")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qkdlab-bench-") as tmp:
        bench = Bench(Path(tmp) / "lab", durable=args.sync)
        try:
            keep_alive, keep_alive_cpu = bench.run(args.seconds, args.clients, fresh=False)
            fresh, fresh_cpu = bench.run(args.seconds, args.clients, fresh=True)
        finally:
            bench.close()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print("lab KME, enc_keys + dec_keys pairs over mutual TLS (%d client thread%s, %d CPUs, load %.1f, %.0f s each%s)"
          % (args.clients, "" if args.clients == 1 else "s", os.cpu_count(), load, args.seconds,
             ", durable: disk sync per delivery" if args.sync else ""))
    print("  keep-alive connections   : %7.1f pairs/s   target >= %.0f/s: %s   KME CPU %.2f ms/pair"
          % (keep_alive, TARGET, "met" if keep_alive >= TARGET else "NOT met", keep_alive_cpu))
    print("  fresh TLS conn / request : %7.1f pairs/s   (baseline)          KME CPU %.2f ms/pair"
          % (fresh, fresh_cpu))
    print("  keep-alive / fresh       : %7.2fx" % (keep_alive / fresh if fresh else float("inf")))
    return 0 if keep_alive >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
