#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of the time-shared QKD scheduler against round-robin, a static cycle and the paper's rules.

    python benchmarks/scheduler.py [--quick] [--jobs N] [--no-plots | --plots-only]

Simulates one Bob shared by the paper's four Alices (0, 5, 10, 25 km; 2 Mbit stores) and by eight
Alices (0-25 km), under constant, Poisson, bursty (on/off) and diurnal demand, and prints:
requests served immediately (overall and for the worst link), the longest starvation, switches
per day, the Bob's time split (initialising / generating / idle), alarms, and rho* (the highest
load with >= 99.9 % of requests served immediately) beside two bounds on the load one Bob can
carry: the fluid bound (every link visited as rarely as its store allows) and the round bound
(every link visited once per round). Plots of stored key and the Bob's state go to
benchmarks/out/ (needs matplotlib).

Policies: adaptive = qkd.nfv's TimeShareScheduler (sees only stored bits and the connection,
learns demand, rates and initialisation times, starts from the fibre lengths); rr-1h, rr-4h =
round-robin with fixed slots that include initialisation; static = a fixed cycle with slots
proportional to demand (knows the true mean demand, rates and initialisation times); paper =
the literal rules of Aguado et al. (F = 2: stay until the store holds twice the initialisation
times of the other links, pre-empt when a link cannot survive the initialisations before it;
knows the true mean demand).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import linksim  # noqa: E402  pylint: disable=wrong-import-position


def _import_scheduler():
    """The collection's scheduler; made importable from a plain checkout when it is not installed."""
    try:
        from ansible_collections.qkd.nfv.plugins.module_utils import scheduler
    except ImportError:
        root = tempfile.mkdtemp(prefix="qkd-nfv-bench-")
        os.makedirs(os.path.join(root, "ansible_collections", "qkd"))
        os.symlink(os.path.dirname(HERE), os.path.join(root, "ansible_collections", "qkd", "nfv"))
        sys.path.insert(0, root)
        from ansible_collections.qkd.nfv.plugins.module_utils import scheduler
    return scheduler


PAPER_LINKS = [0, 5, 10, 25]
EIGHT_LINKS = [0, 2, 5, 8, 10, 15, 20, 25]
LOADS = [0.3, 0.5, 0.7, 0.85, 0.9, 1.1]
SWEEP = [0.8, 0.825, 0.85, 0.875, 0.88, 0.885, 0.89, 0.9, 0.925]
POLICIES = ["adaptive", "rr-1h", "rr-4h", "static", "paper"]
TARGET_SERVED = 0.999


# -- policies -----------------------------------------------------------------------------------

class Adaptive:
    """qkd.nfv's scheduler, fed observations only; priors are the fibre lengths."""

    def __init__(self, lengths, names, capacity, demand):
        del demand  # learned, not told
        scheduler = _import_scheduler()
        self.scheduler = scheduler.TimeShareScheduler(
            [{"name": name, "length_km": length, "capacity_bits": capacity}
             for name, length in zip(names, lengths)])

    def tick(self, now, stored, active):
        decision = self.scheduler.tick(now, stored, active)
        return (decision.link if decision.switch else None), decision.alarm is not None


class RoundRobin:
    """Fixed slots in a fixed order; a slot includes the link's initialisation."""

    def __init__(self, names, slot_s):
        self.names, self.slot = names, slot_s
        self.index, self.started = 0, 0.0

    def tick(self, now, stored, active):
        del stored
        if now - self.started >= self.slot or active is None:
            self.index = (self.index + 1) % len(self.names) if active is not None else 0
            self.started = now
            return self.names[self.index], False
        return None, False


class Static:
    """A fixed cycle, slot_i = T_i + share of the cycle proportional to demand_i / rate_i.

    The cycle is 95 % of the longest the stores allow (at most 12 h): the fewest initialisations
    that keep every store from running dry, with the spare time shared in proportion to need.
    """

    def __init__(self, lengths, names, capacity, demand):
        inits = [linksim.init_time_s(length) for length in lengths]
        rates = [linksim.key_rate_bps(length) for length in lengths]
        load = sum(d / r for d, r in zip(demand, rates))
        buffer_cycle = min(capacity / (d * (1 - min(d / r, 0.99))) for d, r in zip(demand, rates) if d > 0)
        cycle = min(0.95 * buffer_cycle, 12 * 3600.0)
        spare = max(0.0, cycle - sum(inits))
        self.slots = [t + spare * (d / r) / load for t, d, r in zip(inits, demand, rates)]
        self.names, self.index, self.started = names, 0, 0.0

    def tick(self, now, stored, active):
        del stored
        if now - self.started >= self.slots[self.index] or active is None:
            self.index = (self.index + 1) % len(self.names) if active is not None else 0
            self.started = now
            return self.names[self.index], False
        return None, False


class Paper:
    """The paper's rules read literally (with the true mean demand, rates and initialisation times).

    1. criticality t_i = K_i / d_i; start on the most critical link;
    2. once keys flow, the active link has enough when K_a >= F * d_a * sum of the other links'
       initialisation times (the threshold that stops it);
    3. sort the others by t; the n-th is critical unless it survives the initialisations of the
       first n. "If step 3) finds connections in a critical situation and condition 2) is
       satisfied, the scheduler will change the current configuration": switch to the most
       critical link once the threshold is reached (and, when none is critical, still stop there);
    4. alarm when the load is >= 1 or some link cannot survive even its own initialisation.
    """

    def __init__(self, lengths, names, capacity, demand, factor=2.0):
        del capacity
        self.names, self.factor = names, factor
        self.inits = dict(zip(names, (linksim.init_time_s(length) for length in lengths)))
        self.demand = dict(zip(names, demand))
        self.load = sum(d / linksim.key_rate_bps(length) for d, length in zip(demand, lengths))
        self.last_bits, self.generating = None, False

    def tick(self, now, stored, active):
        del now
        t = {name: stored[name] / self.demand[name] if self.demand[name] > 0 else math.inf for name in self.names}
        alarm = self.load >= 1 or any(t[name] < self.inits[name] + linksim.SWITCH_TIME_S for name in self.names)
        if active is None:
            return min(self.names, key=t.get), alarm
        if self.last_bits is not None and stored[active] > self.last_bits:
            self.generating = True
        self.last_bits = stored[active]
        others = sorted((name for name in self.names if name != active), key=t.get)
        threshold = self.factor * self.demand[active] * sum(self.inits[name] for name in others)
        if self.generating and stored[active] >= threshold:
            self.last_bits, self.generating = None, False
            return others[0], alarm
        return None, alarm


def make_policy(name, lengths, names, capacity, demand):
    if name == "adaptive":
        return Adaptive(lengths, names, capacity, demand)
    if name.startswith("rr-"):
        return RoundRobin(names, float(name[3:-1]) * 3600.0)
    if name == "static":
        return Static(lengths, names, capacity, demand)
    if name == "paper":
        return Paper(lengths, names, capacity, demand)
    raise ValueError("unknown policy %s" % name)


# -- runs ---------------------------------------------------------------------------------------

INITIAL_FILL = 0.1  # stores start nearly empty: a large initial stock would hide a slow deficit


def run_one(job):
    """One simulation: job = (policy, lengths, load, pattern, seed, (warm-up, measured days), capacity, trace)."""
    policy_name, lengths, load, pattern, seed, (warmup, days), capacity, trace = job
    demand = linksim.equal_demand(lengths, load)
    names = ["%gkm" % length for length in lengths]
    sim = linksim.Simulation(lengths, demand, pattern, capacity_bits=capacity, seed=seed, days=days,
                             warmup_days=warmup, initial_fill=INITIAL_FILL,
                             trace_every_s=300.0 if trace else None)
    policy = make_policy(policy_name, lengths, names, capacity, demand)
    started = time.process_time()
    result = sim.run(policy, names)
    result["cpu_s"] = time.process_time() - started
    return job, result


def run_all(jobs, workers):
    if workers <= 1:
        return [run_one(job) for job in jobs]
    with multiprocessing.Pool(workers) as pool:
        return pool.map(run_one, jobs, chunksize=1)


def mean(results, key):
    return sum(r[key] for r in results) / len(results)


def merged(results):
    """Seeds merged: means, except the worst cases (starvation, worst link, alarms)."""
    return {
        "served": mean(results, "served"), "worst_link": min(r["worst_link"] for r in results),
        "starvation_s": max(r["starvation_s"] for r in results),
        "switches_per_day": mean(results, "switches_per_day"),
        "init_share": mean(results, "init_share"), "gen_share": mean(results, "gen_share"),
        "idle_share": mean(results, "idle_share"), "alarms": max(r["alarms"] for r in results),
        "alarm_at_end": all(r["alarm_at_end"] for r in results),
        "alarm_share": mean(results, "alarm_share"), "cpu_s": sum(r["cpu_s"] for r in results),
    }


def hours(seconds):
    if seconds <= 0:
        return "0"
    return "%.1fh" % (seconds / 3600.0) if seconds >= 3600 else "%.0fs" % seconds


# -- report -------------------------------------------------------------------------------------

def print_served_tables(table, policies, loads, patterns, title):
    print("\n## %s: requests served immediately, overall / worst link" % title)
    for pattern in patterns:
        print("\n%-9s %s" % (pattern, " ".join("%15s" % ("rho=%.2f" % load) for load in loads)))
        for policy in policies:
            cells = []
            for load in loads:
                r = table.get((policy, load, pattern))
                cells.append("%15s" % ("%.4f / %.3f" % (r["served"], r["worst_link"]) if r else "-"))
            print("%-9s %s" % (policy, " ".join(cells)))


def print_detail(table, policies, loads, pattern, title):
    print("\n## %s, %s demand: starvation, switches/day, Bob time init/gen/idle, alarms"
          % (title, pattern))
    print("%-9s %6s %10s %9s %16s %7s" % ("policy", "rho", "starve", "sw/day", "init/gen/idle %", "alarms"))
    for policy in policies:
        for load in loads:
            r = table.get((policy, load, pattern))
            if not r:
                continue
            alarms = "%d%s" % (r["alarms"], " (on at end)" if r["alarm_at_end"] else "")
            print("%-9s %6.2f %10s %9.1f %16s %7s" % (
                policy, load, hours(r["starvation_s"]), r["switches_per_day"],
                "%2.0f/%2.0f/%2.0f" % (100 * r["init_share"], 100 * r["gen_share"], 100 * r["idle_share"]),
                alarms))


def rho_star(table, policy, loads, pattern):
    best = None
    for load in sorted(loads):
        r = table.get((policy, load, pattern))
        if r and r["served"] >= TARGET_SERVED:
            best = load
        elif r:
            break
    return best


def plot_traces(traces, out_dir, lengths, capacity, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib is not installed: no plots)")
        return []
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for policy, trace in traces.items():
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True,
                                          gridspec_kw={"height_ratios": [3, 1]})
        times = [t / 3600.0 for t, _, _, _ in trace]
        for i, length in enumerate(lengths):
            top.plot(times, [store[i] / 1e6 for _, store, _, _ in trace], label="%g km" % length, lw=1)
        top.axhline(capacity / 1e6, color="grey", lw=0.5, ls="--")
        top.set_ylabel("stored key (Mbit)")
        top.set_title("%s: %s" % (policy, title))
        top.legend(loc="upper right", fontsize="small", ncol=len(lengths))
        for i in range(len(lengths)):
            for state, colour in (("init", "tab:orange"), ("gen", "tab:green")):
                xs = [t / 3600.0 for t, _, active, s in trace if active == i and s == state]
                bottom.scatter(xs, [i] * len(xs), s=2, c=colour, marker="s", linewidths=0)
        bottom.set_yticks(range(len(lengths)), ["%g km" % length for length in lengths])
        bottom.set_xlabel("time (h); Bob: orange initialising, green generating")
        fig.tight_layout()
        path = os.path.join(out_dir, "scheduler-%s.png" % policy)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 measured days, fewer loads")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--plots-only", action="store_true", help="only the PNG plots (five short runs)")
    parser.add_argument("--out", default=os.path.join(HERE, "out"), help="directory for the plots")
    args = parser.parse_args(argv)

    capacity = 2e6
    seeds = [1] if args.quick else [1, 2]
    days = (1.0, 2.0) if args.quick else (2.0, 5.0)  # (warm-up, measured) days
    patterns = list(linksim.Demand.PATTERNS)
    loads = [0.5, 0.85, 1.1] if args.quick else LOADS
    sweep = [0.7, 0.8, 0.85, 0.875, 0.88, 0.9] if args.quick else SWEEP
    eight_loads = [0.7] if args.quick else [0.5, 0.7, 0.85]

    jobs = []
    for policy in POLICIES:
        for pattern in patterns:
            for load in loads:
                jobs += [(policy, tuple(PAPER_LINKS), load, pattern, seed, days, capacity, False) for seed in seeds]
        for load in sweep:
            if load not in loads:
                jobs += [(policy, tuple(PAPER_LINKS), load, "poisson", seed, days, capacity, False)
                         for seed in seeds]
        for load in eight_loads:
            jobs += [(policy, tuple(EIGHT_LINKS), load, "poisson", seed, days, capacity, False) for seed in seeds]
    plot_load = 0.85
    if args.plots_only:
        jobs = []
    if args.plots_only or not args.no_plots:
        jobs += [(policy, tuple(PAPER_LINKS), plot_load, "poisson", 7, (0.0, 2.0), capacity, True)
                 for policy in POLICIES]

    started = time.time()
    if not args.plots_only:
        print("# qkd.nfv time-shared QKD scheduler benchmark: %d simulations, %g measured days after a %g-day "
              "warm-up from stores %d %% full, seeds %s, %d workers"
              % (len(jobs), days[1], days[0], 100 * INITIAL_FILL, seeds, args.jobs))
    outcomes = run_all(jobs, args.jobs)
    grouped, traces = {}, {}
    for job, result in outcomes:
        policy, lengths, load, pattern, seed, _, _, trace = job
        if trace:
            traces[policy] = result["trace"]
            continue
        grouped.setdefault((policy, lengths, load, pattern), []).append(result)
    paper = {(p, load, pat): merged(rs) for (p, lengths, load, pat), rs in grouped.items()
             if lengths == tuple(PAPER_LINKS)}
    eight = {(p, load, pat): merged(rs) for (p, lengths, load, pat), rs in grouped.items()
             if lengths == tuple(EIGHT_LINKS)}

    if args.plots_only:
        written = plot_traces(traces, args.out, PAPER_LINKS, capacity,
                              "rho = %.2f, Poisson demand, 2 Mbit stores, 2 days" % plot_load)
        print("plots: %s" % ", ".join(os.path.relpath(path) for path in written))
        return 0
    print_served_tables(paper, POLICIES, loads, patterns, "Paper's links (0/5/10/25 km, 2 Mbit stores)")
    for pattern in ("poisson", "bursty"):
        print_detail(paper, POLICIES, loads, pattern, "Paper's links")

    print("\n## rho*: highest load with >= %.1f %% of requests served immediately (Poisson demand)"
          % (100 * TARGET_SERVED))
    all_loads = sorted(set(loads) | set(sweep))
    sweep_loads = [load for load in all_loads if load < 1]
    print("%-9s %s" % ("policy", " ".join("%7.3f" % load for load in sweep_loads)))
    for policy in POLICIES:
        cells = ["%7.4f" % paper[(policy, load, "poisson")]["served"] if (policy, load, "poisson") in paper
                 else "%7s" % "-" for load in sweep_loads]
        print("%-9s %s   rho* = %s" % (policy, " ".join(cells), rho_star(paper, policy, all_loads, "poisson")))
    fluid = _bound_load(linksim.fluid_bound, PAPER_LINKS, capacity)
    rounds = _bound_load(linksim.round_bound, PAPER_LINKS, capacity)
    print("bounds for one Bob, equal demand: fluid rho_max = %.3f (each link visited as rarely as its store "
          "allows); round rho_max = %.3f (each link once per round, the longest round the stores allow)"
          % (fluid, rounds))

    print_served_tables(eight, POLICIES, eight_loads, ["poisson"], "Eight Alices (0-25 km, 2 Mbit stores)")
    print_detail(eight, POLICIES, eight_loads, "poisson", "Eight Alices")
    print("bounds for eight Alices: fluid rho_max = %.3f, round rho_max = %.3f"
          % (_bound_load(linksim.fluid_bound, EIGHT_LINKS, capacity),
             _bound_load(linksim.round_bound, EIGHT_LINKS, capacity)))

    print("\n## Targets (adaptive, paper's links)")
    star = rho_star(paper, "adaptive", all_loads, "poisson")
    print("rho* (Poisson) = %s against >= 0.90 asked; fluid bound %.3f, round bound %.3f"
          % (star, fluid, rounds))
    print("the 0.90 target is %s the round bound: at rho = 0.90 one Bob needs %.1f %% of its time "
          "(generation plus one re-initialisation of every link per round)"
          % ("ABOVE" if rounds < 0.90 else "below", 100 * linksim.round_bound(
              PAPER_LINKS, linksim.equal_demand(PAPER_LINKS, 0.90), capacity)))
    half = paper.get(("adaptive", 0.5, "poisson"))
    if half:
        print("switches per day at rho = 0.5 (Poisson) = %.1f against <= 24 asked" % half["switches_per_day"])
    over = [(key, paper[key]) for key in sorted(paper) if key[0] == "adaptive" and key[1] > 1]
    under = [(key, paper[key]) for key in sorted(paper) if key[0] == "adaptive" and key[1] < 1]
    if over:
        print("overload (rho = 1.1): alarms raised (most in any seed) %s; still on at the end of every run: %s"
              % (", ".join("%s %d" % (key[2], r["alarms"]) for key, r in over),
                 all(r["alarm_at_end"] for _, r in over)))
    false_alarms = ["%s %.3g" % (key[2], key[1]) for key, r in under if r["alarms"] and r["served"] >= TARGET_SERVED]
    short = ["%s %.3g (%.3f served)" % (key[2], key[1], r["served"]) for key, r in under
             if r["alarms"] and r["served"] < TARGET_SERVED]
    print("below rho = 1: false alarms (alarm while >= %.1f %% served): %s; alarms where service fell short: %s"
          % (100 * TARGET_SERVED, ", ".join(false_alarms) or "none", ", ".join(short) or "none"))

    if traces:
        written = plot_traces(traces, args.out, PAPER_LINKS, capacity,
                              "rho = %.2f, Poisson demand, 2 Mbit stores, 2 days" % plot_load)
        if written:
            print("\nplots: %s" % ", ".join(os.path.relpath(path) for path in written))
    cpu = sum(r["cpu_s"] for _, r in outcomes)
    print("\nwall time %.0f s, simulation CPU time %.0f s" % (time.time() - started, cpu))
    return 0


def _bound_load(bound, lengths, capacity):
    """The load at which bound(lengths, equal demand, capacity) reaches 1 (bisection)."""
    low, high = 0.0, 1.0
    for _ in range(50):
        middle = (low + high) / 2
        if bound(lengths, linksim.equal_demand(lengths, middle), capacity) <= 1:
            low = middle
        else:
            high = middle
    return low


if __name__ == "__main__":
    sys.exit(main())
