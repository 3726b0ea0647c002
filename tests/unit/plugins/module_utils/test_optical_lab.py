# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpticalClient against the lab's switch emulator: a second, independent far side of the wire."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from ansible_collections.qkd.nfv.plugins.module_utils.optical import (
    OpticalClient, OpticalError, desired_pairs, plan_changes, wait_for_light)

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / 'lab'))
restconf = pytest.importorskip('qkdlab.restconf')
from qkdlab.switch import Switch  # noqa: E402  pylint: disable=wrong-import-position,import-error
from qkdlab.topology import Endpoint, SwitchSpec  # noqa: E402  pylint: disable=wrong-import-position,import-error


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture
def lab_switch(tmp_path):
    spec = SwitchSpec(node_id='polatis-1', ports=16, insertion_loss_db=1.5, switching_ms=25,
                      odl=Endpoint(_free_port(), 'admin', 'admin'), native=Endpoint(_free_port(), 'admin', 'root'),
                      light={1: -3.0, 2: -3.0, 3: -3.0, 4: 0.0}, cross_connects=((1, 9),))
    switch = Switch(spec, tmp_path / 'switch.json')
    with restconf.RestconfServer(switch, spec, 'odl') as odl, restconf.RestconfServer(switch, spec, 'native') as native:
        yield {'odl': odl.url, 'polatis': native.url}


CLIENTS = [
    pytest.param(dict(backend='odl', api='rfc8040', password='admin'), id='odl-rfc8040'),
    pytest.param(dict(backend='odl', api='draft02', password='admin'), id='odl-draft02'),
    pytest.param(dict(backend='polatis', password='root'), id='polatis'),
]


def _client(lab_switch, **options):
    return OpticalClient(lab_switch[options['backend']], node_id='polatis-1', username='admin', timeout=5,
                         **options)


@pytest.mark.parametrize('options', CLIENTS)
def test_the_lab_switch_speaks_what_the_client_expects(lab_switch, options):
    client = _client(lab_switch, **options)
    assert client.pairs() == {1: 9}
    current = client.pairs()
    client.apply(plan_changes(current, desired_pairs({5: 13, 6: 14}, current, 'merged')))
    current = client.pairs()
    client.apply(plan_changes(current, desired_pairs({5: 14, 6: 13}, current, 'merged')))  # a swap
    assert client.pairs() == {1: 9, 5: 14, 6: 13}
    with pytest.raises(OpticalError) as info:
        client.create(5, 15)
    assert (info.value.status, info.value.tag) == (409, 'data-exists')
    with pytest.raises(OpticalError) as info:
        client.replace(7, 9)
    assert (info.value.status, info.value.tag) == (409, 'in-use')
    client.set_port_state(disable=[7])
    assert client.ports()[7] == 'DISABLED'
    client.set_port_state(enable=[7])
    client.delete(5)
    client.delete(6)
    with pytest.raises(OpticalError) as info:
        client.delete(6)
    assert info.value.tag == 'data-missing'
    assert client.pairs() == {1: 9}
    assert wait_for_light(client, [9], threshold=-30.0, timeout=2) == {9: pytest.approx(-4.5)}


@pytest.mark.parametrize('api', ['rfc8040', 'draft02'])
def test_the_lab_controller_rejects_a_wrong_node_and_wrong_credentials(lab_switch, api):
    with pytest.raises(OpticalError, match="node_id 'polatis-2'"):
        OpticalClient(lab_switch['odl'], node_id='polatis-2', username='admin', password='admin', api=api).pairs()
    with pytest.raises(OpticalError) as info:
        OpticalClient(lab_switch['odl'], node_id='polatis-1', username='admin', password='nope', api=api).pairs()
    assert info.value.status == 401
