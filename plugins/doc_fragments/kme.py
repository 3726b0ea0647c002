# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How a module reaches one KME as one SAE: common.kme_argument_spec() in code.
    DOCUMENTATION = r"""
options:
  kme_url:
    description:
      - Base URL of the KME's ETSI GS QKD 014 API, C(https://) followed by host or address and port,
        optionally a path prefix; the C(/api/v1/keys/...) paths are appended to it.
      - If not set, the environment variable E(QKD_KME_URL) is used.
    type: str
    required: true
  kme_id:
    description:
      - The KME ID of the KME, which its TLS certificate must carry as subject common name or as a
        DNS or URI subject alternative name. No request is sent to a KME whose certificate names
        another KME.
      - If not set, the environment variable E(QKD_KME_ID) is used.
    type: str
    required: true
  ca_cert:
    description:
      - PEM file with the CA certificate(s) that signed the KME's certificate.
      - If not set, the environment variable E(QKD_KME_CA_CERT) is used, and without it the
        system's trusted CAs.
    type: path
    aliases: [kme_ca_cert]
  client_cert:
    description:
      - PEM file with the SAE's certificate. The KME takes the SAE ID from it, so this certificate
        decides which SAE the task acts as.
      - If not set, the environment variable E(QKD_SAE_CERT) is used.
    type: path
    required: true
    aliases: [kme_client_cert]
  client_key:
    description:
      - PEM file with the unencrypted private key of O(client_cert). Keep it readable by the
        controller's user only.
      - If not set, the environment variable E(QKD_SAE_KEY) is used.
    type: path
    required: true
    aliases: [kme_client_key]
  validate_hostname:
    description:
      - Check that the KME's certificate names the host of O(kme_url), as well as O(kme_id).
      - Set to V(false) for a KME reached by an address its certificate does not carry, as is
        common for KMEs addressed by IP. The CA chain and O(kme_id) are verified either way.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for the connection and for each answer of the KME.
    type: float
    default: 10
  retries:
    description:
      - How many times a failed request is repeated, with exponential backoff (0.5 s, 1 s, 2 s, ...).
      - Status requests and key requests by key_ID are repeated on connection errors, dropped
        connections, timeouts and HTTP 503.
      - Requests for new keys are repeated only when no key can have been taken, that is when the
        connection failed or the KME answered 503; never after a timeout or a dropped connection,
        because the KME may already have removed those keys from its pool.
      - TLS and certificate errors are never repeated.
    type: int
    default: 3
  ciphers:
    description:
      - OpenSSL cipher string for TLS 1.2, for KMEs that offer only suites the Python default
        excludes (for example only SHA-1 CBC suites); V(DEFAULT) is usually enough.
      - TLS versions below 1.2 are refused whatever this says.
    type: str
  method:
    description:
      - HTTP method for key requests. ETSI GS QKD 014 allows V(GET) only for simple requests, that is a
        count and a size for new keys, a single key_ID for keys by key_ID.
      - Use V(GET) for KMEs that serve key requests only that way.
    type: str
    default: POST
    choices: [POST, GET]
requirements:
  - urllib3 >= 2.0
notes:
  - All options of this group can be set once for several tasks with
    C(module_defaults) and the action group C(group/qkd.nfv.kme).
  - Communication follows ETSI GS QKD 014 V1.1.1 over HTTPS with TLS 1.2 or later and mutual
    certificate authentication.
"""
