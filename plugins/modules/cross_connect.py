#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cross_connect
short_description: Manage the cross-connects of an optical switch over RESTCONF
version_added: 0.1.0
description:
  - Manages the fibre cross-connects (C(optical-switch:cross-connects/pair), keyed by ingress port) of an optical
    circuit switch that follows the Polatis C(optical-switch) YANG model, either through OpenDaylight's NETCONF
    mount or through the switch's own RESTCONF API.
  - Works like the network resource modules; O(state) says how O(config) is applied to the pairs the switch holds.
  - A port takes part in one pair at most. Changes are ordered so that no step puts a port in two pairs
    (pairs to remove go first; two pairs that swap egresses are untangled by removing one and creating it again).
  - Everything is checked before the first change; a change that would put a port in two pairs, connect a
    port to itself, or use a port the switch does not have or has disabled fails and leaves the switch untouched.
  - If the switch rejects a step in the middle of a batch, the steps this task already made are undone,
    newest first, and the task fails saying so.
author:
  - qkd.nfv contributors (@qkd-nfv)
extends_documentation_fragment:
  - qkd.nfv.attributes
  - qkd.nfv.optical
attributes:
  check_mode:
    support: full
    details:
      - Reads the switch and computes O(state)'s result and the RESTCONF calls it would make, without making them.
  diff_mode:
    support: full
    details:
      - Shows the pairs before and after, one C(ingress -> egress) per line.
  idempotent:
    support: full
  action_group:
    description: Use C(group/qkd.nfv.optical) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - qkd.nfv.optical
options:
  config:
    description:
      - The pairs, each from an O(config[].ingress) port to an O(config[].egress) port.
      - Required with O(state=merged), O(state=replaced) and O(state=overridden); not allowed with O(state=gathered).
      - An ingress or an egress may appear only once.
    type: list
    elements: dict
    suboptions:
      ingress:
        description: The input port of the pair (the list key).
        type: int
        required: true
      egress:
        description:
          - The output port of the pair.
          - Required except with O(state=deleted), where it only narrows which pair is deleted.
        type: int
  state:
    description:
      - V(merged) adds the pairs of O(config) and re-points the listed ingresses to the given egresses; other pairs
        stay. A port already used by a pair that is not in O(config) is a conflict, and the task fails.
      - V(replaced) is V(merged) that takes ports over. An existing pair that uses a port named in O(config) (as
        ingress or egress) is removed first, so that O(config) can use it. Other pairs stay.
      - V(overridden) makes the switch hold exactly the pairs of O(config). Every other pair is removed,
        including pairs that other services rely on. With O(config=[]) it removes every pair.
      - V(deleted) removes the pairs of the ingresses in O(config). If O(config[].egress) is given, the pair is
        removed only if it goes to that egress. B(Without O(config), every pair of the switch is removed.)
      - V(gathered) only reads the pairs into RV(gathered).
    type: str
    choices: [merged, replaced, overridden, deleted, gathered]
    default: merged
  wait_for_light:
    description:
      - After the change, wait until the optical power at the egress of every pair in O(config) is at least
        O(light_threshold), and fail if that takes longer than O(light_timeout).
      - Checks that the path carries light, not only that the switch accepted it. Skipped in check mode and with
        O(state=deleted) or O(state=gathered).
      - A failed wait does not undo the cross-connects, which the switch did make. Run the task again to wait again.
    type: bool
    default: false
  light_threshold:
    description:
      - The lowest optical power, in dBm, that counts as light at an egress.
      - A dark port reads at the power meter's floor, about -60 dBm. Quantum channels can carry less light than
        classical ones, so set this to a level that suits the transmitter.
    type: float
    default: -30.0
  light_timeout:
    description: Seconds to wait for light with O(wait_for_light).
    type: float
    default: 10
notes:
  - The pairs are read from the configuration datastore (C(content=config)), and the result in RV(after) is read
    back from the switch after the change.
seealso:
  - name: RFC 8040 RESTCONF
    description: The protocol spoken to OpenDaylight and to the switch.
    link: https://www.rfc-editor.org/rfc/rfc8040
"""

EXAMPLES = r"""
- name: Connect the CO data transceiver (port 4) to the fibre towards DC 2 (port 12)
  qkd.nfv.cross_connect:
    controller_url: http://odl.example.net:8181
    node_id: polatis-1
    username: admin
    password: "{{ odl_password }}"
    config:
      - {ingress: 4, egress: 12}
    wait_for_light: true

- name: Re-point the Bob (egress 9) to the Alice on port 2, dropping whatever fed port 9 before
  qkd.nfv.cross_connect:
    controller_url: http://odl.example.net:8181
    node_id: polatis-1
    username: admin
    password: "{{ odl_password }}"
    state: replaced
    config:
      - {ingress: 2, egress: 9}

- name: Set the connection once for every optical module of the play
  module_defaults:
    group/qkd.nfv.optical:
      controller_url: "{{ odl_url }}"
      node_id: "{{ switch_node_id }}"
      username: "{{ odl_username }}"
      password: "{{ odl_password }}"
  block:
    - name: Read the pairs
      qkd.nfv.cross_connect:
        state: gathered
      register: switch

    - name: Remove the pair of ingress 5, if it goes to egress 13
      qkd.nfv.cross_connect:
        state: deleted
        config:
          - {ingress: 5, egress: 13}

    - name: Make the switch hold exactly these pairs (every other pair is removed)
      qkd.nfv.cross_connect:
        state: overridden
        config:
          - {ingress: 1, egress: 9}
          - {ingress: 4, egress: 12}

- name: Talk to the switch's own RESTCONF API instead of OpenDaylight
  qkd.nfv.cross_connect:
    backend: polatis
    controller_url: http://switch.example.net:8008
    username: admin
    password: "{{ switch_password }}"
    config:
      - {ingress: 3, egress: 11}
"""

RETURN = r"""
before:
  description: The pairs before the task, sorted by ingress.
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample: [{"ingress": 1, "egress": 9}]
after:
  description:
    - The pairs after the task, sorted by ingress. Read back from the switch after a change.
    - In check mode, the pairs the task would leave.
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample: [{"ingress": 1, "egress": 9}, {"ingress": 4, "egress": 12}]
commands:
  description:
    - The RESTCONF calls made, in order (in check mode, the calls the task would make); empty when nothing changes.
    - Each has C(method), C(path) (relative to O(controller_url)) and, for POST and PUT, the JSON C(body).
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample:
    - method: POST
      path: /rests/data/network-topology:network-topology/topology=topology-netconf/node=polatis-1/yang-ext:mount/optical-switch:cross-connects
      body: {"optical-switch:pair": [{"ingress": 4, "egress": 12}]}
gathered:
  description: The pairs the switch holds, sorted by ingress.
  returned: when O(state=gathered)
  type: list
  elements: dict
  sample: [{"ingress": 1, "egress": 9}]
light:
  description: The optical power, in dBm, at the egress of each pair in O(config) once it reached O(light_threshold).
  returned: when O(wait_for_light=true), outside check mode, with O(state) V(merged), V(replaced) or V(overridden)
  type: list
  elements: dict
  sample: [{"ingress": 4, "egress": 12, "power": -1.5}]
"""

from ansible_collections.qkd.nfv.plugins.module_utils.common import optical_argument_spec, run_module
from ansible_collections.qkd.nfv.plugins.module_utils.optical import (
    OpticalError, normalize_config, optical_client_from_params, pairs_as_list, pairs_as_text, reconcile,
    wait_for_light)


def argument_spec():
    spec = optical_argument_spec()
    spec.update(
        config=dict(type='list', elements='dict', options=dict(
            ingress=dict(type='int', required=True),
            egress=dict(type='int'),
        )),
        state=dict(type='str', default='merged', choices=['merged', 'replaced', 'overridden', 'deleted', 'gathered']),
        wait_for_light=dict(type='bool', default=False),
        light_threshold=dict(type='float', default=-30.0),
        light_timeout=dict(type='float', default=10.0),
    )
    return spec


def run(module):
    params = module.params
    state, config = params['state'], params['config']
    if state == 'gathered':
        if config:
            raise OpticalError('config must not be set with state=gathered, which only reads the pairs')
        return dict(changed=False, gathered=pairs_as_list(optical_client_from_params(params).pairs()))
    if config is None and state != 'deleted':
        raise OpticalError('config is required with state=%s (to remove every pair, use state=overridden with '
                           'config: [])' % state)
    wanted = None if config is None else normalize_config(config, state)
    client = optical_client_from_params(params)
    outcome = reconcile(client, wanted, state, check_mode=module.check_mode)
    result = dict(changed=bool(outcome.commands), before=pairs_as_list(outcome.before),
                  after=pairs_as_list(outcome.after), commands=outcome.commands)
    if module._diff:
        header = 'cross-connects of %s' % (client.node_id or client.url)
        result['diff'] = dict(before=pairs_as_text(outcome.before), after=pairs_as_text(outcome.after),
                              before_header=header, after_header=header)

    if params['wait_for_light'] and not module.check_mode and state != 'deleted':
        try:
            power = wait_for_light(client, list(wanted.values()), params['light_threshold'],
                                   params['light_timeout'])
        except OpticalError as exc:
            exc.details.update((key, value) for key, value in result.items() if key != 'diff')
            raise
        result['light'] = [dict(ingress=i, egress=e, power=power[e]) for i, e in sorted(wanted.items())]
    return result


def main():
    run_module(argument_spec(), run, supports_check_mode=True)


if __name__ == '__main__':
    main()
