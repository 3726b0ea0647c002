"""The link model fitted to the paper's measurements (Figs. 7-9), L in km.

T_init(L) = 400 s * 10^(0.02 L); R(L) = 4000 b/s * 10^(-0.064 L); QBER(L) = 1.68 % * 10^(0.02 L).
At 25 km: 1265 s, 100 b/s, 5.3 %. Times are in emulated seconds.
"""

import math


def init_time_s(length_km):
    return 400.0 * 10 ** (0.02 * length_km)


def key_rate_bps(length_km):
    return 4000.0 * 10 ** (-0.064 * length_km)


def qber(length_km):
    return 0.0168 * 10 ** (0.02 * length_km)


def drift(t_s, amplitude, period_s, phase):
    """Slow multiplicative drift of the key rate (polarisation and phase drift), within +/- amplitude."""
    return 1.0 + amplitude * math.sin(2 * math.pi * t_s / period_s + phase)
