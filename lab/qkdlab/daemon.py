"""The lab process: the switch and its RESTCONF northbounds, a KME per node, the QKD links,
and a small plain-HTTP status endpoint on 127.0.0.1 for scripts (`python -m qkdlab status`).
"""

import json
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import keystore, kme, pki, restconf, switch
from .links import LinkEmulator


def describe(topo, lab_pki, sw, emulator):
    """The lab's status document: everything a script needs to find its way, no secrets but paths."""
    host = "127.0.0.1"
    links = emulator.status() if emulator else {"emulated_time_s": None, "links": []}
    return {
        "running": True,
        "lab_dir": str(topo.lab_dir),
        "time_scale": topo.time_scale,
        "emulated_time_s": links["emulated_time_s"],
        "ca": str(lab_pki.ca),
        "kmes": [{"kme_id": n.kme_id, "node": n.name, "url": "https://%s:%d" % (host, n.kme_port)}
                 for n in topo.nodes.values()],
        "saes": [{"sae_id": sae, "node": n.name, "kme_id": n.kme_id,
                  "cert": str(lab_pki.sae[sae][0]), "key": str(lab_pki.sae[sae][1])}
                 for n in topo.nodes.values() for sae in n.saes],
        "links": links["links"],
        "switch": {
            "url": "http://%s:%d" % (host, topo.switch.odl.port),
            "native_url": "http://%s:%d" % (host, topo.switch.native.port),
            "node_id": topo.switch.node_id,
            "ports": topo.switch.ports,
            "pairs": [{"ingress": i, "egress": e} for i, e in sw.pairs()],
        },
    }


class _StatusHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] != "/status":
            self.send_error(404)
            return
        body = json.dumps(self.server.status()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # the lab's log holds no per-request noise
        pass


def serve(topo):
    """Run the lab until SIGTERM or SIGINT. Raises on a start-up failure before serving."""
    lab_pki = pki.ensure(topo)
    sw = switch.Switch(topo.switch, topo.lab_dir / "switch.json")
    network = keystore.KeyNetwork(topo)
    servers = [restconf.RestconfServer(sw, topo.switch, "odl"),
               restconf.RestconfServer(sw, topo.switch, "native")]
    servers += [kme.KmeServer(topo, node, network, lab_pki) for node in topo.nodes.values()]
    emulator = LinkEmulator(topo, sw, network)
    admin = ThreadingHTTPServer(("127.0.0.1", topo.admin_port), _StatusHandler)
    admin.daemon_threads = True
    admin.status = lambda: describe(topo, lab_pki, sw, emulator)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    started = []
    serving = False
    try:
        for server in servers:
            server.start()
            started.append(server)
        threading.Thread(target=admin.serve_forever, name="status", daemon=True).start()
        serving = True
        emulator.run(stop)
    finally:
        if serving:  # shutdown() waits for serve_forever, so only when it runs
            admin.shutdown()
        admin.server_close()
        for server in reversed(started):
            server.stop()
        network.close()
