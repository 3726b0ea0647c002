# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The time-sharing policy on hand-built traces: it sees stored bits and the connection only."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError
from ansible_collections.qkd.nfv.plugins.module_utils.scheduler import (
    LinkPrior, SchedulerError, TimeShareScheduler, model_init_time_s, model_key_rate_bps)

KEY = 256
LAB = {"near": 0.0, "mid": 10.0, "far": 25.0}  # the lab's Alices: node2, node3, node4


class Bench:
    """A deterministic stand-in for the test-bed: one Bob, keys in whole 256-bit blocks.

    Each link initialises for its true init time after every connection, then makes key at its
    true rate; demand is constant; a full store discards key; an empty one turns requests away.
    """

    def __init__(self, init_time, rate, demand, capacity=2e6, fill=0.5, active=None):
        self.init_time, self.rate, self.demand = init_time, rate, demand
        self.capacity = capacity
        self.store = {name: capacity * fill for name in init_time}
        self.active, self.ready_at = active, 0.0
        self.now = 0.0
        self.switches = []   # (time, link)
        self.gains = []      # bits each finished visit added to its store
        self.arrived_with = 0.0
        self.dry = {name: 0.0 for name in init_time}  # seconds with requests turned away

    def observed(self):
        return {name: float(int(bits // KEY) * KEY) for name, bits in self.store.items()}

    def connect(self, link):
        if self.switches:  # what the visit that ends now gained
            self.gains.append(self.store[self.active] - self.arrived_with)
        self.active, self.ready_at = link, self.now + self.init_time[link]
        self.arrived_with = self.store[link]
        self.switches.append((self.now, link))

    def advance(self, dt):
        for name in self.store:
            made = 0.0
            if name == self.active:
                made = self.rate[name] * max(0.0, min(dt, self.now + dt - self.ready_at))
            want = self.demand[name] * dt
            level = self.store[name] + made - want
            if level < 0:
                self.dry[name] += dt
            self.store[name] = min(self.capacity, max(0.0, level))
        self.now += dt

    def run(self, scheduler, seconds, tick=10.0):
        decisions = []
        end = self.now + seconds
        while self.now < end:
            decision = scheduler.tick(self.now, self.observed(), self.active)
            decisions.append(decision)
            if decision.switch:
                self.connect(decision.link)
            self.advance(tick)
        return decisions


def lab_bench(load, **kwargs):
    """The lab's three Alices (0, 10, 25 km) with equal demand at the given load."""
    rate = {name: model_key_rate_bps(km) for name, km in LAB.items()}
    share = load / sum(1 / r for r in rate.values())
    return Bench({name: model_init_time_s(km) for name, km in LAB.items()}, rate,
                 {name: share for name in LAB}, **kwargs)


def lab_scheduler(capacity=2e6, **priors):
    return TimeShareScheduler([dict({"name": name, "length_km": km, "capacity_bits": capacity}, **priors)
                               for name, km in LAB.items()])


# -- choosing the link -----------------------------------------------------------------------

def test_an_unconnected_bob_goes_to_the_most_critical_link():
    scheduler = TimeShareScheduler([
        {"name": "a", "length_km": 0, "demand_bps": 50},
        {"name": "b", "length_km": 0, "demand_bps": 50},
        {"name": "c", "length_km": 0, "demand_bps": 50}])
    decision = scheduler.tick(0.0, {"a": 1e6, "b": 2e4, "c": 5e5}, None)
    assert decision.switch and decision.link == "b"
    assert "most critical" in decision.reason


def test_the_link_about_to_run_dry_is_served_before_it_does():
    # a is a far link that will not fill up soon: only b's deadline can make the Bob leave it.
    scheduler = TimeShareScheduler([
        {"name": "a", "length_km": 25, "demand_bps": 20, "capacity_bits": 2e6},
        {"name": "b", "length_km": 0, "demand_bps": 50, "capacity_bits": 2e6},
        {"name": "c", "length_km": 0, "demand_bps": 20, "capacity_bits": 2e6}])
    bench = Bench({"a": model_init_time_s(25), "b": 400.0, "c": 400.0},
                  {"a": model_key_rate_bps(25), "b": 4000.0, "c": 4000.0},
                  {"a": 20.0, "b": 50.0, "c": 20.0}, active="a")
    bench.store = {"a": 1.0e6, "b": 60e3, "c": 1.5e6}  # b: 1200 s of key; initialising takes 400 s
    scheduler.tick(0.0, bench.observed(), "a")
    bench.advance(10.0)
    decisions = bench.run(scheduler, 1200.0)
    first = next(d for d in decisions if d.switch)
    assert first.link == "b" and "b must be served now" in first.reason
    assert bench.switches[0][0] > 400.0  # not earlier than it had to: a kept generating meanwhile
    assert bench.dry["b"] == 0.0


def test_a_link_that_can_survive_another_round_is_skipped():
    # a is full and connected. c is more critical (less autonomy) but its store would gain less
    # than an initialisation costs (a 0 km link makes 1.6 Mbit in its 400 s): skipped. b has room.
    scheduler = TimeShareScheduler([{"name": "a", "length_km": 0, "demand_bps": 10, "capacity_bits": 2e6},
                                    {"name": "b", "length_km": 0, "demand_bps": 10, "capacity_bits": 2e6},
                                    {"name": "c", "length_km": 0, "demand_bps": 20, "capacity_bits": 2e6}])
    scheduler.tick(0.0, {"a": 1.99e6, "b": 0.3e6, "c": 1.0e6}, "a")
    decision = scheduler.tick(500.0, {"a": 2.0e6, "b": 0.295e6, "c": 0.99e6}, "a")
    assert decision.switch and decision.link == "b" and "full" in decision.reason
    later = scheduler.tick(510.0, {"a": 2.0e6, "b": 0.295e6, "c": 0.99e6}, "b")
    assert not later.switch  # and b is not left again while it initialises


def test_the_bob_stays_connected_when_no_link_needs_key():
    scheduler = TimeShareScheduler([{"name": n, "length_km": 0, "demand_bps": 10, "capacity_bits": 2e6}
                                    for n in "abc"])
    scheduler.tick(0.0, {"a": 1.99e6, "b": 1.98e6, "c": 1.9e6}, "a")
    decision = scheduler.tick(500.0, {"a": 2.0e6, "b": 1.975e6, "c": 1.895e6}, "a")
    assert not decision.switch and decision.link == "a"
    assert "staying connected" in decision.reason


def test_an_initialising_link_is_not_abandoned():
    # The scheduler connects near (empty); far becomes critical while near initialises.
    scheduler = lab_scheduler(demand_bps=30)
    bench = lab_bench(0.3)
    bench.store = {"near": 0.0, "mid": 1.0e6, "far": 40e3}
    decisions = bench.run(scheduler, model_init_time_s(0))
    assert decisions[0].switch and decisions[0].link == "near"
    assert not any(d.switch for d in decisions[1:])
    assert all("near is initialising" in d.reason for d in decisions[1:])
    assert decisions[-1].estimates["far"]["autonomy_s"] < model_init_time_s(25)


# -- over days: no flapping, no starvation, alarms only when due ------------------------------

def test_a_feasible_load_is_served_without_flapping():
    scheduler = lab_scheduler()
    bench = lab_bench(0.6, active="near", fill=0.3)
    decisions = bench.run(scheduler, 3 * 86400.0)
    first_day = 86400.0
    assert all(seconds == 0.0 for seconds in bench.dry.values()), bench.dry
    switches = [t for t, _link in bench.switches if t >= first_day]
    assert len(switches) / 2.0 <= 24  # per day
    # No ping-pong: the Bob never leaves a link before the visit has added key to its store.
    assert len(bench.gains) > 10
    assert min(bench.gains) > 0, bench.gains
    assert all(d.alarm is None for d in decisions)


def test_rounds_visit_each_link_at_most_once():
    # At high load every store is always worth a visit, so rounds are whole permutations: any
    # three consecutive visits cover the three links.
    scheduler = lab_scheduler()
    bench = lab_bench(0.8, active="near", fill=0.3)
    bench.run(scheduler, 2 * 86400.0)
    order = [link for _time, link in bench.switches]
    assert len(order) > 12
    for window in zip(order, order[1:], order[2:]):
        assert set(window) == set(LAB), order


def test_an_overload_raises_one_persistent_alarm():
    scheduler = lab_scheduler()
    bench = lab_bench(1.2, active="near", fill=0.3)
    decisions = bench.run(scheduler, 2 * 86400.0, tick=30.0)
    raised = [i for i, (before, after) in enumerate(zip(decisions, decisions[1:]))
              if before.alarm is None and after.alarm is not None]
    assert len(raised) == 1
    assert decisions[-1].alarm is not None
    assert "add a receiver" in decisions[-1].alarm
    assert "far" in decisions[-1].alarm  # the link that cannot keep up


def test_no_alarm_below_capacity():
    scheduler = lab_scheduler()
    bench = lab_bench(0.7, active="near", fill=0.3)
    decisions = bench.run(scheduler, 2 * 86400.0, tick=30.0)
    assert all(d.alarm is None for d in decisions)
    assert 0.6 < decisions[-1].load < 0.8


# -- learning -------------------------------------------------------------------------------

def test_learned_rates_init_times_and_demand_converge_on_the_lab():
    # Priors are wrong by design: init times 40 % long, rates 35 % short, no demand prior.
    truth_init = {name: model_init_time_s(km) for name, km in LAB.items()}
    truth_rate = {name: model_key_rate_bps(km) for name, km in LAB.items()}
    scheduler = TimeShareScheduler([
        {"name": name, "init_time_s": 1.4 * truth_init[name], "key_rate_bps": 0.65 * truth_rate[name],
         "capacity_bits": 2e6} for name in LAB])
    bench = lab_bench(0.5, active="near", fill=0.3)
    decisions = bench.run(scheduler, 4 * 86400.0)
    estimates = decisions[-1].estimates
    for name in LAB:
        assert estimates[name]["init_time_s"] == pytest.approx(truth_init[name], rel=0.08), name
        assert estimates[name]["key_rate_bps"] == pytest.approx(truth_rate[name], rel=0.1), name
        assert estimates[name]["demand_bps"] == pytest.approx(bench.demand[name], rel=0.05), name
        assert estimates[name]["visits"] >= 3


def test_the_demand_of_a_link_whose_requests_wait_is_read_once_they_are_served():
    # near (0 km, 4000 b/s) is asked for 500 b/s. Its store empties while the Bob is held on far,
    # requests queue for two hours, then near is connected: after its 400 s initialisation the
    # waiting requests take every new key, so the store stays at zero for about 1000 s. Those
    # keys were all asked for since the store emptied. Read over this visit alone they would say
    # 4000 b/s; spread at once over the empty hours, a fraction of the demand (and a visit
    # planned on that fraction would end before the queue is served, confirming it).
    rate, demand, tick = 4000.0, 500.0, 10.0
    scheduler = TimeShareScheduler([{"name": "near", "length_km": 0, "capacity_bits": 2e6},
                                    {"name": "far", "length_km": 25, "capacity_bits": 2e6}])
    store, waiting, now = 1.5e6, 0.0, 0.0
    connected_at = 4000.0 + 7200.0  # near empties at 3000 s; the Bob reaches it two hours later
    draining, readings = [], []
    while now < connected_at + 3000.0:
        active = "near" if now >= connected_at else "far"
        decision = scheduler.tick(now, {"near": float(int(store // KEY) * KEY), "far": 2e6}, active)
        if active == "near":
            assert decision.link == "near"  # far is full and asks for nothing: near keeps the Bob
            readings.append((store, decision.estimates["near"]["demand_bps"]))
            if store == 0.0 and now > connected_at + 500.0:
                draining.append(now)
        made = rate * tick if now >= connected_at + 400.0 else 0.0
        waiting += demand * tick
        served = min(waiting, store + made)
        store, waiting = store + made - served, waiting - served
        now += tick
    assert 800.0 <= len(draining) * tick <= 1300.0  # the queue took the keys for that long
    # While the queue drains, the demand stays what the falling store showed before it emptied ...
    assert all(d == pytest.approx(demand, rel=0.05) for bits, d in readings if bits == 0.0)
    # ... and once the queue is served, it is read over the whole time the requests waited.
    assert readings[-1][0] > 1e6
    assert readings[-1][1] == pytest.approx(demand, rel=0.1)
    assert scheduler.to_dict()["links"][0]["unseen"] == 0.0


def test_priors_from_length_follow_the_paper_fit():
    prior = LinkPrior.from_spec({"name": "x", "length_km": 25})
    assert prior.init_time_s == pytest.approx(1264.9, abs=0.1)
    assert prior.key_rate_bps == pytest.approx(100.5, abs=0.1)
    measured = LinkPrior.from_spec({"name": "x", "length_km": 25, "init_time_s": 900, "key_rate_bps": 150})
    assert (measured.init_time_s, measured.key_rate_bps) == (900.0, 150.0)


# -- state ----------------------------------------------------------------------------------

def test_state_survives_a_json_round_trip():
    scheduler = lab_scheduler()
    bench = lab_bench(0.7, active="near", fill=0.3)
    bench.run(scheduler, 86400.0)
    copy = TimeShareScheduler.from_dict(json.loads(json.dumps(scheduler.to_dict())))
    assert copy.to_dict() == scheduler.to_dict()
    twin = Bench(bench.init_time, bench.rate, bench.demand, active=bench.active)
    twin.store, twin.now, twin.ready_at = dict(bench.store), bench.now, bench.ready_at
    for _tick in range(3000):
        a = scheduler.tick(bench.now, bench.observed(), bench.active)
        b = copy.tick(twin.now, twin.observed(), twin.active)
        assert (a.link, a.switch, a.reason, a.alarm) == (b.link, b.switch, b.reason, b.alarm)
        for sim, decision in ((bench, a), (twin, b)):
            if decision.switch:
                sim.connect(decision.link)
            sim.advance(10.0)


def test_restoring_with_new_links_keeps_what_was_learned_of_the_others():
    scheduler = lab_scheduler()
    bench = lab_bench(0.5, active="near", fill=0.3)
    bench.run(scheduler, 86400.0)
    learned = scheduler.to_dict()
    links = [{"name": "near", "length_km": 0}, {"name": "mid", "length_km": 10},
             {"name": "new", "length_km": 5}]
    restored = TimeShareScheduler.from_dict(learned, links=[LinkPrior.from_spec(s) for s in links])
    assert list(restored.links) == ["near", "mid", "new"]
    assert restored.links["near"].hours == scheduler.links["near"].hours
    assert restored.links["new"].hours == {}
    assert restored.active == "near"


@pytest.mark.parametrize("state, message", [
    ({"kind": "something.else", "version": 1}, "not a scheduler state"),
    ({"kind": "qkd.nfv.scheduler", "version": 99}, "version 99"),
    ({"kind": "qkd.nfv.scheduler", "version": 1, "links": "nonsense"}, "damaged"),
    ("not even a mapping", "not a scheduler state"),
])
def test_foreign_or_damaged_state_is_refused_clearly(state, message):
    with pytest.raises(SchedulerError, match=message):
        TimeShareScheduler.from_dict(state)


# -- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("links, message", [
    ([{"name": "a"}], "link a: no priors; give length_km, or both init_time_s and key_rate_bps"),
    ([{"name": "a", "init_time_s": 400}], "no priors"),
    ([{"name": "a", "length_km": 0}, {"name": "a", "length_km": 5}], "link a is defined more than once"),
    ([{"name": "a", "length_km": "far"}], "length_km: expected a number"),
    ([{"name": "a", "init_time_s": 0, "key_rate_bps": 10}], "init_time_s: expected a number > 0"),
    ([], "at least one link"),
])
def test_bad_links_are_refused_with_the_field_named(links, message):
    with pytest.raises(SchedulerError, match=message):
        TimeShareScheduler(links)


def test_bad_observations_are_refused_with_the_link_named():
    scheduler = lab_scheduler()
    with pytest.raises(SchedulerError, match="no observation for link far"):
        scheduler.tick(0.0, {"near": 0, "mid": 0}, "near")
    with pytest.raises(SchedulerError, match="stored bits of link mid: expected a number >= 0"):
        scheduler.tick(0.0, {"near": 0, "mid": -5, "far": 0}, "near")
    with pytest.raises(SchedulerError, match="not one of the links"):
        scheduler.tick(0.0, {"near": 0, "mid": 0, "far": 0}, "elsewhere")
    assert issubclass(SchedulerError, QkdNfvError)


def test_a_clock_that_goes_back_is_reported_not_learned_from():
    scheduler = lab_scheduler(demand_bps=30)
    scheduler.tick(1000.0, {"near": 1e6, "mid": 1e6, "far": 1e6}, "near")
    decision = scheduler.tick(500.0, {"near": 0.0, "mid": 1e6, "far": 1e6}, "near")
    assert any("clock went back" in w for w in decision.warnings)
    assert decision.estimates["near"]["demand_bps"] == pytest.approx(30, rel=0.01)


def test_a_connection_changed_behind_its_back_is_taken_as_is():
    scheduler = lab_scheduler(demand_bps=30)
    scheduler.tick(0.0, {"near": 1e6, "mid": 1e6, "far": 1e6}, "near")
    decision = scheduler.tick(10.0, {"near": 1e6, "mid": 1e6, "far": 1e6}, "far")
    assert any("found on far" in w for w in decision.warnings)
    assert decision.link == "far" and not decision.switch


# -- properties -------------------------------------------------------------------------------

observations = st.lists(
    st.tuples(st.floats(min_value=0.1, max_value=5000), st.fixed_dictionaries(
        {name: st.floats(min_value=0, max_value=3e6) for name in LAB}),
        st.sampled_from([None, "near", "mid", "far"])),
    min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(observations)
def test_any_observations_give_a_valid_decision_and_a_json_state(trace):
    scheduler = lab_scheduler()
    now = 0.0
    for step, bits, active in trace:
        now += step
        decision = scheduler.tick(now, bits, active)
        assert decision.link in LAB
        assert decision.switch == (decision.link != active)
        assert math.isfinite(decision.load) and decision.load >= 0
    state = json.loads(json.dumps(scheduler.to_dict()))
    assert TimeShareScheduler.from_dict(state).to_dict() == state
