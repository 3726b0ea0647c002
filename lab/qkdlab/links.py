"""QKD links: key material made only while the switch connects an Alice to its Bob.

Each link follows the physics model (physics.py) in emulated time (real time x time_scale):
connected -> initialising for T_init (with noise) -> generating at R (with a slow drift) until
disconnected. Disconnection stops generation at once; a reconnection initialises again. A QBER
measured above the limit at the end of initialisation aborts the link until it is reconnected.
Generated bits become key blocks of key_size bits deposited identically at both ends' KMEs.
"""

import math
import os
import random
import threading
import time
import uuid

from . import physics

IDLE, INITIALISING, GENERATING, ABORTED = "idle", "initialising", "generating", "aborted"
# Bits compared per QBER estimate: the reported QBER is a sample, as a real device's is.
QBER_SAMPLE_BITS = 200000


class Link:
    """The state of one emulated QKD link, advanced by step()."""

    def __init__(self, spec, topo, rng):
        self.spec = spec
        self.topo = topo
        self.rng = rng
        self.state = IDLE
        self.init_started = self.init_time = self.last_generated = None
        self.bits = 0.0  # generated bits not yet a whole block
        self.qber = None
        self.generated_bits = 0
        self.initialisations = 0
        self.drift_phase = rng.uniform(0, 2 * math.pi)

    def model_rate(self, now):
        noise = self.topo.noise
        return physics.key_rate_bps(self.spec.length_km) * physics.drift(
            now, noise.rate_drift, noise.rate_drift_period_s, self.drift_phase)

    def measure_qber(self):
        true = physics.qber(self.spec.length_km)
        sigma = math.sqrt(true * (1 - true) / QBER_SAMPLE_BITS)
        return max(0.0, self.rng.gauss(true, sigma))

    def step(self, now, connected_since):
        """Advance to emulated time `now`; return the number of whole new key bits to deposit.

        connected_since: the emulated time the fibre path was made (None: not connected). The
        initialisation counts from then, not from when this step notices it.
        """
        if connected_since is None:
            self.state, self.bits = IDLE, 0.0
            return 0
        if self.state == IDLE:
            self.state = INITIALISING
            self.init_started = min(connected_since, now)
            self.init_time = physics.init_time_s(self.spec.length_km) * (
                1 + self.topo.noise.init * self.rng.uniform(-1, 1))
            self.initialisations += 1
        if self.state == INITIALISING:
            if now - self.init_started < self.init_time:
                return 0
            self.qber = self.measure_qber()
            if self.qber > self.topo.qber_limit:
                self.state = ABORTED
                return 0
            self.state = GENERATING
            self.last_generated = self.init_started + self.init_time
        if self.state != GENERATING:
            return 0
        self.bits += self.model_rate(now) * (now - self.last_generated)
        self.last_generated = now
        block = self.topo.kme.key_size
        whole = int(self.bits // block) * block
        self.bits -= whole
        self.generated_bits += whole
        return whole

    def status(self, now):
        progress = None
        if self.state == INITIALISING:
            progress = round(min(1.0, (now - self.init_started) / self.init_time), 3)
        elif self.state in (GENERATING, ABORTED):
            progress = 1.0
        return {
            "name": self.spec.name, "alice": self.spec.alice, "bob": self.spec.bob,
            "length_km": self.spec.length_km, "switched": self.spec.switched,
            "alice_port": self.spec.alice_port, "bob_port": self.spec.bob_port,
            "state": self.state, "qber": None if self.qber is None else round(self.qber, 5),
            "init_time_s": None if self.init_time is None else round(self.init_time, 1),
            "init_progress": progress,
            "key_rate_bps": round(self.model_rate(now), 1) if self.state == GENERATING else 0.0,
            "generated_bits": self.generated_bits, "initialisations": self.initialisations,
        }


class LinkEmulator:
    """Steps every link from the switch state and deposits their keys into the KMEs' stores."""

    def __init__(self, topo, switch, network, clock=time.monotonic, seed=None, period_s=0.02):
        self.topo, self.switch, self.network = topo, switch, network
        self.clock, self.period_s = clock, period_s
        self.t0 = clock()
        rng = random.Random(seed)
        self.links = [Link(spec, topo, random.Random(rng.random())) for spec in topo.links]
        self.lock = threading.Lock()

    def now(self):
        """Emulated seconds since the lab started."""
        return (self.clock() - self.t0) * self.topo.time_scale

    def connected_since(self, spec):
        """Emulated time since which the link's fibre path exists, or None."""
        if not spec.switched:
            return 0.0
        since = self.switch.connected_since(spec.alice_port, spec.bob_port)
        if since is None:
            return None
        return max(0.0, (since - self.t0) * self.topo.time_scale)

    def step(self):
        block_bytes = self.topo.kme.key_size // 8
        with self.lock:
            now = self.now()
            for link in self.links:
                bits = link.step(now, self.connected_since(link.spec))
                # Blocks beyond the stores' capacity are lost, as on a device whose buffer is full.
                room = self.network.capacity_blocks(link.spec) - self.network.stored_blocks(link.spec)
                count = min(bits // self.topo.kme.key_size, room)
                if count > 0:
                    self.network.deposit(link.spec, [(str(uuid.uuid4()), os.urandom(block_bytes))
                                                     for _ in range(count)])

    def run(self, stop):
        """Step until the event `stop` is set."""
        while not stop.wait(self.period_s):
            self.step()

    def status(self):
        with self.lock:
            now = self.now()
            result = []
            for link in self.links:
                entry = link.status(now)
                entry["stored_keys"] = self.network.stored_blocks(link.spec)
                entry["capacity_keys"] = self.network.capacity_blocks(link.spec)
                result.append(entry)
            return {"emulated_time_s": round(now, 1), "links": result}

