#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real OpenSSH sshd on 127.0.0.1 for distribute_vnf_sftp's runme.sh, until SIGTERM.

    sshd.py DIRECTORY INFO_FILE

Starts sshd with its keys and configuration in DIRECTORY (tests/unit/plugins/sshd_fixture.py), then
writes INFO_FILE as JSON: port, user, client_key, known_hosts. On SIGTERM or SIGINT it stops sshd
and exits.
"""

from __future__ import annotations

import json
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "unit", "plugins"))

import sshd_fixture  # noqa: E402  pylint: disable=wrong-import-position


def main(directory, info_file):
    if not sshd_fixture.available():
        sys.exit("sshd.py: %s is not installed (Debian: apt-get install openssh-server)" % sshd_fixture.SSHD)
    sshd = sshd_fixture.Sshd(directory).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    try:
        info = dict(port=sshd.port, user=sshd.user, client_key=sshd.client_key, known_hosts=sshd.known_hosts)
        temp = info_file + ".tmp"
        with open(temp, "w", encoding="utf-8") as out:
            json.dump(info, out)
        os.replace(temp, info_file)  # the shell waits for the complete file
        while True:
            signal.pause()
    finally:
        sshd.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
