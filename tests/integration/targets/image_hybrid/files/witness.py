#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writes secrets of a hybrid transfer as raw 0600 witness files, for the leak check to search for.

    witness.py private KEY_PEM OUT          the raw private key (ML-KEM-768 or ML-DSA-65 seed)
    witness.py kem-secret KEM_PEM QSTREAM OUT   the ML-KEM-768 shared secret of a hybrid qstream
"""

from __future__ import annotations

import os
import struct
import sys

from cryptography.hazmat.primitives import serialization

KEM_CIPHERTEXT_FIELD = 10


def private_key(path):
    with open(path, "rb") as handle:
        return serialization.load_pem_private_key(handle.read(), password=None)


def kem_ciphertext(path):
    """Field 10 of the qstream header (docs/qstream.md section 2), read independently of the collection."""
    with open(path, "rb") as handle:
        prefix = handle.read(12)
        fields = handle.read(struct.unpack("!H", prefix[10:12])[0])
    pos = 0
    while pos < len(fields):
        kind, length = struct.unpack_from("!BH", fields, pos)
        if kind == KEM_CIPHERTEXT_FIELD:
            return fields[pos + 3:pos + 3 + length]
        pos += 3 + length
    raise SystemExit("%s has no KEM ciphertext: not a hybrid or pqc qstream" % path)


def write(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def main(argv):
    if argv[:1] == ["private"] and len(argv) == 3:
        write(argv[2], private_key(argv[1]).private_bytes_raw())
    elif argv[:1] == ["kem-secret"] and len(argv) == 4:
        write(argv[3], private_key(argv[1]).decapsulate(kem_ciphertext(argv[2])))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
