# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The time-sharing policy of one QKD receiver (the Bob) switched between several Alices.

Pure: no I/O and no Ansible. The scheduler sees only what a controller can observe each tick:
the key bits each link's key manager stores, and which link the Bob is connected to. From them
it learns each link's demand (the fall of a store that is not being filled), key rate (the rise
early in a visit, corrected by the demand seen while the link initialised) and initialisation
time (from the connection to the first new keys). Priors come from the operator: the fibre
length, or measured values. See docs/scheduling.md for the reasoning and the benchmark.

The policy keeps the rules of Aguado et al. (JLT 35(8), 2017, section III) and repairs them
where, taken literally, they fail:

- criticality is autonomy, t = stored bits / demand;
- the Bob serves links in rounds, each link at most once per round, in the order of latest
  connection time plus fill time (t - T + x: an exchange argument);
- the active link is kept until another link would otherwise run dry: every link of the round
  must survive the initialisations *and* the fills of those served before it. This is the
  adaptive stop threshold, and it grows with load;
- the active link is pre-empted only when it can last until it is served again, or is full, or
  has had its share of the round (so the Bob keeps turning when demand exceeds supply);
- a full store hands the Bob to a link worth a visit (room for more key than an initialisation
  costs, and a quarter of its store); when no link is worth one, the Bob stays connected;
- the alarm is raised, with hysteresis, when demand needs more of the Bob's time than there is
  (generation plus the least re-initialisation), or a link's store stays empty most of the time
  it is connected.
"""

from __future__ import annotations

import functools
import math

from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError

STATE_KIND = "qkd.nfv.scheduler"
STATE_VERSION = 1
SWITCH_TIME_S = 0.025  # optical switching time, negligible beside initialisation

INITIALISING, GENERATING, UNKNOWN = "initialising", "generating", "unknown"

DEFAULTS = {
    "margin": 0.10,            # relative safety margin on every survival time
    "init_noise": 0.10,        # initialisation times vary by this fraction
    "refill_fraction": 0.25,   # a store this much below full is worth a visit at any load
    "max_cycle_s": 86400.0,    # never plan a round longer than this
    "demand_tau_s": 3600.0,    # recent demand: exponential average over about an hour
    "demand_window_h": 24,     # long-term demand: the last 24 hours, whole hours
    "samples": 9,              # key rate and init time: the median of this many recent visits
    "alarm_on": 1.0,           # raise when the needed share of the Bob's time exceeds this ...
    "alarm_off": 0.97,         # ... clear when it falls below this
    "alarm_hold_s": 10800.0,   # ... for this long (a persistent excess, not a busy hour)
}


class SchedulerError(QkdNfvError):
    """Bad link definitions, observations or saved state; the message names what to fix."""


def model_init_time_s(length_km):
    """Initialisation time of a link of this length: the Clavis2 fit of the paper (400 s at 0 km)."""
    return 400.0 * 10 ** (0.02 * length_km)


def model_key_rate_bps(length_km):
    """Secret key rate of a link of this length: the Clavis2 fit of the paper (4000 b/s at 0 km)."""
    return 4000.0 * 10 ** (-0.064 * length_km)


def _number(value, what, minimum=0.0, strict=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise SchedulerError("%s: expected a number, got %r" % (what, value))
    if value < minimum or (strict and value == minimum):
        raise SchedulerError("%s: expected a number %s %s, got %r"
                             % (what, ">" if strict else ">=", minimum, value))
    return float(value)


def _median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


class LinkPrior:
    """What the operator tells the scheduler about one link before it has learned anything."""

    __slots__ = ("name", "init_time_s", "key_rate_bps", "demand_bps", "capacity_bits")

    def __init__(self, name, init_time_s, key_rate_bps, demand_bps=None, capacity_bits=None):
        if not isinstance(name, str) or not name:
            raise SchedulerError("link name: expected a non-empty string, got %r" % (name,))
        where = "link %s" % name
        self.name = name
        self.init_time_s = _number(init_time_s, where + ": init_time_s", 0.0, strict=True)
        self.key_rate_bps = _number(key_rate_bps, where + ": key_rate_bps", 0.0, strict=True)
        self.demand_bps = None if demand_bps is None else _number(demand_bps, where + ": demand_bps")
        self.capacity_bits = (None if capacity_bits is None
                              else _number(capacity_bits, where + ": capacity_bits", 0.0, strict=True))

    @classmethod
    def from_spec(cls, spec):
        """Build from a mapping: name plus length_km, or measured init_time_s and key_rate_bps.

        Measured values win over the length; a length alone uses the paper's fit.
        """
        if not isinstance(spec, dict):
            raise SchedulerError("link: expected a mapping, got %r" % (spec,))
        name = spec.get("name")
        length = spec.get("length_km")
        init_time, rate = spec.get("init_time_s"), spec.get("key_rate_bps")
        if length is not None:
            length = _number(length, "link %s: length_km" % name)
            init_time = model_init_time_s(length) if init_time is None else init_time
            rate = model_key_rate_bps(length) if rate is None else rate
        if init_time is None or rate is None:
            raise SchedulerError(
                "link %s: no priors; give length_km, or both init_time_s and key_rate_bps "
                "(measured on the link)" % name)
        return cls(name, init_time, rate, spec.get("demand_bps"), spec.get("capacity_bits"))

    def to_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}


class _Average:
    """Time-weighted exponential average of a rate: sum of amounts / sum of durations, decayed."""

    __slots__ = ("amount", "seconds")

    def __init__(self, amount=0.0, seconds=0.0):
        self.amount, self.seconds = amount, seconds

    def add(self, amount, seconds, tau):
        keep = math.exp(-seconds / tau)
        self.amount = self.amount * keep + amount
        self.seconds = self.seconds * keep + seconds

    def age(self, seconds, tau):
        keep = math.exp(-seconds / tau)
        self.amount *= keep
        self.seconds *= keep

    def value(self):
        return self.amount / self.seconds if self.seconds > 0 else None


class _LinkState:
    """What the scheduler knows about one link: its prior and what it has learned since."""

    def __init__(self, prior):
        self.prior = prior
        self.bits = None                 # stored bits at the last tick
        self.capacity = prior.capacity_bits
        self.recent = _Average()         # demand, last hour or so
        self.hours = {}                  # hour index -> [bits consumed, seconds observed], oldest first
        self._window = [0.0, 0.0]        # the sums over self.hours
        # One sample per visit, the prior first; the median shrugs off visits whose demand changed.
        self.rates = [prior.key_rate_bps]
        self.init_times = [prior.init_time_s]
        self._rate, self._init_time = prior.key_rate_bps, prior.init_time_s
        self.visits = 0
        # A store seen empty hides its demand: requests wait. The reading stays open until the
        # waiting requests are served (the store rises again): seconds since it emptied, the bits
        # waiting requests took meanwhile (all asked for in those seconds), and the long-term
        # demand when it emptied.
        self.unseen = 0.0
        self.taken = 0.0
        self.held = 0.0
        self.empty = _Average()          # seconds empty while generating, of seconds generating
        if prior.demand_bps is not None:
            self.recent = _Average(prior.demand_bps * 600.0, 600.0)

    # -- estimates ---------------------------------------------------------------------------
    def demand_long(self, window_h, now):
        self._forget_before(math.floor(now / 3600.0) - window_h)
        amount, seconds = self._window
        if self.prior.demand_bps is not None:   # the prior weighs as one hour of observation
            amount += self.prior.demand_bps * 3600.0
            seconds += 3600.0
        if seconds <= 0:
            return self.demand_waiting() if self.unseen > 0 else (self.recent.value() or 0.0)
        return amount / seconds

    def demand_recent(self):
        value = self.recent.value()
        return 0.0 if value is None else value

    def demand_waiting(self):
        """While the store sits empty: the long-term demand when it emptied, or the bits taken
        since, over that time, if more (all were asked for since: a floor on the demand)."""
        return max(self.held, self.taken / self.unseen) if self.unseen > 0 else 0.0

    def key_rate(self):
        return self._rate

    @property
    def init_time(self):
        return self._init_time

    def _forget_before(self, oldest):
        """Drop the hours at or before `oldest` from the window."""
        while self.hours:
            hour = next(iter(self.hours))
            if hour > oldest:
                return
            bits, secs = self.hours.pop(hour)
            self._window = [self._window[0] - bits, self._window[1] - secs] if self.hours else [0.0, 0.0]

    # -- learning ----------------------------------------------------------------------------
    def saw_demand(self, bits, seconds, now, params):
        """Consumption seen: `bits` over `seconds`."""
        self.recent.add(bits, seconds, params["demand_tau_s"])
        hour = int(math.floor(now / 3600.0))
        if self.hours and hour < next(reversed(self.hours)):  # the clock went back: keep the order
            self.hours = dict(sorted(self.hours.items()))
        bucket = self.hours.setdefault(hour, [0.0, 0.0])
        bucket[0] += bits
        bucket[1] += seconds
        self._window = [self._window[0] + bits, self._window[1] + seconds]
        self._forget_before(hour - params["demand_window_h"])

    def waited(self, taken, seconds, now, params):
        """The store stayed empty for `seconds`; waiting requests took `taken` bits of new key."""
        if self.unseen <= 0:
            self.held = self.demand_long(params["demand_window_h"], now)
        self.taken += taken
        self.unseen += seconds
        self.recent.age(seconds, params["demand_tau_s"])

    def waiting_served(self, now, params):
        """The store rose again: every request asked for since it emptied was served."""
        if self.unseen > 0:
            self.saw_demand(self.taken, self.unseen, now, params)
        self.unseen = self.taken = self.held = 0.0

    def saw_init_time(self, seconds, keep):
        self.init_times = (self.init_times + [seconds])[-keep:]
        self._init_time = _median(self.init_times)

    def saw_rate(self, bits_per_second, keep):
        self.rates = (self.rates + [bits_per_second])[-keep:]
        self._rate = _median(self.rates)

    # -- persistence -------------------------------------------------------------------------
    def to_dict(self):
        return {
            "prior": self.prior.to_dict(), "bits": self.bits, "capacity": self.capacity,
            "recent": [self.recent.amount, self.recent.seconds],
            "hours": [[hour, bits, secs] for hour, (bits, secs) in sorted(self.hours.items())],
            "rates": list(self.rates), "init_times": list(self.init_times), "visits": self.visits,
            "unseen": self.unseen, "taken": self.taken, "held": self.held,
            "empty": [self.empty.amount, self.empty.seconds],
        }

    @classmethod
    def from_dict(cls, data, prior):
        state = cls(prior)
        state.bits = data["bits"] if data["bits"] is None else float(data["bits"])
        state.capacity = prior.capacity_bits or data["capacity"]
        state.recent = _Average(*[float(x) for x in data["recent"]])
        state.hours = dict(sorted((int(h), [float(b), float(s)]) for h, b, s in data["hours"]))
        state._window = [sum(b for b, _s in state.hours.values()), sum(s for _b, s in state.hours.values())]
        if data["prior"].get("key_rate_bps") == prior.key_rate_bps:
            state.rates = [float(x) for x in data["rates"]] or state.rates
        if data["prior"].get("init_time_s") == prior.init_time_s:
            state.init_times = [float(x) for x in data["init_times"]] or state.init_times
        state._rate, state._init_time = _median(state.rates), _median(state.init_times)
        state.visits = int(data["visits"])
        state.unseen = float(data["unseen"])
        state.taken = float(data.get("taken", 0.0))
        state.held = float(data.get("held", 0.0))
        state.empty = _Average(*[float(x) for x in data["empty"]])
        return state


class Decision:
    """The outcome of one tick."""

    __slots__ = ("link", "switch", "reason", "alarm", "warnings", "_estimates", "load", "need")
    FIELDS = ("link", "switch", "reason", "alarm", "warnings", "estimates", "load", "need")

    def __init__(self, link, switch, reason, alarm, warnings, estimates, load, need):
        self.link = link            # the link the Bob should be connected to after this tick
        self.switch = switch        # True: re-point the Bob to `link` now
        self.reason = reason
        self.alarm = alarm          # None, or why demand exceeds what the links can make
        self.warnings = warnings    # links at risk, stalled initialisations
        self._estimates = estimates  # a dict, or a function that makes it when first asked
        self.load = load            # generation share of the Bob's time, sum of demand / rate
        self.need = need            # load plus the least re-initialisation share

    @property
    def estimates(self):
        """Per link: state, stored bits, capacity, demand, key rate, init time, autonomy, visits."""
        if callable(self._estimates):
            self._estimates = self._estimates()
        return self._estimates

    def to_dict(self):
        return {name: getattr(self, name) for name in self.FIELDS}

    def __repr__(self):
        return "Decision(link=%r, switch=%r, reason=%r, alarm=%r)" % (
            self.link, self.switch, self.reason, self.alarm)


class TimeShareScheduler:
    """Decides, tick by tick, which Alice the time-shared Bob should be connected to."""

    def __init__(self, links, **params):
        priors = [link if isinstance(link, LinkPrior) else LinkPrior.from_spec(link) for link in links]
        if not priors:
            raise SchedulerError("links: the scheduler needs at least one link")
        names = [prior.name for prior in priors]
        duplicate = sorted({name for name in names if names.count(name) > 1})
        if duplicate:
            raise SchedulerError("links: link %s is defined more than once" % duplicate[0])
        unknown = sorted(set(params) - set(DEFAULTS))
        if unknown:
            raise SchedulerError("unknown scheduler parameter %s (known: %s)"
                                 % (unknown[0], ", ".join(sorted(DEFAULTS))))
        self.params = dict(DEFAULTS)
        self.params.update({k: _number(v, k) for k, v in params.items()})
        self.params["demand_window_h"] = max(1, int(self.params["demand_window_h"]))
        self.links = {prior.name: _LinkState(prior) for prior in priors}
        self.last_time = None
        self.tick_s = 0.0            # typical interval between ticks
        self.active = None           # the link the Bob is connected to, as last observed or decided
        self.phase = None            # INITIALISING (we connected it), GENERATING, UNKNOWN
        self.connected_at = None
        self.generating_since = None  # when the active link's first keys came (or should have)
        self.visit_demand = [0.0, 0.0]  # bits consumed, seconds seen, on the active link before its keys came
        self.visit_made = [0.0, 0.0, 0.0]  # early in the active link's generation: bits made, seconds,
        #                                     and how many of those bits are the demand correction
        self.visited = []            # links served in the current round
        self.switches = 0
        self.alarm = False
        self.alarm_pending_since = None  # when the alarm condition last started to differ from `alarm`

    # -- the tick ----------------------------------------------------------------------------
    def tick(self, now_s, stored_bits, active, capacity_bits=None):
        """Observe the stores and the Bob's connection at time now_s (seconds); decide.

        stored_bits: {link: bits stored}; active: the link the Bob is connected to, or None;
        capacity_bits: optional {link: most bits the store holds}. Returns a Decision; when
        decision.switch is true, the caller re-points the Bob to decision.link.
        """
        now = _number(now_s, "now_s", float("-inf"))
        bits = self._checked_bits(stored_bits)
        if active is not None and active not in self.links:
            raise SchedulerError("the Bob is connected to %r, which is not one of the links (%s)"
                                 % (active, ", ".join(self.links)))
        for name, value in (capacity_bits or {}).items():
            if name in self.links and value:
                self.links[name].capacity = _number(value, "capacity of link %s" % name, 0.0, strict=True)
        warnings = []
        dt = None if self.last_time is None else now - self.last_time
        if dt is not None and dt < 0:
            warnings.append("the clock went back %.0f s; observations restart" % -dt)
            dt = None
        if dt is not None:
            self.tick_s = dt if self.tick_s <= 0 else self.tick_s + 0.2 * (dt - self.tick_s)
        if active != self.active:
            if self.active is not None:
                self._close_rate_sample(self.links[self.active])
            if self.active is not None or self.last_time is not None:
                if active is not None:
                    warnings.append("the Bob was found on %s, not on %s as decided; taking it as is"
                                    % (active, self.active))
            self.active = active
            self.phase = UNKNOWN if active is not None else None
            self.connected_at = now
            self.generating_since = None
            self.visit_demand = [0.0, 0.0]
            self.visit_made = [0.0, 0.0, 0.0]
            self.visited = [active] if active is not None else []
        self._learn(now, dt, bits)
        self.last_time = now
        decision = self._decide(now, warnings)
        if decision.switch:
            if self.active is not None:
                self._close_rate_sample(self.links[self.active])
            self.active = decision.link
            self.phase = INITIALISING
            self.connected_at = now
            self.generating_since = None
            self.visit_demand = [0.0, 0.0]
            self.visit_made = [0.0, 0.0, 0.0]
            self.links[decision.link].visits += 1
            self.switches += 1
            if decision.link not in self.visited:
                self.visited.append(decision.link)
        return decision

    def _checked_bits(self, stored_bits):
        if not isinstance(stored_bits, dict):
            raise SchedulerError("stored_bits: expected a mapping of link to bits, got %r" % (stored_bits,))
        missing = [name for name in self.links if name not in stored_bits]
        if missing:
            raise SchedulerError("stored_bits: no observation for link %s" % missing[0])
        return {name: _number(stored_bits[name], "stored bits of link %s" % name) for name in self.links}

    # -- learning ----------------------------------------------------------------------------
    def _learn(self, now, dt, bits):
        for name, link in self.links.items():
            previous, current = link.bits, bits[name]
            link.bits = current
            if previous is None or dt is None or dt <= 0:
                continue
            if name == self.active:
                self._learn_active(link, now, dt, previous, current)
            elif current > previous:
                # Keys on a link the Bob does not serve (its own fibre, a lagging store): no demand to read.
                link.recent.age(dt, self.params["demand_tau_s"])
            else:
                self._learn_demand(link, now, dt, previous, current)
            if current > 0 and link.unseen > 0:
                # Keys again, but not seen taken by waiting requests (the first came before the
                # initialisation was surely over, or not from the Bob): nothing to read.
                link.unseen = link.taken = link.held = 0.0

    def _learn_demand(self, link, now, dt, previous, current):
        """A store that is not being filled falls by its demand alone; an empty one tells nothing."""
        if current > 0:
            link.saw_demand(previous - current, dt, now, self.params)
            return previous - current, dt
        if previous > 0:
            # Emptied within the interval: count the bits over the time they would have lasted.
            demand = link.demand_recent()
            lasted = min(dt, previous / demand) if demand > 0 else dt
            link.saw_demand(previous, lasted, now, self.params)
            return previous, lasted
        # Empty and not refilled: the demand of these seconds shows later, when the link is
        # connected again and its waiting requests are served.
        link.waited(0.0, dt, now, self.params)
        return 0.0, 0.0

    def _learn_active(self, link, now, dt, previous, current):
        """The connected link: its initialisation time, then its key rate."""
        past_init = now - dt > self.connected_at + link.init_time * (1 + self.params["init_noise"])
        if self.phase == GENERATING or past_init:
            # How much of its generating time a link's store stays empty: near zero whenever the
            # link can keep up, near one when its demand exceeds what it makes.
            link.empty.add(dt if previous <= 0 and current <= 0 else 0.0, dt, 43200.0)
        if previous <= 0 and (self.phase == GENERATING or past_init):
            # Generating into an empty store: waiting requests take the new keys, all asked for
            # since the store emptied. Only once they are all served (the store rises) do the bits
            # taken over that time read the demand; before, they read at most what the link was
            # served, and a short visit would confirm the low figure. Until then the reading is
            # held open and planning uses the demand seen before the store emptied, or the bits
            # taken so far if more.
            link.waited(max(0.0, link.key_rate() * dt - current), dt, now, self.params)
            if current <= 0:
                return
            link.waiting_served(now, self.params)
        if self.phase != GENERATING and current <= previous:
            # Still initialising: the fall is this visit's demand, the best guess for the next hour.
            bits, seconds = self._learn_demand(link, now, dt, previous, current)
            self.visit_demand = [self.visit_demand[0] + bits, self.visit_demand[1] + seconds]
            return
        link.recent.age(dt, self.params["demand_tau_s"])
        # Demand while generating is not observed: use what this visit's initialisation showed
        # (the long-term figure misleads: a link is often connected because of a burst that ends).
        # Only a visit whose demand was measured and is lighter than the rate teaches: then the
        # first keys show at once and the correction stays small (a heavy demand, often a burst
        # that ends during the visit, would hide the first keys and pass for more key).
        bits, seconds = self.visit_demand
        measured = seconds >= 0.25 * link.init_time
        demand = bits / seconds if measured else link.demand_long(self.params["demand_window_h"], now)
        made = current - previous + demand * dt
        if self.phase != GENERATING:
            # First keys since the connection: initialisation ended within this interval.
            ended = max(now - dt, now - made / link.key_rate())
            took = ended - self.connected_at
            # An empty store hides keys taken at once by waiting requests: learn only from a store
            # that held keys until the rise, and only plausible times.
            if (self.phase == INITIALISING and previous > 0 and measured and demand <= 0.8 * link.key_rate()
                    and 0.5 * link.init_time <= took <= 2 * link.init_time):
                link.saw_init_time(took, int(self.params["samples"]))
            self.phase = GENERATING
            self.generating_since = ended
            dt = now - ended
        # A full store discards keys and an empty one may feed waiting requests: neither tells
        # anything. Early in the visit, while that demand guess holds, learn the rate; later, on a
        # link whose demand is a good part of its rate, learn the demand from the known rate (the
        # only way to see the demand of a link that is connected most of the time).
        capacity = link.capacity
        if dt <= 0 or min(previous, current) <= 0 or (capacity and max(previous, current) >= 0.98 * capacity):
            return
        if now - self.generating_since <= max(1800.0, link.init_time):
            if measured:
                self.visit_made = [self.visit_made[0] + max(made, 0.0), self.visit_made[1] + dt,
                                   self.visit_made[2] + demand * dt]
            return
        self._close_rate_sample(link)
        if link.key_rate() <= 4 * demand:
            link.saw_demand(max(0.0, link.key_rate() * dt - (current - previous)), dt, now, self.params)

    def _close_rate_sample(self, link):
        """The early window of a visit is over: its rate is one sample, if it was long enough and
        the demand correction is at most half of it (the demand no heavier than the rise)."""
        made, seconds, correction = self.visit_made
        if seconds >= 120.0 and correction <= 0.5 * made:
            link.saw_rate(made / seconds, int(self.params["samples"]))
        self.visit_made = [0.0, 0.0, 0.0]

    # -- planning ----------------------------------------------------------------------------
    def _view(self, now):
        """Per-link planning figures: stored, capacity, demand (planning and long-term), rate, init."""
        window = self.params["demand_window_h"]
        view = {}
        for name, link in self.links.items():
            long_term = link.demand_long(window, now)
            view[name] = {
                "K": link.bits or 0.0, "B": link.capacity, "R": link.key_rate(),
                "T": link.init_time, "d_long": long_term,
                # Planning uses the higher of recent and long-term demand: bursts count at once.
                # Not while the store sits empty: the recent figure is then as old as the store's
                # last keys, perhaps from a burst long over.
                "d": max(long_term, link.demand_waiting() if link.unseen > 0 else link.demand_recent()),
            }
        return view

    def _cycle(self, view):
        """The longest round the stores allow (every link refilled once per round), capped."""
        cycle = self.params["max_cycle_s"]
        for v in view.values():
            if v["d"] > 0 and v["B"]:
                spare = 1.0 - min(v["d"] / v["R"], 0.99)
                cycle = min(cycle, v["B"] / (v["d"] * spare))
        return cycle

    def _target(self, v, cycle):
        """Bits a link should hold when the Bob leaves it, to last until its next visit."""
        need = (1 + self.params["margin"]) * v["d"] * cycle * (1.0 - min(v["d"] / v["R"], 1.0))
        return min(v["B"], need) if v["B"] else need

    @staticmethod
    def _autonomy(v):
        return v["K"] / v["d"] if v["d"] > 0 else math.inf

    def _worth_a_visit(self, v):
        """A store with room for more key than its initialisation costs (and a quarter of itself)."""
        if not v["B"]:
            return False
        room = v["B"] - v["K"]
        net = max(v["R"] - v["d"], 0.0)
        return room >= min(0.9 * v["B"], max(self.params["refill_fraction"] * v["B"], v["T"] * net))

    def _fill_time(self, v, cycle, start):
        """Seconds of generation to bring a link reached `start` seconds from now to its target."""
        left = max(0.0, v["K"] - v["d"] * start)
        net = v["R"] - v["d"]
        return max(0.0, self._target(v, cycle) - left) / net if net > 0 else cycle

    def _order(self, names, view, cycle):
        """Serving order: by latest connection time plus fill time.

        Swapping two adjacent visits i, j shows i should go first when
        (t_i - T_i) + x_i <= (t_j - T_j) + x_j: a link with a long fill goes after links that
        are barely later but quick to fill.
        """
        def key(name):
            v = view[name]
            return self._autonomy(v) - v["T"] + self._fill_time(v, cycle, v["T"])
        return sorted(names, key=key)

    def _sequence_slack(self, order, view, cycle):
        """Serve `order` from now on: the least spare time of any link, and when the round ends."""
        params = self.params
        offset, slack, binding = 0.0, math.inf, None
        late = 2 * self.tick_s
        for name in order:
            v = view[name]
            start = offset + v["T"] * (1 + params["init_noise"]) + SWITCH_TIME_S
            spare = self._autonomy(v) - start * (1 + params["margin"]) - late
            if spare < slack:
                slack, binding = spare, name
            offset = start + self._fill_time(v, cycle, start)
        return slack, binding, offset

    def _decide(self, now, warnings):
        view = self._view(now)
        load = sum(v["d_long"] / v["R"] for v in view.values())
        overhead = sum((v["T"] + SWITCH_TIME_S) * v["d_long"] * (1 - min(v["d_long"] / v["R"], 1.0)) / v["B"]
                       for v in view.values() if v["B"])
        # Rounds visit every link once and last at most the shortest store life: each round pays
        # every initialisation (docs/scheduling.md, round bound). Often tighter than the fluid figure.
        lives = [v["B"] / (v["d_long"] * (1 - min(v["d_long"] / v["R"], 1.0)))
                 for v in view.values() if v["B"] and v["d_long"] > 0 and v["d_long"] < v["R"]]
        round_overhead = sum(v["T"] + SWITCH_TIME_S for v in view.values()) / min(lives) if lives else 0.0
        need, fluid_need = load + max(overhead, round_overhead), load + overhead
        alarm = self._alarm(now, load, need, view)
        cycle = self._cycle(view)
        # The report is made only if read (a controller reads it; a simulation need not).
        snapshot = dict((name, (link.visits, link.demand_recent())) for name, link in self.links.items())
        estimates = functools.partial(self._estimates, view, self.active, self.phase, snapshot)

        def decision(link, switch, reason):
            return Decision(link, switch, reason, alarm, warnings, estimates, round(load, 4), round(need, 4))

        def urgency(name):
            return self._autonomy(view[name]) - view[name]["T"]

        active = self.active
        if active is None:
            first = min(self.links, key=urgency)
            return decision(first, True, "the Bob is not connected to any link; connecting %s, the most critical"
                            % first)
        va = view[active]
        others = [name for name in self.links if name != active]
        if not others:
            return decision(active, False, "%s is the only link" % active)

        if self.phase != GENERATING:
            elapsed = now - self.connected_at
            expected = va["T"] * (1 + self.params["init_noise"]) + 2 * self.tick_s
            if elapsed < expected:
                if self.phase == UNKNOWN:
                    return decision(active, False, "%s was found connected; waiting to see it make key "
                                    "(%.0f of at most %.0f s)" % (active, elapsed, expected))
                return decision(active, False, "%s is initialising (%.0f of about %.0f s)"
                                % (active, elapsed, va["T"]))
            # No new key seen yet: the link may be down, or waiting requests take every key.
            # Plan as if it were generating; say so once it is clearly late.
            if self.generating_since is None or self.generating_since < self.connected_at:
                self.generating_since = self.connected_at + va["T"]
            if self.phase == INITIALISING and elapsed > 2 * expected:
                warnings.append("no new key seen on %s %.0f s after it was connected (initialisation "
                                "takes about %.0f s): waiting requests may take every key, or the link "
                                "is down" % (active, elapsed, va["T"]))

        # Rounds: each link at most once; a new round starts when no unserved link is worth a visit.
        unserved = [name for name in others if name not in self.visited]
        if not any(self._worth_a_visit(view[name]) for name in unserved):
            self.visited = [active]
            unserved = others
        order = self._order(unserved, view, cycle)
        slack, binding, round_end = self._sequence_slack(order, view, cycle)
        full = va["B"] and va["K"] >= 0.99 * va["B"]
        if slack <= 0:
            # Pre-empt only a link that can last until it is served again (or cannot hold more).
            # Its next visit comes after the rest of this round at the earliest. Near capacity it
            # comes a whole round after its last: the shortest sustainable round, sum(T) / (1 -
            # load), nears the longest the stores allow, and every link must leave holding enough
            # for a round of that length (the short links full, the long one what it can make).
            # Counted up to twice the shortest round, so that at low load a visit stays short.
            spare = 1.0 - load
            shortest = sum(v["T"] + SWITCH_TIME_S for v in view.values()) / spare if spare > 0 else cycle
            gap = min(cycle, 2 * shortest) * (1.0 - min(va["d"] / va["R"], 1.0))
            survive = va["d"] * max(round_end + va["T"], gap)
            if va["B"]:
                survive = min(survive, 0.98 * va["B"])
            # Nor may a visit outlast its share of the longest round (of its fair part, when
            # overloaded): the Bob keeps turning even when a store cannot be refilled.
            share = (1 + self.params["margin"]) * cycle * (va["d"] / va["R"]) / max(1.0, fluid_need)
            generated = now - (self.generating_since if self.generating_since is not None else now)
            if full or va["K"] >= survive or generated >= share:
                nxt = order[0]
                return decision(nxt, True, "%s must be served now: %.0f s of key left, %.0f s to initialise"
                                % (binding, self._autonomy(view[binding]), view[binding]["T"])
                                + ("" if nxt == binding else "; %s comes first" % nxt))
            warnings.append("%s may run dry: %s cannot leave before it holds enough key to last %.0f s"
                            % (binding, active, round_end + va["T"]))
            return decision(active, False, "keeping %s until it can last the round (%.0f of %.0f bits)"
                            % (active, va["K"], survive))
        if full:
            worth = [name for name in order if self._worth_a_visit(view[name])]
            if worth:
                nxt = worth[0]
                return decision(nxt, True, "%s is full; %s has room for %.0f bits"
                                % (active, nxt, view[nxt]["B"] - view[nxt]["K"]))
            return decision(active, False, "%s is full and no link needs key; staying connected" % active)
        return decision(active, False, "keeping %s (%.0f bits stored); %s must be served within %.0f s"
                        % (active, va["K"], binding, slack))

    def _starving(self):
        """Links whose store stays empty for most of the time they generate, worst first."""
        found = []
        threshold = 0.25 if self.alarm else 0.5
        for name, link in self.links.items():
            share = link.empty.value()
            if share is not None and link.empty.seconds >= 7200.0 and share >= threshold:
                found.append((share, name))
        return [name for _share, name in sorted(found, reverse=True)], dict((n, s) for s, n in found)

    def _alarm(self, now, load, need, view):
        """Hysteresis on the needed share of the Bob's time (or links that cannot keep up at all)."""
        params = self.params
        starving, shares = self._starving()
        over = need >= params["alarm_on"] if not self.alarm else need > params["alarm_off"]
        wanted = over or bool(starving)
        if wanted == self.alarm:
            self.alarm_pending_since = None
        elif self.alarm_pending_since is None:
            self.alarm_pending_since = now
        elif now - self.alarm_pending_since >= params["alarm_hold_s"]:
            self.alarm, self.alarm_pending_since = wanted, None
        if not self.alarm:
            return None
        if starving and need < params["alarm_on"]:
            return ("%s cannot keep key in store even while connected (empty %.0f %% of the time it "
                    "generates): its demand exceeds what it makes in the Bob's time it can get; add a "
                    "receiver or move demand" % (starving[0], 100 * shares[starving[0]]))
        heaviest = max(view, key=lambda name: view[name]["d_long"] / view[name]["R"])
        return ("key demand needs %.0f %% of the Bob's time (%.0f %% generating, %.0f %% re-initialising), "
                "more than one receiver has; %s alone needs %.0f %%: add a receiver or move demand"
                % (100 * need, 100 * load, 100 * (need - load), heaviest,
                   100 * view[heaviest]["d_long"] / view[heaviest]["R"]))

    def _estimates(self, view, active, phase, snapshot):
        result = {}
        for name, v in view.items():
            if name != active:
                state = "idle"
            else:
                state = GENERATING if phase == GENERATING else INITIALISING
            autonomy = self._autonomy(v)
            visits, recent = snapshot[name]
            result[name] = {
                "state": state, "stored_bits": int(v["K"]),
                "capacity_bits": None if v["B"] is None else int(v["B"]),
                "demand_bps": round(v["d_long"], 3), "recent_demand_bps": round(recent, 3),
                "key_rate_bps": round(v["R"], 3), "init_time_s": round(v["T"], 1),
                "autonomy_s": None if math.isinf(autonomy) else round(autonomy, 1),
                "visits": visits,
            }
        return result

    # -- persistence -------------------------------------------------------------------------
    def to_dict(self):
        return {
            "kind": STATE_KIND, "version": STATE_VERSION, "params": dict(self.params),
            "links": [link.to_dict() for link in self.links.values()],
            "last_time": self.last_time, "tick_s": self.tick_s, "active": self.active,
            "phase": self.phase, "connected_at": self.connected_at, "generating_since": self.generating_since,
            "visit_demand": list(self.visit_demand), "visit_made": list(self.visit_made),
            "visited": list(self.visited),
            "switches": self.switches, "alarm": self.alarm, "alarm_pending_since": self.alarm_pending_since,
        }

    @classmethod
    def from_dict(cls, data, links=None, **params):
        """Restore a scheduler; with `links`, keep what was learned of links still present.

        Links named in `links` but not in the state start from their priors; links gone from
        `links` are dropped. A changed prior (init time, rate) restarts that estimate.
        """
        if not isinstance(data, dict) or data.get("kind") != STATE_KIND:
            raise SchedulerError("not a scheduler state (no kind %r)" % STATE_KIND)
        if data.get("version") != STATE_VERSION:
            raise SchedulerError("scheduler state version %r, this scheduler reads version %d"
                                 % (data.get("version"), STATE_VERSION))
        try:
            saved = {item["prior"]["name"]: item for item in data["links"]}
            if links is None:
                links = [LinkPrior(**item["prior"]) for item in data["links"]]
            merged = dict(data.get("params") or {})
            merged.update(params)
            scheduler = cls(links, **merged)
            for name, link in list(scheduler.links.items()):
                if name in saved:
                    scheduler.links[name] = _LinkState.from_dict(saved[name], link.prior)
            scheduler.last_time = data["last_time"]
            scheduler.tick_s = float(data["tick_s"])
            active = data["active"]
            if active in scheduler.links:
                scheduler.active, scheduler.phase = active, data["phase"]
                scheduler.connected_at = data["connected_at"]
                scheduler.generating_since = data["generating_since"]
                scheduler.visit_demand = [float(x) for x in data["visit_demand"]]
                scheduler.visit_made = [float(x) for x in data["visit_made"]]
            scheduler.visited = [name for name in data["visited"] if name in scheduler.links]
            scheduler.switches = int(data["switches"])
            scheduler.alarm = bool(data["alarm"])
            scheduler.alarm_pending_since = data["alarm_pending_since"]
        except SchedulerError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SchedulerError("scheduler state is damaged (%s: %s)" % (type(exc).__name__, exc)) from None
        if scheduler.phase not in (None, INITIALISING, GENERATING, UNKNOWN):
            raise SchedulerError("scheduler state is damaged (phase %r)" % (scheduler.phase,))
        return scheduler
