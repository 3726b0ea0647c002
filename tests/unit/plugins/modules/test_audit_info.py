# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""audit_info: reads what image_send and image_receive recorded, with filters; never changes anything."""

from __future__ import annotations

import base64
import os

from ansible_collections.qkd.nfv.plugins.module_utils import audit
from ansible_collections.qkd.nfv.plugins.modules import audit_info, image_receive, image_send


def test_both_ends_of_a_transfer_by_key_id(run_main, connection, pki, kme, tmp_path, monkeypatch):
    trail = tmp_path / "audit.jsonl"
    monkeypatch.setenv(audit.ENV, str(trail))
    key = base64.b64encode(os.urandom(32)).decode()
    (tmp_path / "image").write_bytes(os.urandom(5000))
    for number in (1, 2):
        run_main(image_send.main, dict(src=str(tmp_path / "image"), dest=str(tmp_path / ("q%d" % number)),
                                       key=key, key_id="key-%d" % number, master_sae_id="sae-a"))
    # The DC's KME never delivered key-1 (it was not taken from it): the receive fails, and says so.
    receiver = {k: v for k, v in connection.items() if v is not None}
    receiver.update(client_cert=pki.path("sae-b"), client_key=pki.key("sae-b"))
    run_main(image_receive.main, dict(receiver, src=str(tmp_path / "q1"), dest=str(tmp_path / "out")))
    everything = run_main(audit_info.main, dict())
    assert everything["path"] == str(trail) and everything["count"] == 3 and everything["malformed"] == 0
    assert not everything["changed"]
    first = run_main(audit_info.main, dict(key_id="KEY-1"))
    assert [(r["actor"], r["result"]) for r in first["records"]] == [("image_send", "ok"), ("image_receive", "failed")]
    assert first["records"][1]["reason"] == "unknown_key_id" and first["records"][1]["key_taken"] is False
    newest = run_main(audit_info.main, dict(actor="image_send", limit=1))
    assert newest["count"] == 2 and [r["key_ids"] for r in newest["records"]] == [["key-2"]]
    assert run_main(audit_info.main, dict(result="refused"))["records"] == []
    assert key not in trail.read_text() and base64.b64decode(key).hex() not in trail.read_text()


def test_a_missing_trail_has_no_records_and_bad_limit_fails(run_main, tmp_path):
    result = run_main(audit_info.main, dict(path=str(tmp_path / "none.jsonl"), _ansible_check_mode=True))
    assert result["records"] == [] and result["count"] == 0 and not os.path.exists(str(tmp_path / "none.jsonl"))
    result = run_main(audit_info.main, dict(path=str(tmp_path / "none.jsonl"), limit=-1))
    assert result["failed"] and result["option"] == "limit"
