# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""qkd_scheduler ticks against a real HTTPS KME (mutual TLS) and a real RESTCONF switch on 127.0.0.1."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.qkd.nfv.plugins.module_utils.scheduler import TimeShareScheduler
from ansible_collections.qkd.nfv.plugins.modules import qkd_scheduler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'module_utils'))
from test_optical_switch import SwitchServer  # noqa: E402  pylint: disable=wrong-import-position
from kme_server import KME_ID, KmeServer  # noqa: E402  pylint: disable=wrong-import-position

BOB = 9
LINKS = [
    {'name': 'near', 'alice_port': 1, 'slave_sae_id': 'sae-b', 'length_km': 0, 'demand_bps': 20},
    {'name': 'mid', 'alice_port': 2, 'slave_sae_id': 'sae-c', 'length_km': 10, 'demand_bps': 20},
    {'name': 'far', 'alice_port': 3, 'slave_sae_id': 'sae-d', 'length_km': 25, 'demand_bps': 20},
]


class StoreKme(KmeServer):
    """The test KME, with a store per slave SAE that the test sets (in keys of 256 bits)."""

    __test__ = False

    def __init__(self, pki, **options):
        super().__init__(pki, **options)
        self.stores = {'sae-b': 4000, 'sae-c': 4000, 'sae-d': 4000}

    def status_body(self, caller, slave):
        body = super().status_body(caller, slave)
        body.update(stored_key_count=self.stores.get(slave, 0), max_key_count=10000)
        return body


@pytest.fixture
def kme(pki):
    with StoreKme(pki) as server:
        yield server


@pytest.fixture
def switch():
    with SwitchServer(pairs={1: BOB}) as server:
        yield server


@pytest.fixture
def state_file(tmp_path):
    return str(tmp_path / 'scheduler.json')


def options(kme, switch, state_file, pki, **extra):
    args = dict(
        controller_url=switch.url, node_id='polatis-1', username='admin', password='admin',
        kme=dict(kme_url=kme.url, kme_id=KME_ID, ca_cert=pki.path('ca'), client_cert=pki.path('sae-a'),
                 client_key=pki.key('sae-a'), timeout=5, retries=0),
        bob_port=BOB, links=[dict(link) for link in LINKS], state_file=state_file, time_scale=1000.0)
    args.update(extra)
    return args


def tick(run_main, args, check=False, diff=False):
    return run_main(qkd_scheduler.main, dict(args, _ansible_check_mode=check, _ansible_diff=diff))


# -- ticks that work ---------------------------------------------------------------------------

def test_first_tick_observes_learns_nothing_yet_and_saves_its_state(run_main, kme, switch, state_file, pki):
    result = tick(run_main, options(kme, switch, state_file, pki))
    assert 'failed' not in result, result
    assert result['changed'] is False and result['decision']['switch'] is False
    assert result['bob'] == {'port': BOB, 'before': 'near', 'after': 'near'}
    assert result['links']['mid']['stored_bits'] == 4000 * 256
    assert result['links']['far']['capacity_bits'] == 10000 * 256
    assert result['links']['far']['init_time_s'] == pytest.approx(1264.9, abs=0.1)
    assert result['alarm'] is None and switch.writes() == []
    assert [r['sae_id'] for r in kme.requests] == ['sae-b', 'sae-c', 'sae-d']
    mode = stat.S_IMODE(os.stat(state_file).st_mode)
    assert mode == 0o600
    with open(state_file, encoding='utf-8') as handle:
        saved = json.load(handle)
    assert saved['bob_port'] == BOB and saved['scheduler']['kind'] == 'qkd.nfv.scheduler'


def test_an_unconnected_bob_is_connected_to_the_most_critical_link(run_main, kme, pki, state_file):
    kme.stores.update({'sae-b': 9000, 'sae-c': 60, 'sae-d': 3000})
    with SwitchServer(pairs={}) as switch:
        result = tick(run_main, options(kme, switch, state_file, pki), diff=True)
        assert result['changed'] is True, result
        assert result['decision']['link'] == 'mid' and 'most critical' in result['decision']['reason']
        assert switch.pairs == {2: BOB}
        assert [c['method'] for c in result['commands']] == ['POST']
        assert result['diff'] == {'before': '', 'after': '2 -> 9\n', 'before_header': 'bob port 9',
                                  'after_header': 'bob port 9'}
        again = tick(run_main, options(kme, switch, state_file, pki))
        assert again['changed'] is False and 'initialising' in again['decision']['reason']
        assert again['links']['mid']['state'] == 'initialising'


def test_check_mode_decides_but_switches_and_saves_nothing(run_main, kme, pki, state_file):
    kme.stores.update({'sae-b': 9000, 'sae-c': 60, 'sae-d': 3000})
    with SwitchServer(pairs={}) as switch:
        result = tick(run_main, options(kme, switch, state_file, pki), check=True, diff=True)
        assert result['changed'] is True and result['decision']['link'] == 'mid'
        assert [c['method'] for c in result['commands']] == ['POST']
        assert result['diff']['after'] == '2 -> 9\n'
        assert switch.writes() == [] and switch.pairs == {}
        assert not os.path.exists(state_file)


def test_the_bob_is_re_pointed_when_a_link_is_about_to_run_dry(run_main, kme, switch, state_file, pki):
    # near is connected and its store rises between two ticks (it is generating); far holds
    # 10 kbit at 20 b/s, 500 s of key, and needs 1265 s to initialise: it must be served now.
    kme.stores.update({'sae-b': 3000, 'sae-c': 9000, 'sae-d': 40})
    args = options(kme, switch, state_file, pki)
    first = tick(run_main, args)
    assert first['changed'] is False and 'waiting to see it make key' in first['decision']['reason']
    kme.stores.update({'sae-b': 3500})
    time.sleep(0.02)
    result = tick(run_main, args, diff=True)
    assert result['changed'] is True, result
    assert result['decision']['link'] == 'far' and 'far must be served now' in result['decision']['reason']
    assert switch.pairs == {3: BOB}
    assert result['diff']['before'] == '1 -> 9\n' and result['diff']['after'] == '3 -> 9\n'
    assert result['bob'] == {'port': BOB, 'before': 'near', 'after': 'far'}
    with open(state_file, encoding='utf-8') as handle:
        assert json.load(handle)['scheduler']['active'] == 'far'


def test_a_raised_alarm_fails_the_task_only_with_fail_on_alarm(run_main, kme, switch, state_file, pki):
    # A saved state whose alarm is raised, with demand that keeps it raised.
    heavy = [dict(link, demand_bps=90) for link in LINKS]
    scheduler = TimeShareScheduler([{k: v for k, v in link.items() if k not in ('alice_port', 'slave_sae_id')}
                                    for link in heavy])
    saved = scheduler.to_dict()
    saved['alarm'] = True
    with open(state_file, 'w', encoding='utf-8') as handle:
        json.dump({'bob_port': BOB, 'time_scale': 1000.0, 'scheduler': saved}, handle)
    quiet = tick(run_main, options(kme, switch, state_file, pki, links=heavy))
    assert 'failed' not in quiet and 'add a receiver' in quiet['alarm']
    loud = tick(run_main, options(kme, switch, state_file, pki, links=heavy, fail_on_alarm=True))
    assert loud['failed'] is True and loud['msg'] == loud['alarm'] and 'add a receiver' in loud['msg']
    assert loud['decision']['link'] and 'exception' not in loud


def test_a_link_added_later_starts_from_its_priors(run_main, kme, switch, state_file, pki):
    tick(run_main, options(kme, switch, state_file, pki, links=LINKS[:2]))
    result = tick(run_main, options(kme, switch, state_file, pki))
    assert 'failed' not in result and set(result['links']) == {'near', 'mid', 'far'}
    assert result['links']['far']['visits'] == 0


# -- bad input: clear messages, nothing touched ----------------------------------------------------

@pytest.mark.parametrize('links, message', [
    ([LINKS[0], {'name': 'mid', 'alice_port': 2, 'slave_sae_id': 'sae-c'}],
     'links[1] (mid): no priors; give length_km, or both init_time_s and key_rate_bps'),
    ([LINKS[0], dict(LINKS[1], alice_port=1)], 'near and mid are both on alice_port 1'),
    ([LINKS[0], dict(LINKS[1], name='near')], 'two links are named near'),
    ([LINKS[0], dict(LINKS[1], alice_port=BOB)], 'mid has alice_port 9, which is bob_port'),
])
def test_bad_links_are_refused_before_anything_is_read(run_main, kme, switch, state_file, pki, links, message):
    result = tick(run_main, options(kme, switch, state_file, pki, links=links))
    assert result['failed'] is True and message in result['msg'], result['msg']
    assert 'exception' not in result
    assert kme.count() == 0 and switch.log == [] and not os.path.exists(state_file)


def test_a_link_without_a_kme_to_read_is_refused(run_main, kme, switch, state_file, pki):
    args = options(kme, switch, state_file, pki)
    args['kme'] = {'kme_url': kme.url}
    result = tick(run_main, args)
    assert result['failed'] is True
    assert "links[0] (near): no kme_id, client_cert, client_key to read its store: set kme.kme_id" in result['msg']


@pytest.mark.parametrize('content, message', [
    ('{not json', 'is not a scheduler state (not JSON'),
    (json.dumps({'pairs': {'1': 9}}), 'is not a scheduler state: point state_file at a file of its own'),
    (json.dumps({'bob_port': 9, 'time_scale': 1000.0, 'scheduler': {'kind': 'qkd.nfv.scheduler', 'version': 7}}),
     'version 7'),
    (json.dumps({'bob_port': 12, 'time_scale': 1000.0,
                 'scheduler': TimeShareScheduler([{'name': 'near', 'length_km': 0}]).to_dict()}),
     'belongs to the Bob on port 12'),
])
def test_a_corrupt_or_foreign_state_file_is_refused_and_kept(run_main, kme, switch, state_file, pki,
                                                             content, message):
    with open(state_file, 'w', encoding='utf-8') as handle:
        handle.write(content)
    result = tick(run_main, options(kme, switch, state_file, pki))
    assert result['failed'] is True and message in result['msg'], result['msg']
    assert 'remove %s to start learning afresh' % state_file in result['msg'] or 'remove this one' in result['msg']
    assert 'exception' not in result and switch.writes() == []
    with open(state_file, encoding='utf-8') as handle:
        assert handle.read() == content


def test_a_kme_that_does_not_answer_leaves_the_bob_as_it_is(run_main, kme, switch, state_file, pki):
    tick(run_main, options(kme, switch, state_file, pki))
    with open(state_file, encoding='utf-8') as handle:
        saved = handle.read()
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(('127.0.0.1', 0))
        dead = 'https://127.0.0.1:%d' % probe.getsockname()[1]
    links = [dict(link) for link in LINKS]
    links[2]['kme'] = {'kme_url': dead}
    result = tick(run_main, options(kme, switch, state_file, pki, links=links))
    assert result['failed'] is True and 'exception' not in result
    assert result['msg'].startswith('link far: cannot read its key store: ')
    assert result['msg'].endswith('the Bob was left connected as it was')
    assert result['link'] == 'far'
    assert switch.writes() == [] and switch.pairs == {1: BOB}
    with open(state_file, encoding='utf-8') as handle:
        assert handle.read() == saved


def test_a_bob_on_a_foreign_port_is_not_taken_over(run_main, kme, state_file, pki):
    with SwitchServer(pairs={4: BOB}) as switch:
        result = tick(run_main, options(kme, switch, state_file, pki))
        assert result['failed'] is True
        assert "bob_port 9 is connected to port 4, which is no link's alice_port" in result['msg']
        assert switch.writes() == [] and switch.pairs == {4: BOB}


def test_a_second_loop_cannot_tick_while_the_state_is_locked(run_main, kme, switch, state_file, pki):
    with open(state_file + '.lock', 'a+', encoding='utf-8') as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = tick(run_main, options(kme, switch, state_file, pki, lock_timeout=0.3))
    assert result['failed'] is True and 'is locked by another scheduler tick' in result['msg']
    assert kme.count() == 0 and switch.log == []
    assert 'failed' not in tick(run_main, options(kme, switch, state_file, pki))


def test_a_missing_state_directory_is_named(run_main, kme, switch, tmp_path, pki):
    result = tick(run_main, options(kme, switch, str(tmp_path / 'nowhere' / 's.json'), pki))
    assert result['failed'] is True and 'directory %s does not exist' % (tmp_path / 'nowhere') in result['msg']


def test_check_mode_needs_no_state_directory(run_main, kme, switch, tmp_path, pki):
    result = tick(run_main, options(kme, switch, str(tmp_path / 'nowhere' / 's.json'), pki), check=True)
    assert 'failed' not in result and result['bob']['before'] == 'near'
    assert not (tmp_path / 'nowhere').exists()
