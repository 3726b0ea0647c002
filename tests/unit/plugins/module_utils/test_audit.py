# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""audit: one JSON line per record, 0600, whole lines under concurrent writers, no bytes, filters."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.qkd.nfv.plugins.module_utils import audit
from ansible_collections.qkd.nfv.plugins.module_utils.audit import AuditError, AuditLog


def lines(path):
    with open(str(path), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_records_are_json_lines_with_when_and_who(tmp_path):
    path = tmp_path / "new" / "audit.jsonl"
    with AuditLog.open(str(path)) as trail:
        trail.append(dict(actor="image_send", key_ids=["k1"], result="ok"))
        trail.append(dict(actor="image_receive", key_ids=["k1"], result="failed", reason="tampered"))
    records = lines(path)
    assert [r["actor"] for r in records] == ["image_send", "image_receive"]
    assert set(records[0]) == {"v", "time", "host", "user", "pid", "actor", "key_ids", "result"}
    assert records[0]["v"] == 1 and records[0]["time"].endswith("Z") and records[0]["pid"] == os.getpid()
    assert oct(os.stat(str(path)).st_mode & 0o777) == "0o600"
    assert oct(os.stat(str(path.parent)).st_mode & 0o777) == "0o700"


def test_bytes_are_never_written(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog.open(str(path)) as trail:
        for record in (dict(key=os.urandom(32)), dict(image=dict(sha256=b"\x00" * 32)), dict(keys=[bytearray(8)])):
            with pytest.raises(TypeError, match="not written"):
                trail.append(record)
    assert path.read_bytes() == b""


def test_an_existing_trail_others_may_read_is_made_0600(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text('{"v": 1}\n')
    os.chmod(str(path), 0o644)
    AuditLog.open(str(path)).close()
    assert oct(os.stat(str(path)).st_mode & 0o777) == "0o600" and len(lines(path)) == 1


def test_a_trail_that_cannot_be_opened_names_the_option(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(AuditError, match="audit_log: cannot open") as info:
        AuditLog.open(str(tmp_path / "file" / "audit.jsonl"))
    assert info.value.details == {"option": "audit_log", "reason": "audit_log"}
    os.symlink(str(tmp_path / "elsewhere"), str(tmp_path / "link.jsonl"))
    with pytest.raises(AuditError):
        AuditLog.open(str(tmp_path / "link.jsonl"))  # no symlink games with the trail
    assert not os.path.exists(str(tmp_path / "elsewhere"))


WRITER = """
import sys
from ansible_collections.qkd.nfv.plugins.module_utils.audit import AuditLog
trail = AuditLog.open(sys.argv[1], fsync=False)
for number in range(int(sys.argv[3])):
    trail.append(dict(writer=int(sys.argv[2]), number=number, msg="x" * 900, key_ids=["k-%d" % number]))
"""


def test_concurrent_writers_never_interleave_lines(tmp_path):
    path, writers, each = str(tmp_path / "audit.jsonl"), 4, 150
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, path, str(w), str(each)], env=env)  # pylint: disable=consider-using-with
             for w in range(writers)]
    assert [proc.wait(120) for proc in procs] == [0] * writers
    records, malformed = audit.read(path)
    assert malformed == 0 and len(records) == writers * each
    for writer in range(writers):
        assert [r["number"] for r in records if r["writer"] == writer] == list(range(each))


def test_long_messages_are_shortened_to_keep_one_small_write(tmp_path):
    with AuditLog.open(str(tmp_path / "a.jsonl")) as trail:
        entry = trail.append(dict(msg="m" * 50000))
    assert len(entry["msg"]) == audit.MAX_MSG + 3


def test_default_path_and_switching_off(tmp_path, monkeypatch):
    monkeypatch.setenv(audit.ENV, str(tmp_path / "env.jsonl"))
    assert audit.default_path() == str(tmp_path / "env.jsonl")
    monkeypatch.delenv(audit.ENV)
    assert audit.default_path() == os.path.expanduser("~/.qkd-nfv/audit.jsonl")
    trail = audit.open_for(dict(audit=False, audit_log=str(tmp_path / "never.jsonl")))
    trail.append(dict(actor="x"))
    assert trail.path is None and not os.path.exists(str(tmp_path / "never.jsonl"))


def test_read_filters_and_counts_malformed_lines(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog.open(str(path)) as trail:
        trail.append(dict(actor="image_send", key_ids=["AB-1"], result="ok", key_mode="hybrid",
                          image=dict(sha256="aa" * 32)))
        trail.append(dict(actor="image_receive", key_ids=["ab-1"], result="refused", key_mode="aead"))
        trail.append(dict(actor="key_relay", key_ids=["ab-1", "cd-2"], result="ok"))
    with open(str(path), "a", encoding="utf-8") as handle:
        handle.write('{"actor": "image_send", "cut short\n[1, 2]\n')
    assert audit.read(str(path))[1] == 2
    assert len(audit.read(str(path), key_id="ab-1")[0]) == 3
    assert [r["actor"] for r in audit.read(str(path), key_id="CD-2")[0]] == ["key_relay"]
    assert [r["actor"] for r in audit.read(str(path), result="refused")[0]] == ["image_receive"]
    assert [r["actor"] for r in audit.read(str(path), sha256="AA" * 32)[0]] == ["image_send"]
    assert [r["actor"] for r in audit.read(str(path), key_mode="hybrid", actor="image_send")[0]] == ["image_send"]
    first = audit.read(str(path))[0][0]["time"]
    assert len(audit.read(str(path), since=first[:4])[0]) == 3 and audit.read(str(path), until=first[:4])[0] == []
    assert audit.read(str(tmp_path / "absent.jsonl")) == ([], 0)
