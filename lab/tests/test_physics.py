"""The lab's QKD links, measured from outside through its APIs, follow the paper's model."""

import time

import pytest

from qkdlab import physics

SCALE = 200          # emulated seconds per real second
SWITCHING_S = 0.025  # the switch settles this long after the API returns (real seconds)


def wait_for(predicate, timeout_s, period_s=0.02):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(period_s)
    raise AssertionError("condition not met within %s s" % timeout_s)


def keys_at(doc, name):
    link = next(x for x in doc["links"] if x["name"] == name)
    return link["stored_keys"], doc["emulated_time_s"]


def measure_generation(lab, name, window_s=2.0):
    """(key rate in emulated b/s, emulated time generation began), from the growth of the stored keys.

    Each status document gives a key count and the emulated time together, so the measurement does
    not depend on how promptly this test polls; the start is the line's intercept with zero keys.
    """
    k1, t1 = keys_at(lab.poll(), name)
    time.sleep(window_s)
    k2, t2 = keys_at(lab.poll(), name)
    rate = (k2 - k1) * lab.topo.kme.key_size / (t2 - t1)
    return rate, t1 - k1 * lab.topo.kme.key_size / rate


def within(measured, model, tolerance=0.10):
    return abs(measured - model) <= tolerance * model


@pytest.fixture
def lab(start_lab):
    # Noise within 5 % so that measurements within 10 % of the model prove the model.
    return start_lab(time_scale=SCALE, noise={"init": 0.05, "rate_drift": 0.05},
                     kme={"max_key_count": 1000000}, switch={"cross_connects": []})


def test_switched_links_follow_the_model_and_only_the_connected_one_makes_key(lab):
    switched = [link for link in lab.topo.links if link.switched]
    assert [link.length_km for link in switched] == [0, 10, 25]
    for link in switched:
        others_before = {x["name"]: x for x in lab.poll()["links"] if x["name"] != link.name}
        lab.connect(link.alice_port, link.bob_port)
        # The path exists from when the PUT returned plus the switching time (an upper bound).
        connected = lab.poll()["emulated_time_s"] + SWITCHING_S * SCALE
        wait_for(lambda: lab.link(link.name)["state"] == "generating",
                 timeout_s=2 * physics.init_time_s(link.length_km) / SCALE + 2)
        rate, began = measure_generation(lab, link.name)
        assert within(began - connected, physics.init_time_s(link.length_km)), (link.name, began - connected)
        assert within(rate, physics.key_rate_bps(link.length_km)), (link.name, rate)
        qber = lab.link(link.name)["qber"]
        assert within(qber, physics.qber(link.length_km)), (link.name, qber)

        # While this Alice holds the Bob, no other switched link makes key.
        for other in lab.poll()["links"]:
            if other["switched"] and other["name"] != link.name:
                assert other["state"] == "idle"
                assert other["generated_bits"] == others_before[other["name"]]["generated_bits"]
        lab.disconnect(link.alice_port)
        stopped = wait_for(lambda: lab.link(link.name)["state"] == "idle", timeout_s=2)
        assert stopped
        bits = lab.link(link.name)["generated_bits"]
        time.sleep(0.2)
        assert lab.link(link.name)["generated_bits"] == bits, "key flowed after disconnection"


def test_fibre_link_of_its_own_generates_from_the_start(lab):
    name = "node2-node5"
    link = next(x for x in lab.topo.links if x.name == name)
    assert not link.switched and link.length_km == 5
    wait_for(lambda: lab.link(name)["state"] == "generating", timeout_s=2 * physics.init_time_s(5) / SCALE + 2)
    rate, began = measure_generation(lab, name)
    # The emulated clock starts with the lab process, so generation begins at T_init(5 km).
    assert within(began, physics.init_time_s(5)), began
    assert within(rate, physics.key_rate_bps(5)), rate
    assert within(lab.link(name)["qber"], physics.qber(5))


def test_reconnection_initialises_again(lab):
    link = next(x for x in lab.topo.links if x.switched)
    lab.connect(link.alice_port, link.bob_port)
    wait_for(lambda: lab.link(link.name)["state"] == "generating", timeout_s=5)
    lab.disconnect(link.alice_port)
    wait_for(lambda: lab.link(link.name)["state"] == "idle", timeout_s=2)
    lab.connect(link.alice_port, link.bob_port)
    wait_for(lambda: lab.link(link.name)["state"] == "initialising", timeout_s=2)
    assert lab.link(link.name)["initialisations"] == 2


def test_a_link_above_the_qber_limit_aborts(start_lab):
    # 25 km has a QBER of 5.3 %: with a limit of 4 % the link aborts after initialising.
    lab = start_lab(time_scale=1000, qber_limit=0.04, switch={"cross_connects": [{"ingress": 3, "egress": 9}]})
    wait_for(lambda: lab.link("node1-node4")["state"] == "aborted", timeout_s=5)
    time.sleep(0.2)
    assert lab.link("node1-node4")["stored_keys"] == 0
