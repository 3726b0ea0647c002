#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: qkd_key
short_description: Take QKD keys from a KME (ETSI GS QKD 014), as master or as slave SAE
version_added: 0.1.0
description:
  - As B(master) (O(slave_sae_id) set), takes O(number) new keys of O(size) bits that the KME shares with
    the slave SAE (C(Get key)), and returns their key_IDs.
  - As B(slave) (O(master_sae_id) and O(key_ids) set), takes the keys the master received, by key_ID
    (C(Get key with key IDs)).
  - The SAE is the one of O(client_cert); the KME identifies it from that certificate.
  - B(Every real run consumes keys.) A KME delivers each key once on each side and then deletes it, so a
    key taken by a task is gone from the KME whatever happens to the task afterwards.
  - Key material is never part of the result unless O(return_content=true). By default each key is
    written to its own file in O(dest), mode C(0600), atomically, and the result holds key_IDs, sizes
    and paths only.
author:
  - qkd.nfv contributors (@qkd-nfv)
extends_documentation_fragment:
  - qkd.nfv.attributes
  - qkd.nfv.kme
attributes:
  check_mode:
    support: full
    details:
      - Consumes no key. Reads the KME's status of the key pool instead (which also proves the TLS
        settings and the SAE's certificate), checks O(number) and O(size) against the limits the KME
        states, and predicts a change.
      - As slave, keys whose files already exist in O(dest) are not counted as a change.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - As master, every run takes new keys, so it always changes something.
      - As slave with O(dest), keys whose files already exist are not fetched again (the KME would no
        longer have them), so a second run reports no change. With O(return_content=true) every key is
        fetched, so a second run fails because the KME no longer has the keys.
  action_group:
    description: Use C(group/qkd.nfv.kme) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - qkd.nfv.kme
options:
  slave_sae_id:
    description:
      - Act as master SAE and take new keys shared with this slave SAE.
      - Mutually exclusive with O(master_sae_id).
    type: str
  number:
    description:
      - How many keys to take as master. At most the KME's C(max_key_per_request).
    type: int
    default: 1
  size:
    description:
      - Size of each key, in bits. As master, omit it for the KME's default C(key_size); many KMEs accept
        only multiples of 8.
      - As slave, the size every delivered key must have; omit it to accept the size the KME sends.
    type: int
  additional_slave_sae_ids:
    description:
      - Further slave SAEs that receive the same keys (key multicast), at most the KME's C(max_SAE_ID_count).
      - Master only; needs O(method=POST).
    type: list
    elements: str
  extension_mandatory:
    description:
      - 'Extension parameters the KME must honour or refuse, as a list of single-item dictionaries,
        for example C([{"abc_route_type": "direct"}]). Master only; needs O(method=POST).'
    type: list
    elements: dict
  extension_optional:
    description:
      - Extension parameters the KME may ignore, as a list of single-item dictionaries. Master only;
        needs O(method=POST).
    type: list
    elements: dict
  master_sae_id:
    description:
      - Act as slave SAE and take the keys O(key_ids) that this master SAE received.
      - Mutually exclusive with O(slave_sae_id).
    type: str
  key_ids:
    description:
      - The key_IDs (UUIDs) the master received, passed to this SAE by the application.
      - Required with O(master_sae_id). With O(method=GET), only one.
    type: list
    elements: str
  dest:
    description:
      - Directory for the key files, one per key, named after the key_ID (C(<key_ID>.key) or
        C(<key_ID>.b64), see O(file_format)) with mode C(0600).
      - Created with mode C(0700) if missing. Each file is written to a temporary file in the directory,
        flushed and renamed, so no partial key file is ever visible; existing files are never replaced.
      - The directory is checked before any key is taken, so keys are not lost to a bad path.
      - Either O(dest) or O(return_content=true) is required.
    type: path
  file_format:
    description:
      - V(raw) writes the key bytes as they are (C(<key_ID>.key)).
      - V(base64) writes the key base64-encoded with a newline (C(<key_ID>.b64)), as for instance
        WireGuard pre-shared key files expect.
    type: str
    choices: [raw, base64]
    default: raw
  return_content:
    description:
      - Return the keys, base64-encoded, in RV(qkd_keys[].key).
      - B(The task must then set C(no_log=true)), or the keys end up in logs and in the output of
        C(-v); the module refuses to run otherwise. Use the registered result in the same play only, and
        never print it.
    type: bool
    default: false
notes:
  - Keys are one-shot. If a task fails after the KME delivered keys (for example when the files cannot be
    written), those keys are lost on this side; the error lists their key_IDs so the peer can discard its copy.
  - The master passes the key_IDs to the slave by any channel; key_IDs are not secret.
seealso:
  - module: qkd.nfv.kme_info
  - name: ETSI GS QKD 014 V1.1.1
    description: Protocol and data format of REST-based key delivery API.
    link: https://www.etsi.org/deliver/etsi_gs/QKD/001_099/014/01.01.01_60/gs_qkd014v010101p.pdf
"""

EXAMPLES = r"""
- name: The CO (master) takes two 256-bit keys shared with DC 2
  qkd.nfv.qkd_key:
    kme_url: https://kme-co.example.net:443
    kme_id: kme-co
    ca_cert: /etc/qkd/ca.crt
    client_cert: /etc/qkd/sae-co.crt
    client_key: /etc/qkd/sae-co.key
    slave_sae_id: sae-dc2
    number: 2
    size: 256
    dest: /var/lib/qkd/keys
  register: taken

- name: DC 2 (slave) takes the same keys by key_ID from its own KME
  qkd.nfv.qkd_key:
    kme_url: https://kme-dc2.example.net:443
    kme_id: kme-dc2
    ca_cert: /etc/qkd/ca.crt
    client_cert: /etc/qkd/sae-dc2.crt
    client_key: /etc/qkd/sae-dc2.key
    master_sae_id: sae-co
    key_ids: "{{ taken.key_ids }}"
    dest: /var/lib/qkd/keys
  delegate_to: dc2

- name: A WireGuard pre-shared key, base64 in a file, from a KME reached by IP
  qkd.nfv.qkd_key:
    kme_url: https://192.0.2.10:444
    kme_id: CONSA
    validate_hostname: false
    ca_cert: /etc/qkd/ca.crt
    client_cert: /etc/qkd/consa.crt
    client_key: /etc/qkd/consa.key
    slave_sae_id: CONSB
    method: GET
    file_format: base64
    dest: /etc/wireguard/psk

- name: Key material into a variable for the next task only (no_log is required)
  qkd.nfv.qkd_key:
    slave_sae_id: sae-dc2
    return_content: true
  no_log: true
  register: secret_key
"""

RETURN = r"""
role:
  description: V(master) or V(slave), from the options given.
  returned: always
  type: str
  sample: master
key_ids:
  description:
    - The key_IDs of the keys taken (as master) or asked for (as slave), in the KME's order.
    - Empty in check mode as master, since no key is taken.
  returned: always
  type: list
  elements: str
  sample: ["bc490419-7d60-487f-adc1-4ddcc177c139"]
qkd_keys:
  description:
    - One entry per key in RV(key_ids).
    - Named so that C(result.qkd_keys) does not collide with the C(keys) method of dictionaries in Jinja.
  returned: always
  type: list
  elements: dict
  contains:
    key_id:
      description: The key_ID.
      type: str
      sample: bc490419-7d60-487f-adc1-4ddcc177c139
    size:
      description: Size of the key in bits; absent for a key found in O(dest) from an earlier run.
      type: int
      sample: 256
    path:
      description: The key file.
      type: str
      returned: when O(dest) is set
      sample: /var/lib/qkd/keys/bc490419-7d60-487f-adc1-4ddcc177c139.key
    fetched:
      description: V(false) for a key whose file already existed, which was therefore not taken again.
      type: bool
      sample: true
    key:
      description: The key, base64-encoded. Secret.
      type: str
      returned: when O(return_content=true) and the key was taken by this run
status:
  description: The KME's Status of the key pool (see M(qkd.nfv.kme_info)), read to check the request.
  returned: as master, and in check mode
  type: dict
  sample: {"source_KME_ID": "kme-co", "target_KME_ID": "kme-dc2", "key_size": 256, "stored_key_count": 25}
"""

import base64
import os

from ansible_collections.qkd.nfv.plugins.module_utils.common import kme_argument_spec, run_module
from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError
from ansible_collections.qkd.nfv.plugins.module_utils.kme import (
    check_key_ids, key_file_path, kme_client_from_params, write_key_files)


def argument_spec():
    spec = kme_argument_spec()
    spec.update(
        slave_sae_id=dict(type='str'),
        number=dict(type='int', default=1),
        size=dict(type='int'),
        additional_slave_sae_ids=dict(type='list', elements='str'),
        extension_mandatory=dict(type='list', elements='dict'),
        extension_optional=dict(type='list', elements='dict'),
        master_sae_id=dict(type='str'),
        key_ids=dict(type='list', elements='str', no_log=False),
        dest=dict(type='path'),
        file_format=dict(type='str', default='raw', choices=['raw', 'base64']),
        return_content=dict(type='bool', default=False),
    )
    return spec


MODULE_KWARGS = dict(
    supports_check_mode=True,
    required_one_of=[('slave_sae_id', 'master_sae_id')],
    mutually_exclusive=[('slave_sae_id', 'master_sae_id'), ('master_sae_id', 'additional_slave_sae_ids'),
                        ('master_sae_id', 'extension_mandatory'), ('master_sae_id', 'extension_optional')],
    required_together=[('master_sae_id', 'key_ids')],
)


def run(module):
    params = module.params
    check_output(module)
    with kme_client_from_params(params) as client:
        if params['slave_sae_id']:
            return run_master(module, client)
        return run_slave(module, client)


def check_output(module):
    """Refuse before touching the KME when the keys would have nowhere safe to go."""
    params = module.params
    if not params['dest'] and not params['return_content']:
        raise QkdNfvError("set dest (a directory for the key files) or return_content: true; "
                          "otherwise the keys would be taken and lost")
    if params['return_content'] and not module.no_log:
        raise QkdNfvError("return_content: true puts key material in the result; add no_log: true to the "
                          "task so that it stays out of logs and output")
    dest = params['dest']
    if dest:
        if os.path.exists(dest) and not os.path.isdir(dest):
            raise QkdNfvError("dest %s exists and is not a directory; give a directory for the key files"
                              % dest)
        existing = dest
        while not os.path.exists(existing):
            existing = os.path.dirname(existing) or '.'
        if not os.access(existing, os.W_OK | os.X_OK):
            raise QkdNfvError("dest %s is not writable (checked %s) by this user; fix it before taking keys"
                              % (dest, existing))


def run_master(module, client):
    params = module.params
    number, size = params['number'], params['size']
    if number < 1:
        raise QkdNfvError("number must be at least 1, got %d" % number)
    if size is not None and size < 1:
        raise QkdNfvError("size is in bits and must be positive, got %d" % size)
    status = client.status(params['slave_sae_id'])
    check_against_status(module, status)
    if module.check_mode:
        return dict(changed=True, role='master', key_ids=[], qkd_keys=[], status=status)
    keys = client.enc_keys(params['slave_sae_id'], number=number, size=size,
                           additional_slave_sae_ids=params['additional_slave_sae_ids'],
                           extension_mandatory=params['extension_mandatory'],
                           extension_optional=params['extension_optional'])
    result = deliver(module, keys)
    result.update(changed=True, role='master', status=status)
    return result


def check_against_status(module, status):
    """The limits the KME states, as messages naming the option to change."""
    params = module.params
    number, size, extra = params['number'], params['size'], params['additional_slave_sae_ids']
    limit = status.get('max_key_per_request')
    if isinstance(limit, int) and number > limit:
        raise QkdNfvError("number %d is above the KME's max_key_per_request %d; ask for at most %d keys "
                          "per task" % (number, limit, limit), status=status)
    low, high = status.get('min_key_size'), status.get('max_key_size')
    if size is not None and isinstance(low, int) and size < low:
        raise QkdNfvError("size %d is below the KME's min_key_size %d bits; set size between %d and %s"
                          % (size, low, low, high), status=status)
    if size is not None and isinstance(high, int) and size > high:
        raise QkdNfvError("size %d is above the KME's max_key_size %d bits; set size between %s and %d"
                          % (size, high, low, high), status=status)
    multicast = status.get('max_SAE_ID_count')
    if extra and isinstance(multicast, int) and len(extra) > multicast:
        raise QkdNfvError("additional_slave_sae_ids lists %d SAEs but the KME allows %d (max_SAE_ID_count)"
                          % (len(extra), multicast), status=status)
    wanted = number * (size or status['key_size'])
    if module.check_mode and wanted > status['stored_key_count'] * status['key_size']:
        module.warn("the KME holds %d bits of key for %s, fewer than the %d this task asks for"
                    % (status['stored_key_count'] * status['key_size'], params['slave_sae_id'], wanted))


def run_slave(module, client):
    params = module.params
    key_ids, dest, file_format = params['key_ids'], params['dest'], params['file_format']
    check_key_ids(key_ids)
    # Keys already in dest were fetched by an earlier run; the KME no longer has them.
    present = {}
    if dest and not params['return_content']:
        for key_id in key_ids:
            path = key_file_path(dest, key_id, file_format)
            if os.path.isfile(path):
                present[key_id] = tighten(module, path)
    missing = [key_id for key_id in key_ids if key_id not in present]
    entries = {key_id: dict(key_id=key_id, fetched=False, **path_of(dest, key_id, file_format))
               for key_id in present}
    result = dict(changed=bool(missing) or any(present.values()), role='slave', key_ids=list(key_ids))
    if module.check_mode:
        if missing:
            result['status'] = client.status(params['master_sae_id'])
        entries.update((key_id, dict(key_id=key_id, fetched=True, **path_of(dest, key_id, file_format)))
                       for key_id in missing)
    elif missing:
        delivered = deliver(module, client.dec_keys(params['master_sae_id'], missing, size=params['size']))
        entries.update((entry['key_id'], entry) for entry in delivered['qkd_keys'])
    result['qkd_keys'] = [entries[key_id] for key_id in key_ids]
    return result


def deliver(module, keys):
    """Keys to files and/or the result; the caller's failure message lists key_IDs already consumed."""
    params = module.params
    paths = [None] * len(keys)
    if params['dest']:
        try:
            if not os.path.isdir(params['dest']):
                os.makedirs(params['dest'], mode=0o700)
            paths = write_key_files(params['dest'], keys, params['file_format'])
        except (QkdNfvError, OSError) as exc:
            raise QkdNfvError("%s; the KME already delivered keys %s, which are lost on this side: tell the "
                              "peer SAE to discard them" % (getattr(exc, 'msg', exc), ", ".join(k.key_id for k in keys)),
                              consumed_key_ids=[k.key_id for k in keys]) from None
    entries = []
    for key, path in zip(keys, paths):
        entry = dict(key_id=key.key_id, size=key.size, fetched=True)
        if path:
            entry['path'] = path
        if params['return_content']:
            entry['key'] = base64.b64encode(key.material).decode('ascii')
        entries.append(entry)
    return dict(key_ids=[key.key_id for key in keys], qkd_keys=entries)


def path_of(dest, key_id, file_format):
    return dict(path=key_file_path(dest, key_id, file_format)) if dest else {}


def tighten(module, path):
    """An existing key file must not be readable by others: 0600, as the module writes them."""
    if os.stat(path).st_mode & 0o077:
        if not module.check_mode:
            os.chmod(path, 0o600)
        return True
    return False


def main():
    run_module(argument_spec(), run, **MODULE_KWARGS)


if __name__ == '__main__':
    main()
