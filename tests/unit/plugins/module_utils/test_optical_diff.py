# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure half of optical.py: config checks, desired pairs per state, the order of changes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.qkd.nfv.plugins.module_utils.optical import (
    Change, OpticalError, check_ports, desired_pairs, normalize_config, pairs_as_list, pairs_as_text, plan_changes)

BOB = {1: 9}


# -- config checks


def test_normalize_config_keeps_pairs_by_ingress():
    assert normalize_config([{'ingress': 5, 'egress': 13}, {'ingress': 6, 'egress': 14}], 'merged') == {5: 13, 6: 14}
    assert normalize_config(None, 'merged') == {}
    assert normalize_config([{'ingress': 5}], 'deleted') == {5: None}


@pytest.mark.parametrize('config, state, words', [
    ([{'ingress': 5, 'egress': 13}, {'ingress': 5, 'egress': 14}], 'merged', ['config[1]', 'ingress 5', 'twice']),
    ([{'ingress': 5, 'egress': 13}, {'ingress': 6, 'egress': 13}], 'replaced', ['config[1]', 'egress 13', '5->13']),
    ([{'ingress': 7, 'egress': 7}], 'merged', ['config[0]', 'port 7', 'itself']),
    ([{'ingress': 0, 'egress': 7}], 'merged', ['config[0].ingress', '0', '1-65535']),
    ([{'ingress': 5, 'egress': 70000}], 'merged', ['config[0].egress', '70000']),
    ([{'ingress': 5}], 'merged', ['config[0].egress', 'required', 'state=merged']),
    ([{'ingress': True, 'egress': 5}], 'merged', ['config[0].ingress', 'True']),
])
def test_normalize_config_names_the_entry_and_the_ports(config, state, words):
    with pytest.raises(OpticalError) as info:
        normalize_config(config, state)
    for word in words:
        assert word in info.value.msg


# -- desired pairs per state


def test_merged_adds_and_repoints_and_keeps_the_rest():
    assert desired_pairs({5: 13}, BOB, 'merged') == {1: 9, 5: 13}
    assert desired_pairs({5: 14}, {1: 9, 5: 13}, 'merged') == {1: 9, 5: 14}
    assert desired_pairs({}, {1: 9, 5: 13}, 'merged') == {1: 9, 5: 13}


def test_merged_refuses_a_port_held_by_another_pair_and_says_how_to_take_it():
    with pytest.raises(OpticalError) as info:
        desired_pairs({2: 9}, BOB, 'merged')
    assert 'port 9' in info.value.msg and 'existing pair 1->9' in info.value.msg and '2->9' in info.value.msg
    assert 'state=replaced' in info.value.msg


def test_merged_refuses_an_ingress_that_is_another_pair_s_egress():
    with pytest.raises(OpticalError, match='port 9 would be in two pairs'):
        desired_pairs({9: 14}, BOB, 'merged')


def test_replaced_takes_over_the_ports_it_names():
    assert desired_pairs({2: 9}, {1: 9, 5: 13}, 'replaced') == {2: 9, 5: 13}
    assert desired_pairs({5: 14}, {1: 9, 5: 13, 6: 14}, 'replaced') == {1: 9, 5: 14}


def test_overridden_is_exactly_the_config():
    assert desired_pairs({1: 9, 5: 13}, {1: 9, 6: 14, 7: 15}, 'overridden') == {1: 9, 5: 13}
    assert desired_pairs({}, {1: 9}, 'overridden') == {}


def test_deleted_removes_named_pairs_only_when_the_egress_matches():
    current = {1: 9, 5: 13, 6: 14}
    assert desired_pairs({5: None}, current, 'deleted') == {1: 9, 6: 14}
    assert desired_pairs({5: 13, 6: 15}, current, 'deleted') == {1: 9, 6: 14}
    assert desired_pairs({7: None}, current, 'deleted') == current
    assert desired_pairs(None, current, 'deleted') == {}


# -- order of changes


def test_plan_is_empty_when_nothing_differs():
    assert plan_changes({1: 9, 5: 13}, {1: 9, 5: 13}) == []


def test_plan_deletes_before_it_reuses_a_port():
    assert plan_changes({1: 9, 5: 13}, {1: 9, 6: 13}) == [
        Change('delete', 5, None, 13), Change('create', 6, 13, None)]


def test_plan_repoints_with_one_put():
    assert plan_changes({1: 9}, {1: 10}) == [Change('replace', 1, 10, 9)]


def test_plan_frees_an_egress_before_another_pair_moves_onto_it():
    assert plan_changes({5: 13, 6: 14}, {5: 14, 6: 15}) == [
        Change('replace', 6, 15, 14), Change('replace', 5, 14, 13)]


def test_plan_untangles_a_swap_by_deleting_one_pair():
    assert plan_changes({5: 13, 6: 14}, {5: 14, 6: 13}) == [
        Change('delete', 5, None, 13), Change('replace', 6, 13, 14), Change('create', 5, 14, None)]


def _replay(current, changes):
    """Apply changes as a switch would, failing if a step puts a port in two pairs."""
    state = dict(current)
    for change in changes:
        if change.action == 'delete':
            assert state.pop(change.ingress) == change.previous
            continue
        assert state.get(change.ingress) == change.previous
        assert (change.action == 'create') == (change.previous is None)
        state[change.ingress] = change.egress
        ports = [port for pair in state.items() for port in pair]
        assert len(ports) == len(set(ports)), 'a port in two pairs after %s' % (change,)
    return state


def _pair_sets(ports):
    """Valid pair sets on a few ports: every port in one pair at most."""
    return st.permutations(ports).flatmap(
        lambda order: st.integers(0, len(order) // 2).map(
            lambda n: {order[2 * k]: order[2 * k + 1] for k in range(n)}))


@settings(max_examples=300, deadline=None)
@given(_pair_sets(list(range(1, 9))), _pair_sets(list(range(1, 9))))
def test_any_plan_reaches_the_target_without_a_port_in_two_pairs(current, final):
    changes = plan_changes(current, final)
    assert _replay(current, changes) == final
    # No more steps than needed: one per differing ingress, plus one per cycle it breaks.
    differing = set(current) ^ set(final) | {i for i in set(current) & set(final) if current[i] != final[i]}
    assert len(changes) >= len(differing)
    assert len([c for c in changes if c.action != 'delete']) == len({i for i in final if current.get(i) != final[i]})


# -- port checks and shapes


def test_check_ports_names_the_missing_or_disabled_port():
    ports = {port: 'ENABLED' for port in range(1, 17)}
    ports[5] = 'DISABLED'
    with pytest.raises(OpticalError) as info:
        check_ports([Change('create', 6, 40, None)], ports, 'polatis-1')
    assert 'egress 40' in info.value.msg and 'polatis-1' in info.value.msg and '1-16' in info.value.msg
    with pytest.raises(OpticalError) as info:
        check_ports([Change('replace', 5, 13, 12)], ports, 'polatis-1')
    assert 'ingress 5' in info.value.msg and 'DISABLED' in info.value.msg
    check_ports([Change('delete', 5, None, 13)], ports, 'polatis-1')  # freeing a disabled port is fine


def test_shapes_for_results_and_diff():
    assert pairs_as_list({5: 13, 1: 9}) == [{'ingress': 1, 'egress': 9}, {'ingress': 5, 'egress': 13}]
    assert pairs_as_text({5: 13, 1: 9}) == '1 -> 9\n5 -> 13\n'
