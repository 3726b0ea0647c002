# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cross_connect module end to end against a RESTCONF switch on a real socket."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.qkd.nfv.plugins.modules import cross_connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'module_utils'))
from test_optical_switch import Fault, SwitchServer  # noqa: E402  pylint: disable=wrong-import-position

BOB = {1: 9}


@pytest.fixture
def switch():
    with SwitchServer(pairs=BOB, light={1: -3.0, 2: -3.0}) as server:
        yield server


def call(capfd, switch, check=False, diff=False, **args):
    """Run the module once; its JSON result."""
    options = dict(controller_url=switch.url, node_id='polatis-1', username='admin', password='admin')
    options.update(args)
    options.update(_ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(options):
        with pytest.raises(SystemExit):
            cross_connect.main()
    return json.loads(capfd.readouterr().out)


def four_passes(capfd, switch, **args):
    """check mode, real, check mode again, real again: the four results."""
    return [call(capfd, switch, check=check, diff=True, **args) for check in (True, False, True, False)]


def pairs(result_list):
    return {item['ingress']: item['egress'] for item in result_list}


def test_merged_in_four_passes(capfd, switch):
    first, real, check_again, real_again = four_passes(capfd, switch, config=[{'ingress': 5, 'egress': 13}])
    assert first['changed'] and pairs(first['after']) == {1: 9, 5: 13}
    assert [c['method'] for c in first['commands']] == ['POST']
    assert first['commands'][0]['body'] == {'optical-switch:pair': [{'ingress': 5, 'egress': 13}]}
    assert first['diff']['before'] == '1 -> 9\n' and first['diff']['after'] == '1 -> 9\n5 -> 13\n'
    assert real['changed'] and real['commands'] == first['commands']
    assert pairs(real['before']) == BOB and pairs(real['after']) == {1: 9, 5: 13}
    assert not check_again['changed'] and check_again['commands'] == []
    assert not real_again['changed'] and real_again['commands'] == []
    assert switch.pairs == {1: 9, 5: 13}
    assert len(switch.writes()) == 1


def test_check_mode_writes_nothing(capfd, switch):
    result = call(capfd, switch, check=True, state='overridden', config=[{'ingress': 6, 'egress': 14}])
    assert result['changed'] and pairs(result['after']) == {6: 14}
    assert [c['method'] for c in result['commands']] == ['DELETE', 'POST']
    assert switch.writes() == [] and switch.pairs == BOB


def test_merged_repoints_an_ingress_with_one_put(capfd, switch):
    call(capfd, switch, config=[{'ingress': 5, 'egress': 13}])
    result = call(capfd, switch, config=[{'ingress': 5, 'egress': 14}])
    assert result['changed'] and [c['method'] for c in result['commands']] == ['PUT']
    assert switch.pairs == {1: 9, 5: 14}


def test_replaced_takes_over_an_egress_in_four_passes(capfd, switch):
    call(capfd, switch, config=[{'ingress': 5, 'egress': 13}])
    results = four_passes(capfd, switch, state='replaced', config=[{'ingress': 6, 'egress': 13}])
    assert [r['changed'] for r in results] == [True, True, False, False]
    assert [c['method'] for c in results[1]['commands']] == ['DELETE', 'POST']
    assert switch.pairs == {1: 9, 6: 13}


def test_overridden_in_four_passes_keeps_only_the_config(capfd, switch):
    call(capfd, switch, config=[{'ingress': 5, 'egress': 13}, {'ingress': 6, 'egress': 14}])
    config = [{'ingress': 1, 'egress': 9}, {'ingress': 6, 'egress': 13}, {'ingress': 7, 'egress': 15}]
    results = four_passes(capfd, switch, state='overridden', config=config)
    assert [r['changed'] for r in results] == [True, True, False, False]
    assert switch.pairs == {1: 9, 6: 13, 7: 15}
    assert pairs(results[1]['after']) == switch.pairs


def test_deleted_in_four_passes_and_only_the_named_pair(capfd, switch):
    call(capfd, switch, config=[{'ingress': 5, 'egress': 13}, {'ingress': 6, 'egress': 14}])
    results = four_passes(capfd, switch, state='deleted', config=[{'ingress': 5, 'egress': 13}, {'ingress': 6,
                                                                                                 'egress': 15}])
    assert [r['changed'] for r in results] == [True, True, False, False]
    assert switch.pairs == {1: 9, 6: 14}
    call(capfd, switch, state='deleted', config=[{'ingress': 6}])
    assert switch.pairs == BOB


def test_gathered_reads_only(capfd, switch):
    result = call(capfd, switch, state='gathered')
    assert result == {'changed': False, 'gathered': [{'ingress': 1, 'egress': 9}], 'invocation': result['invocation']}
    assert switch.writes() == []


@pytest.mark.parametrize('state, config, words', [
    ('merged', [{'ingress': 2, 'egress': 9}], ['port 9', 'existing pair 1->9', '2->9', 'state=replaced']),
    ('merged', [{'ingress': 5, 'egress': 40}], ['egress 40', 'not a port of switch polatis-1', '1-16']),
    ('merged', [{'ingress': 5, 'egress': 13}, {'ingress': 5, 'egress': 14}], ['config[1]', 'ingress 5 appears twice']),
    ('merged', [{'ingress': 5, 'egress': 13}, {'ingress': 6, 'egress': 13}], ['config[1]', 'egress 13 appears twice']),
    ('replaced', [{'ingress': 7, 'egress': 7}], ['config[0]', 'port 7', 'itself']),
    ('overridden', None, ['config is required', 'state=overridden']),
    ('gathered', [{'ingress': 5, 'egress': 13}], ['config must not be set', 'state=gathered']),
])
def test_bad_input_fails_clearly_and_changes_nothing(capfd, switch, state, config, words):
    result = call(capfd, switch, state=state, config=config)
    assert result['failed'] and 'exception' not in result
    for word in words:
        assert word in result['msg']
    assert switch.writes() == [] and switch.pairs == BOB


def test_a_disabled_port_fails_before_any_change(capfd, switch):
    switch.ports[13] = 'DISABLED'
    result = call(capfd, switch, config=[{'ingress': 5, 'egress': 14}, {'ingress': 6, 'egress': 13}])
    assert result['failed'] and 'egress 13' in result['msg'] and 'DISABLED' in result['msg']
    assert switch.writes() == [] and switch.pairs == BOB


def test_a_wrong_node_id_is_named(capfd, switch):
    result = call(capfd, switch, node_id='polatis-7', config=[{'ingress': 5, 'egress': 13}])
    assert result['failed'] and "node_id 'polatis-7'" in result['msg'] and 'exception' not in result
    assert result['http_status'] == 503 and result['error_tag'] == 'resource-denied-transport'


def test_bad_credentials_fail_without_showing_the_password(capfd, switch):
    result = call(capfd, switch, password='s3cret-wrong', config=[{'ingress': 5, 'egress': 13}])
    assert result['failed'] and result['http_status'] == 401 and 'check username and password' in result['msg']
    assert 's3cret-wrong' not in json.dumps({k: v for k, v in result.items() if k != 'invocation'})
    assert result['invocation']['module_args']['password'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'


def test_a_failure_mid_batch_puts_back_what_the_task_changed(capfd, switch):
    call(capfd, switch, config=[{'ingress': 5, 'egress': 13}])
    switch.faults.append(Fault('POST', 409, 'in-use', 'one or both ports are already in use'))
    config = [{'ingress': 5, 'egress': 14}, {'ingress': 6, 'egress': 13}]
    result = call(capfd, switch, state='merged', config=config)
    assert result['failed'] and 'undone' in result['msg'] and result['error_tag'] == 'in-use'
    assert pairs(result['before']) == {1: 9, 5: 13}
    assert switch.pairs == {1: 9, 5: 13}
    assert [entry[0] for entry in switch.writes()][-3:] == ['PUT', 'POST', 'PUT']


def test_wait_for_light(capfd, switch):
    lit = call(capfd, switch, state='replaced', config=[{'ingress': 2, 'egress': 9}], wait_for_light=True)
    assert lit['changed'] and lit['light'] == [{'ingress': 2, 'egress': 9, 'power': pytest.approx(-4.5)}]
    dark = call(capfd, switch, config=[{'ingress': 5, 'egress': 13}], wait_for_light=True, light_timeout=0.2)
    assert dark['failed'] and dark['changed'] and 'no light at egress 13' in dark['msg']
    assert pairs(dark['after']) == {2: 9, 5: 13}


def test_the_native_backend(capfd, switch):
    result = call(capfd, switch, backend='polatis', node_id=None, password='root',
                  config=[{'ingress': 5, 'egress': 13}])
    assert result['changed'] and result['commands'][0]['path'] == '/api/data/optical-switch:cross-connects'
    assert switch.pairs == {1: 9, 5: 13}


def test_connection_options_from_the_environment(capfd, switch, monkeypatch):
    monkeypatch.setenv('QKD_NFV_OPTICAL_URL', switch.url)
    monkeypatch.setenv('QKD_NFV_OPTICAL_NODE_ID', 'polatis-1')
    monkeypatch.setenv('QKD_NFV_OPTICAL_USERNAME', 'admin')
    monkeypatch.setenv('QKD_NFV_OPTICAL_PASSWORD', 'admin')
    with patch_module_args({'state': 'gathered'}):
        with pytest.raises(SystemExit):
            cross_connect.main()
    assert json.loads(capfd.readouterr().out)['gathered'] == [{'ingress': 1, 'egress': 9}]
