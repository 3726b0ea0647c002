# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/leakcheck.py, the key-leak checker the integration targets run, exercised as a command."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest

LEAKCHECK = os.path.join(os.path.dirname(__file__), "..", "..", "..", "leakcheck.py")
KEY_ID = "bc490419-7d60-487f-adc1-4ddcc177c139"
MATERIAL = bytes(range(100, 132))


def leakcheck(*args):
    run = subprocess.run([sys.executable, LEAKCHECK] + [str(a) for a in args],
                         capture_output=True, text=True, check=False)
    return run.returncode, run.stdout + run.stderr


@pytest.fixture
def keys(tmp_path):
    directory = tmp_path / "keys"
    directory.mkdir()
    (directory / (KEY_ID + ".key")).write_bytes(MATERIAL)
    return directory


@pytest.mark.parametrize("spelling", [
    base64.b64encode(MATERIAL).decode(),
    base64.b64encode(MATERIAL).decode().rstrip("="),
    base64.urlsafe_b64encode(MATERIAL).decode(),
    MATERIAL.hex(),
    MATERIAL.hex().upper(),
])
def test_every_spelling_is_found_and_reported_without_the_key(tmp_path, keys, spelling):
    log = tmp_path / "ansible.log"
    log.write_text("ok: [node1] => {\"key\": \"%s\"}\n" % spelling)
    (tmp_path / "clean.log").write_text("nothing here\n")
    rc, out = leakcheck("--keys", keys, log, tmp_path / "clean.log")
    assert rc == 1
    assert "LEAK: %s contains key %s" % (log, KEY_ID) in out
    assert "clean.log" not in out.replace("2 files", "")
    assert spelling not in out and MATERIAL.hex() not in out


def test_clean_output_passes(tmp_path, keys):
    log = tmp_path / "ansible.log"
    log.write_text("key_ID %s is not secret\n" % KEY_ID)
    rc, out = leakcheck("--keys", keys, log)
    assert rc == 0 and "1 keys, 1 files searched, 0 leaks" in out


def test_base64_key_files_and_directories_of_output(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / (KEY_ID + ".b64")).write_bytes(base64.b64encode(MATERIAL) + b"\n")
    outputs = tmp_path / "out" / "deep"
    outputs.mkdir(parents=True)
    (outputs / "events.json").write_text(MATERIAL.hex())
    rc, out = leakcheck("--keys", keys, tmp_path / "out")
    assert rc == 1 and KEY_ID in out and "events.json" in out


def test_key_files_inside_the_searched_tree_are_not_hits(tmp_path, keys):
    rc, out = leakcheck("--keys", keys, tmp_path)
    assert rc == 0, out


def test_usage_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert leakcheck("--keys", empty, tmp_path)[0] == 2
    (empty / "short.key").write_bytes(b"abc")
    rc, out = leakcheck("--keys", empty, tmp_path)
    assert rc == 2 and "false hits" in out
