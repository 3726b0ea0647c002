# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How a module reaches the VIM (OpenStack through openstacksdk, or podman), and how long it waits.
    DOCUMENTATION = r"""
options:
  backend:
    description:
      - The VIM that runs the VNF.
      - V(openstack) uploads the image to Glance and boots a Nova server (needs openstacksdk).
      - V(podman) imports the image as a container image from a root file system tarball and runs a container.
    type: str
    choices: [openstack, podman]
    default: openstack
  cloud:
    description:
      - The name of a cloud in C(clouds.yaml), as openstacksdk finds it
        (E(OS_CLIENT_CONFIG_FILE), C(./clouds.yaml), C(~/.config/openstack/clouds.yaml), C(/etc/openstack/clouds.yaml)).
      - Omit it to use O(auth) alone, or the E(OS_*) environment variables.
      - Only for O(backend=openstack).
    type: str
  auth:
    description:
      - Credentials for openstacksdk without a C(clouds.yaml) entry, or overriding parts of one,
        for example C(auth_url), C(username), C(password), C(project_name), C(user_domain_name),
        C(project_domain_name).
      - Never logged or returned.
    type: dict
  auth_type:
    description:
      - The keystoneauth plugin for O(auth), for example V(password) or V(v3applicationcredential).
    type: str
  region_name:
    description:
      - The OpenStack region.
    type: str
  interface:
    description:
      - The endpoint interface of the service catalog to use.
    type: str
    choices: [public, internal, admin]
  validate_certs:
    description:
      - Verify the VIM's TLS certificates.
    type: bool
    default: true
  ca_cert:
    description:
      - A CA bundle to verify the VIM's TLS certificates with.
    type: path
  containers_conf:
    description:
      - A C(containers.conf) for podman (sets E(CONTAINERS_CONF)), for example one that selects the runtime
        and default ulimits a host needs.
      - Only for O(backend=podman).
    type: path
  wait:
    description:
      - Wait until the server is running (or, for O(state=absent), gone).
      - The image is always waited for, since a server cannot boot from an image that is not active.
    type: bool
    default: true
  timeout:
    description:
      - Seconds that all waits of one run may take together (image becoming active, server becoming active
        or gone). The upload itself is not counted; for very large images run the task with C(async).
    type: int
    default: 600
"""
