# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The key-usage audit trail options of every module that uses QKD keys (docs/audit.md).
    DOCUMENTATION = r"""
options:
  audit:
    description:
      - Record each key this module uses in the key-usage audit trail O(audit_log). V(false) switches the record off.
    type: bool
    default: true
  audit_log:
    description:
      - The audit trail, a file of JSON lines on this host (created C(0600)). The module fails before taking a
        key if it cannot append to it.
      - Defaults to the environment variable E(QKD_NFV_AUDIT_LOG), else C(~/.qkd-nfv/audit.jsonl).
    type: path
"""
