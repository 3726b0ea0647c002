# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What modules share: argument specs per back-end, and client errors turned into fail_json.

The only module_utils file that imports ansible.module_utils.basic.
"""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import AnsibleModule

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
