# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What modules share: argument specs per back-end, and client errors turned into fail_json.

The only module_utils file that imports ansible.module_utils.basic.
"""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError


def run_module(argument_spec, run, **module_kwargs):
    """Build the AnsibleModule, call run(module) -> result dict, exit; QkdNfvError -> fail_json.

    Bad input found by run() should raise QkdNfvError naming the option and the fix; anything
    else that escapes is a bug and is reported with its traceback in `exception` (shown at -vvv).
    """
    module = AnsibleModule(argument_spec=argument_spec, **module_kwargs)
    try:
        result = run(module)
    except QkdNfvError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="unexpected error: %s: %s" % (type(exc).__name__, exc),
                         exception=traceback.format_exc())
    module.exit_json(**result)


def optical_argument_spec():
    """Options to reach the optical switch (doc fragment qkd.nfv.optical), each with an env fallback."""
    def env(name):
        return (env_fallback, ['QKD_NFV_OPTICAL_' + name])

    return dict(
        controller_url=dict(type='str', required=True, fallback=env('URL')),
        node_id=dict(type='str', fallback=env('NODE_ID')),
        username=dict(type='str', fallback=env('USERNAME')),
        password=dict(type='str', no_log=True, fallback=env('PASSWORD')),
        backend=dict(type='str', default='odl', choices=['odl', 'polatis'], fallback=env('BACKEND')),
        api=dict(type='str', default='rfc8040', choices=['rfc8040', 'draft02'], fallback=env('API')),
        validate_certs=dict(type='bool', default=True, fallback=env('VALIDATE_CERTS')),
        ca_cert=dict(type='path', fallback=env('CA_CERT')),
        timeout=dict(type='float', default=10.0, fallback=env('TIMEOUT')),
    )


def kme_argument_spec():
    """Options to reach one KME as one SAE (doc fragment qkd.nfv.kme); see module_utils.kme."""
    def env(name):
        return (env_fallback, [name])

    return dict(
        kme_url=dict(type='str', required=True, fallback=env('QKD_KME_URL')),
        kme_id=dict(type='str', required=True, fallback=env('QKD_KME_ID')),
        ca_cert=dict(type='path', aliases=['kme_ca_cert'], fallback=env('QKD_KME_CA_CERT')),
        client_cert=dict(type='path', required=True, aliases=['kme_client_cert'], fallback=env('QKD_SAE_CERT')),
        client_key=dict(type='path', required=True, aliases=['kme_client_key'], no_log=False,
                        fallback=env('QKD_SAE_KEY')),
        validate_hostname=dict(type='bool', default=True),
        timeout=dict(type='float', default=10.0),
        retries=dict(type='int', default=3),
        ciphers=dict(type='str'),
        method=dict(type='str', default='POST', choices=['POST', 'GET']),
    )


def audit_argument_spec():
    """The key-usage audit trail options (doc fragment qkd.nfv.audit); see module_utils.audit."""
    return dict(
        audit=dict(type='bool', default=True),
        audit_log=dict(type='path'),
    )
