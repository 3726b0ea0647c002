#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: key_relay_recover
short_description: Recover at the origin the key that trusted nodes relayed to a destination
version_added: 0.1.0
description:
  - The origin's last step of a multi-hop key relay. The origin took the first hop's key with
    M(qkd.nfv.qkd_key) into O(key_dir); each trusted node on the path ran M(qkd.nfv.key_relay) and
    returned the XOR of its incoming and outgoing keys. This module undoes those XORs in path order,
    key_{i+1} = relayed_i XOR key_i, and writes only the last key, the one shared with the destination.
  - The recovered key goes to C(<key_dir>/<key_ID>.key) (raw bytes, mode C(0600), written atomically),
    named after the destination's key_ID, the format M(qkd.nfv.qkd_key) writes. The origin's own key file
    is deleted, since that key has done its work and keeping it would only expose the relayed key.
  - The result holds key_IDs, paths and a SHA-256 fingerprint of the recovered key, never a key.
  - Talks to no KME; only files on the origin change.
author:
  - qkd.nfv contributors (@qkd-nfv)
extends_documentation_fragment:
  - qkd.nfv.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the key files and computes the key to predict the change and the fingerprint; writes and
        deletes nothing.
  diff_mode:
    support: full
    details:
      - Shows which key files exist before and after (paths only).
  idempotent:
    support: full
    details:
      - Once the recovered key file exists and the origin's key file is gone, a run with the same options
        changes nothing and reports the fingerprint of the recovered key.
options:
  key_dir:
    description:
      - The directory holding the origin's key as C(<key_id>.key), as M(qkd.nfv.qkd_key) wrote it with
        O(qkd.nfv.qkd_key#module:dest). The recovered key is written there too.
    type: path
    required: true
  key_id:
    description:
      - The key_ID of the origin's key, the first hop's key.
    type: str
    required: true
  hops:
    description:
      - The results of the M(qkd.nfv.key_relay) tasks of this relay, in path order from the trusted node
        next to the origin. Each needs RV(qkd.nfv.key_relay#module:key_id),
        RV(qkd.nfv.key_relay#module:previous_key_id) and RV(qkd.nfv.key_relay#module:relayed); other
        keys, such as those Ansible adds to registered results, are ignored.
      - Each hop must relay the key_ID of the hop before it, so results of another relay or in the wrong
        order are refused.
    type: list
    elements: dict
    required: true
notes:
  - A relayed value altered on its way cannot be detected here; it yields a wrong key. Compare RV(key_sha256)
    with the destination's, or rely on the destination's authenticated decryption (M(qkd.nfv.image_receive)),
    which refuses a wrong key.
seealso:
  - module: qkd.nfv.key_relay
  - module: qkd.nfv.qkd_key
"""

EXAMPLES = r"""
- name: The CO takes the first hop's key, shared with trusted node 2
  qkd.nfv.qkd_key:
    slave_sae_id: sae-node2
    dest: /var/lib/qkd/relay
  register: origin_key

- name: Trusted node 2 relays it toward DC 5
  qkd.nfv.key_relay:
    previous_sae_id: sae-node1
    previous_key_id: "{{ origin_key.key_ids[0] }}"
    next_sae_id: sae-node5
  delegate_to: node2
  register: hop1

- name: The CO recovers the key it now shares with DC 5
  qkd.nfv.key_relay_recover:
    key_dir: /var/lib/qkd/relay
    key_id: "{{ origin_key.key_ids[0] }}"
    hops:
      - "{{ hop1 }}"
  register: relayed_key

- name: Encrypt an image for DC 5 with it
  qkd.nfv.image_send:
    src: /var/lib/images/vnf.qcow2
    key_file: "{{ relayed_key.key_file }}"
    key_id: "{{ relayed_key.key_id }}"
    master_sae_id: "{{ relayed_key.master_sae_id }}"
    dest: /srv/outgoing/vnf.qst
"""

RETURN = r"""
key_id:
  description: The key_ID of the recovered key; the destination takes its copy from its own KME by it.
  returned: success
  type: str
  sample: 7a4c1e0b-3f5d-4b8e-9a61-2f0d8c3b5e17
key_file:
  description: The file holding the recovered key (raw bytes, mode C(0600)).
  returned: success
  type: str
  sample: /var/lib/qkd/relay/7a4c1e0b-3f5d-4b8e-9a61-2f0d8c3b5e17.key
master_sae_id:
  description:
    - The SAE ID of the last trusted node, which took the recovered key as master. The destination names
      it when it asks its KME for the key; an image header carries it.
    - Null when the last hop's result does not say.
  returned: success
  type: str
  sample: sae-node2
size:
  description: Size of the recovered key in bits.
  returned: success
  type: int
  sample: 256
key_sha256:
  description:
    - SHA-256 of the recovered key, in hexadecimal. Compare it with the destination's to show both ends
      hold the same key without showing the key.
  returned: success
  type: str
  sample: 5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef
hops:
  description: The hops of the path after the origin's, in order, as the trusted nodes reported them.
  returned: success
  type: list
  elements: dict
  sample:
    - {node: sae-node2, next_node: sae-node5, link: kme-node2 -> kme-node5, key_id: 7a4c1e0b-3f5d-4b8e-9a61-2f0d8c3b5e17}
origin_key_file:
  description: The origin's key file, deleted by this run (or already gone).
  returned: success
  type: str
  sample: /var/lib/qkd/relay/bc490419-7d60-487f-adc1-4ddcc177c139.key
"""

import hmac

from ansible_collections.qkd.nfv.plugins.module_utils.common import run_module
from ansible_collections.qkd.nfv.plugins.module_utils.kme import QkdKey, key_file_path, write_key_files
from ansible_collections.qkd.nfv.plugins.module_utils.relay import (
    RelayError, RelayStep, check_chain, fingerprint, read_key_file, recover, remove_key_file)


def argument_spec():
    return dict(
        key_dir=dict(type='path', required=True),
        key_id=dict(type='str', required=True, no_log=False),
        hops=dict(type='list', elements='dict', required=True),
    )


def run(module):
    params = module.params
    key_dir, origin_id = params['key_dir'], params['key_id']
    steps = [RelayStep.from_dict(item, index) for index, item in enumerate(params['hops'])]
    check_chain(origin_id, steps)
    final = steps[-1]
    origin_file, final_file = key_file_path(key_dir, origin_id), key_file_path(key_dir, final.key_id)
    origin_key, stored = read_key_file(origin_file), read_key_file(final_file)
    if origin_key is None and stored is None:
        raise RelayError(
            "key_dir %s holds neither the origin's key %s nor a recovered key %s: take the first hop's key "
            "with qkd_key (dest: key_dir) before relaying, and give the key_dir it used"
            % (key_dir, origin_id, final.key_id), option='key_dir')
    if origin_key is None:
        key, changed = stored, False  # recovered by an earlier run
    else:
        key, changed = recover(origin_key, steps), True
        if stored is not None and not hmac.compare_digest(key, stored):
            raise RelayError(
                "%s already holds a different key for key_ID %s; remove that file if it is stale and run "
                "again" % (final_file, final.key_id), option='key_dir')
    if changed and not module.check_mode:
        if stored is None:
            write_key_files(key_dir, [QkdKey(final.key_id, key)])
        remove_key_file(origin_file)
    result = dict(changed=changed, key_id=final.key_id, key_file=final_file, master_sae_id=final.hop.node,
                  size=len(key) * 8, key_sha256=fingerprint(key), hops=[step.hop.as_dict() for step in steps],
                  origin_key_file=origin_file)
    if module._diff:
        result['diff'] = dict(before=_listing(origin_file if origin_key is not None else None,
                                              final_file if stored is not None else None),
                              after=_listing(None, final_file))
    return result


def _listing(*paths):
    return ''.join('%s\n' % path for path in paths if path)


def main():
    run_module(argument_spec(), run, supports_check_mode=True)


if __name__ == '__main__':
    main()
