"""python -m qkdlab up | status [--json] | down — the emulated test-bed on 127.0.0.1."""

import argparse
import json
import sys

from . import control
from .topology import TopologyError, load


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m qkdlab", description=__doc__)
    parser.add_argument("--topology", help="the lab section file (default: inventory/lab's, or QKDLAB_TOPOLOGY)")
    parser.add_argument("--lab-dir", help="state, PIDs and PKI of this lab (default: .lab, or QKDLAB_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the lab (a no-op when it is up)")
    status = sub.add_parser("status", help="what runs: links, pairs, initialisation, key counts")
    status.add_argument("--json", action="store_true", help="machine-readable status")
    sub.add_parser("down", help="stop what `up` started, by PID")
    sub.add_parser("serve", help=argparse.SUPPRESS)  # the lab process itself, started by `up`
    args = parser.parse_args(argv)

    try:
        topo = load(args.topology, lab_dir=args.lab_dir)
    except TopologyError as exc:
        print("qkdlab: invalid topology: %s" % exc, file=sys.stderr)
        return 2
    try:
        if args.command == "up":
            return control.up(topo, args.topology)
        if args.command == "down":
            return control.down(topo)
        if args.command == "serve":
            from . import daemon
            daemon.serve(topo)
            return 0
        doc = control.status(topo)
        print(json.dumps(doc, indent=2) if args.json else control.format_status(doc))
        return 0 if doc.get("running") else 3
    except control.LabError as exc:
        print("qkdlab: %s" % exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
