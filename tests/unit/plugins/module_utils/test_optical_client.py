# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpticalClient against a RESTCONF switch on real sockets: three back-ends, errors, TLS, rollback, light."""

from __future__ import annotations

import socket
import threading

import pytest

from ansible_collections.qkd.nfv.plugins.module_utils.optical import (
    Change, OpticalClient, OpticalError, optical_client_from_params, plan_changes, reconcile, wait_for_light)
from test_optical_switch import Fault, SwitchServer, make_tls

MOUNT = '/network-topology:network-topology/topology=topology-netconf/node=polatis-1/yang-ext:mount'
BACKENDS = [
    pytest.param(dict(backend='odl', api='rfc8040', username='admin', password='admin'), id='odl-rfc8040'),
    pytest.param(dict(backend='odl', api='draft02', username='admin', password='admin'), id='odl-draft02'),
    pytest.param(dict(backend='polatis', username='admin', password='root'), id='polatis'),
]


def client_for(server, **kwargs):
    options = dict(node_id='polatis-1', username='admin', password='admin', timeout=5)
    options.update(kwargs)
    return OpticalClient(server.url, **options)


@pytest.mark.parametrize('options', BACKENDS)
def test_read_create_replace_delete_on_every_backend(options):
    with SwitchServer(pairs={1: 9}) as server:
        client = client_for(server, **options)
        assert client.pairs() == {1: 9}
        assert client.pairs('nonconfig') == {1: 9}
        client.create(5, 13)
        client.replace(5, 14)
        client.replace(6, 15)
        assert client.pairs() == server.pairs == {1: 9, 5: 14, 6: 15}
        client.delete(5)
        client.delete(6)
        assert client.pairs() == {1: 9}
        client.delete(1)
        assert client.pairs() == {}  # an empty list reads as empty, whatever the back-end says (409, 404, 204)


def test_commands_are_the_rfc8040_calls():
    with SwitchServer() as server:
        client = client_for(server)
        assert client.create(5, 13) == {
            'method': 'POST', 'path': '/rests/data' + MOUNT + '/optical-switch:cross-connects',
            'body': {'optical-switch:pair': [{'ingress': 5, 'egress': 13}]}}
        assert client.delete(5) == {
            'method': 'DELETE', 'path': '/rests/data' + MOUNT + '/optical-switch:cross-connects/pair=5'}
        assert [entry[:2] for entry in server.writes()] == [
            ('POST', '/rests/data' + MOUNT + '/optical-switch:cross-connects'),
            ('DELETE', '/rests/data' + MOUNT + '/optical-switch:cross-connects/pair=5')]


def test_draft02_and_native_paths():
    with SwitchServer() as server:
        draft = client_for(server, api='draft02')
        assert draft.replace(5, 13)['path'] == ('/restconf/config/network-topology:network-topology/topology/'
                                                'topology-netconf/node/polatis-1/yang-ext:mount/'
                                                'optical-switch:cross-connects/pair/5')
        native = client_for(server, backend='polatis', password='root')
        assert native.delete(5)['path'] == '/api/data/optical-switch:cross-connects/pair=5'


@pytest.mark.parametrize('xml_errors', [False, True], ids=['json', 'xml'])
@pytest.mark.parametrize('options', BACKENDS)
def test_server_errors_keep_the_tag_and_message(options, xml_errors):
    with SwitchServer(pairs={1: 9}, xml_errors=xml_errors) as server:
        client = client_for(server, **options)
        with pytest.raises(OpticalError) as info:
            client.create(1, 10)
        error = info.value
        assert (error.status, error.tag, error.server_message) == (409, 'data-exists', 'Data already exists')
        assert 'data-exists' in info.value.msg and 'create pair 1->10' in info.value.msg
        with pytest.raises(OpticalError) as info:
            client.replace(5, 9)
        assert (info.value.status, info.value.tag) == (409, 'in-use')
        with pytest.raises(OpticalError) as info:
            client.delete(7)
        assert info.value.tag == 'data-missing'
        assert info.value.details['error_tag'] == info.value.tag
        assert server.pairs == {1: 9}


def test_bad_credentials_name_the_user():
    with SwitchServer() as server:
        with pytest.raises(OpticalError) as info:
            client_for(server, password='wrong').pairs()
        assert info.value.status == 401
        assert "username 'admin'" in info.value.msg and 'check username and password' in info.value.msg
        assert 'wrong' not in info.value.msg


@pytest.mark.parametrize('api', ['rfc8040', 'draft02'])
def test_an_unknown_node_is_named_not_read_as_empty(api):
    with SwitchServer() as server:
        with pytest.raises(OpticalError) as info:
            client_for(server, node_id='polatis-9', api=api).pairs()
        assert "node_id 'polatis-9'" in info.value.msg and 'check node_id' in info.value.msg


def test_an_unreachable_controller_is_a_clear_error():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    with pytest.raises(OpticalError) as info:
        OpticalClient('http://127.0.0.1:%d' % port, 'polatis-1', timeout=2).pairs()
    assert 'check controller_url' in info.value.msg and str(port) in info.value.msg


def test_a_silent_controller_times_out():
    with socket.socket() as listener:
        listener.bind(('127.0.0.1', 0))
        listener.listen(1)
        accepted = []
        thread = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
        thread.start()
        url = 'http://127.0.0.1:%d' % listener.getsockname()[1]
        with pytest.raises(OpticalError) as info:
            OpticalClient(url, 'polatis-1', timeout=0.3).pairs()
        assert 'timeout=0.3' in info.value.msg
        thread.join(1)
        for conn, _address in accepted:
            conn.close()


@pytest.mark.parametrize('kwargs, words', [
    (dict(url='ftp://x', node_id='n'), ['controller_url', 'ftp://x']),
    (dict(url='http://x', node_id=None), ['node_id is required']),
    (dict(url='http://x', node_id='n', backend='onos'), ["backend 'onos'"]),
    (dict(url='http://x', node_id='n', api='v3'), ["api 'v3'"]),
    (dict(url='http://x', node_id='n', timeout=0), ['timeout']),
    (dict(url='https://x', node_id='n', ca_cert='/nonexistent/ca.crt'), ['ca_cert', '/nonexistent/ca.crt']),
])
def test_bad_options_are_named(kwargs, words):
    url = kwargs.pop('url')
    with pytest.raises(OpticalError) as info:
        OpticalClient(url, **kwargs)
    for word in words:
        assert word in info.value.msg


def test_polatis_backend_needs_no_node_id():
    with SwitchServer(pairs={2: 10}) as server:
        client = OpticalClient(server.url, backend='polatis', username='admin', password='root')
        assert client.pairs() == {2: 10}


def test_from_params_maps_the_module_options():
    with SwitchServer(pairs={1: 9}) as server:
        client = optical_client_from_params(dict(
            controller_url=server.url + '/', node_id='polatis-1', username='admin', password='admin',
            backend='odl', api='rfc8040', validate_certs=True, ca_cert=None, timeout=3))
        assert client.pairs() == {1: 9}


def test_tls_with_the_right_ca(tmp_path):
    context, ca_file = make_tls(tmp_path)
    with SwitchServer(pairs={1: 9}, ssl_context=context) as server:
        assert client_for(server, ca_cert=ca_file).pairs() == {1: 9}
        with pytest.raises(OpticalError) as info:
            client_for(server).pairs()
        assert 'set ca_cert' in info.value.msg
        assert client_for(server, validate_certs=False).pairs() == {1: 9}


def test_ports_power_and_port_state():
    with SwitchServer(pairs={1: 9}, light={1: -3.0}) as server:
        client = client_for(server)
        client.set_port_state(disable=[5, 6])
        ports = client.ports()
        assert len(ports) == 16 and ports[5] == ports[6] == 'DISABLED' and ports[7] == 'ENABLED'
        client.set_port_state(enable=[5, 6])
        assert set(client.ports().values()) == {'ENABLED'}
        assert client.power(9) == pytest.approx(-4.5)
        assert client.power(13) == pytest.approx(-60.0)
        with pytest.raises(OpticalError, match='optical power of port 40'):
            client.power(40)


def test_apply_undoes_what_it_did_when_a_step_fails():
    with SwitchServer(pairs={1: 9, 5: 13, 6: 14}) as server:
        client = client_for(server)
        changes = plan_changes(server.pairs, {1: 9, 5: 15, 7: 13})
        server.faults.append(Fault('POST', 500, 'operation-failed', 'device said no'))
        with pytest.raises(OpticalError) as info:
            client.apply(changes)
        assert server.pairs == {1: 9, 5: 13, 6: 14}
        assert 'device said no' in info.value.msg and 'undone' in info.value.msg
        assert info.value.tag == 'operation-failed'
        assert info.value.details['failed_command']['method'] == 'POST'
        assert len(info.value.details['rolled_back']) == len(info.value.details['commands']) == 2


def test_apply_says_so_when_putting_back_fails_too():
    with SwitchServer(pairs={5: 13}) as server:
        client = client_for(server)
        server.faults.append(Fault('PUT', 500, 'operation-failed', 'second step fails', skip=1))
        server.faults.append(Fault('PUT', 500, 'operation-failed', 'undo fails'))
        with pytest.raises(OpticalError) as info:
            client.apply([Change('replace', 5, 14, 13), Change('replace', 6, 15, None)])
        assert 'half-changed' in info.value.msg and 'state=gathered' in info.value.msg
        assert server.pairs == {5: 14, 6: 15} or server.pairs == {5: 14}


def test_wait_for_light_polls_until_the_pair_has_settled():
    with SwitchServer(light={2: -3.0}, settle_s=0.3) as server:
        client = client_for(server)
        client.create(2, 12)
        assert wait_for_light(client, [12], threshold=-30.0, timeout=5, interval=0.05) == {12: pytest.approx(-4.5)}
        client.create(5, 13)
        with pytest.raises(OpticalError) as info:
            wait_for_light(client, [12, 13], threshold=-30.0, timeout=0.2, interval=0.05)
        assert 'egress 13' in info.value.msg and '-60.00 dBm' in info.value.msg and '12' not in info.value.msg.split(':')[0]


def test_reconcile_repoints_the_bob_to_another_alice():
    with SwitchServer(pairs={1: 9}, light={1: -3.0, 2: -3.0}) as server:
        client = client_for(server)
        preview = reconcile(client, {2: 9}, 'replaced', check_mode=True)
        assert preview.before == {1: 9} and preview.after == {2: 9} and server.writes() == []
        outcome = reconcile(client, {2: 9}, 'replaced')
        assert [c['method'] for c in outcome.commands] == ['DELETE', 'POST']
        assert outcome.after == server.pairs == {2: 9}
        assert reconcile(client, {2: 9}, 'replaced').commands == []
        with pytest.raises(OpticalError, match='egress 40'):
            reconcile(client, {3: 40}, 'merged')
        assert server.pairs == {2: 9}


def test_apply_removes_the_pairs_it_created_when_a_later_step_fails():
    with SwitchServer(pairs={1: 9}) as server:
        client = client_for(server)
        server.faults.append(Fault('POST', 409, 'in-use', 'one or both ports are already in use', skip=1))
        with pytest.raises(OpticalError) as info:
            client.apply([Change('create', 5, 13, None), Change('create', 6, 14, None)])
        assert server.pairs == {1: 9}
        assert [command['method'] for command in info.value.details['rolled_back']] == ['DELETE']
