#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: key_relay
short_description: A trusted node's step of a multi-hop QKD key relay
version_added: 0.1.0
description:
  - Runs on a trusted node between two QKD links. Takes the key of the incoming hop by key_ID
    (C(Get key with key IDs) of ETSI GS QKD 014, with O(previous_sae_id) as master), takes a new key
    of the same size for the outgoing hop (C(Get key), with O(next_sae_id) as slave), and returns
    the key_ID of the new key and the XOR of the two keys.
  - The XOR is the new key one-time-pad encrypted with the incoming key, so it can travel in the clear
    to the origin, which alone can undo it (M(qkd.nfv.key_relay_recover)). No key is returned and
    nothing is written to disk; both keys exist only in this module's memory for the run.
  - The node next on the path takes the new key from its own KME by RV(key_id), naming this node's SAE
    as master. That node is the next trusted node (another key_relay) or the destination
    (M(qkd.nfv.qkd_key) or M(qkd.nfv.image_receive)).
  - The outgoing pool is checked before any key is taken, and the incoming key before the outgoing one,
    so an empty pool or a spent key_ID costs no key.
  - Every relay is recorded as one JSON line in the key-usage audit trail O(audit_log) (both key_IDs, the
    SAEs, the result; never a key or the relayed value); see C(docs/audit.md).
author:
  - qkd.nfv contributors (@qkd-nfv)
extends_documentation_fragment:
  - qkd.nfv.attributes
  - qkd.nfv.audit
  - qkd.nfv.kme
attributes:
  check_mode:
    support: full
    details:
      - Consumes no key. Reads the status of both key pools (incoming and outgoing), which also proves
        the TLS settings and the SAE's certificate, and predicts a change.
      - Whether the KME still holds O(previous_key_id) cannot be known without taking the key.
      - Writes no audit line.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - A key is delivered once. A second run with the same O(previous_key_id) fails, because the KME
        no longer holds that key.
  action_group:
    description: Use C(group/qkd.nfv.kme) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - qkd.nfv.kme
options:
  previous_sae_id:
    description:
      - The SAE ID of the node before this one on the path (the origin or the previous trusted node),
        which took the incoming key as master.
    type: str
    required: true
  previous_key_id:
    description:
      - The key_ID of the incoming key, as the previous node received it (RV(qkd.nfv.qkd_key#module:key_ids)
        at the origin, RV(key_id) of the previous trusted node's key_relay).
    type: str
    required: true
  next_sae_id:
    description:
      - The SAE ID of the node after this one on the path, joined to this node by a QKD link. The new key
        is shared with it.
    type: str
    required: true
notes:
  - The KME options (O(kme_url), O(client_cert), ...) are this trusted node's own; its SAE is the slave of
    the incoming hop and the master of the outgoing one.
  - If the outgoing key cannot be taken after the incoming key was, the incoming key is spent and the relay
    must start again at the origin with a new key; the error says so.
  - The relayed value is not authenticated by itself. It reaches the origin over Ansible's connection; a
    value altered on the way yields a wrong key, which the destination's authenticated decryption
    rejects, or which the key fingerprints of both ends (see C(playbooks/relay_key.yml)) expose.
  - The collection's C(docs/relay.md) describes the whole relay, chains of trusted nodes and why the
    relayed value may travel in the clear.
seealso:
  - module: qkd.nfv.key_relay_recover
  - module: qkd.nfv.qkd_key
"""

EXAMPLES = r"""
- name: Trusted node 2 relays the key the CO took for it to DC 5
  qkd.nfv.key_relay:
    kme_url: https://kme-node2.example.net:443
    kme_id: kme-node2
    ca_cert: /etc/qkd/ca.crt
    client_cert: /etc/qkd/sae-node2.crt
    client_key: /etc/qkd/sae-node2.key
    previous_sae_id: sae-node1
    previous_key_id: "{{ origin_key.key_ids[0] }}"
    next_sae_id: sae-node5
  delegate_to: node2
  register: hop1

- name: The next trusted node relays the key hop1 took for it
  qkd.nfv.key_relay:
    previous_sae_id: sae-node2
    previous_key_id: "{{ hop1.key_id }}"
    next_sae_id: sae-node6
  delegate_to: node5
  register: hop2
  module_defaults:
    group/qkd.nfv.kme:
      kme_url: "{{ hostvars['node5'].kme_url }}"
      kme_id: "{{ hostvars['node5'].kme_id }}"
      ca_cert: "{{ hostvars['node5'].kme_ca_cert }}"
      client_cert: "{{ hostvars['node5'].kme_client_cert }}"
      client_key: "{{ hostvars['node5'].kme_client_key }}"
"""

RETURN = r"""
key_id:
  description: The key_ID of the new key, shared with O(next_sae_id). The next node takes the key by it.
  returned: success, not in check mode
  type: str
  sample: 7a4c1e0b-3f5d-4b8e-9a61-2f0d8c3b5e17
previous_key_id:
  description: O(previous_key_id), so that a list of relay results shows the chain of key_IDs.
  returned: always
  type: str
  sample: bc490419-7d60-487f-adc1-4ddcc177c139
previous_sae_id:
  description: O(previous_sae_id).
  returned: always
  type: str
  sample: sae-node1
next_sae_id:
  description: O(next_sae_id).
  returned: always
  type: str
  sample: sae-node5
relayed:
  description:
    - The incoming key XOR the new key, in hexadecimal. One-time-pad ciphertext of the new key; not
      secret, but useful only to the holder of the incoming key (the origin).
    - Pass the results of all trusted nodes of a path, in path order, to M(qkd.nfv.key_relay_recover).
  returned: success, not in check mode
  type: str
  sample: 07098e88af3dcc5f0c558d0b751028553031c6e613146196ae7b11cb4cb43bc9
size:
  description: The size of both keys, in bits.
  returned: success, not in check mode
  type: int
  sample: 256
hop:
  description: The outgoing hop, for the record of the path.
  returned: success, not in check mode
  type: dict
  contains:
    node:
      description: This node's SAE ID (the master of the new key), as its KME reports it.
      type: str
      sample: sae-node2
    next_node:
      description: O(next_sae_id).
      type: str
      sample: sae-node5
    link:
      description: The QKD link, as C(<this KME ID> -> <next KME ID>).
      type: str
      sample: kme-node2 -> kme-node5
    key_id:
      description: RV(key_id).
      type: str
      sample: 7a4c1e0b-3f5d-4b8e-9a61-2f0d8c3b5e17
pools:
  description:
    - The KME's Status (see M(qkd.nfv.kme_info)) of the pools used. C(next) always; C(previous) in check
      mode only.
  returned: always
  type: dict
  sample:
    next: {"source_KME_ID": "kme-node2", "target_KME_ID": "kme-node5", "key_size": 256, "stored_key_count": 812}
"""

from ansible_collections.qkd.nfv.plugins.module_utils import audit
from ansible_collections.qkd.nfv.plugins.module_utils.common import audit_argument_spec, kme_argument_spec, run_module
from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError
from ansible_collections.qkd.nfv.plugins.module_utils.kme import kme_client_from_params
from ansible_collections.qkd.nfv.plugins.module_utils.relay import pool_status, relay


def argument_spec():
    spec = kme_argument_spec()
    spec.update(
        previous_sae_id=dict(type='str', required=True),
        previous_key_id=dict(type='str', required=True, no_log=False),
        next_sae_id=dict(type='str', required=True),
    )
    spec.update(audit_argument_spec())
    return spec


def run(module):
    params = module.params
    result = dict(changed=True, previous_key_id=params['previous_key_id'],
                  previous_sae_id=params['previous_sae_id'], next_sae_id=params['next_sae_id'])
    with kme_client_from_params(params) as client:
        if module.check_mode:
            pools = dict(previous=pool_status(client, params['previous_sae_id'], 'check'),
                         next=pool_status(client, params['next_sae_id'], 'check'))
            if pools['next']['stored_key_count'] < 1:
                module.warn("the KME holds no key for %s yet; a real run would fail without consuming "
                            "the incoming key" % params['next_sae_id'])
            return dict(result, pools=pools)
        with audit.open_for(params) as trail:
            record = dict(actor='key_relay', event='relay', previous_sae_id=params['previous_sae_id'],
                          next_sae_id=params['next_sae_id'])
            try:
                step = relay(client, params['previous_sae_id'], params['previous_key_id'], params['next_sae_id'])
            except QkdNfvError as exc:
                trail.append(dict(record, result='failed', key_ids=[params['previous_key_id']],
                                  reason=exc.details.get('reason', 'failed'), msg=exc.msg))
                raise
            trail.append(dict(record, result='ok', key_ids=[step.previous_key_id, step.key_id], size=step.size,
                              link=step.hop.link))
    result.update(step.as_dict())
    result['pools'] = dict(next=step.status)
    return result


def main():
    run_module(argument_spec(), run, supports_check_mode=True)


if __name__ == '__main__':
    main()
