#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Search output and log files for QKD key material; exit 1 naming file and key_ID on any hit.

    leakcheck.py --keys DIR_OR_FILE [--keys ...] [--base64-files] FILE_OR_DIR [FILE_OR_DIR ...]

A key file holds one key: raw bytes, or base64 text for files ending in .b64 (or every file with
--base64-files). The key_ID is the file name without its suffix. Each key is searched as standard
and URL-safe base64 (with and without padding), lower- and upper-case hex, and raw bytes. Output
names the file and the key_ID, never the key. Exit status: 0 clean, 1 leak, 2 usage error.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import sys

MIN_KEY_BYTES = 8  # shorter keys would match by chance


def key_forms(material):
    """Every spelling of a key worth looking for, as bytes."""
    forms = {base64.b64encode(material), base64.urlsafe_b64encode(material),
             material.hex().encode(), material.hex().upper().encode(), material}
    forms |= {form.rstrip(b"=") for form in list(forms)}
    return forms


def load_key(path, base64_text=False):
    with open(path, "rb") as handle:
        data = handle.read()
    if base64_text or path.endswith(".b64"):
        try:
            data = base64.b64decode(data.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("%s is not base64 text" % path) from None
    return data


def key_id_of(path):
    name = os.path.basename(path)
    for suffix in (".key", ".b64"):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def load_keys(sources, base64_text=False):
    """{key_ID: material} from key files and directories of key files (hidden files skipped)."""
    keys = {}
    for source in sources:
        paths = [source]
        if os.path.isdir(source):
            paths = [os.path.join(source, name) for name in sorted(os.listdir(source))
                     if not name.startswith(".") and os.path.isfile(os.path.join(source, name))]
        for path in paths:
            material = load_key(path, base64_text)
            if len(material) < MIN_KEY_BYTES:
                raise ValueError("%s holds %d bytes; keys shorter than %d bytes cannot be searched for "
                                 "without false hits" % (path, len(material), MIN_KEY_BYTES))
            keys[key_id_of(path)] = material
    return keys


def files_under(targets):
    for target in targets:
        if os.path.isdir(target):
            for root, _dirs, names in os.walk(target):
                for name in sorted(names):
                    yield os.path.join(root, name)
        else:
            yield target


def find_leaks(keys, targets, exclude=()):
    """[(file, key_ID)] for every output file that contains any form of any key."""
    excluded = {os.path.realpath(path) for path in exclude}
    forms = {key_id: key_forms(material) for key_id, material in keys.items()}
    hits = []
    for path in files_under(targets):
        if os.path.realpath(path) in excluded:
            continue
        with open(path, "rb") as handle:
            data = handle.read()
        for key_id, spellings in forms.items():
            if any(form in data for form in spellings):
                hits.append((path, key_id))
    return hits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--keys", action="append", required=True, metavar="DIR_OR_FILE",
                        help="a key file or a directory of key files (repeatable)")
    parser.add_argument("--base64-files", action="store_true", help="every key file is base64 text")
    parser.add_argument("outputs", nargs="+", metavar="FILE_OR_DIR", help="output and log files to search")
    args = parser.parse_args(argv)
    try:
        keys = load_keys(args.keys, args.base64_files)
        if not keys:
            raise ValueError("no key files found in %s" % ", ".join(args.keys))
        key_files = list(files_under(args.keys))
        hits = find_leaks(keys, args.outputs, exclude=key_files)
    except (OSError, ValueError) as exc:
        print("leakcheck: %s" % exc, file=sys.stderr)
        return 2
    for path, key_id in hits:
        print("LEAK: %s contains key %s" % (path, key_id))
    scanned = len(list(files_under(args.outputs)))
    print("leakcheck: %d keys, %d files searched, %d leaks" % (len(keys), scanned, len(hits)))
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
