# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils.vim without a VIM: checksums, the image input, waits, and the OpenStack errors a
caller meets before any VIM answers (unknown cloud, nothing listening)."""

from __future__ import annotations

import hashlib
import io
import socket
import time

import pytest

from ansible_collections.qkd.nfv.plugins.module_utils import vim
from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError

DATA = b"vnf image bytes\n" * 70000  # about 1.1 MiB: more than one read chunk
DIGEST = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "vnf.raw"
    path.write_bytes(DATA)
    return str(path)


@pytest.mark.parametrize("text", [DIGEST, "sha256:" + DIGEST, "SHA256:" + DIGEST.upper(), "  %s " % DIGEST])
def test_parse_checksum_accepts_the_usual_spellings(text):
    assert vim.parse_checksum(text) == DIGEST


@pytest.mark.parametrize("text, words", [
    ("md5:" + "0" * 32, "only sha256"),
    ("sha256:abc", "64 hex digits"),
    ("z" * 64, "64 hex digits"),
])
def test_parse_checksum_names_the_option_when_wrong(text, words):
    with pytest.raises(vim.VimError) as caught:
        vim.parse_checksum(text)
    assert caught.value.msg.startswith("checksum:") and words in caught.value.msg


def test_file_sha256_reads_in_chunks(image_file):
    assert vim.file_sha256(image_file) == (DIGEST, len(DATA))


def test_hashing_reader_hashes_what_is_read_and_reports_its_length():
    reader = vim.HashingReader(io.BytesIO(DATA), len(DATA))
    chunks = []
    while True:
        chunk = reader.read(65536)
        if not chunk:
            break
        chunks.append(chunk)
    assert b"".join(chunks) == DATA
    assert len(reader) == len(DATA) and reader.sent == len(DATA)
    assert reader.sha256.hexdigest() == DIGEST


def test_image_spec_computes_the_checksum_and_defaults_the_name(image_file):
    spec = vim.image_spec({"path": image_file}, None)
    assert (spec.name, spec.sha256, spec.size, spec.disk_format, spec.container_format) == \
        ("vnf.raw", DIGEST, len(DATA), "raw", "bare")
    assert vim.image_spec({"path": image_file, "name": "fw"}, "sha256:" + DIGEST).name == "fw"


def test_a_given_checksum_is_checked_when_the_file_is_needed(image_file):
    spec = vim.image_spec({"path": image_file}, "0" * 64)  # not read yet: the VIM may hold the image
    assert (spec.sha256, spec.size, spec.verified) == ("0" * 64, len(DATA), False)
    with pytest.raises(vim.VimError) as caught:
        spec.verify_file()
    assert caught.value.msg.startswith("checksum:") and "nothing was uploaded" in caught.value.msg
    assert caught.value.details == {"expected_sha256": "0" * 64, "actual_sha256": DIGEST}
    assert isinstance(caught.value, QkdNfvError)


@pytest.mark.parametrize("image, checksum, prefix", [
    ({"path": "/nonexistent/vnf.raw"}, None, "image.path:"),
    ({}, None, "image:"),
    ({"name": "fw"}, None, "checksum:"),
])
def test_image_spec_names_the_option_at_fault(image, checksum, prefix):
    with pytest.raises(vim.VimError) as caught:
        vim.image_spec(image, checksum)
    assert caught.value.msg.startswith(prefix)


def test_image_spec_without_a_file_needs_only_name_and_checksum():
    spec = vim.image_spec({"name": "fw", "disk_format": "qcow2"}, DIGEST)
    assert (spec.path, spec.sha256, spec.disk_format) == (None, DIGEST, "qcow2")


def test_deadline_bounds_every_sleep():
    deadline = vim.Deadline(0.2)
    began = time.monotonic()
    while not deadline.expired:
        deadline.sleep()
    elapsed = time.monotonic() - began
    assert 0.15 <= elapsed < 2.0
    assert deadline.remaining() == 0.0


def test_unknown_cloud_is_an_error_naming_the_option(tmp_path, monkeypatch):
    pytest.importorskip("openstack")
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  dc1:\n    auth: {auth_url: 'http://127.0.0.1:9/v3'}\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    with pytest.raises(vim.VimError) as caught:
        vim.OpenStackVim(cloud="no-such-cloud")
    assert caught.value.msg.startswith("cloud:") and "no-such-cloud" in caught.value.msg


def test_unreachable_keystone_is_an_error_not_a_traceback(tmp_path, monkeypatch):
    pytest.importorskip("openstack")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.delenv("OS_CLIENT_CONFIG_FILE", raising=False)
    auth = {"auth_url": "http://127.0.0.1:%d/v3" % port, "username": "u", "password": "secret-pw",
            "project_name": "p", "user_domain_name": "Default", "project_domain_name": "Default"}
    with pytest.raises(vim.VimError) as caught:
        vim.OpenStackVim(auth=auth, auth_type="password", api_timeout=5)
    assert "cannot authenticate" in caught.value.msg
    assert "secret-pw" not in caught.value.msg
