# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ensure_present / ensure_absent through the podman back-end, with real podman and a busybox root
file system (no registry). Skipped, with the reason, where podman or a static busybox is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import uuid

import pytest

from ansible_collections.qkd.nfv.plugins.module_utils import vim

BUSYBOX = "/bin/busybox"
pytestmark = pytest.mark.skipif(not shutil.which("podman") or not os.path.exists(BUSYBOX),
                                reason="needs podman and a static busybox (apt-get install podman runc busybox-static)")
COMMAND = ["/bin/busybox", "sleep", "600"]


def _rootfs(tmp_path, name, extra=b""):
    tar_path = tmp_path / name
    with tarfile.open(tar_path, "w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        if extra:
            marker = tmp_path / ("%s.version" % name)
            marker.write_bytes(extra)
            tar.add(marker, arcname="etc/version")
    return str(tar_path)


@pytest.fixture
def podman(tmp_path):
    # runc and explicit ulimits: what hosts without CAP_SYS_RESOURCE or with hybrid cgroups need.
    conf = tmp_path / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
                    '[engine]\nruntime = "runc"\n')
    backend = vim.PodmanVim(containers_conf=str(conf))
    name = "ut-vnf-%s" % uuid.uuid4().hex[:8]
    made = []
    yield backend, name, made
    for spec in made:
        vim.ensure_absent(backend, name, spec, purge_image=True, timeout=30)


def _inspect(backend, name):
    proc = subprocess.run([backend.podman, "inspect", "--format", "{{.State.Status}} {{.Image}}", name],
                          env=backend.env, capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def test_present_is_idempotent_and_check_mode_makes_nothing(podman, tmp_path):
    backend, name, made = podman
    spec = vim.image_spec({"path": _rootfs(tmp_path, "v1.tar"), "name": name}, None)
    made.append(spec)

    planned = vim.ensure_present(backend, spec, name, None, network="none", command=COMMAND,
                                 timeout=60, check_mode=True)
    assert planned["changed"] and planned["actions"] == ["upload image", "create server"]
    assert backend.find_image(spec) is None and _inspect(backend, name) is None

    first = vim.ensure_present(backend, spec, name, None, network="none", command=COMMAND, timeout=60)
    assert first["changed"] and first["status"] == "running"
    assert first["image"]["sha256"] == spec.sha256
    assert _inspect(backend, name) == "running %s" % first["image_id"]

    again = vim.ensure_present(backend, spec, name, None, network="none", command=COMMAND, timeout=60)
    assert not again["changed"] and again["actions"] == []
    assert (again["server_id"], again["image_id"]) == (first["server_id"], first["image_id"])
    assert again["diff"]["before"] == again["diff"]["after"]


def test_a_new_image_replaces_the_container(podman, tmp_path):
    backend, name, made = podman
    old = vim.image_spec({"path": _rootfs(tmp_path, "v1.tar"), "name": name}, None)
    new = vim.image_spec({"path": _rootfs(tmp_path, "v2.tar", b"2\n"), "name": name}, None)
    made.extend([old, new])
    first = vim.ensure_present(backend, old, name, None, command=COMMAND, timeout=60)

    second = vim.ensure_present(backend, new, name, None, command=COMMAND, timeout=60)

    assert second["actions"] == ["upload image", "replace server image"]
    assert second["image_id"] != first["image_id"] and second["server_id"] != first["server_id"]
    assert _inspect(backend, name) == "running %s" % second["image_id"]


def test_a_stopped_container_is_started(podman, tmp_path):
    backend, name, made = podman
    spec = vim.image_spec({"path": _rootfs(tmp_path, "v1.tar"), "name": name}, None)
    made.append(spec)
    vim.ensure_present(backend, spec, name, None, command=COMMAND, timeout=60)
    subprocess.run([backend.podman, "stop", "--time", "1", name], env=backend.env, check=True,
                   capture_output=True)

    result = vim.ensure_present(backend, spec, name, None, command=COMMAND, timeout=60)

    assert result["actions"] == ["start server"] and result["status"] == "running"


def test_a_container_that_exits_is_reported_and_removed(podman, tmp_path):
    backend, name, made = podman
    spec = vim.image_spec({"path": _rootfs(tmp_path, "v1.tar"), "name": name}, None)
    made.append(spec)
    with pytest.raises(vim.VimError) as caught:
        vim.ensure_present(backend, spec, name, None, command=["/bin/busybox", "false"], timeout=30)
    assert "exited" in caught.value.msg
    assert caught.value.details["changed"] is True  # the image import stands
    assert _inspect(backend, name) is None


def test_absent_removes_container_and_image_once(podman, tmp_path):
    backend, name, made = podman
    spec = vim.image_spec({"path": _rootfs(tmp_path, "v1.tar"), "name": name}, None)
    made.append(spec)
    vim.ensure_present(backend, spec, name, None, command=COMMAND, timeout=60)

    check = vim.ensure_absent(backend, name, spec, purge_image=True, check_mode=True)
    assert check["changed"] and _inspect(backend, name) is not None
    gone = vim.ensure_absent(backend, name, spec, purge_image=True)
    assert gone["actions"] == ["delete server", "delete image"]
    assert _inspect(backend, name) is None and backend.find_image(spec) is None
    assert vim.ensure_absent(backend, name, spec, purge_image=True)["changed"] is False


def test_bad_network_and_missing_containers_conf_are_refused(podman, tmp_path):
    backend = podman[0]
    with pytest.raises(vim.VimError) as caught:
        backend.find_network("private")
    assert caught.value.msg.startswith("network:")
    with pytest.raises(vim.VimError) as caught:
        vim.PodmanVim(containers_conf=str(tmp_path / "absent.conf"))
    assert caught.value.msg.startswith("containers_conf:")
