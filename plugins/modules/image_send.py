#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_send
short_description: Encrypt an image with a QKD key and send it to a file, a TCP receiver or an SFTP server
version_added: 0.1.0
description:
  - Reads the plain image O(src) and streams it as a qstream (see C(docs/qstream.md) in the collection),
    encrypting while it sends, to one of O(dest) (a local file), O(tcp) (a M(qkd.nfv.image_receive)
    listener) or O(sftp) (a file on an SSH server, which the receiving host then decrypts with
    M(qkd.nfv.image_receive)). No plaintext or ciphertext copy is written on the sending host.
  - B(Key.) By default the module takes one new 256-bit key from its KME for the receiver's SAE
    O(slave_sae_id) (ETSI GS QKD 014 C(Get key)); the stream carries the key_ID and this host's SAE ID
    in its header, so that the receiver takes the same key from its own KME. One key encrypts the whole
    image whatever its size (AES-256-GCM in 1 MiB chunks under a key derived with HKDF-SHA256).
  - A key obtained otherwise, for example relayed by trusted nodes (M(qkd.nfv.key_relay_recover)), is
    given with O(key_file) or O(key), and O(key_id).
  - With O(key_mode=otp) small files (O(otp_max_size)) are instead XORed with a one-time pad as long as the
    data and authenticated with a Poly1305 one-time authenticator; that takes O(otp_max_size)-scale
    amounts of key, reported in RV(key_bits).
  - B(Post-quantum protection beside QKD.) With O(receiver_public_key), the DC's pinned ML-KEM-768 public key
    (from M(qkd.nfv.pqc_keypair)), the stream is in key mode V(hybrid) by default; its key is derived from
    both the QKD key and an ML-KEM-768 shared secret, so the image stays confidential if either holds, also
    against a trusted node that relayed the QKD key. V(pqc) uses ML-KEM-768 alone, for a DC without a QKD
    link; the result says so (RV(protected_by)) and the module warns.
  - B(Signed catalogue.) With O(signing_key), the CO's ML-DSA-65 key, the stream ends with a manifest (image
    name, SHA-256, size, key_IDs, key mode, destination, time, and the stream's header) signed once the
    SHA-256 is known, inside the encrypted trailer. M(qkd.nfv.image_receive) verifies it against the pinned
    public key before it installs the image, and M(qkd.nfv.vnf_instance) with C(require_signature) before
    it imports it.
  - B(Audit trail.) Every transfer is recorded as one JSON line in O(audit_log), with the key_IDs, key mode,
    image SHA-256, destination and the result, never key material (see C(docs/audit.md)); M(qkd.nfv.audit_info)
    reads it.
  - Key material never appears in the result, the logs or error messages.
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
      - Consumes no key, sends nothing and writes no audit line. Checks O(src), the destination (for O(sftp)
        it connects, verifies the host key, logs in and looks at the remote directory; for O(tcp) it does not
        connect, since the receiver accepts a single connection), loads O(receiver_public_key) and
        O(signing_key), and reads the KME's status of the key pool for O(slave_sae_id).
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - Every real run takes a new key and sends the image again, unless O(skip_if_remote_sha256) equals
        the SHA-256 of O(src); then nothing is sent, no key is taken and the task reports no change.
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
      - Required unless O(key) or O(key_file) is given.
    type: str
    required: false
  kme_id:
    description:
      - The KME ID its TLS certificate must carry. If not set, the environment variable E(QKD_KME_ID) is used.
      - Required unless O(key) or O(key_file) is given.
    type: str
    required: false
  client_cert:
    description:
      - PEM file with this SAE's certificate; the KME takes the master SAE's identity from it. If not set, the
        environment variable E(QKD_SAE_CERT) is used.
      - Required unless O(key) or O(key_file) is given.
    type: path
    required: false
    aliases: [kme_client_cert]
  client_key:
    description:
      - PEM file with the unencrypted private key of O(client_cert). If not set, the environment variable
        E(QKD_SAE_KEY) is used.
      - Required unless O(key) or O(key_file) is given.
    type: path
    required: false
    aliases: [kme_client_key]
  src:
    description:
      - The plain image (or, with O(key_mode=otp), the small file) to send.
    type: path
    required: true
  dest:
    description:
      - Write the qstream to this local file, atomically (to a temporary file in the same directory, renamed
        when complete). The directory must exist.
      - Exactly one of O(dest), O(tcp) and O(sftp) is required.
    type: path
  tcp:
    description:
      - Send to a M(qkd.nfv.image_receive) listener. The sender waits until the receiver confirms that it
        verified and installed the image; the confirmation is bound to the key, so only the holder of the
        key can give it.
    type: dict
    suboptions:
      host:
        description: Host name or address of the receiver.
        type: str
        required: true
      port:
        description: TCP port of the receiver's listener.
        type: int
        required: true
      timeout:
        description:
          - Seconds that connecting (repeated while the receiver is not listening yet), any single send, or
            waiting for the receiver's confirmation may take.
        type: float
        default: 300
  sftp:
    description:
      - Upload the qstream to an SSH server with SFTP. The upload goes to a temporary name beside
        O(sftp.path) and is renamed when every write is acknowledged.
      - The host key must be in O(sftp.known_hosts); unknown or changed host keys are refused.
      - The upload uses AES-256-GCM for SSH where the server offers it.
    type: dict
    suboptions:
      host:
        description: The SSH server.
        type: str
        required: true
      port:
        description: Its SSH port.
        type: int
        default: 22
      user:
        description: Login name; by default the user running the module.
        type: str
      private_key:
        description: The private key file to log in with; by default the usual keys in C(~/.ssh) are tried.
        type: path
      private_key_passphrase:
        description: Passphrase of O(sftp.private_key), if it is encrypted.
        type: str
      known_hosts:
        description: The known_hosts file that must hold the server's host key.
        type: path
        default: ~/.ssh/known_hosts
      host_key_checking:
        description:
          - V(strict) accepts only host keys already in O(sftp.known_hosts).
          - V(accept_new) also accepts the key of a host not listed there yet and adds it (as OpenSSH's
            C(StrictHostKeyChecking=accept-new)); a changed key is refused either way.
        type: str
        choices: [strict, accept_new]
        default: strict
      path:
        description: Remote path of the qstream file. Its directory must exist.
        type: str
        required: true
      timeout:
        description: Seconds for connecting, logging in and any single SFTP operation.
        type: float
        default: 30
      engine:
        description:
          - V(openssh) runs the C(ssh) client of the sending host (C(ssh -s HOST sftp)), with no user or
            system SSH configuration, in batch mode, and only the options of this task. Its SSH runs in C,
            about twice the upload speed of V(paramiko) (C(docs/qstream.md)).
          - V(paramiko) uses the Python library paramiko. Needed for O(sftp.private_key_passphrase).
          - V(auto) uses V(openssh) when C(ssh) is installed and no passphrase is given, else V(paramiko).
        type: str
        choices: [auto, openssh, paramiko]
        default: auto
  slave_sae_id:
    description:
      - The receiver's SAE ID. The module takes a new key shared with it from the KME (this host is the
        master SAE).
      - Required unless O(key) or O(key_file) is given.
    type: str
  master_sae_id:
    description:
      - This host's SAE ID as the receiver's KME knows it, written into the stream's header so that the
        receiver can ask for the key.
      - By default the C(master_SAE_ID) the KME reports in its status. With O(key) or O(key_file), the SAE
        that took the key as master (for a relayed key, the last trusted node).
    type: str
  key_file:
    description:
      - A file holding the key as raw bytes (at least 256 bits), as M(qkd.nfv.qkd_key) and
        M(qkd.nfv.key_relay_recover) write them. No KME is contacted. Requires O(key_id).
      - The file is deleted once the image was sent, since a key is used once.
      - Mutually exclusive with O(key) and O(slave_sae_id).
    type: path
  key:
    description:
      - The key, base64-encoded (at least 256 bits). No KME is contacted. Requires O(key_id).
      - Mutually exclusive with O(key_file) and O(slave_sae_id).
    type: str
  key_id:
    description: The key_ID of O(key) or O(key_file), which the receiver gives its KME.
    type: str
  key_mode:
    description:
      - V(auto) is V(hybrid) when O(receiver_public_key) is given, else V(aead).
      - V(aead) encrypts with AES-256-GCM under one 256-bit QKD key, whatever the size of O(src).
      - V(hybrid) derives the AES-256-GCM key with HKDF-SHA256 from the QKD key and an ML-KEM-768 shared
        secret encapsulated to O(receiver_public_key); the KEM ciphertext travels in the stream's
        authenticated header. Confidential if either the QKD key or ML-KEM-768 holds.
      - V(pqc) uses the ML-KEM-768 secret alone, for a DC without a QKD link; no KME is contacted and no
        QKD key is used. Requires O(receiver_public_key) and none of O(slave_sae_id), O(key), O(key_file).
      - V(otp) uses a one-time pad as long as O(src) plus 256 bits for the authenticator, taken from the KME
        as several keys if needed; only for files up to O(otp_max_size).
      - A receiver that has an ML-KEM key pair refuses V(aead) and V(otp) streams unless told otherwise
        (its C(require_mode)).
    type: str
    choices: [auto, aead, hybrid, pqc, otp]
    default: auto
  receiver_public_key:
    description:
      - The receiving DC's ML-KEM-768 public key, pinned by the CO (for example from the inventory), as PEM text
        as M(qkd.nfv.pqc_keypair) returns it, the path of a PEM file on this host, or base64.
      - Selects O(key_mode=hybrid) by default.
    type: str
  signing_key:
    description:
      - The CO's ML-DSA-65 private key file (made with M(qkd.nfv.pqc_keypair), mode C(0600)). The stream then
        ends with a manifest of the image signed with it. Not with O(key_mode=otp).
    type: path
  image_name:
    description:
      - The image's name in the signed manifest. Defaults to the file name of O(src).
    type: str
  otp_max_size:
    description: Largest O(src), in bytes, that O(key_mode=otp) accepts.
    type: int
    default: 65536
  chunk_size:
    description:
      - Plaintext bytes per authenticated chunk (V(aead)), between 4096 and 16777216. Memory use on each
        end is a few times this, independent of the image size.
    type: int
    default: 1048576
  sha256:
    description:
      - The SHA-256 (hexadecimal) of O(src) when it is already known, for example from the catalogue
        (M(ansible.builtin.stat) with C(checksum_algorithm=sha256), or a signed manifest). The module then
        does not hash O(src) itself; the stream's encrypted trailer (and the signed manifest) states this
        value, and the receiver, which hashes what it decrypts, refuses the image when they differ, so a
        file that is not its catalogue entry is never installed. Saves one pass over the image on the
        sending host.
      - Also what O(skip_if_remote_sha256) is compared with, without reading O(src).
    type: str
  skip_if_remote_sha256:
    description:
      - The SHA-256 (hexadecimal) of the image the receiving side already holds, for example from
        M(ansible.builtin.stat) with C(checksum_algorithm=sha256) delegated to it. When it equals the
        SHA-256 of O(src), nothing is sent, no key is taken, and the task reports no change.
      - Computing the SHA-256 of O(src) reads it once more, unless O(sha256) is given.
    type: str
notes:
  - B(Keys are used once.) The receiver's KME delivers a key once, so a failed transfer cannot be retried with
    the same key; the next run takes a new one. Errors after the key was taken name its key_ID.
  - For long transfers over O(tcp), start M(qkd.nfv.image_receive) first with C(async) and C(poll=0) on the
    receiving host; this module retries connecting until O(tcp.timeout).
  - The header of the stream (key_ID, SAE ID, chunk size, image size, and in modes V(hybrid) and V(pqc) the
    KEM ciphertext and the fingerprint of the receiver's key) travels in clear, authenticated; the image,
    its SHA-256 and the signed manifest are encrypted.
  - C(docs/security.md) in the collection describes the threats each mechanism answers.
requirements:
  - cryptography >= 42 (>= 47 for O(receiver_public_key) and O(signing_key))
  - the OpenSSH client C(ssh), or paramiko, for O(sftp) (see O(sftp.engine))
seealso:
  - module: qkd.nfv.image_receive
  - module: qkd.nfv.pqc_keypair
  - module: qkd.nfv.audit_info
  - module: qkd.nfv.qkd_key
  - module: qkd.nfv.key_relay_recover
"""

EXAMPLES = r"""
- name: The DC listens for the image (in the background)
  qkd.nfv.image_receive:
    listen:
      port: 5700
    dest: /var/lib/images/vnf.qcow2
    kme_url: https://kme-dc2.example.net
    kme_id: kme-dc2
    ca_cert: /etc/qkd/ca.crt
    client_cert: /etc/qkd/sae-dc2.crt
    client_key: /etc/qkd/sae-dc2.key
  delegate_to: dc2
  async: 3600
  poll: 0
  register: listening

- name: The CO encrypts it with a key for DC 2 while sending it
  qkd.nfv.image_send:
    src: /srv/images/vnf.qcow2
    tcp:
      host: dc2.example.net
      port: 5700
    slave_sae_id: sae-dc2
    kme_url: https://kme-co.example.net
    kme_id: kme-co
    ca_cert: /etc/qkd/ca.crt
    client_cert: /etc/qkd/sae-co.crt
    client_key: /etc/qkd/sae-co.key
  register: sent

- name: Wait for the DC to install it
  ansible.builtin.async_status:
    jid: "{{ listening.ansible_job_id }}"
  delegate_to: dc2
  register: received
  until: received.finished
  retries: 360
  delay: 10

- name: Upload by SFTP instead (encrypting while uploading)
  qkd.nfv.image_send:
    src: /srv/images/vnf.qcow2
    sftp:
      host: dc2.example.net
      user: images
      private_key: /etc/qkd/upload_ed25519
      known_hosts: /etc/qkd/known_hosts
      path: /var/spool/images/vnf.qstream
    slave_sae_id: sae-dc2
  register: sent

# One catalogue image to several DCs: hashed once on the CO, not once per transfer.
- name: The catalogue image's SHA-256
  ansible.builtin.stat:
    path: /srv/images/vnf.qcow2
    checksum_algorithm: sha256
  register: catalogue_image
  run_once: true

- name: Send it to each DC, which verifies that SHA-256 after decrypting
  qkd.nfv.image_send:
    src: /srv/images/vnf.qcow2
    sha256: "{{ catalogue_image.stat.checksum }}"
    tcp:
      host: "{{ inventory_hostname }}"
      port: 9000
    slave_sae_id: "{{ sae_id }}"
  delegate_to: co

# Idempotent distribution: each side skips when the DC already holds the image, and no key is taken.
- name: What the DC holds
  ansible.builtin.stat:
    path: /var/lib/images/vnf.qcow2
    checksum_algorithm: sha256
  delegate_to: dc2
  register: dc_image

- name: Upload only when the DC does not hold this image yet
  qkd.nfv.image_send:
    src: /srv/images/vnf.qcow2
    sftp:
      host: dc2.example.net
      path: /var/spool/images/vnf.qstream
    slave_sae_id: sae-dc2
    skip_if_remote_sha256: "{{ dc_image.stat.checksum | default(omit) }}"
  register: sent

- name: Install it on the DC (no change, and no key, when it is there already)
  qkd.nfv.image_receive:
    src: /var/spool/images/vnf.qstream
    dest: /var/lib/images/vnf.qcow2
    sha256: "{{ sent.sha256 }}"
  delegate_to: dc2

- name: Hybrid QKD + ML-KEM key and a signed manifest (the DC's key pinned in the inventory)
  qkd.nfv.image_send:
    src: /srv/images/vnf.qcow2
    tcp:
      host: dc2.example.net
      port: 5700
    slave_sae_id: sae-dc2
    receiver_public_key: "{{ hostvars['dc2'].kem_public_key }}"
    signing_key: /etc/qkd/catalogue-mldsa65.key
  register: sent

- name: A DC without a QKD link - ML-KEM-768 alone (reported as key_mode pqc)
  qkd.nfv.image_send:
    src: /srv/images/vnf.qcow2
    key_mode: pqc
    receiver_public_key: /etc/qkd/pinned/dc9-mlkem768.pem
    signing_key: /etc/qkd/catalogue-mldsa65.key
    sftp:
      host: dc9.example.net
      path: /var/spool/images/vnf.qstream

- name: With a key relayed by trusted nodes
  qkd.nfv.image_send:
    src: /srv/images/vnf.qcow2
    key_file: "{{ relayed_key.key_file }}"
    key_id: "{{ relayed_key.key_id }}"
    master_sae_id: "{{ relayed_key.master_sae_id }}"
    dest: /srv/outgoing/vnf.qstream
"""

RETURN = r"""
key_id:
  description: The key_ID of the key that encrypted the image (the first one, with O(key_mode=otp)).
  returned: success, unless skipped
  type: str
  sample: bc490419-7d60-487f-adc1-4ddcc177c139
key_ids:
  description: Every key_ID used, in pad order (one with O(key_mode=aead) and V(hybrid), none with V(pqc)).
  returned: success, unless skipped
  type: list
  elements: str
key_bits:
  description:
    - QKD key bits taken for this transfer (256 with O(key_mode=aead) and V(hybrid); 0 with V(pqc), when skipped
      or in check mode).
  returned: always
  type: int
  sample: 256
protected_by:
  description: What keeps the image confidential in this key mode, V(qkd) and/or V(ml-kem-768).
  returned: always
  type: list
  elements: str
  sample: [qkd, ml-kem-768]
signed:
  description: Whether the stream carries a manifest signed with O(signing_key).
  returned: always
  type: bool
manifest:
  description: The signed manifest (what the DC verifies); no key material.
  returned: when sent with O(signing_key)
  type: dict
  sample:
    format: qkd.nfv/manifest/v1
    image: {name: vnf.qcow2, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, bytes: 2147483648}
    key_ids: [bc490419-7d60-487f-adc1-4ddcc177c139]
    key_mode: hybrid
    destination: tcp://dc2.example.net:5700
    time: "2026-05-04T10:11:12Z"
receiver_key_sha256:
  description: SHA-256 of O(receiver_public_key) (DER), as written into the stream's header.
  returned: when O(receiver_public_key) is given
  type: str
signer_key_sha256:
  description: SHA-256 of the public key of O(signing_key) (DER), which the DC pins.
  returned: when O(signing_key) is given
  type: str
audit_log:
  description: The audit trail the transfer was recorded in.
  returned: when recorded
  type: str
bytes:
  description: Size of O(src) in bytes.
  returned: always
  type: int
  sample: 2147483648
sha256:
  description: SHA-256 of O(src), computed while sending (hexadecimal).
  returned: success, unless in check mode without O(skip_if_remote_sha256)
  type: str
wire_bytes:
  description: Bytes of the qstream (header, chunks, tags).
  returned: when sent
  type: int
seconds:
  description: Time from the first byte read to the receiver's confirmation (O(tcp)) or the final rename.
  returned: when sent
  type: float
  sample: 3.1
mb_per_s:
  description: Plaintext throughput, in 10^6 bytes per second.
  returned: when sent
  type: float
  sample: 692.7
key_mode:
  description: The key mode used, V(aead), V(hybrid), V(pqc) or V(otp) (V(auto) resolved).
  returned: always
  type: str
master_sae_id:
  description: The master SAE ID written into the header.
  returned: when sent
  type: str
  sample: sae-node1
status:
  description: The KME's status of the key pool for O(slave_sae_id).
  returned: when the KME was asked
  type: dict
"""

import base64
import binascii
import os

from ansible_collections.qkd.nfv.plugins.module_utils import audit, pqc, qstream, transport
from ansible_collections.qkd.nfv.plugins.module_utils.common import audit_argument_spec, kme_argument_spec, run_module
from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError
from ansible_collections.qkd.nfv.plugins.module_utils.kme import kme_client_from_params

KME_REQUIRED = ('kme_url', 'kme_id', 'client_cert', 'client_key')
QKD_SOURCES = ('slave_sae_id', 'key', 'key_file')


def argument_spec():
    spec = kme_argument_spec()
    for name in KME_REQUIRED:  # not needed with a given key; run() checks them otherwise
        spec[name] = dict(spec[name], required=False)
    spec.update(
        src=dict(type='path', required=True),
        dest=dict(type='path'),
        tcp=dict(type='dict', options=dict(
            host=dict(type='str', required=True),
            port=dict(type='int', required=True),
            timeout=dict(type='float', default=300.0),
        )),
        sftp=dict(type='dict', options=dict(
            host=dict(type='str', required=True),
            port=dict(type='int', default=22),
            user=dict(type='str'),
            private_key=dict(type='path', no_log=False),
            private_key_passphrase=dict(type='str', no_log=True),
            known_hosts=dict(type='path', default='~/.ssh/known_hosts'),
            host_key_checking=dict(type='str', default='strict', choices=['strict', 'accept_new']),
            engine=dict(type='str', default='auto', choices=['auto', 'openssh', 'paramiko']),
            path=dict(type='str', required=True),
            timeout=dict(type='float', default=30.0),
        )),
        slave_sae_id=dict(type='str'),
        master_sae_id=dict(type='str'),
        key_file=dict(type='path', no_log=False),
        key=dict(type='str', no_log=True),
        key_id=dict(type='str'),
        key_mode=dict(type='str', default='auto', choices=['auto', 'aead', 'hybrid', 'pqc', 'otp']),
        receiver_public_key=dict(type='str', no_log=False),
        signing_key=dict(type='path', no_log=False),
        image_name=dict(type='str'),
        otp_max_size=dict(type='int', default=qstream.OTP_DEFAULT_LIMIT),
        chunk_size=dict(type='int', default=qstream.DEFAULT_CHUNK_SIZE),
        sha256=dict(type='str'),
        skip_if_remote_sha256=dict(type='str'),
    )
    spec.update(audit_argument_spec())
    return spec


MODULE_KWARGS = dict(
    supports_check_mode=True,
    required_one_of=[('dest', 'tcp', 'sftp')],
    mutually_exclusive=[('dest', 'tcp', 'sftp'), ('slave_sae_id', 'key', 'key_file'), ('slave_sae_id', 'key_id')],
    required_by={'key': 'key_id', 'key_file': 'key_id'},
)


def run(module):
    params = module.params
    mode = check_options(params)
    size = source_size(params['src'])
    pins = Pins(params)
    result = dict(changed=True, key_mode=mode, bytes=size, key_bits=0,
                  protected_by=list(qstream.PROTECTED_BY[MODES[mode]]), signed=pins.signer_key is not None)
    result.update(pins.fingerprints())
    if mode == 'pqc':
        module.warn("key_mode pqc: no QKD key protects this image; its confidentiality rests on ML-KEM-768 alone")
    if params['skip_if_remote_sha256']:
        result['sha256'] = params['sha256'] or transport.file_sha256(params['src'])
        if result['sha256'] == params['skip_if_remote_sha256'].lower():
            result.update(changed=False, msg="the receiver already holds this image; nothing was sent")
            return result
    check_destination(params)
    if module.check_mode:
        if params['slave_sae_id']:
            with kme_client_from_params(params) as client:
                result['status'] = client.status(params['slave_sae_id'])
                if mode == 'otp':
                    otp_request(params, result['status'], size)
        return result
    with audit.open_for(params) as trail:
        record = AuditRecord(params, mode, pins)
        try:
            sent, master = take_key_and_send(params, mode, size, pins, result)
        except QkdNfvError as exc:
            trail.append(record.failed(exc))
            raise
        trail.append(record.done(sent, master))
        if trail.path:
            result['audit_log'] = trail.path
    if params['key_file']:
        os.unlink(params['key_file'])  # the key has done its work
    result.update(changed=sent.changed, key_id=sent.key_ids[0] if sent.key_ids else None, key_ids=sent.key_ids,
                  key_bits=sent.key_bits, sha256=sent.sha256, wire_bytes=sent.wire_bytes,
                  seconds=round(sent.seconds, 3), mb_per_s=round(sent.size / max(sent.seconds, 1e-9) / 1e6, 1),
                  master_sae_id=master)
    if sent.manifest:
        result['manifest'] = sent.manifest
    if not sent.changed:
        result['msg'] = "the receiver already held this image and installed nothing"
    return result


MODES = {'aead': qstream.MODE_AEAD, 'hybrid': qstream.MODE_HYBRID, 'pqc': qstream.MODE_PQC, 'otp': qstream.MODE_OTP}


def take_key_and_send(params, mode, size, pins, result):
    """Take the QKD key(s) (none in mode pqc), seal and send; -> (Sent, master SAE ID)."""
    if params['slave_sae_id']:
        with kme_client_from_params(params) as client:
            status = client.status(params['slave_sae_id'])
            result['status'] = status
            master = params['master_sae_id'] or status.get('master_SAE_ID')
            otp_keys = otp_request(params, status, size) if mode == 'otp' else None
            sealer = sealer_from_kme(params, client, master, size, otp_keys, pins)
    else:
        master = params['master_sae_id']
        sealer = sealer_from_given_key(params, master, size, pins)
    return send(params, sealer), master


def check_options(params):
    """-> the key mode (auto resolved); bad combinations fail before anything is read or taken."""
    mode = params['key_mode']
    if mode == 'auto':
        mode = 'hybrid' if params['receiver_public_key'] else 'aead'
    qkd_source = next((name for name in QKD_SOURCES if params[name]), None)
    if mode in ('hybrid', 'pqc') and not params['receiver_public_key']:
        raise QkdNfvError("key_mode %s needs receiver_public_key, the receiving DC's ML-KEM-768 public key (from "
                          "qkd.nfv.pqc_keypair)" % mode, option='receiver_public_key')
    if mode in ('aead', 'otp') and params['receiver_public_key']:
        raise QkdNfvError("receiver_public_key is given, but key_mode %s would not use it: use key_mode hybrid "
                          "(or auto)" % mode, option='key_mode')
    if mode == 'pqc' and qkd_source:
        raise QkdNfvError("key_mode pqc uses no QKD key: leave out %s (or use key_mode hybrid)" % qkd_source,
                          option='key_mode')
    if mode != 'pqc' and not qkd_source:
        raise QkdNfvError("key_mode %s needs a QKD key: set slave_sae_id (a new key from the KME), or key_file or "
                          "key with key_id" % mode, option='slave_sae_id')
    if mode == 'otp' and params['signing_key']:
        raise QkdNfvError("signing_key: a signed manifest needs key_mode aead, hybrid or pqc, not otp",
                          option='signing_key')
    if params['slave_sae_id']:
        missing = [name for name in KME_REQUIRED if not params[name]]
        if missing:
            raise QkdNfvError("%s required to take a key from the KME (or give key_file or key with key_id)"
                              % (" and ".join(missing) + (" is" if len(missing) == 1 else " are")),
                              option=missing[0])
    elif mode == 'otp':
        raise QkdNfvError("key_mode otp takes its keys from the KME: set slave_sae_id instead of key or key_file",
                          option='key_mode')
    if not 4096 <= params['chunk_size'] <= qstream.MAX_CHUNK_SIZE:
        raise QkdNfvError("chunk_size must be between 4096 and %d bytes, not %d"
                          % (qstream.MAX_CHUNK_SIZE, params['chunk_size']), option='chunk_size')
    if params['otp_max_size'] < 1 or params['otp_max_size'] > qstream.OTP_MAX_SIZE:
        raise QkdNfvError("otp_max_size must be between 1 and %d bytes" % qstream.OTP_MAX_SIZE,
                          option='otp_max_size')
    for name in ('sha256', 'skip_if_remote_sha256'):
        if params[name] is not None and not is_sha256(params[name]):
            raise QkdNfvError("%s must be a SHA-256 in hexadecimal (64 digits), not %r" % (name, params[name]),
                              option=name)
    if params['sha256']:
        params['sha256'] = params['sha256'].lower()
    tcp = params['tcp']
    if tcp and not 1 <= tcp['port'] <= 65535:
        raise QkdNfvError("tcp.port must be between 1 and 65535, not %d" % tcp['port'], option='tcp.port')
    return mode


class Pins:
    """The receiver's pinned ML-KEM key and the CO's signing key, loaded before any key is taken."""

    def __init__(self, params):
        self.recipient = self.signer_key = None
        if params['receiver_public_key']:
            self.recipient = pqc.Recipient(pqc.load_public_key(params['receiver_public_key'], pqc.KEM,
                                                               'receiver_public_key'))
        if params['signing_key']:
            self.signer_key = pqc.load_private_key(params['signing_key'], pqc.SIGNATURE, 'signing_key')
        self.image_name = params['image_name'] or os.path.basename(params['src'])
        self.destination = destination(params)
        self.slave_sae_id = params['slave_sae_id']

    def signer(self):
        """A fresh Signer per stream (it records the manifest it signed)."""
        if self.signer_key is None:
            return None
        return pqc.Signer(self.signer_key, self.image_name, self.destination, self.slave_sae_id)

    def fingerprints(self):
        found = {}
        if self.recipient is not None:
            found['receiver_key_sha256'] = self.recipient.sha256
        if self.signer_key is not None:
            found['signer_key_sha256'] = pqc.fingerprint(self.signer_key)
        return found


def destination(params):
    """Where the stream goes, as the manifest and the audit trail name it."""
    if params['tcp']:
        return "tcp://%s:%d" % (params['tcp']['host'], params['tcp']['port'])
    if params['sftp']:
        sftp = params['sftp']
        return "sftp://%s%s:%d%s" % (sftp['user'] + "@" if sftp['user'] else "", sftp['host'], sftp['port'],
                                     sftp['path'] if sftp['path'].startswith("/") else "/" + sftp['path'])
    return "file://" + os.path.abspath(params['dest'])


class AuditRecord:
    """The image_send line of the key-usage audit trail (docs/audit.md)."""

    def __init__(self, params, mode, pins):
        self.base = dict(actor='image_send', event='send', key_mode=mode,
                         protected_by=list(qstream.PROTECTED_BY[MODES[mode]]), destination=pins.destination,
                         slave_sae_id=params['slave_sae_id'], image=dict(name=pins.image_name),
                         signed=pins.signer_key is not None, **pins.fingerprints())

    def done(self, sent, master):
        record = dict(self.base, result='ok', key_ids=sent.key_ids, key_bits=sent.key_bits, master_sae_id=master,
                      seconds=round(sent.seconds, 3), changed=sent.changed)
        record['image'] = dict(self.base['image'], sha256=sent.sha256, bytes=sent.size)
        return record

    def failed(self, exc):
        return dict(self.base, result='failed', key_ids=exc.details.get('spent_key_ids', []),
                    reason=exc.details.get('reason', 'failed'), msg=exc.msg)


def is_sha256(text):
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)


def source_size(src):
    with transport.open_source(src) as fin:
        size = os.fstat(fin.fileno()).st_size
    return size


def check_destination(params):
    if params['dest']:
        directory = os.path.dirname(os.path.abspath(params['dest']))
        if not os.path.isdir(directory):
            raise QkdNfvError("dest: the directory %s does not exist; create it first" % directory,
                              option='dest', reason='dest_dir')
        if os.path.isdir(params['dest']):
            raise QkdNfvError("dest: %s is a directory; give the path of the qstream file" % params['dest'],
                              option='dest', reason='dest_dir')
    elif params['sftp']:
        transport.sftp_check(sftp_target(params))


def sealer_from_kme(params, client, master, size, otp_keys, pins):  # pylint: disable=too-many-arguments
    """Take the key(s) from the KME; from here on a failure names the key_IDs it spent."""
    slave = params['slave_sae_id']
    if otp_keys is None:
        key = client.enc_keys(slave, number=1, size=qstream.KEY_BYTES * 8)[0]
        return spent_on_failure(lambda: qstream.StreamSealer(
            key.material, key.key_id, master_sae_id=master, chunk_size=params['chunk_size'],
            plaintext_size=size, recipient=pins.recipient, signer=pins.signer()), [key.key_id])
    keys = client.enc_keys(slave, number=otp_keys[0], size=otp_keys[1])
    return spent_on_failure(lambda: qstream.OtpSealer([(k.key_id, k.material) for k in keys], master_sae_id=master,
                                                      limit=params['otp_max_size']), [k.key_id for k in keys])


def otp_request(params, status, size):
    """(number, size in bits) of equal keys that together pad `size` bytes, within the KME's limits."""
    if size > params['otp_max_size']:
        raise QkdNfvError("key_mode otp is for files up to otp_max_size (%d bytes); %s has %d: use key_mode aead"
                          % (params['otp_max_size'], params['src'], size), option='otp_max_size', reason='too_large')
    needed_bits = qstream.OtpSealer.key_bytes_needed(size) * 8
    largest = status.get('max_key_size') or status['key_size']
    largest -= largest % 8
    number = -(-needed_bits // largest)
    bits = -(-needed_bits // number)
    bits = max(bits + (-bits % 8), status.get('min_key_size') or 8)
    limit = status.get('max_key_per_request')
    if limit and number > limit:
        raise QkdNfvError("key_mode otp needs %d key bits here, more than the KME delivers in one request (%d keys "
                          "of at most %d bits): use key_mode aead or a smaller file" % (needed_bits, limit, largest),
                          option='key_mode', reason='too_large')
    return number, bits


def sealer_from_given_key(params, master, size, pins):
    if not params['key_file'] and not params['key']:  # key_mode pqc: the ML-KEM secret alone
        return qstream.StreamSealer(None, None, master_sae_id=master, chunk_size=params['chunk_size'],
                                    plaintext_size=size, recipient=pins.recipient, signer=pins.signer())
    if params['key_file']:
        try:
            with open(params['key_file'], 'rb') as key_file:
                material = key_file.read()
        except OSError as exc:
            raise QkdNfvError("key_file: cannot read %s: %s" % (params['key_file'], exc.strerror),
                              option='key_file') from None
    else:
        try:
            material = base64.b64decode(params['key'], validate=True)
        except (binascii.Error, ValueError):
            raise QkdNfvError("key must be base64 text (as ETSI GS QKD 014 KMEs deliver keys)", option='key') from None
    if len(material) < qstream.KEY_BYTES:
        raise QkdNfvError("the key must have at least %d bits, it has %d" % (qstream.KEY_BYTES * 8, len(material) * 8),
                          option='key_file' if params['key_file'] else 'key')
    return qstream.StreamSealer(material, params['key_id'], master_sae_id=master, chunk_size=params['chunk_size'],
                                plaintext_size=size, recipient=pins.recipient, signer=pins.signer())


def spent_on_failure(build, key_ids):
    try:
        return build()
    except QkdNfvError as exc:
        raise QkdNfvError("%s; the KME already delivered key(s) %s, now spent" % (exc.msg, ", ".join(key_ids)),
                          spent_key_ids=key_ids, **exc.details) from None


def sftp_target(params):
    sftp = params['sftp']
    return transport.SftpTarget(host=sftp['host'], port=sftp['port'], user=sftp['user'],
                                private_key=sftp['private_key'], passphrase=sftp['private_key_passphrase'],
                                known_hosts=sftp['known_hosts'], host_key_checking=sftp['host_key_checking'],
                                engine=sftp['engine'],
                                path=sftp['path'], timeout=sftp['timeout'])


def send(params, sealer):
    try:
        if params['dest']:
            return transport.send_file(params['src'], params['dest'], sealer, sha256=params['sha256'])
        if params['tcp']:
            tcp = params['tcp']
            return transport.send_tcp(params['src'], tcp['host'], tcp['port'], sealer, timeout=tcp['timeout'],
                                      sha256=params['sha256'])
        return transport.send_sftp(params['src'], sealer, sftp_target(params), sha256=params['sha256'])
    except QkdNfvError as exc:
        key_ids = [pair[0] for pair in sealer.keys] if sealer.mode == qstream.MODE_OTP else list(sealer.header.key_ids)
        if not key_ids:  # key_mode pqc: no QKD key was spent
            raise
        raise QkdNfvError("%s (key_ID %s was used for this attempt and is spent)" % (exc.msg, ", ".join(key_ids)),
                          spent_key_ids=key_ids, **exc.details) from None


def main():
    run_module(argument_spec(), run, **MODULE_KWARGS)


if __name__ == '__main__':
    main()
