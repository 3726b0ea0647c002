# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception base of the collection's clients.

Clients (kme, optical, transport, vim, ...) raise subclasses; common.run_module turns any of them
into a fail_json whose msg is the exception text and whose extra keys come from `details`.
Messages must never contain key material.
"""

from __future__ import annotations


class QkdNfvError(Exception):
    """An error with a message fit for an operator and structured details for the task result."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details
