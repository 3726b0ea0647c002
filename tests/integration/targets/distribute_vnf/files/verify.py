#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Assertions over distribute_vnf's JSON report and observe.py's states; exit 1 naming what is wrong.

    verify.py same BEFORE AFTER                 nothing changed: pairs, pool fronts, reservations, VIM
                                                (stored key counts may only grow: the links keep making key)
    verify.py report REPORT BYTES STATUS=DC,... every DC has that status, with the fields it implies
    verify.py vim REPORT STATE                  the VIM holds what the report says, once, ACTIVE
    verify.py msg REPORT DC TEXT                DC's message contains TEXT
"""

from __future__ import annotations

import json
import sys

PROBLEMS = []


def load(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def expect(condition, problem):
    if not condition:
        PROBLEMS.append(problem)


def same(before_file, after_file):
    before, after = load(before_file), load(after_file)
    for field in ("pairs", "front", "reserved", "vim"):
        expect(before[field] == after[field], "%s changed: %s -> %s" % (field, before[field], after[field]))
    for link, count in before["stored_keys"].items():
        expect(after["stored_keys"][link] >= count,
               "link %s lost keys: %d -> %d" % (link, count, after["stored_keys"][link]))


def report(report_file, size, *expected):
    doc = load(report_file)
    rows = {row["dc"]: row for row in doc["dcs"]}
    wanted = {}
    for item in expected:
        status, dcs = item.split("=", 1)
        wanted.update({dc: status for dc in dcs.split(",")})
    expect(sorted(rows) == sorted(wanted), "report lists %s, expected %s" % (sorted(rows), sorted(wanted)))
    key_ids = []
    for dc, status in wanted.items():
        row = rows.get(dc, {})
        expect(row.get("status") == status,
               "%s: status %r, expected %r (%s)" % (dc, row.get("status"), status, row.get("msg")))
        if status == "installed":
            for field in ("image_id", "server_id", "key_id"):
                expect(row.get(field), "%s: no %s" % (dc, field))
            expect(row.get("bytes") == int(size), "%s: bytes %r, expected %s" % (dc, row.get("bytes"), size))
            expect((row.get("seconds") or 0) > 0 and (row.get("mb_per_s") or 0) > 0, "%s: no timing" % dc)
            expect(row.get("key_bits") == 256, "%s: %r key bits" % (dc, row.get("key_bits")))
            expect(row.get("server_status") == "ACTIVE", "%s: server %r" % (dc, row.get("server_status")))
            key_ids.append(row.get("key_id"))
        elif status == "unchanged":
            expect(row.get("key_id") is None and row.get("key_bits") == 0, "%s: a key was used" % dc)
            expect(row.get("image_id") and row.get("server_id"), "%s: no image or server" % dc)
        elif status == "failed":
            expect(row.get("msg"), "%s: failed without a message" % dc)
        elif status == "would send":
            expect(row.get("key_id") is None and row.get("image_id") is None, "%s: check mode made something" % dc)
    expect(len(set(key_ids)) == len(key_ids), "a key_ID was used twice: %s" % key_ids)


def vim(report_file, state_file):
    rows, seen = load(report_file)["dcs"], load(state_file)["vim"]
    for row in rows:
        if row["status"] not in ("installed", "unchanged"):
            continue
        dc = seen[row["dc"]]
        expect(dc["images"] == [[row["image_id"], "active"]], "%s: images %s" % (row["dc"], dc["images"]))
        expect(dc["servers"] == [[row["server_id"], "ACTIVE", row["image_id"]]],
               "%s: servers %s" % (row["dc"], dc["servers"]))


def msg(report_file, dc, text):
    row = {row["dc"]: row for row in load(report_file)["dcs"]}[dc]
    expect(text in row.get("msg", ""), "%s: message %r does not say %r" % (dc, row.get("msg"), text))


if __name__ == "__main__":
    {"same": same, "report": report, "vim": vim, "msg": msg}[sys.argv[1]](*sys.argv[2:])
    for problem in PROBLEMS:
        print("verify %s: %s" % (sys.argv[1], problem), file=sys.stderr)
    sys.exit(1 if PROBLEMS else 0)
