#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kme_info
short_description: Read the status of the key pool a KME keeps for two SAEs (ETSI GS QKD 014)
version_added: 0.1.0
description:
  - Calls C(Get status) of ETSI GS QKD 014 on a KME, as the SAE of O(client_cert) (the master) for the
    key pool it shares with O(slave_sae_id), and returns the Status fields verbatim.
  - Adds RV(stored_key_bits), the key material ready to deliver, which is what a QKD link's production
    and an application's consumption are measured in.
  - Reads only; no key is consumed.
author:
  - qkd.nfv contributors (@qkd-nfv)
extends_documentation_fragment:
  - qkd.nfv.attributes
  - qkd.nfv.attributes.INFO_MODULE
  - qkd.nfv.kme
attributes:
  action_group:
    description: Use C(group/qkd.nfv.kme) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - qkd.nfv.kme
options:
  slave_sae_id:
    description:
      - The SAE ID of the peer SAE whose key pool with the calling SAE is read.
    type: str
    required: true
seealso:
  - module: qkd.nfv.qkd_key
  - name: ETSI GS QKD 014 V1.1.1
    description: Protocol and data format of REST-based key delivery API.
    link: https://www.etsi.org/deliver/etsi_gs/QKD/001_099/014/01.01.01_60/gs_qkd014v010101p.pdf
"""

EXAMPLES = r"""
- name: How much key does the CO's KME hold for DC 2?
  qkd.nfv.kme_info:
    kme_url: https://kme-co.example.net:443
    kme_id: kme-co
    ca_cert: /etc/qkd/ca.crt
    client_cert: /etc/qkd/sae-co.crt
    client_key: /etc/qkd/sae-co.key
    slave_sae_id: sae-dc2
  register: pool

- name: Wait until at least 10 keys of 256 bits are ready
  qkd.nfv.kme_info:
    slave_sae_id: sae-dc2
  register: pool
  until: pool.stored_key_bits >= 2560
  retries: 30
  delay: 2
  module_defaults:
    group/qkd.nfv.kme:
      kme_url: "{{ kme_url }}"
      kme_id: "{{ kme_id }}"
      ca_cert: "{{ kme_ca_cert }}"
      client_cert: "{{ kme_client_cert }}"
      client_key: "{{ kme_client_key }}"
"""

RETURN = r"""
status:
  description:
    - The Status object of ETSI GS QKD 014 (clause 6.1), as the KME sent it.
    - The standard's fields are listed here; KMEs may leave optional ones out or add C(status_extension).
  returned: success
  type: dict
  contains:
    source_KME_ID:
      description: KME ID of the KME.
      type: str
      sample: kme-co
    target_KME_ID:
      description: KME ID of the KME on the slave SAE's side.
      type: str
      sample: kme-dc2
    master_SAE_ID:
      description: SAE ID of the calling SAE.
      type: str
      sample: sae-co
    slave_SAE_ID:
      description: SAE ID of O(slave_sae_id).
      type: str
      sample: sae-dc2
    key_size:
      description: Default size of a key, in bits.
      type: int
      sample: 256
    stored_key_count:
      description: Number of keys of RV(status.key_size) bits the KME can deliver now.
      type: int
      sample: 25000
    max_key_count:
      description: Most keys the pool holds.
      type: int
      sample: 100000
    max_key_per_request:
      description: Most keys one request may ask for.
      type: int
      sample: 128
    max_key_size:
      description: Largest key size, in bits.
      type: int
      sample: 1024
    min_key_size:
      description: Smallest key size, in bits.
      type: int
      sample: 64
    max_SAE_ID_count:
      description: Most additional slave SAEs of one request; 0 when the KME does not multicast keys.
      type: int
      sample: 0
  sample:
    source_KME_ID: kme-co
    target_KME_ID: kme-dc2
    master_SAE_ID: sae-co
    slave_SAE_ID: sae-dc2
    key_size: 256
    stored_key_count: 25000
    max_key_count: 100000
    max_key_per_request: 128
    max_key_size: 1024
    min_key_size: 64
    max_SAE_ID_count: 0
stored_key_bits:
  description: RV(status.stored_key_count) times RV(status.key_size).
  returned: success
  type: int
  sample: 6400000
"""

from ansible_collections.qkd.nfv.plugins.module_utils.common import kme_argument_spec, run_module
from ansible_collections.qkd.nfv.plugins.module_utils.kme import kme_client_from_params, stored_key_bits


def argument_spec():
    spec = kme_argument_spec()
    spec.update(slave_sae_id=dict(type='str', required=True))
    return spec


def run(module):
    with kme_client_from_params(module.params) as client:
        status = client.status(module.params['slave_sae_id'])
    return dict(changed=False, status=status, stored_key_bits=stored_key_bits(status))


def main():
    run_module(argument_spec(), run, supports_check_mode=True)


if __name__ == '__main__':
    main()
