#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_receive
short_description: Receive a QKD-encrypted image, verify it and install it atomically
version_added: 0.1.0
description:
  - Reads a qstream, as M(qkd.nfv.image_send) writes it, from the file O(src) or from one sender on a TCP
    listener (O(listen)), and installs the verified plaintext as O(dest).
  - B(Key.) The stream's header names the key_ID and the master SAE that took the key. This host, as the
    slave SAE of O(client_cert), takes the same key from its own KME by key_ID (ETSI GS QKD 014
    C(Get key with key IDs)); the KME delivers it only to the slave SAE the master named.
  - B(Nothing unverified is installed.) The plaintext goes to a temporary file in the directory of O(dest);
    every chunk is authenticated, and the size and SHA-256 the sender computed are checked at the end. Only
    then is the file flushed to disk and renamed over O(dest). On any failure the temporary file is removed
    and the task fails with RV(reason), one of V(tampered), V(truncated), V(wrong_key), V(unknown_key_id),
    V(kme_refused), V(not_qstream), V(newer_format), V(checksum_mismatch), V(timeout), ...
  - With O(listen), the module accepts one sender, installs its image, confirms it to the sender (with a
    proof that it holds the key) and returns. Run it with C(async) and C(poll=0) and start
    M(qkd.nfv.image_send) afterwards.
  - B(Hybrid and post-quantum streams.) With O(kem_private_key), this DC's ML-KEM-768 private key (from
    M(qkd.nfv.pqc_keypair)), the module also opens streams in key mode V(hybrid) (QKD key and ML-KEM-768
    secret) and V(pqc) (ML-KEM-768 alone). O(require_mode) refuses a stream weaker than required (a
    downgrade) before any key is taken; by default a DC with both a KME and a key pair requires V(hybrid).
  - B(Signed catalogue.) With O(signer_public_key), the CO's pinned ML-DSA-65 public key, the stream must end
    with a manifest signed by that key, naming this very stream and image; it is verified before the image is
    installed. The manifest is kept beside the image, as C(<dest>.manifest.json) and its detached signature
    C(<dest>.manifest.json.sig), for M(qkd.nfv.vnf_instance) with C(require_signature).
  - B(Audit trail.) Every stream read is recorded as one JSON line in O(audit_log), with the key_IDs, key mode,
    image SHA-256, whether the signature was verified, and the result; never key material.
author:
  - qkd.nfv contributors (@qkd-nfv)
extends_documentation_fragment:
  - qkd.nfv.attributes
  - qkd.nfv.audit
  - qkd.nfv.kme
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    details:
      - Takes no key, installs nothing and writes no audit line. With O(src), reads the stream's header and
        checks it against O(require_mode), O(kem_private_key) and O(signer_public_key); with O(listen), checks
        that the port is free (and does not wait for a sender).
  diff_mode:
    support: full
    details:
      - Shows the SHA-256 and size of O(dest) before and after.
  idempotent:
    support: partial
    details:
      - When O(dest) already holds the image with SHA-256 O(sha256) (or the SHA-256 the sender announced in
        the header), nothing is received, no key is taken, and the task reports no change.
      - Without it, a second run needs a new stream, since the KME delivers each key once.
  action_group:
    description: Use C(group/qkd.nfv.kme) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - qkd.nfv.kme
options:
  kme_url:
    description:
      - Base URL of this host's KME (see the KME options below). If not set, the environment variable
        E(QKD_KME_URL) is used.
      - Required for streams keyed by QKD (key modes V(aead), V(otp), V(hybrid)); a DC without a QKD link
        (O(require_mode=pqc)) has none.
    type: str
    required: false
  kme_id:
    description:
      - The KME ID its TLS certificate must carry. If not set, the environment variable E(QKD_KME_ID) is used.
      - Required with O(kme_url).
    type: str
    required: false
  client_cert:
    description:
      - PEM file with this SAE's certificate; the KME takes the slave SAE's identity from it. If not set, the
        environment variable E(QKD_SAE_CERT) is used.
      - Required with O(kme_url).
    type: path
    required: false
    aliases: [kme_client_cert]
  client_key:
    description:
      - PEM file with the unencrypted private key of O(client_cert). If not set, the environment variable
        E(QKD_SAE_KEY) is used.
      - Required with O(kme_url).
    type: path
    required: false
    aliases: [kme_client_key]
  dest:
    description:
      - Where to install the image. Its directory must exist. An existing file is replaced only by a fully
        verified image.
      - The file is created with mode C(0600) unless O(mode) says otherwise.
    type: path
    required: true
  src:
    description:
      - A qstream file, for example one uploaded by M(qkd.nfv.image_send) with O(qkd.nfv.image_send#module:sftp).
      - Exactly one of O(src) and O(listen) is required.
    type: path
  listen:
    description:
      - Accept one TCP connection from M(qkd.nfv.image_send) with O(qkd.nfv.image_send#module:tcp).
    type: dict
    suboptions:
      bind:
        description:
          - The local address to listen on; V(0.0.0.0) means every IPv4 address.
          - Anyone who reaches the port can connect, but only a stream encrypted with a key this host's KME
            shares with the sender is installed.
        type: str
        default: 0.0.0.0
      port:
        description: The TCP port to listen on.
        type: int
        required: true
      timeout:
        description: Seconds to wait for the sender to connect, and for each read from it.
        type: float
        default: 300
  sha256:
    description:
      - The SHA-256 (hexadecimal) the image must have. If O(dest) already has it, nothing is received and no key
        is taken (with O(listen), the module does not even listen). A received image with another SHA-256 is
        not installed.
    type: str
  master_sae_id:
    description:
      - The SAE ID of the sender, as the KME knows it. If set, a stream whose header names another master SAE
        is refused before the KME is asked; needed when the header names none.
    type: str
  kem_private_key:
    description:
      - This DC's ML-KEM-768 private key file, made by M(qkd.nfv.pqc_keypair) (mode C(0600); a file others may
        read is refused). Needed for streams in key mode V(hybrid) or V(pqc).
    type: path
  require_mode:
    description:
      - What must keep a stream confidential for this receiver to accept it; a weaker stream is refused (reason
        V(downgrade)) before any key is taken.
      - V(hybrid) accepts only key mode V(hybrid) (QKD and ML-KEM-768). V(qkd) accepts streams protected by a
        QKD key (V(aead), V(otp), V(hybrid)); V(pqc) those protected by ML-KEM-768 (V(pqc), V(hybrid)); V(any)
        every mode.
      - V(auto) requires every protection this receiver is equipped for, that is V(hybrid) with KME options and
        O(kem_private_key), V(pqc) with O(kem_private_key) alone, V(qkd) otherwise. So a DC that has a key
        pair refuses plain QKD streams unless told otherwise.
    type: str
    choices: [auto, any, qkd, pqc, hybrid]
    default: auto
  signer_public_key:
    description:
      - The CO's ML-DSA-65 public key (PEM text, the path of a PEM file, or base64), pinned on this DC. A stream
        must then carry a manifest signed by it (else reason V(unsigned), V(wrong_signer) or V(bad_signature)),
        and the manifest must name this stream's header, key_IDs, key mode and the image received
        (V(manifest_mismatch)).
    type: str
  manifest_max_age:
    description:
      - Seconds a verified manifest may be old (against this host's clock); an older one is refused (reason
        V(manifest_expired)). Bounds the replay of a recorded V(pqc) stream, whose key is not used up as a QKD
        key is. V(0) switches the limit off.
    type: int
    default: 86400
notes:
  - A receiver killed by a signal it cannot catch (for example at the end of an C(async) timeout) leaves its
    temporary file (C(.<name>.qstream-<pid>-*.part)) in the directory of O(dest); the next run for the same
    O(dest) removes it.
  - Memory use is a few times the stream's chunk size (1 MiB by default), whatever the image size.
  - The KME options are needed only for streams keyed by QKD (key modes V(aead), V(otp), V(hybrid)).
  - C(docs/security.md) in the collection describes the threats each mechanism answers.
requirements:
  - cryptography >= 42 (>= 47 for O(kem_private_key) and O(signer_public_key))
seealso:
  - module: qkd.nfv.image_send
  - module: qkd.nfv.pqc_keypair
  - module: qkd.nfv.vnf_instance
  - module: qkd.nfv.audit_info
"""

EXAMPLES = r"""
- name: Listen for the image from the CO (in the background on the DC)
  qkd.nfv.image_receive:
    listen:
      port: 5700
    dest: /var/lib/images/vnf.qcow2
    mode: "0640"
    kme_url: https://kme-dc2.example.net
    kme_id: kme-dc2
    ca_cert: /etc/qkd/ca.crt
    client_cert: /etc/qkd/sae-dc2.crt
    client_key: /etc/qkd/sae-dc2.key
    master_sae_id: sae-co
  async: 3600
  poll: 0
  register: listening

- name: A hybrid, signed image, with the DC's key pair and the catalogue's pinned key
  qkd.nfv.image_receive:
    listen:
      port: 5700
    dest: /var/lib/images/vnf.qcow2
    kem_private_key: /etc/qkd/dc2-mlkem768.key
    signer_public_key: "{{ catalogue_public_key }}"
    master_sae_id: sae-co
  async: 3600
  poll: 0
  register: listening

- name: Decrypt a qstream uploaded by SFTP
  qkd.nfv.image_receive:
    src: /var/spool/images/vnf.qstream
    dest: /var/lib/images/vnf.qcow2
    sha256: "{{ sent.sha256 }}"   # from image_send: a rerun changes nothing and takes no key
  register: received
"""

RETURN = r"""
dest:
  description: The installed image.
  returned: always
  type: str
key_id:
  description: The key_ID from the stream's header (the first one, with key mode V(otp)).
  returned: when a stream was read
  type: str
  sample: bc490419-7d60-487f-adc1-4ddcc177c139
key_ids:
  description: Every key_ID the stream names.
  returned: when a stream was read
  type: list
  elements: str
key_bits:
  description: QKD key bits taken from the KME (0 when nothing was installed).
  returned: always
  type: int
  sample: 256
master_sae_id:
  description: The master SAE ID the key was asked for.
  returned: when a stream was read
  type: str
bytes:
  description: Size of the image in bytes.
  returned: when the image was installed or already present
  type: int
sha256:
  description: SHA-256 of the installed image (hexadecimal), computed while writing it.
  returned: when the image was installed or already present
  type: str
seconds:
  description: Time from the first byte of the stream to the rename.
  returned: when the image was installed
  type: float
mb_per_s:
  description: Plaintext throughput, in 10^6 bytes per second.
  returned: when the image was installed
  type: float
key_mode:
  description: The stream's key mode, V(aead), V(hybrid), V(pqc) or V(otp).
  returned: when a stream was read
  type: str
protected_by:
  description: What keeps the stream confidential, V(qkd) and/or V(ml-kem-768).
  returned: when a stream was read
  type: list
  elements: str
require_mode:
  description: The requirement applied (O(require_mode), V(auto) resolved).
  returned: always
  type: str
signed:
  description: Whether the stream carries a signed manifest.
  returned: when a stream was read
  type: bool
signature_verified:
  description: Whether the manifest's signature was verified against O(signer_public_key).
  returned: when the image was installed
  type: bool
manifest:
  description: The stream's manifest (verified when RV(signature_verified)).
  returned: when the stream carried one and the image was installed
  type: dict
manifest_path:
  description: Where the manifest was kept (C(<dest>.manifest.json); its signature in C(.sig) beside it).
  returned: when the stream carried one and the image was installed
  type: str
audit_log:
  description: The audit trail the stream was recorded in.
  returned: when recorded
  type: str
reason:
  description:
    - On failure, why, in one word (V(tampered), V(truncated), V(wrong_key), V(unknown_key_id), V(downgrade),
      V(unsigned), V(wrong_signer), V(bad_signature), V(manifest_mismatch), V(wrong_recipient), ...).
  returned: failure
  type: str
"""

import os

from ansible_collections.qkd.nfv.plugins.module_utils import audit, pqc, qstream, transport
from ansible_collections.qkd.nfv.plugins.module_utils.common import audit_argument_spec, kme_argument_spec, run_module
from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError
from ansible_collections.qkd.nfv.plugins.module_utils.kme import (
    KmeAuthenticationError, KmeError, KmeRequestError, kme_client_from_params)

KME_REQUIRED = ('kme_url', 'kme_id', 'client_cert', 'client_key')
# Refusals on the clear header, before any key is taken: the audit trail says "refused".
REFUSALS = ('downgrade', 'unsigned', 'wrong_signer', 'wrong_recipient', 'kem_key', 'unexpected_master')


def argument_spec():
    spec = kme_argument_spec()
    for name in KME_REQUIRED:  # a pqc-only DC has no KME; run() checks them when a QKD key is needed
        spec[name] = dict(spec[name], required=False)
    spec.update(
        dest=dict(type='path', required=True),
        src=dict(type='path'),
        listen=dict(type='dict', options=dict(
            bind=dict(type='str', default='0.0.0.0'),
            port=dict(type='int', required=True),
            timeout=dict(type='float', default=300.0),
        )),
        sha256=dict(type='str'),
        master_sae_id=dict(type='str'),
        kem_private_key=dict(type='path', no_log=False),
        require_mode=dict(type='str', default='auto', choices=['auto', 'any', 'qkd', 'pqc', 'hybrid']),
        signer_public_key=dict(type='str', no_log=False),
        manifest_max_age=dict(type='int', default=pqc.DEFAULT_MAX_AGE),
    )
    spec.update(audit_argument_spec())
    return spec


MODULE_KWARGS = dict(
    supports_check_mode=True,
    add_file_common_args=True,
    required_one_of=[('src', 'listen')],
    mutually_exclusive=[('src', 'listen')],
)


def run(module):
    params = module.params
    dest, expected = params['dest'], check_options(params)
    before = dict(sha256=transport.file_sha256(dest)) if (module._diff or expected) else None
    policy = receiver_policy(params)
    if expected and before['sha256'] == expected:
        result = dict(changed=False, dest=dest, key_bits=0, bytes=os.path.getsize(dest), sha256=expected,
                      require_mode=policy.require, msg="dest already holds this image; nothing was received")
        return finish(module, result, before)
    with kme_connection(params) as client:
        key_for = KmeKeys(client, params['master_sae_id'])
        if module.check_mode:
            return finish(module, check(params, before, policy), before)
        with audit.open_for(params) as trail:
            try:
                received = receive(params, key_for, policy, expected)
            except QkdNfvError as exc:
                if policy.header is not None:
                    trail.append(audit_failed(params, policy, key_for, exc))
                msg = exc.msg if "nothing was" in exc.msg else "%s; nothing was installed at %s" % (exc.msg, dest)
                raise QkdNfvError(msg, **dict(exc.details, dest=dest)) from None
            result = dict(changed=received.changed, dest=dest, key_id=received.key_ids[0] if received.key_ids else None,
                          key_ids=received.key_ids, key_bits=received.key_bits,
                          master_sae_id=key_for.master or received.master_sae_id, bytes=received.size,
                          sha256=received.sha256, key_mode=received.mode, protected_by=list(received.protected_by),
                          require_mode=policy.require, signed=policy.header is not None and policy.header.signed)
            if received.changed:
                trail.append(audit_done(params, policy, key_for, received))
                if trail.path:
                    result['audit_log'] = trail.path
    if received.changed:
        result.update(seconds=round(received.seconds, 3), signature_verified=received.signature_verified,
                      mb_per_s=round(received.size / max(received.seconds, 1e-9) / 1e6, 1))
        if received.manifest is not None:
            result.update(manifest=received.manifest, manifest_path=received.manifest_path)
    else:
        result['msg'] = "dest already holds the image the stream announces; no key was taken"
    return finish(module, result, before)


def check_options(params):
    """-> the expected SHA-256 (lower case) or None; bad options fail before anything is touched."""
    dest = params['dest']
    directory = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(directory):
        raise QkdNfvError("dest: the directory %s does not exist; create it first" % directory,
                          option='dest', reason='dest_dir')
    if os.path.isdir(dest):
        raise QkdNfvError("dest: %s is a directory; give the path of the image file" % dest,
                          option='dest', reason='dest_dir')
    listen = params['listen']
    if listen and not 1 <= listen['port'] <= 65535:
        raise QkdNfvError("listen.port must be between 1 and 65535, not %d" % listen['port'], option='listen.port')
    if params['src']:
        transport.open_source(params['src']).close()
    if params['manifest_max_age'] < 0:
        raise QkdNfvError("manifest_max_age must be 0 (no limit) or a number of seconds", option='manifest_max_age')
    expected = params['sha256']
    if expected is not None:
        if len(expected) != 64 or any(c not in "0123456789abcdefABCDEF" for c in expected):
            raise QkdNfvError("sha256 must be a SHA-256 in hexadecimal (64 digits), not %r" % expected,
                              option='sha256')
        expected = expected.lower()
    return expected


def has_kme(params):
    missing = [name for name in KME_REQUIRED if not params[name]]
    if missing and len(missing) < len(KME_REQUIRED):
        raise QkdNfvError("%s required with the other KME options" % (
            " and ".join(missing) + (" is" if len(missing) == 1 else " are")), option=missing[0])
    return not missing


class ObservingPolicy(pqc.ReceiverPolicy):
    """The receiver's policy, remembering the header it admitted (for the audit trail)."""

    header = None

    def admit(self, header):
        self.header = header
        super().admit(header)


def receiver_policy(params):
    """The policy from require_mode, kem_private_key and signer_public_key; keys are loaded here."""
    kme = has_kme(params)
    require = params['require_mode']
    if require == 'auto':
        require = pqc.ReceiverPolicy.default_requirement(kme, bool(params['kem_private_key']))
    if qstream.QKD in qstream.REQUIREMENTS[require] and not kme:
        raise QkdNfvError("kme_url, kme_id, client_cert and client_key are required: require_mode %s accepts only "
                          "streams keyed by QKD (or set require_mode pqc for a DC without a QKD link)" % require,
                          option='kme_url')
    if qstream.ML_KEM in qstream.REQUIREMENTS[require] and not params['kem_private_key']:
        raise QkdNfvError("require_mode %s needs kem_private_key, this DC's ML-KEM-768 private key" % require,
                          option='kem_private_key')
    kem_key = (pqc.load_private_key(params['kem_private_key'], pqc.KEM, 'kem_private_key')
               if params['kem_private_key'] else None)
    signer_key = (pqc.load_public_key(params['signer_public_key'], pqc.SIGNATURE, 'signer_public_key')
                  if params['signer_public_key'] else None)
    return ObservingPolicy(require, kem_key, signer_key, params['manifest_max_age'])


class _NoKme:
    def __enter__(self):
        return None

    def __exit__(self, *exc_info):
        return False


def kme_connection(params):
    return kme_client_from_params(params) if has_kme(params) else _NoKme()


def receive(params, key_for, policy, expected):
    if params['src']:
        return transport.receive_file(params['src'], params['dest'], key_for, expected_sha256=expected,
                                      policy=policy)
    listen = params['listen']
    listener = transport.listen(listen['bind'], listen['port'], option='listen.port')
    return transport.receive_tcp(listener, params['dest'], key_for, timeout=listen['timeout'],
                                 expected_sha256=expected, policy=policy)


def source(params):
    if params['src']:
        return "file://" + os.path.abspath(params['src'])
    return "tcp://%s:%d" % (params['listen']['bind'], params['listen']['port'])


def audit_base(params, policy, key_for):
    header = policy.header
    return dict(actor='image_receive', event='receive', key_ids=list(header.key_ids), key_mode=header.mode_name,
                protected_by=list(header.protected_by), require_mode=policy.require,
                master_sae_id=key_for.master or header.master_sae_id, key_taken=key_for.taken,
                source=source(params), dest=os.path.abspath(params['dest']), signed=header.signed,
                signer_key_sha256=header.signer.hex() or None, recipient_key_sha256=header.recipient.hex() or None)


def audit_done(params, policy, key_for, received):
    name = (received.manifest or {}).get('image', {}).get('name')
    return dict(audit_base(params, policy, key_for), result='ok', key_bits=received.key_bits,
                signature_verified=received.signature_verified, seconds=round(received.seconds, 3),
                image=dict(name=name or os.path.basename(params['dest']), sha256=received.sha256,
                           bytes=received.size))


def audit_failed(params, policy, key_for, exc):
    reason = exc.details.get('reason', 'failed')
    return dict(audit_base(params, policy, key_for), result='refused' if reason in REFUSALS else 'failed',
                reason=reason, msg=exc.msg)


class KmeKeys:
    """key_for(header) for the transport: the keys from this host's KME, as slave SAE."""

    def __init__(self, client, pinned_master=None):
        self.client = client
        self.pinned = pinned_master
        self.master = pinned_master  # the master SAE asked for, once known
        self.taken = False           # whether the KME delivered the key(s): then they are spent

    def __call__(self, header):
        if self.pinned and header.master_sae_id and header.master_sae_id != self.pinned:
            raise QkdNfvError("the stream names master SAE %s, but master_sae_id is %s: refused before asking "
                              "the KME" % (header.master_sae_id, self.pinned), reason='unexpected_master',
                              option='master_sae_id')
        self.master = header.master_sae_id or self.pinned
        if not self.master:
            raise QkdNfvError("the stream does not name the SAE that took its key; set master_sae_id",
                              reason='master_sae_id', option='master_sae_id')
        key_ids = list(header.key_ids)
        if self.client is None:
            raise QkdNfvError("the stream (key mode %s) needs QKD key %s, and this receiver has no KME options "
                              "(kme_url, kme_id, client_cert, client_key)" % (header.mode_name, ", ".join(key_ids)),
                              reason='kme_options', option='kme_url')
        try:
            keys = self.client.dec_keys(self.master, key_ids)
        except KmeAuthenticationError as exc:
            raise QkdNfvError("the KME refused key_ID %s: %s" % (", ".join(key_ids), exc.msg),
                              **dict(exc.details, reason='kme_refused', key_ids=key_ids)) from None
        except KmeRequestError as exc:
            raise QkdNfvError("unknown key_ID %s: %s" % (", ".join(key_ids), exc.msg),
                              **dict(exc.details, reason='unknown_key_id', key_ids=key_ids)) from None
        except KmeError as exc:
            raise QkdNfvError("could not take key_ID %s from the KME: %s" % (", ".join(key_ids), exc.msg),
                              **dict(exc.details, reason='kme_unavailable', key_ids=key_ids)) from None
        self.taken = True
        by_id = {key.key_id.lower(): key.material for key in keys}
        return [by_id[key_id.lower()] for key_id in key_ids]


def check(params, before, policy):
    """Check mode: what a real run would do, without a key and without installing."""
    result = dict(changed=True, dest=params['dest'], key_bits=0, require_mode=policy.require)
    if params['listen']:
        listen = params['listen']
        transport.listen(listen['bind'], listen['port'], option='listen.port').close()
        return result
    with transport.open_source(params['src']) as fin:
        header = qstream.read_header(fin)
    result.update(key_id=header.key_id, key_ids=list(header.key_ids), key_mode=header.mode_name,
                  master_sae_id=header.master_sae_id or params['master_sae_id'],
                  protected_by=list(header.protected_by), signed=header.signed)
    announced = header.plaintext_sha256.hex() if header.plaintext_sha256 else None
    if announced and (before['sha256'] if before else transport.file_sha256(params['dest'])) == announced:
        result.update(changed=False, sha256=announced)
        return result
    policy.admit(header)  # a real run would refuse it: say so now
    return result


def finish(module, result, before):
    """Apply owner, group and mode to dest, and add the diff."""
    if os.path.exists(result['dest']):
        file_args = module.load_file_common_arguments(module.params, path=result['dest'])
        result['changed'] = module.set_fs_attributes_if_different(file_args, result['changed'])
    if module._diff and before is not None:
        after = dict(sha256=result.get('sha256', before['sha256']))
        if module.check_mode and result['changed'] and 'sha256' not in result:
            after['sha256'] = '(the received image)'
        result['diff'] = dict(before=before, after=after)
    return result


def main():
    run_module(argument_spec(), run, **MODULE_KWARGS)


if __name__ == '__main__':
    main()
