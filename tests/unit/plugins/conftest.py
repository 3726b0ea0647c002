# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures: a test PKI (once per session) and a fresh in-process HTTPS KME per test."""

from __future__ import annotations

import pytest

from kme_server import KME_ID, KmeServer, TestPki


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return TestPki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def make_kme(pki):
    """make_kme(**KmeServer options) -> a running KmeServer, stopped after the test."""
    servers = []

    def make(**options):
        server = KmeServer(pki, **options)
        servers.append(server)
        return server.__enter__()
    yield make
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def kme(make_kme):
    return make_kme()


@pytest.fixture
def connection(pki, kme):
    """Client settings for SAE sae-a against the default test KME (module option names)."""
    return {"kme_url": kme.url, "kme_id": KME_ID, "ca_cert": pki.path("ca"),
            "client_cert": pki.path("sae-a"), "client_key": pki.key("sae-a"),
            "validate_hostname": True, "timeout": 5, "retries": 2, "ciphers": None, "method": "POST"}


@pytest.fixture
def run_main(capfd):
    """run_main(module.main, args) -> the module's JSON result (exit_json or fail_json)."""
    import json

    from ansible.module_utils.testing import patch_module_args

    def run(main, args):
        capfd.readouterr()
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                main()
        out = capfd.readouterr().out
        return json.loads(out)
    return run
