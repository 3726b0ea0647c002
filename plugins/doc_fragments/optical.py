# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How a module reaches the optical switch: common.optical_argument_spec() in code.
    DOCUMENTATION = r"""
options:
  controller_url:
    description:
      - Base URL of the RESTCONF server, without a path.
      - With O(backend=odl), the OpenDaylight controller that has the switch mounted over NETCONF,
        for example V(http://odl.example.net:8181).
      - With O(backend=polatis), the switch's own RESTCONF server, for example V(http://switch.example.net:8008).
      - If not set, the environment variable E(QKD_NFV_OPTICAL_URL) is used.
    type: str
    required: true
  node_id:
    description:
      - The node id under which OpenDaylight mounts the switch in topology C(topology-netconf),
        for example V(polatis-1).
      - Required with O(backend=odl); ignored with O(backend=polatis).
      - If not set, the environment variable E(QKD_NFV_OPTICAL_NODE_ID) is used.
    type: str
  username:
    description:
      - User for HTTP Basic authentication. No authentication is sent when not set.
      - If not set, the environment variable E(QKD_NFV_OPTICAL_USERNAME) is used.
    type: str
  password:
    description:
      - Password for HTTP Basic authentication.
      - If not set, the environment variable E(QKD_NFV_OPTICAL_PASSWORD) is used.
    type: str
  backend:
    description:
      - V(odl) drives the switch through OpenDaylight's NETCONF mount (C(yang-ext:mount)).
      - V(polatis) talks to the switch's own RESTCONF API under C(/api).
      - If not set, the environment variable E(QKD_NFV_OPTICAL_BACKEND) is used.
    type: str
    choices: [odl, polatis]
    default: odl
  api:
    description:
      - Which OpenDaylight RESTCONF flavour to use with O(backend=odl).
      - V(rfc8040) uses C(/rests/data/...?content=config|nonconfig) (OpenDaylight Oxygen onwards, the only one
        since Chlorine).
      - V(draft02) uses the older C(/restconf/config/...) and C(/restconf/operational/...) paths.
      - If not set, the environment variable E(QKD_NFV_OPTICAL_API) is used.
    type: str
    choices: [rfc8040, draft02]
    default: rfc8040
  validate_certs:
    description:
      - Whether to verify the server's TLS certificate when O(controller_url) is C(https://).
      - Set to V(false) only on a lab network you control.
      - If not set, the environment variable E(QKD_NFV_OPTICAL_VALIDATE_CERTS) is used.
    type: bool
    default: true
  ca_cert:
    description:
      - PEM file of the CA that signed the server's certificate. The system trust store is used when not set.
      - If not set, the environment variable E(QKD_NFV_OPTICAL_CA_CERT) is used.
    type: path
  timeout:
    description:
      - Seconds to wait for each HTTP request.
      - If not set, the environment variable E(QKD_NFV_OPTICAL_TIMEOUT) is used.
    type: float
    default: 10
notes:
  - The modules using these options are in the action group C(qkd.nfv.optical), so the connection can be set
    once with C(module_defaults) and C(group/qkd.nfv.optical).
"""
