#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: audit_info
short_description: Read the key-usage audit trail of this host
version_added: 0.1.0
description:
  - Reads the audit trail that M(qkd.nfv.image_send) and M(qkd.nfv.image_receive) (and other modules of the
    collection that use keys) append to, one record per use of a key, with when, by whom, for what (image
    SHA-256, destination, key mode) and the result. The records hold no key material.
  - Filters select records by key_ID, module, result, image SHA-256, key mode and time; the format is
    described in the collection's C(docs/audit.md).
  - Compare both ends' records of a key_ID to show that the key moved exactly the image the sender sent.
author:
  - qkd.nfv contributors (@qkd-nfv)
extends_documentation_fragment:
  - qkd.nfv.attributes
  - qkd.nfv.attributes.info_module
options:
  path:
    description:
      - The audit trail. Defaults to the environment variable E(QKD_NFV_AUDIT_LOG), else
        C(~/.qkd-nfv/audit.jsonl), as for the modules that write it.
      - A trail that does not exist yet has no records.
    type: path
  key_id:
    description: Only records that name this key_ID (compared without regard to case).
    type: str
  actor:
    description: Only records written by this module.
    type: str
    choices: [image_send, image_receive, key_relay]
  result:
    description: Only records with this result.
    type: str
    choices: [ok, failed, refused]
  sha256:
    description: Only records of the image with this SHA-256 (hexadecimal).
    type: str
  key_mode:
    description: Only records of streams in this key mode.
    type: str
    choices: [aead, hybrid, pqc, otp]
  since:
    description:
      - Only records from this time on, UTC, in the records' ISO 8601 form or a prefix of it
        (V(2026-05-04), V(2026-05-04T10:00)).
    type: str
  until:
    description: Only records before this time (same form as O(since)).
    type: str
  limit:
    description: At most this many records, the newest (0 for all).
    type: int
    default: 0
notes:
  - A line that is not a JSON record (for example one cut short by a full disk) is skipped and counted in
    RV(malformed).
seealso:
  - module: qkd.nfv.image_send
  - module: qkd.nfv.image_receive
"""

EXAMPLES = r"""
- name: What happened to one key, at both ends
  qkd.nfv.audit_info:
    key_id: "{{ sent.key_id }}"
  delegate_to: "{{ item }}"
  loop: [co, dc2]
  register: key_history

- name: Refused streams of the last day (downgrades, unsigned or forged images)
  qkd.nfv.audit_info:
    path: /var/log/qkd-nfv/audit.jsonl
    result: refused
    since: "{{ '%Y-%m-%d' | strftime(ansible_date_time.epoch | int - 86400, utc=true) }}"
  register: refusals

- name: Every PQC-only transfer (no QKD key protected it)
  qkd.nfv.audit_info:
    key_mode: pqc
"""

RETURN = r"""
records:
  description: The matching records, oldest first (the newest O(limit) ones when set). See C(docs/audit.md).
  returned: always
  type: list
  elements: dict
  sample:
    - v: 1
      time: "2026-05-04T10:11:12.345Z"
      host: co
      user: qkd
      pid: 4242
      actor: image_send
      event: send
      result: ok
      key_ids: [bc490419-7d60-487f-adc1-4ddcc177c139]
      key_mode: hybrid
      protected_by: [qkd, ml-kem-768]
      image: {name: vnf.qcow2, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, bytes: 2147483648}
      destination: tcp://dc2.example.net:5700
      signed: true
count:
  description: How many records matched (before O(limit)).
  returned: always
  type: int
malformed:
  description: Lines of the trail that are not JSON records.
  returned: always
  type: int
path:
  description: The trail that was read.
  returned: always
  type: str
"""

from ansible_collections.qkd.nfv.plugins.module_utils import audit
from ansible_collections.qkd.nfv.plugins.module_utils.common import run_module
from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError

ARGUMENT_SPEC = dict(
    path=dict(type='path'),
    key_id=dict(type='str', no_log=False),
    actor=dict(type='str', choices=['image_send', 'image_receive', 'key_relay']),
    result=dict(type='str', choices=list(audit.RESULTS)),
    sha256=dict(type='str'),
    key_mode=dict(type='str', choices=['aead', 'hybrid', 'pqc', 'otp']),
    since=dict(type='str'),
    until=dict(type='str'),
    limit=dict(type='int', default=0),
)


def run(module):
    params = module.params
    if params['limit'] < 0:
        raise QkdNfvError("limit must be 0 (all) or a positive number of records", option='limit')
    path = audit.resolve(params['path'])
    filters = {name: params[name] for name in ('key_id', 'actor', 'result', 'sha256', 'key_mode', 'since', 'until')}
    records, malformed = audit.read(path, **filters)
    count = len(records)
    if params['limit']:
        records = records[-params['limit']:]
    return dict(changed=False, records=records, count=count, malformed=malformed, path=path)


def main():
    run_module(ARGUMENT_SPEC, run, supports_check_mode=True)


if __name__ == '__main__':
    main()
