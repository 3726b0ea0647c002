# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A discrete-time simulator of one time-shared Bob, its Alices, their key stores and key demand.

The link model is the paper's Clavis2 fit, the same one the lab emulates:
T_init(L) = 400 s * 10^(0.02 L) with +/-10 % uniform noise on every initialisation,
R(L) = 4000 b/s * 10^(-0.064 L) with a slow +/-10 % sinusoidal drift (period 1 h, random phase).
Keys are whole 256-bit blocks; a full store discards new key. Requests are 256-bit keys; one is
served immediately when the store holds a key and no earlier request waits, otherwise it queues
(FIFO, never dropped). Time advances in controller epochs (10 s); within an epoch the epoch's key
generation is counted before its requests.

A policy sees only what a controller sees: each store's key bits (whole keys) and which link the
Bob is connected to. It answers with the link to connect (or None to keep the connection) and
whether it raises an alarm.
"""

from __future__ import annotations

import math
import random

KEY_BITS = 256
SWITCH_TIME_S = 0.025
DAY_S = 86400.0


def init_time_s(length_km):
    return 400.0 * 10 ** (0.02 * length_km)


def key_rate_bps(length_km):
    return 4000.0 * 10 ** (-0.064 * length_km)


def equal_demand(lengths, load):
    """Equal bits/s on every link, scaled so that sum(demand / rate) = load."""
    share = load / sum(1.0 / key_rate_bps(length) for length in lengths)
    return [share] * len(lengths)


def fluid_bound(lengths, demand, capacity_bits):
    """Needed share of the Bob's time: load + least re-initialisation share (<= 1 is necessary)."""
    total = 0.0
    for length, d in zip(lengths, demand):
        rate = key_rate_bps(length)
        total += d / rate + (init_time_s(length) + SWITCH_TIME_S) * d * (1 - d / rate) / capacity_bits
    return total


def round_bound(lengths, demand, capacity_bits):
    """Needed share when every link is served once per round (the longest round the stores allow).

    With one Bob this binds every schedule, not only rounds: each excursion to the short links
    interrupts the link connected most of the time, and must come within the shortest store life.
    """
    load = sum(d / key_rate_bps(length) for length, d in zip(lengths, demand))
    longest = min(capacity_bits / (d * (1 - d / key_rate_bps(length))) for length, d in zip(lengths, demand))
    return load + sum(init_time_s(length) + SWITCH_TIME_S for length in lengths) / longest


def _poisson(rng, mean):
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, int(round(rng.gauss(mean, math.sqrt(mean)))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class Demand:
    """Request arrivals per link: constant, poisson, bursty (on/off) or diurnal."""

    PATTERNS = ("constant", "poisson", "bursty", "diurnal")

    def __init__(self, pattern, means_bps, rng):
        if pattern not in self.PATTERNS:
            raise ValueError("unknown demand pattern %r" % pattern)
        self.pattern, self.means, self.rng = pattern, list(means_bps), rng
        n = len(self.means)
        self.carry = [0.0] * n                   # constant: fractional requests carried over
        self.on = [rng.random() < 0.2 for _ in range(n)]  # bursty: ON 20 % of the time
        self.phase = [2 * math.pi * i / n for i in range(n)]  # diurnal: staggered

    def requests(self, i, t, dt):
        mean = self.means[i] * dt / KEY_BITS
        if self.pattern == "constant":
            self.carry[i] += mean
            n = int(self.carry[i])
            self.carry[i] -= n
            return n
        if self.pattern == "bursty":
            # Two-state Markov modulation: ON 4x mean for 30 min on average, OFF 0.25x for 2 h.
            if self.rng.random() < dt / (1800.0 if self.on[i] else 7200.0):
                self.on[i] = not self.on[i]
            mean *= 4.0 if self.on[i] else 0.25
        elif self.pattern == "diurnal":
            mean *= 1 + 0.8 * math.sin(2 * math.pi * t / DAY_S + self.phase[i])
        return _poisson(self.rng, mean)


class Simulation:
    """One run: links at `lengths` km sharing one Bob, stores of `capacity_bits`, a demand pattern."""

    def __init__(self, lengths, demand_bps, pattern, capacity_bits=2e6, seed=1, days=5.0,
                 warmup_days=1.0, epoch_s=10.0, trace_every_s=None, initial_fill=0.0):
        self.lengths = list(lengths)
        self.n = len(self.lengths)
        self.demand_bps = list(demand_bps)
        self.capacity = float(capacity_bits)
        self.rng = random.Random(seed)
        self.demand = Demand(pattern, demand_bps, random.Random(self.rng.random()))
        self.init_nominal = [init_time_s(length) for length in self.lengths]
        self.rate_nominal = [key_rate_bps(length) for length in self.lengths]
        self.drift_phase = [self.rng.uniform(0, 2 * math.pi) for _ in self.lengths]
        self.days, self.warmup_days, self.epoch = days, warmup_days, epoch_s
        self.trace_every = trace_every_s
        self.initial_fill = initial_fill

    def run(self, policy, names=None):
        names = names or ["link%d" % i for i in range(self.n)]
        n, dt, cap, rng = self.n, self.epoch, self.capacity, self.rng
        # Stores start at initial_fill (empty by default: a stock to live on would hide a deficit);
        # the Bob starts on the first link, already initialised.
        store = [cap * self.initial_fill] * n
        queue = [0] * n
        active, gen_from = 0, 0.0
        start_measure = self.warmup_days * DAY_S
        end = start_measure + self.days * DAY_S
        m = _Metrics(n)
        starving_since = [None] * n
        alarm_on = False
        trace = [] if self.trace_every else None
        next_trace = 0.0
        t = 0.0
        while t < end:
            measuring = t >= start_measure
            observed = {names[i]: float(int(store[i] // KEY_BITS) * KEY_BITS) for i in range(n)}
            target, alarm = policy.tick(t, observed, names[active] if active is not None else None)
            if alarm and not alarm_on:
                m.alarms += 1
            alarm_on = bool(alarm)
            if measuring and alarm_on:
                m.alarm_time += dt
            if target is not None and target != (names[active] if active is not None else None):
                active = names.index(target)
                noise = rng.uniform(0.9, 1.1)
                gen_from = t + SWITCH_TIME_S + self.init_nominal[active] * noise
                if measuring:
                    m.switches += 1
            # The Bob: initialising until gen_from, then generating; a full store wastes key.
            for i in range(n):
                made = 0.0
                if i == active:
                    gen_time = min(dt, max(0.0, t + dt - gen_from))
                    if gen_time > 0:
                        rate = self.rate_nominal[i] * (1 + 0.1 * math.sin(
                            2 * math.pi * (t + dt / 2) / 3600.0 + self.drift_phase[i]))
                        made = rate * gen_time
                    if measuring:
                        m.init_time += dt - gen_time
                        if made > 0:  # key beyond a full store is wasted: the Bob idles
                            m.gen_time += gen_time * min(1.0, (cap - store[i]) / made)
                    store[i] = min(cap, store[i] + made)
                arrivals = self.demand.requests(i, t, dt)
                available = int(store[i] // KEY_BITS)
                served_queue = min(queue[i], available)
                queue[i] -= served_queue
                available -= served_queue
                immediate = min(arrivals, available) if queue[i] == 0 else 0
                late = arrivals - immediate
                store[i] -= (served_queue + immediate) * KEY_BITS
                queue[i] += late
                if measuring:
                    m.requests[i] += arrivals
                    m.immediate[i] += immediate
                if queue[i] > 0:
                    if starving_since[i] is None:
                        starving_since[i] = max(t, start_measure)
                elif starving_since[i] is not None:
                    if measuring:
                        m.starvation = max(m.starvation, t + dt - starving_since[i])
                    starving_since[i] = None
            if trace is not None and t >= next_trace:
                state = "init" if active is not None and t < gen_from else "gen"
                trace.append((t, list(store), active, state))
                next_trace += self.trace_every
            t += dt
        for since in starving_since:
            if since is not None:
                m.starvation = max(m.starvation, end - since)
        m.alarm_on_at_end = alarm_on
        m.days = self.days
        return m.result(trace)


class _Metrics:
    def __init__(self, n):
        self.requests, self.immediate = [0] * n, [0] * n
        self.switches = 0
        self.init_time = self.gen_time = 0.0
        self.starvation = 0.0
        self.alarms = 0
        self.alarm_time = 0.0
        self.alarm_on_at_end = False
        self.days = 1.0

    def result(self, trace):
        total = sum(self.requests)
        per_link = [imm / req if req else 1.0 for imm, req in zip(self.immediate, self.requests)]
        span = self.days * DAY_S
        return {
            "served": sum(self.immediate) / total if total else 1.0,
            "worst_link": min(per_link),
            "per_link": per_link,
            "starvation_s": self.starvation,
            "switches_per_day": self.switches / self.days,
            "init_share": self.init_time / span,
            "gen_share": self.gen_time / span,
            "idle_share": max(0.0, 1 - (self.init_time + self.gen_time) / span),
            "alarms": self.alarms,
            "alarm_share": self.alarm_time / span,
            "alarm_at_end": self.alarm_on_at_end,
            "trace": trace,
        }
