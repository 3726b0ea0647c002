#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: qkd_scheduler
short_description: One tick of the scheduler that time-shares a QKD receiver (Bob) between several transmitters
version_added: 0.1.0
description:
  - Time-shares one QKD receiver (the Bob) between several transmitters (Alices) through an optical switch, as in
    Aguado et al., J. Lightwave Technol. 35(8), 2017. Only the Alice connected to the Bob makes key, and every
    reconnection costs an initialisation of minutes.
  - Each run is one tick of the controller loop. It reads the key bits each link's key manager (KME) stores and the
    switch pair on the Bob's port; feeds them to the scheduling policy together with what earlier ticks learned
    (kept in O(state_file)); re-points the Bob's cross-connect when the policy says so; saves the state; and reports
    the decision, each link's stored bits, demand, key rate, initialisation time and autonomy, and any alarm.
  - The policy learns each link's key demand from the fall of its store, and its key rate and initialisation time
    from the store of the link just connected, starting from the priors given in O(links). It serves links in
    rounds ordered by urgency, keeps the connected link until another would otherwise run dry, never leaves a
    link that cannot last until its next visit, stays connected when no link needs key, and raises an alarm when
    the demand needs more of the Bob's time than there is. See C(docs/scheduling.md) in the collection.
  - A tick that cannot read a store or the switch fails and leaves the Bob's connection as it is.
  - Run it every few seconds to minutes with the role C(qkd.nfv.qkd_scheduler), the playbook
    C(qkd.nfv.scheduler_loop), or as an AWX job template on a schedule.
author:
  - qkd.nfv contributors (@qkd-nfv)
extends_documentation_fragment:
  - qkd.nfv.attributes
  - qkd.nfv.optical
attributes:
  check_mode:
    support: full
    details:
      - Reads the stores and the switch and decides, but neither re-points the Bob nor saves the state.
  diff_mode:
    support: full
    details:
      - Shows the Bob's pair before and after, as C(ingress -> egress).
  idempotent:
    support: partial
    details:
      - Each tick learns from time that has passed, so two ticks in a row need not decide alike; a tick right after
        a switch keeps the link that is initialising and reports no change.
      - The state file is updated on every tick outside check mode; C(changed) reports only re-pointing the Bob.
options:
  links:
    description:
      - The Alices that share the Bob, one entry per QKD link.
      - Each needs priors, what the scheduler assumes until it has learned better; O(links[].length_km), or the
        measured O(links[].init_time_s) and O(links[].key_rate_bps).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the link, as in the inventory (for example V(node1-node2)). Unique.
        type: str
        required: true
      alice_port:
        description: Switch port of the link's Alice (its fibre toward the switch).
        type: int
        required: true
      slave_sae_id:
        description:
          - SAE ID at the Alice's end. The link's store is the key pool that the KME keeps for the SAE of
            O(kme.client_cert) and this SAE, read with ETSI GS QKD 014 C(Get status).
        type: str
        required: true
      length_km:
        description:
          - Fibre length of the link. Gives priors from the fit of the paper's Clavis2 measurements,
            initialisation 400 s x 10^(0.02 L), key rate 4000 b/s x 10^(-0.064 L).
        type: float
      init_time_s:
        description: Measured initialisation time of the link, in seconds; overrides the one from O(links[].length_km).
        type: float
      key_rate_bps:
        description: Measured secret key rate of the link, in bits per second; overrides the one from O(links[].length_km).
        type: float
      demand_bps:
        description:
          - Expected key demand on the link, in bits per second, until the scheduler has measured it.
          - Without it the demand is learned from the first ticks.
        type: float
      kme:
        description:
          - KME connection for this link where it differs from O(kme), with the same option names (for example
            C(kme_url) and C(kme_id) for a store read from the Alice's KME); what is not given comes from O(kme).
        type: dict
  kme:
    description:
      - The KME connection used to read the links' stores, usually the Bob's KME as the Bob's SAE.
      - A link's O(links[].kme) overrides any of these for that link.
    type: dict
    required: true
    suboptions:
      kme_url:
        description:
          - Base URL of the KME's ETSI GS QKD 014 API, C(https://) followed by host or address and port.
          - Required here or in every link's O(links[].kme).
        type: str
      kme_id:
        description:
          - KME ID the KME's certificate must carry (subject common name or subject alternative name).
          - Required here or in every link's O(links[].kme).
        type: str
      ca_cert:
        description: PEM file with the CA certificate(s) that signed the KME's certificate.
        type: path
        aliases: [kme_ca_cert]
      client_cert:
        description:
          - PEM file with the SAE's certificate; the KME takes the SAE ID from it.
          - Required here or in every link's O(links[].kme).
        type: path
        aliases: [kme_client_cert]
      client_key:
        description: PEM file with the unencrypted private key of O(kme.client_cert).
        type: path
        aliases: [kme_client_key]
      validate_hostname:
        description: Check that the KME's certificate names the host of O(kme.kme_url), as well as O(kme.kme_id).
        type: bool
      timeout:
        description: Seconds to wait for the connection and each answer of the KME (default 10).
        type: float
      retries:
        description: How many times a failed status request is repeated, with exponential backoff (default 3).
        type: int
      ciphers:
        description: OpenSSL cipher string for TLS 1.2, for KMEs that offer only suites the Python default excludes.
        type: str
  bob_port:
    description:
      - Switch port of the Bob. The scheduler re-points the pair on this port, and only that pair.
      - If the port is connected to a port that is no link's Alice, the tick fails without touching it.
    type: int
    required: true
  state_file:
    description:
      - JSON file where the scheduler keeps what it has learned between ticks. Written atomically, and locked
        while a tick runs so that two loops cannot update it at once.
      - Created on the first tick. A file that is not a scheduler state is refused, never overwritten.
      - Links added to O(links) start from their priors; links removed are forgotten.
    type: path
    required: true
  time_scale:
    description:
      - Emulated seconds per real second. Leave at V(1) for real links; set it to the time scale of an emulated
        test-bed (the lab uses V(200)), so that the scheduler reasons in the links' own time.
    type: float
    default: 1
  fail_on_alarm:
    description:
      - Fail the task when the scheduler raises an alarm (demand exceeds what the links can make). The tick is
        still carried out and saved first.
    type: bool
    default: false
  lock_timeout:
    description: Seconds to wait for another tick to release O(state_file) before failing.
    type: float
    default: 30
notes:
  - The scheduler works in the links' time; keep the interval between ticks well below the shortest
    initialisation time (seconds to a minute for real links, about a second in the lab).
  - A tick reads one status per link from the KMEs, the switch's pairs, and writes at most one pair.
seealso:
  - module: qkd.nfv.cross_connect
  - module: qkd.nfv.kme_info
  - name: Aguado et al., Secure NFV Orchestration Over an SDN-Controlled Optical Network With Time-Shared QKD Resources
    description: J. Lightwave Technol. 35(8), 2017, section III.
    link: https://doi.org/10.1109/JLT.2016.2646921
"""

EXAMPLES = r"""
- name: One tick of the scheduler for the lab's Bob (node1, switch port 9)
  qkd.nfv.qkd_scheduler:
    controller_url: "{{ odl_url }}"
    node_id: "{{ switch_node_id }}"
    username: "{{ odl_username }}"
    password: "{{ odl_password }}"
    kme:
      kme_url: "{{ kme_url }}"
      kme_id: "{{ kme_id }}"
      ca_cert: "{{ kme_ca_cert }}"
      client_cert: "{{ kme_client_cert }}"
      client_key: "{{ kme_client_key }}"
    bob_port: 9
    links:
      - {name: node1-node2, alice_port: 1, slave_sae_id: sae-node2, length_km: 0}
      - {name: node1-node3, alice_port: 2, slave_sae_id: sae-node3, length_km: 10}
      - {name: node1-node4, alice_port: 3, slave_sae_id: sae-node4, length_km: 25}
    state_file: /var/lib/qkd-nfv/scheduler-node1.json
    time_scale: 200
  register: tick

- name: Tell the operator
  ansible.builtin.debug:
    msg: "{{ tick.decision.reason }}"

- name: A real Bob, with measured priors and an expected demand; fail the job on an alarm
  qkd.nfv.qkd_scheduler:
    controller_url: https://odl.example.net:8443
    node_id: polatis-1
    username: admin
    password: "{{ vault_odl_password }}"
    kme:
      kme_url: https://kme-co.example.net
      kme_id: kme-co
      ca_cert: /etc/qkd/ca.crt
      client_cert: /etc/qkd/sae-co.crt
      client_key: /etc/qkd/sae-co.key
    bob_port: 17
    links:
      - {name: co-dc1, alice_port: 1, slave_sae_id: sae-dc1, init_time_s: 410, key_rate_bps: 3900, demand_bps: 40}
      - {name: co-dc2, alice_port: 2, slave_sae_id: sae-dc2, length_km: 24.6, demand_bps: 20}
    state_file: /var/lib/qkd-nfv/scheduler-co.json
    fail_on_alarm: true
"""

RETURN = r"""
decision:
  description: What the tick decided.
  returned: success
  type: dict
  contains:
    link:
      description: The link the Bob is connected to after this tick (in check mode, would be).
      type: str
      sample: node1-node4
    switch:
      description: Whether the tick re-pointed the Bob (in check mode, would have).
      type: bool
      sample: true
    reason:
      description: Why, in words.
      type: str
      sample: "node1-node4 must be served now: 1391 s of key left, 1265 s to initialise"
alarm:
  description:
    - Why demand exceeds what the links can make, while the scheduler holds the alarm raised; null otherwise.
    - Raised when the estimated share of the Bob's time the demand needs (RV(need)) stays at or above 1, or a link's
      store stays empty for most of the time it is connected, for three hours; cleared with hysteresis.
  returned: success
  type: str
  sample: "key demand needs 117 % of the Bob's time (110 % generating, 7 % re-initialising), ..."
warnings_found:
  description: Links at risk of running dry, initialisations that take too long, connections changed by someone else.
  returned: success
  type: list
  elements: str
load:
  description: Estimated share of the Bob's time spent generating the demanded key, the sum of demand / key rate.
  returned: success
  type: float
  sample: 0.52
need:
  description: RV(load) plus the least share of the Bob's time the re-initialisations take.
  returned: success
  type: float
  sample: 0.56
links:
  description: Per link, what the scheduler observed and has learned.
  returned: success
  type: dict
  sample:
    node1-node4:
      state: generating
      stored_bits: 1218560
      capacity_bits: 2560000
      demand_bps: 24.9
      recent_demand_bps: 26.1
      key_rate_bps: 100.2
      init_time_s: 1270.4
      autonomy_s: 48938.2
      visits: 7
bob:
  description: The Bob's port and the link it is connected to, before and after the tick.
  returned: success
  type: dict
  sample: {port: 9, before: node1-node2, after: node1-node4}
commands:
  description: The RESTCONF calls that re-pointed the Bob (would have, in check mode).
  returned: success
  type: list
  elements: dict
  sample: [{method: DELETE, path: ".../cross-connects/pair=1"}, {method: POST, path: ".../cross-connects"}]
state_file:
  description: The state file used.
  returned: success
  type: str
"""

import errno
import fcntl
import json
import os
import tempfile
import time

from ansible.module_utils.common.validation import check_type_path

from ansible_collections.qkd.nfv.plugins.module_utils.common import (
    kme_argument_spec, optical_argument_spec, run_module)
from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError
from ansible_collections.qkd.nfv.plugins.module_utils.kme import KmeClient, KmeError
from ansible_collections.qkd.nfv.plugins.module_utils.optical import (
    OpticalError, optical_client_from_params, pairs_as_text, reconcile)
from ansible_collections.qkd.nfv.plugins.module_utils.scheduler import (
    LinkPrior, SchedulerError, TimeShareScheduler)

KME_REQUIRED = ('kme_url', 'kme_id', 'client_cert', 'client_key')


def kme_options():
    """The KME options as sub-options: nothing required or defaulted here (a link may override some)."""
    spec = kme_argument_spec()
    spec.pop('method')
    return {name: {k: v for k, v in option.items() if k in ('type', 'aliases', 'no_log')}
            for name, option in spec.items()}


def argument_spec():
    spec = optical_argument_spec()
    spec.update(
        links=dict(type='list', elements='dict', required=True, options=dict(
            name=dict(type='str', required=True),
            alice_port=dict(type='int', required=True),
            slave_sae_id=dict(type='str', required=True),
            length_km=dict(type='float'),
            init_time_s=dict(type='float'),
            key_rate_bps=dict(type='float', no_log=False),
            demand_bps=dict(type='float'),
            kme=dict(type='dict'),
        )),
        kme=dict(type='dict', required=True, options=kme_options()),
        bob_port=dict(type='int', required=True),
        state_file=dict(type='path', required=True),
        time_scale=dict(type='float', default=1.0),
        fail_on_alarm=dict(type='bool', default=False),
        lock_timeout=dict(type='float', default=30.0),
    )
    return spec


class Link:
    """One link as the module sees it: its ports, where its store is read, and its priors."""

    def __init__(self, index, spec, default_kme):
        where = 'links[%d] (%s)' % (index, spec['name'])
        self.name, self.alice_port, self.slave_sae_id = spec['name'], spec['alice_port'], spec['slave_sae_id']
        self.kme = dict((k, v) for k, v in (default_kme or {}).items() if v is not None)
        known = kme_options()
        aliases = dict((alias, name) for name, option in known.items() for alias in option.get('aliases', ()))
        for key, value in (spec.get('kme') or {}).items():
            name = aliases.get(key, key)
            if name not in known:
                raise QkdNfvError('%s: kme has no option %s (options: %s)' % (where, key, ', '.join(sorted(known))))
            if value is not None:
                self.kme[name] = check_type_path(value) if known[name]['type'] == 'path' else value
        missing = [name for name in KME_REQUIRED if not self.kme.get(name)]
        if missing:
            raise QkdNfvError('%s: no %s to read its store: set kme.%s (or links[%d].kme.%s)'
                              % (where, ', '.join(missing), missing[0], index, missing[0]))
        try:
            self.prior = LinkPrior.from_spec(spec)
        except SchedulerError as exc:
            raise QkdNfvError('%s: %s' % (where, exc.msg.split(': ', 1)[-1])) from None

    def kme_key(self):
        return tuple(sorted((k, str(v)) for k, v in self.kme.items()))


def check_links(links, bob_port):
    names, ports = {}, {}
    for link in links:
        if link.name in names:
            raise QkdNfvError('links: two links are named %s; give each link its own name' % link.name)
        names[link.name] = link
        if link.alice_port == bob_port:
            raise QkdNfvError('links: %s has alice_port %d, which is bob_port: the Alice and the Bob need '
                              'ports of their own' % (link.name, bob_port))
        if link.alice_port in ports:
            raise QkdNfvError('links: %s and %s are both on alice_port %d: each Alice has a switch port of its '
                              'own (the Bob port is bob_port)' % (ports[link.alice_port], link.name, link.alice_port))
        ports[link.alice_port] = link.name


class StateFile:
    """The scheduler's JSON state: read, locked for the tick (fcntl), replaced atomically."""

    def __init__(self, path, timeout, check_mode=False):
        self.path, self.timeout, self.check_mode = path, timeout, check_mode
        self.lock_path = path + '.lock'
        self._lock = None

    def __enter__(self):
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            if self.check_mode:  # nothing saved yet, and check mode saves nothing
                return self
            raise QkdNfvError('state_file %s: directory %s does not exist: create it or choose another path'
                              % (self.path, directory))
        try:
            self._lock = open(self.lock_path, 'a+')  # pylint: disable=consider-using-with
        except OSError as exc:
            raise QkdNfvError('state_file %s: cannot open the lock file %s: %s'
                              % (self.path, self.lock_path, exc.strerror)) from None
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    self._lock.close()
                    raise QkdNfvError('state_file %s is locked by another scheduler tick (lock file %s) for more '
                                      'than %g s: is a second loop running for this Bob?'
                                      % (self.path, self.lock_path, self.timeout)) from None
                time.sleep(0.1)
        return self

    def __exit__(self, *exc_info):
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    def read(self):
        """The saved dict, or None when there is no state yet."""
        try:
            with open(self.path, 'r', encoding='utf-8') as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise QkdNfvError('state_file %s cannot be read: %s' % (self.path, exc.strerror)) from None
        except ValueError as exc:
            raise QkdNfvError('state_file %s is not a scheduler state (not JSON: %s): point state_file at a file of '
                              'its own, or remove this one to start learning afresh' % (self.path, exc)) from None

    def write(self, data):
        directory = os.path.dirname(os.path.abspath(self.path))
        handle, temporary = tempfile.mkstemp(prefix='.%s.' % os.path.basename(self.path), dir=directory)
        try:
            with os.fdopen(handle, 'w', encoding='utf-8') as out:
                json.dump(data, out, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise


def load_scheduler(saved, priors, params, path):
    """The scheduler from the saved state (None: a fresh one), checked against this task's links."""
    if saved is None:
        return TimeShareScheduler(priors)
    hint = 'point state_file at a file of its own, or remove %s to start learning afresh' % path
    if not isinstance(saved, dict) or not isinstance(saved.get('scheduler'), dict):
        raise QkdNfvError('state_file %s is not a scheduler state: %s' % (path, hint))
    try:
        scheduler = TimeShareScheduler.from_dict(saved['scheduler'], links=priors)
    except SchedulerError as exc:
        raise QkdNfvError('state_file %s: %s: %s' % (path, exc.msg, hint)) from None
    if saved.get('bob_port') != params['bob_port']:
        raise QkdNfvError('state_file %s belongs to the Bob on port %s, not bob_port %d: %s'
                          % (path, saved.get('bob_port'), params['bob_port'], hint))
    if saved.get('time_scale') != params['time_scale']:
        scheduler.last_time = None  # another clock: restart the observations, keep what was learned
    return scheduler


def observe_stores(links):
    """{link: stored bits}, {link: capacity bits} from each link's KME (one client per KME connection)."""
    clients, bits, capacity = {}, {}, {}
    try:
        for link in links:
            client = clients.get(link.kme_key())
            if client is None:
                options = dict(link.kme)
                client = clients[link.kme_key()] = KmeClient(
                    options['kme_url'], options.get('ca_cert'), options['client_cert'], options['client_key'],
                    kme_id=options['kme_id'], validate_hostname=options.get('validate_hostname', True),
                    timeout=options.get('timeout') or 10, retries=options.get('retries', 3),
                    ciphers=options.get('ciphers'))
            try:
                status = client.status(link.slave_sae_id)
            except KmeError as exc:
                raise QkdNfvError('link %s: cannot read its key store: %s; the Bob was left connected as it was'
                                  % (link.name, exc.msg), link=link.name, **exc.details) from None
            bits[link.name] = status['stored_key_count'] * status['key_size']
            if status.get('max_key_count'):
                capacity[link.name] = status['max_key_count'] * status['key_size']
    finally:
        for client in clients.values():
            client.close()
    return bits, capacity


def bob_connection(pairs, bob_port, links):
    """(link the Bob is connected to or None, the pair on the Bob's port as {ingress: egress})."""
    by_port = dict((link.alice_port, link.name) for link in links)
    for ingress, egress in pairs.items():
        if bob_port in (ingress, egress):
            other = egress if ingress == bob_port else ingress
            if other not in by_port:
                raise QkdNfvError('bob_port %d is connected to port %d, which is no link\'s alice_port: the scheduler '
                                  'does not take over a connection it does not know; remove that pair or add the link'
                                  % (bob_port, other), bob_pair={'ingress': ingress, 'egress': egress})
            return by_port[other], {ingress: egress}
    return None, {}


def run(module):
    params = module.params
    links = [Link(i, spec, params['kme']) for i, spec in enumerate(params['links'])]
    check_links(links, params['bob_port'])
    if params['time_scale'] <= 0:
        raise QkdNfvError('time_scale must be a positive number of emulated seconds per second, not %g'
                          % params['time_scale'])
    by_name = dict((link.name, link) for link in links)
    switch = optical_client_from_params(params)

    with StateFile(params['state_file'], params['lock_timeout'], module.check_mode) as state:
        scheduler = load_scheduler(state.read(), [link.prior for link in links], params, params['state_file'])
        bits, capacity = observe_stores(links)
        try:
            before_link, before_pair = bob_connection(switch.pairs(), params['bob_port'], links)
        except OpticalError as exc:
            raise QkdNfvError('cannot read the Bob\'s connection: %s; the Bob was left connected as it was'
                              % exc.msg, **exc.details) from None
        decision = scheduler.tick(time.time() * params['time_scale'], bits, before_link, capacity)

        commands, after_pair = [], before_pair
        if decision.switch:
            wanted = {by_name[decision.link].alice_port: params['bob_port']}
            try:
                outcome = reconcile(switch, wanted, 'replaced', check_mode=module.check_mode)
            except OpticalError as exc:
                raise QkdNfvError('cannot re-point the Bob to %s: %s' % (decision.link, exc.msg),
                                  decision=decision.to_dict(), **exc.details) from None
            commands = outcome.commands
            after_pair = wanted
        if not module.check_mode:
            state.write({'bob_port': params['bob_port'], 'time_scale': params['time_scale'],
                         'scheduler': scheduler.to_dict()})

    for warning in decision.warnings:
        module.warn(warning)
    result = dict(
        changed=decision.switch,
        decision=dict(link=decision.link, switch=decision.switch, reason=decision.reason),
        alarm=decision.alarm, warnings_found=list(decision.warnings), load=decision.load, need=decision.need,
        links=decision.estimates, commands=commands, state_file=params['state_file'],
        bob=dict(port=params['bob_port'], before=before_link, after=decision.link),
    )
    if module._diff:  # pylint: disable=protected-access
        result['diff'] = dict(before=pairs_as_text(before_pair), after=pairs_as_text(after_pair),
                              before_header='bob port %d' % params['bob_port'],
                              after_header='bob port %d' % params['bob_port'])
    if decision.alarm and params['fail_on_alarm']:
        raise QkdNfvError(decision.alarm, **dict((k, v) for k, v in result.items() if k != 'changed'))
    return result


def main():
    run_module(argument_spec(), run, supports_check_mode=True)


if __name__ == '__main__':
    main()
