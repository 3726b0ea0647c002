"""The switch model: pairing rules, switching time, optical power, persistence."""

import json
import threading
import time

import pytest

from qkdlab.switch import UNLIT_DBM, Switch, SwitchError


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, ms):
        self.now += ms / 1000.0


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def state(tmp_path):
    return tmp_path / "lab" / "switch.json"


@pytest.fixture
def switch(lab_topology, state, clock):
    return Switch(lab_topology.switch, state, clock=clock)


def test_first_start_takes_the_topology_pairs_settled(switch, state):
    assert switch.pairs() == [(1, 9)]
    assert switch.settled_pairs() == [(1, 9)]
    assert switch.connected(1, 9) and switch.connected(9, 1)
    assert json.loads(state.read_text())["pairs"] == [{"ingress": 1, "egress": 9}]


def test_a_new_pair_connects_only_after_the_switching_time(switch, clock):
    switch.create(2, 10)
    assert switch.pairs() == [(1, 9), (2, 10)]
    assert switch.settled_pairs() == [(1, 9)]
    assert not switch.connected(2, 10)
    clock.advance(24.9)
    assert not switch.connected(2, 10)
    clock.advance(0.2)
    assert switch.connected(2, 10) and switch.connected(10, 2)
    assert switch.settled_pairs() == [(1, 9), (2, 10)]
    assert not switch.connected(2, 9)


def test_delete_disconnects_at_once(switch):
    switch.delete(1)
    assert switch.pairs() == []
    assert not switch.connected(1, 9)
    with pytest.raises(SwitchError) as err:
        switch.delete(1)
    assert err.value.tag == "data-missing"


def test_replace_is_break_before_make(switch, clock):
    assert switch.replace(1, 10) is False
    assert switch.pairs() == [(1, 10)]
    assert not switch.connected(1, 9) and not switch.connected(1, 10)
    assert switch.egress_of(1) == 10 and switch.egress_of(1, settled=True) is None
    clock.advance(25)
    assert switch.connected(1, 10)
    assert switch.replace(1, 10) is False  # unchanged: stays settled
    assert switch.connected(1, 10)
    assert switch.replace(3, 11) is True


@pytest.mark.parametrize("ingress, egress, tag", [
    (1, 10, "data-exists"),     # ingress already paired
    (2, 9, "in-use"),           # egress used by 1-9
    (9, 2, "in-use"),           # ingress used as an egress
    (2, 1, "in-use"),           # egress used as an ingress
    (5, 5, "invalid-value"),
    (5, 17, "invalid-value"),   # the switch has 16 ports
    (0, 5, "invalid-value"),
    (True, 5, "invalid-value"),
    ("5", 6, "invalid-value"),
])
def test_refused_create_changes_nothing(switch, state, ingress, egress, tag):
    before = state.read_bytes()
    with pytest.raises(SwitchError) as err:
        switch.create(ingress, egress)
    assert err.value.tag == tag
    assert switch.pairs() == [(1, 9)]
    assert state.read_bytes() == before


def test_replace_refuses_a_port_of_another_pair(switch):
    switch.create(2, 10)
    for ingress, egress in ((1, 10), (1, 2), (3, 9)):
        with pytest.raises(SwitchError) as err:
            switch.replace(ingress, egress)
        assert err.value.tag == "in-use"
    assert switch.pairs() == [(1, 9), (2, 10)]


def test_a_disabled_port_is_not_usable_and_blocks_light(switch, clock):
    switch.set_port_enabled(5, False)
    with pytest.raises(SwitchError) as err:
        switch.create(5, 6)
    assert err.value.tag == "resource-denied"
    with pytest.raises(SwitchError):
        switch.replace(1, 5)
    assert switch.pairs() == [(1, 9)]
    assert {p["port-id"]: p["status"] for p in switch.port_config()}[5] == "DISABLED"
    switch.set_port_enabled(9, False)
    assert switch.pairs() == [(1, 9)] and not switch.connected(1, 9)
    assert switch.power_dbm(9) == UNLIT_DBM
    switch.set_port_state(enable=[5, 9])
    assert switch.connected(1, 9)
    switch.create(5, 6)
    with pytest.raises(SwitchError):
        switch.set_port_state(enable=[3], disable=[3])


def test_power(switch, clock, lab_topology):
    spec = lab_topology.switch
    assert switch.power_dbm(9) == pytest.approx(spec.light[1] - spec.insertion_loss_db)
    assert switch.power_dbm(1) == spec.light[1]       # a transmitter reports its launch power
    assert switch.power_dbm(10) == UNLIT_DBM
    assert switch.power_dbm(16) == UNLIT_DBM
    switch.create(4, 10)
    assert switch.power_dbm(10) == UNLIT_DBM          # still switching
    clock.advance(30)
    assert switch.power_dbm(10) == pytest.approx(spec.light[4] - spec.insertion_loss_db)
    with pytest.raises(SwitchError):
        switch.power_dbm(17)


def test_replace_all_keeps_unchanged_pairs_settled(switch, clock, state):
    switch.replace_all([(1, 9), (2, 10)])
    assert switch.settled_pairs() == [(1, 9)]
    clock.advance(25)
    assert switch.settled_pairs() == [(1, 9), (2, 10)]
    before = state.read_bytes()
    for pairs in ([(1, 9), (2, 9)], [(1, 9), (1, 10)], [(3, 3)], [(3, 20)]):
        with pytest.raises(SwitchError):
            switch.replace_all(pairs)
    assert switch.pairs() == [(1, 9), (2, 10)] and state.read_bytes() == before
    switch.replace_all([])
    assert switch.pairs() == []


def test_state_survives_a_restart(lab_topology, state, clock):
    first = Switch(lab_topology.switch, state, clock=clock)
    first.delete(1)
    first.create(3, 11)
    first.set_port_enabled(7, False)
    first.set_label(3, "QKD-Alice node4")
    again = Switch(lab_topology.switch, state, clock=FakeClock())
    assert again.pairs() == [(3, 11)]
    assert again.connected(3, 11)  # made before the restart: settled
    config = {p["port-id"]: p for p in again.port_config()}
    assert config[7]["status"] == "DISABLED" and config[3]["label"] == "QKD-Alice node4"


def test_unusable_state_file_is_refused(lab_topology, state):
    state.parent.mkdir(parents=True)
    for text in ("{not json", '{"pairs": [{"ingress": 1, "egress": 99}]}',
                 '{"pairs": [{"ingress": 1, "egress": 9}, {"ingress": 2, "egress": 9}]}'):
        state.write_text(text)
        with pytest.raises(SwitchError) as err:
            Switch(lab_topology.switch, state)
        assert err.value.tag == "operation-failed" and str(state) in err.value.message


def test_real_clock_switching_time(lab_topology, state):
    switch = Switch(lab_topology.switch, state)
    switch.delete(1)
    assert not switch.connected(1, 9)
    start = time.monotonic()
    switch.create(2, 10)
    assert not switch.connected(2, 10)
    while not switch.connected(2, 10):
        assert time.monotonic() - start < 2
        time.sleep(0.002)
    assert time.monotonic() - start >= lab_topology.switch.switching_ms / 1000.0


def test_connected_is_safe_to_poll_from_another_thread(switch, clock):
    errors, stop = [], threading.Event()

    def poll():
        try:
            while not stop.is_set():
                switch.connected(1, 9)
                switch.power_dbm(9)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        for _ in range(20):
            switch.replace(1, 10)
            switch.replace(1, 9)
    finally:
        stop.set()
        poller.join()
    assert not errors and switch.pairs() == [(1, 9)]
