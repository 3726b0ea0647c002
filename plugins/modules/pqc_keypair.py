#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pqc_keypair
short_description: A DC's ML-KEM-768 key pair or the CO's ML-DSA-65 signing key, kept on the host
version_added: 0.1.0
description:
  - Ensures that O(path) holds a post-quantum private key of the given O(type), and returns its public key
    for others to pin.
  - V(ml-kem-768) (FIPS 203) is a DC's key pair for key modes V(hybrid) and V(pqc) of
    M(qkd.nfv.image_send) and M(qkd.nfv.image_receive); the CO pins the public key
    (C(receiver_public_key)), the DC keeps the private key (C(kem_private_key)).
  - V(ml-dsa-65) (FIPS 204) is the CO's catalogue signing key; M(qkd.nfv.image_send) signs each image's
    manifest with it (C(signing_key)); the DCs pin the public key (C(signer_public_key)).
  - The private key is created on this host and never leaves it; it is written as unencrypted PKCS#8 PEM
    to a temporary file (mode C(0600)) beside O(path), flushed and renamed, and never returned or logged.
  - An existing key of the right type is kept (the module is idempotent); O(force) replaces it (for key
    rotation; pin the new public key everywhere afterwards).
author:
  - qkd.nfv contributors (@qkd-nfv)
extends_documentation_fragment:
  - qkd.nfv.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports whether a key would be created, replaced, re-permissioned or removed, and writes nothing. The
        public key of an existing key is returned; for a key not yet made there is none.
  diff_mode:
    support: full
    details:
      - Before and after, the key's type and public key fingerprint (never the key).
  idempotent:
    support: full
    details:
      - Without O(force), a second run finds the key and changes nothing. With O(force), every run makes a
        new key.
options:
  path:
    description:
      - The private key file. Its directory is created (mode C(0700)) if missing.
    type: path
    required: true
  type:
    description:
      - V(ml-kem-768) for a DC's key encapsulation key pair, V(ml-dsa-65) for the CO's signing key.
    type: str
    required: true
    choices: [ml-kem-768, ml-dsa-65]
  state:
    description:
      - V(present) ensures the key; V(absent) removes O(path) (and O(public_key_path)), for example when a DC is
        decommissioned.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - Replace an existing key with a new one (rotation). Streams sealed for the old ML-KEM key can no longer be
        opened; manifests signed with the old ML-DSA key no longer verify against the new public key.
    type: bool
    default: false
  public_key_path:
    description:
      - Also publish the public key as a PEM file here (mode C(0644)), for example for M(ansible.builtin.fetch).
    type: path
notes:
  - A private key file that other users may read is made C(0600) and the module warns; treat such a key as exposed
    and rotate it with O(force).
  - The collection's C(docs/security.md) tells which threat each key answers.
requirements:
  - cryptography >= 47 (ML-KEM and ML-DSA)
seealso:
  - module: qkd.nfv.image_send
  - module: qkd.nfv.image_receive
  - module: qkd.nfv.vnf_instance
"""

EXAMPLES = r"""
- name: The DC's ML-KEM-768 key pair
  qkd.nfv.pqc_keypair:
    path: /etc/qkd/dc2-mlkem768.key
    type: ml-kem-768
  delegate_to: dc2
  register: dc2_kem

- name: The CO pins it for its transfers
  qkd.nfv.image_send:
    src: /srv/images/vnf.qcow2
    receiver_public_key: "{{ dc2_kem.public_key }}"
    slave_sae_id: sae-dc2
    tcp:
      host: dc2.example.net
      port: 5700

- name: The catalogue's signing key on the CO, published for the DCs
  qkd.nfv.pqc_keypair:
    path: /etc/qkd/catalogue-mldsa65.key
    type: ml-dsa-65
    public_key_path: /srv/catalogue/catalogue-mldsa65.pub.pem
  register: catalogue_key

- name: Rotate a DC's key pair
  qkd.nfv.pqc_keypair:
    path: /etc/qkd/dc2-mlkem768.key
    type: ml-kem-768
    force: true
"""

RETURN = r"""
public_key:
  description: The public key, PEM (SubjectPublicKeyInfo). It is public; pin it in the inventory.
  returned: when the key exists (always with O(state=present), except in check mode before its creation)
  type: str
  sample: "-----BEGIN PUBLIC KEY-----\nMIIEsjALBglghkgBZQMEBAIDggShA...\n-----END PUBLIC KEY-----\n"
public_key_sha256:
  description: SHA-256 (hexadecimal) of the public key's DER form; streams and manifests name keys by it.
  returned: when the key exists
  type: str
  sample: 3f1c0b2e9a8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29180f7e6d5c4b3a291807
type:
  description: O(type).
  returned: always
  type: str
path:
  description: O(path).
  returned: always
  type: str
"""

import os

from ansible_collections.qkd.nfv.plugins.module_utils import pqc
from ansible_collections.qkd.nfv.plugins.module_utils.common import run_module
from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError

ARGUMENT_SPEC = dict(
    path=dict(type='path', required=True, no_log=False),
    type=dict(type='str', required=True, choices=list(pqc.KINDS)),
    state=dict(type='str', default='present', choices=['present', 'absent']),
    force=dict(type='bool', default=False),
    public_key_path=dict(type='path', no_log=False),
)


def run(module):
    params = module.params
    path, kind = params['path'], params['type']
    if os.path.isdir(path):
        raise QkdNfvError("path: %s is a directory; give the path of the key file" % path, option='path')
    result = dict(changed=False, type=kind, path=path)
    if params['state'] == 'absent':
        before = summary(existing_key(path, kind, quiet=True)[0])
        result['changed'] = remove(module, [path, params['public_key_path']])
        return with_diff(module, result, before, None)
    key, mode = existing_key(path, kind, replace=params['force'])
    before = summary(key)
    if key is None:
        result['changed'] = True
        if not module.check_mode:
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                os.makedirs(directory, mode=0o700)
            key = pqc.generate(kind)
            pqc.write_private_key(path, key)
    elif mode & 0o077:
        module.warn("%s was readable by other users (mode %04o): it is made 0600; treat the key as exposed and "
                    "rotate it (force=true)" % (path, mode))
        result['changed'] = True
        if not module.check_mode:
            os.chmod(path, 0o600)
    if key is not None:
        result.update(public_key=pqc.public_pem(key), public_key_sha256=pqc.fingerprint(key))
        if params['public_key_path'] and publish(module, params['public_key_path'], key):
            result['changed'] = True
    return with_diff(module, result, before, summary(key) or dict(type=kind, public_key_sha256='(a new key)'))


def existing_key(path, kind, replace=False, quiet=False):
    """-> (key, file mode) at `path`; (None, None) when there is none, or it is to be replaced."""
    if not os.path.lexists(path) or replace:
        return None, None
    try:
        data, mode = pqc.read_private_file(path, 'path', any_mode=True)
        return pqc.parse_private_key(data, kind, 'path', path), mode
    except pqc.PqcError as exc:
        if quiet:
            return None, None
        raise QkdNfvError("%s; set force=true to replace it with a new %s key" % (exc.msg, pqc.ALGORITHMS[kind]),
                          **exc.details) from None


def publish(module, path, key):
    """Write the public key PEM to `path` unless it holds it already; -> changed."""
    pem = pqc.public_pem(key)
    try:
        with open(path, encoding='ascii') as handle:
            if handle.read() == pem:
                return False
    except (OSError, UnicodeDecodeError):
        pass
    if not module.check_mode:
        try:
            pqc.write_public_key(path, key)
        except OSError as exc:
            raise QkdNfvError("public_key_path: cannot write %s: %s" % (path, exc.strerror or exc),
                              option='public_key_path') from None
    return True


def remove(module, paths):
    changed = False
    for path in filter(None, paths):
        if os.path.lexists(path):
            changed = True
            if not module.check_mode:
                os.unlink(path)
    return changed


def summary(key):
    if key is None:
        return None
    return dict(type=pqc.kind_of(key), public_key_sha256=pqc.fingerprint(key))


def with_diff(module, result, before, after):
    if module._diff:
        result['diff'] = dict(before=before or {}, after=after or {})
    return result


def main():
    run_module(ARGUMENT_SPEC, run, supports_check_mode=True)


if __name__ == '__main__':
    main()
