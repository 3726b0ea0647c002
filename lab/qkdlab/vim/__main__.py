"""python -m qkdlab.vim install|start|stop|status [--lab-dir DIR] [--json]

The VIM on its own, without the rest of the lab. --lab-dir defaults to $QKDLAB_DIR or the
repository's .lab directory; QKDLAB_PORT_OFFSET moves every default port, as for the whole lab.
"""

import argparse
import json
import os
import sys
import time

from . import DEFAULT_PORTS, default_lab_dir, install, start, status, stop


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m qkdlab.vim", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("install", "start", "stop", "status"))
    parser.add_argument("--lab-dir", default=None, help="the lab directory (default: %(default)s)")
    parser.add_argument("--port", action="append", default=[], metavar="SERVICE=PORT",
                        help="override a port, e.g. keystone=19500 (defaults: %s)" % ", ".join(
                            "%s=%d" % kv for kv in DEFAULT_PORTS.items()))
    parser.add_argument("--json", action="store_true", help="status as JSON")
    args = parser.parse_args(argv)
    lab_dir = args.lab_dir or str(default_lab_dir())
    began = time.monotonic()
    offset = int(os.environ.get("QKDLAB_PORT_OFFSET", "0") or 0)
    ports = {name: port + offset for name, port in DEFAULT_PORTS.items()}
    for item in args.port:
        name, _, port = item.partition("=")
        if name not in DEFAULT_PORTS or not port.isdigit():
            parser.error("--port wants SERVICE=PORT with SERVICE one of %s" % ", ".join(DEFAULT_PORTS))
        ports[name] = int(port)
    try:
        if args.command == "install":
            install(lab_dir, ports)
        elif args.command == "start":
            pids = start(lab_dir, ports)
            print(" ".join("%s=%d" % kv for kv in sorted(pids.items())))
        elif args.command == "stop":
            stop(lab_dir)
        else:
            doc = status(lab_dir)
            if args.json:
                print(json.dumps(doc, indent=1))
            else:
                for name, svc in doc["services"].items():
                    print("%-15s %s" % (name, "pid %d" % svc["pid"] if svc["alive"] else "stopped"))
                for name, address in doc["urls"].items():
                    print("%-15s %s" % (name, address))
                print("clouds.yaml     %s" % doc["clouds_yaml"])
            return 0 if doc["alive"] else 3
    except RuntimeError as exc:
        print("qkdlab.vim %s: %s" % (args.command, exc), file=sys.stderr)
        return 1
    print("qkdlab.vim %s: done in %.1f s" % (args.command, time.monotonic() - began), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
