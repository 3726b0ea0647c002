# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vnf_instance require_signature: an image without the catalogue's valid manifest is refused before the VIM
is touched (check mode too); a signed one gets through to the VIM."""

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.qkd.nfv.plugins.module_utils import pqc, qstream
from ansible_collections.qkd.nfv.plugins.modules import vnf_instance

CATALOGUE = pqc.generate(pqc.SIGNATURE)


@pytest.fixture
def image(tmp_path):
    """An image as image_receive leaves it: the file, <file>.manifest.json and its .sig."""
    data = os.urandom(4096)
    path = tmp_path / "vnf.img"
    path.write_bytes(data)
    header = qstream.StreamSealer(bytes(32), "key-1", master_sae_id="sae-co").header
    manifest, signature = pqc.Signer(CATALOGUE, "vnf.img").sign(header, len(data), hashlib.sha256(data).digest())
    pqc.write_manifest(str(path), qstream.Trailer(len(data), hashlib.sha256(data).digest(), manifest, signature))
    return str(path)


def args(image_path, **extra):
    # podman with a containers.conf that does not exist: the first thing the VIM step checks, after the signature
    return dict(dict(name="vnf-test", backend="podman", containers_conf="/nonexistent/containers.conf",
                     image=dict(path=image_path), command=["/bin/true"], require_signature=True,
                     signer_public_key=pqc.public_pem(CATALOGUE)), **extra)


def test_a_signed_image_gets_through_to_the_vim(run_main, image):
    result = run_main(vnf_instance.main, args(image))
    assert result["failed"] and result["msg"].startswith("containers_conf:")  # past the signature check


@pytest.mark.parametrize("check_mode", [True, False])
def test_an_unsigned_image_is_refused(run_main, image, check_mode):
    os.unlink(image + ".manifest.json.sig")
    result = run_main(vnf_instance.main, args(image, _ansible_check_mode=check_mode))
    assert result["failed"] and result["reason"] == "unsigned" and "refusing it" in result["msg"]
    assert not result.get("changed")


def test_another_signer_is_refused(run_main, image):
    other = pqc.public_pem(pqc.generate(pqc.SIGNATURE))
    result = run_main(vnf_instance.main, args(image, signer_public_key=other))
    assert result["failed"] and result["reason"] == "bad_signature"


def test_a_replaced_image_is_refused(run_main, image):
    with open(image, "r+b") as handle:
        handle.write(b"backdoor")
    result = run_main(vnf_instance.main, args(image))
    assert result["failed"] and result["reason"] == "manifest_mismatch"


def test_an_image_in_the_vim_by_checksum_needs_its_manifest_named(run_main, image):
    with open(image, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    result = run_main(vnf_instance.main, args(image, image=dict(name="vnf.img"), checksum="sha256:" + digest))
    assert result["failed"] and result["option"] == "manifest"
    result = run_main(vnf_instance.main, args(image, image=dict(name="vnf.img"), checksum="sha256:" + digest,
                                              manifest=image + ".manifest.json"))
    assert result["failed"] and result["msg"].startswith("containers_conf:")


def test_require_signature_needs_the_catalogue_key(run_main, image):
    result = run_main(vnf_instance.main, args(image, signer_public_key=None))
    assert result["failed"] and result["option"] == "signer_public_key"
