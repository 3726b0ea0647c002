#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vnf_instance
short_description: A VNF image in the VIM, by checksum, and the VNF server that runs it
version_added: 0.1.0
description:
  - Ensures that the VIM holds the VNF image, identified by its name and the SHA-256 of its bytes, and that
    a server of the given name runs that image (O(state=present)); or that the server is gone (O(state=absent)).
  - With O(backend=openstack), the image is streamed to Glance (the SHA-256 is stored as the image property
    C(owner_specified.openstack.sha256), as openstacksdk does) and a Nova server is booted from it.
    A rerun with the same file uploads nothing.
  - With O(backend=podman), the image is a root file system tarball imported as a container image
    (labelled with its SHA-256) and the server is a container.
  - The file, the checksum, the cloud, the flavor and the network are all checked before anything is created,
    so bad input leaves no image or server behind. A server this module created that fails to start
    (for example Nova's C(No valid host was found)) is deleted again and the VIM's own message is reported.
  - An existing server of that name that runs another image is rebuilt with the new image (podman
    replaces the container); one that is stopped is started. A different flavor is reported, not resized.
  - With O(require_signature), the image must come with a manifest signed by the catalogue's ML-DSA-65 key
    O(signer_public_key) that names its SHA-256 (and size), as M(qkd.nfv.image_receive) keeps it beside the
    image; otherwise nothing is uploaded or started.
author:
  - qkd.nfv contributors (@qkd-nfv)
extends_documentation_fragment:
  - qkd.nfv.attributes
  - qkd.nfv.vim
attributes:
  check_mode:
    support: full
    details:
      - Reads the VIM and the image file and reports what would change; uploads and creates nothing.
  diff_mode:
    support: full
    details:
      - Before and after summaries of the image and the server (ids, names, status, checksum, flavor).
  idempotent:
    support: full
requirements:
  - openstacksdk >= 1.0.0 (for O(backend=openstack))
  - podman (for O(backend=podman))
options:
  name:
    description:
      - The server's (or container's) name. It must be unique in the project.
    type: str
    required: true
  state:
    description:
      - V(present) ensures the image and a running server; V(absent) removes the server.
    type: str
    choices: [present, absent]
    default: present
  image:
    description:
      - The VNF image.
      - Required for O(state=present); for O(state=absent) only with O(purge_image=true).
    type: dict
    suboptions:
      path:
        description:
          - The image file on the host that runs the module, uploaded when the VIM does not hold it yet.
          - Without it, the image must already be in the VIM (found by O(image.name) and O(checksum)).
        type: path
      name:
        description:
          - The image's name in the VIM. Defaults to the file name of O(image.path).
        type: str
      disk_format:
        description:
          - The Glance disk format.
        type: str
        default: raw
        choices: [raw, qcow2, vmdk, vdi, vhd, vhdx, iso, ami, ari, aki, ploop]
      container_format:
        description:
          - The Glance container format.
        type: str
        default: bare
        choices: [bare, ovf, ova, ami, ari, aki, docker, compressed]
  checksum:
    description:
      - The image's SHA-256, as V(sha256:<hex>) or plain hex.
      - With O(image.path), the file is checked against it when the file is needed. An upload to Glance
        hashes what it sends and labels the image with this checksum (what later runs find it by) only
        when they match; a wrong file is deleted from Glance again and the module fails. A podman import
        and check mode hash the file first. An image already in the VIM with this checksum is used without
        reading the file.
      - Without it, the checksum is computed from the file.
    type: str
  flavor:
    description:
      - The Nova flavor, by name or id. Required for O(state=present) with O(backend=openstack).
      - Ignored by O(backend=podman).
    type: str
  network:
    description:
      - The network to attach the server to, by name or id. Without it the server gets no network.
      - For O(backend=podman), V(none) or V(host).
    type: str
  command:
    description:
      - The command the container runs. Required for O(backend=podman), ignored by O(backend=openstack).
    type: list
    elements: str
  purge_image:
    description:
      - With O(state=absent), also delete the image (the one matching O(image) and O(checksum)).
    type: bool
    default: false
  require_signature:
    description:
      - With O(state=present), refuse the image unless O(manifest) is signed by O(signer_public_key) and names the
        image's SHA-256 (and, with O(image.path), its size). A missing, unsigned, forged or mismatching manifest
        fails the task before anything is uploaded or started, in check mode too.
    type: bool
    default: false
  manifest:
    description:
      - The image's signed manifest; its detached signature is the file of the same name plus C(.sig).
      - Defaults to O(image.path) followed by C(.manifest.json), where M(qkd.nfv.image_receive) writes it.
        Required with O(require_signature) when O(image.path) is not given.
    type: path
  signer_public_key:
    description:
      - The catalogue's ML-DSA-65 public key (PEM text, the path of a PEM file, or base64), pinned on this host.
        Required with O(require_signature).
    type: str
seealso:
  - module: qkd.nfv.image_receive
  - module: qkd.nfv.pqc_keypair
"""

EXAMPLES = r"""
- name: Start the firewall VNF from the image the DC just received
  qkd.nfv.vnf_instance:
    cloud: node2
    name: vnf-firewall
    image:
      path: /var/lib/vnf/firewall.raw
      name: firewall-1.4
    checksum: "sha256:{{ received.sha256 }}"
    flavor: vnf.small
    network: private
  register: vnf

- name: Show where it runs
  ansible.builtin.debug:
    msg: "{{ vnf.server_id }} {{ vnf.addresses }}"

- name: The same VNF as a container, on a host without OpenStack
  qkd.nfv.vnf_instance:
    backend: podman
    containers_conf: /etc/qkd-nfv/containers.conf
    name: vnf-firewall
    image:
      path: /var/lib/vnf/firewall-rootfs.tar
    command: [/bin/busybox, httpd, -f, -p, "127.0.0.1:8080"]
    network: host

- name: Only an image the catalogue signed (its manifest kept by image_receive beside it)
  qkd.nfv.vnf_instance:
    cloud: node2
    name: vnf-firewall
    image:
      path: /var/lib/vnf/firewall.raw
    flavor: vnf.small
    require_signature: true
    signer_public_key: "{{ catalogue_public_key }}"

- name: Remove the VNF and its image
  qkd.nfv.vnf_instance:
    cloud: node2
    name: vnf-firewall
    state: absent
    purge_image: true
    image:
      name: firewall-1.4
    checksum: "sha256:{{ received.sha256 }}"
"""

RETURN = r"""
server_id:
  description: The server's (container's) id; null when there is none (O(state=absent), or check mode before creation).
  returned: always
  type: str
image_id:
  description: The image's id in the VIM; null in check mode before an upload, and for O(state=absent).
  returned: always
  type: str
status:
  description: The server's status (Nova's C(ACTIVE), C(BUILD), ...; podman's C(running), ...).
  returned: always
  type: str
  sample: ACTIVE
addresses:
  description: The server's addresses per network, as Nova reports them.
  returned: always
  type: dict
  sample: {"private": [{"addr": "192.0.2.10", "version": 4, "OS-EXT-IPS:type": "fixed"}]}
image:
  description: The image in the VIM (planned values in check mode); null for O(state=absent).
  returned: always
  type: dict
  contains:
    id:
      description: Image id.
      type: str
    name:
      description: Image name.
      type: str
    sha256:
      description: SHA-256 of the image's bytes.
      type: str
    size:
      description: Size in bytes.
      type: int
    status:
      description: Image status.
      type: str
    disk_format:
      description: Disk format.
      type: str
    container_format:
      description: Container format.
      type: str
server:
  description: The server after the run (id, name, status, image_id, flavor, addresses).
  returned: always
  type: dict
manifest:
  description: The verified manifest of the image (name, SHA-256, key_IDs, key mode, signing time, ...).
  returned: with O(require_signature) and O(state=present)
  type: dict
actions:
  description: What the run did (or, in check mode, would do), in order.
  returned: always
  type: list
  elements: str
  sample: ["upload image", "create server"]
"""

from ansible_collections.qkd.nfv.plugins.module_utils.common import run_module
from ansible_collections.qkd.nfv.plugins.module_utils import pqc, vim

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    image=dict(type="dict", options=dict(
        path=dict(type="path"),
        name=dict(type="str"),
        disk_format=dict(type="str", default="raw", choices=[
            "raw", "qcow2", "vmdk", "vdi", "vhd", "vhdx", "iso", "ami", "ari", "aki", "ploop"]),
        container_format=dict(type="str", default="bare", choices=[
            "bare", "ovf", "ova", "ami", "ari", "aki", "docker", "compressed"]),
    )),
    checksum=dict(type="str"),
    flavor=dict(type="str"),
    network=dict(type="str"),
    command=dict(type="list", elements="str"),
    purge_image=dict(type="bool", default=False),
    backend=dict(type="str", default="openstack", choices=["openstack", "podman"]),
    cloud=dict(type="str"),
    auth=dict(type="dict", no_log=True),
    auth_type=dict(type="str"),
    region_name=dict(type="str"),
    interface=dict(type="str", choices=["public", "internal", "admin"]),
    validate_certs=dict(type="bool", default=True),
    ca_cert=dict(type="path"),
    containers_conf=dict(type="path"),
    wait=dict(type="bool", default=True),
    timeout=dict(type="int", default=600),
    require_signature=dict(type="bool", default=False),
    manifest=dict(type="path"),
    signer_public_key=dict(type="str", no_log=False),
)


def _backend(params):
    if params["backend"] == "podman":
        return vim.PodmanVim(containers_conf=params["containers_conf"])
    return vim.OpenStackVim(cloud=params["cloud"], auth=params["auth"], auth_type=params["auth_type"],
                            region_name=params["region_name"], interface=params["interface"],
                            validate_certs=params["validate_certs"], ca_cert=params["ca_cert"])


def run(module):
    p = module.params
    if p["timeout"] <= 0:
        raise vim.VimError("timeout: must be a positive number of seconds")
    if p["state"] == "present":
        if not p["image"]:
            raise vim.VimError("image: required with state=present (give image.path or image.name)")
        if p["backend"] == "openstack" and not p["flavor"]:
            raise vim.VimError("flavor: required with state=present and backend=openstack")
        if p["backend"] == "podman" and not p["command"]:
            raise vim.VimError("command: required with state=present and backend=podman "
                               "(the command the container runs)")
        spec = vim.image_spec(p["image"], p["checksum"])
        manifest = signed_manifest(p, spec) if p["require_signature"] else None
        result = vim.ensure_present(_backend(p), spec, p["name"], p["flavor"], network=p["network"],
                                    wait=p["wait"], timeout=p["timeout"], check_mode=module.check_mode,
                                    command=p["command"])
        if manifest is not None:
            result["manifest"] = manifest
    else:
        spec = None
        if p["purge_image"]:
            if not p["image"]:
                raise vim.VimError("image: purge_image=true needs image (and checksum, or image.path) "
                                   "to know which image to delete")
            spec = vim.image_spec(p["image"], p["checksum"])
        result = vim.ensure_absent(_backend(p), p["name"], spec, purge_image=p["purge_image"],
                                   wait=p["wait"], timeout=p["timeout"], check_mode=module.check_mode)
    if not module._diff:
        result.pop("diff")
    return result


def signed_manifest(p, spec):
    """The image's manifest, verified against the pinned catalogue key, or a failure naming why."""
    if not p["signer_public_key"]:
        raise vim.VimError("signer_public_key: required with require_signature (the catalogue's ML-DSA-65 "
                           "public key)", option="signer_public_key")
    manifest = p["manifest"] or (spec.path + pqc.MANIFEST_SUFFIX if spec.path else None)
    if not manifest:
        raise vim.VimError("manifest: required with require_signature when image.path is not given",
                           option="manifest")
    key = pqc.load_public_key(p["signer_public_key"], pqc.SIGNATURE, "signer_public_key")
    return pqc.verify_manifest_file(manifest, key, spec.sha256, spec.size)


def main():
    run_module(ARGUMENT_SPEC, run, supports_check_mode=True)


if __name__ == "__main__":
    main()
