"""Neurons of one animal: cell types, latent loadings, spikes and calcium.

Rate model (per neuron i, fine grid t):

    r_i(t) = base_i * max(0, 1 + w_i . z(t) + v_i . q(t) + sum_b beta_ib x_b(t))

z: shared factors (both animals), q: this animal's private factors, x_b:
behaviour/task indicators. The modulation is linear (rectified only in the
rare case it falls below -1): an exponential link would turn products of
shared factors (z1 * z2, z1^2) into extra shared dimensions and make the
planted count ambiguous.
Spikes are Poisson(r dt) per fine bin; calcium
is the spike train through a double-exponential kernel (peak 1 per spike),
scaled to dF/F by `dff_per_spike`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from pipeline.simulator.config import SimConfig, genotype_type


@dataclass
class Neurons:
    """Planted parameters of one animal's neurons (n = number of neurons)."""

    cell_type: np.ndarray        # (n,) str
    base_rate: np.ndarray        # (n,) Hz
    shared_loading: np.ndarray   # (n, n_shared) fractional rate change per unit factor
    private_loading: np.ndarray  # (n, n_private)
    behavior_response: np.ndarray  # (n, n_behavior, 2 roles) fractional rate change while the indicator is 1
    behaviors: tuple             # behaviour axis of behavior_response


def make_neurons(cfg: SimConfig, rng: np.random.Generator, animal: str) -> Neurons:
    i = 0 if animal == "A" else 1
    n = cfg.n_neurons[i]
    gt = genotype_type(cfg.genotype[i]) if cfg.genotype[i] else None
    if gt is not None:
        cell_type = np.full(n, gt, dtype=object)
    else:
        n_gaba = int(round(cfg.gaba_fraction * n))
        cell_type = np.array(["GABAergic"] * n_gaba + ["glutamatergic"] * (n - n_gaba), dtype=object)
        cell_type = cell_type[rng.permutation(n)]
    gaba = cell_type == "GABAergic"
    base = np.where(gaba, cfg.base_rate_gaba, cfg.base_rate_glu) * rng.lognormal(0.0, 0.3, n)
    gain = np.where(gaba, cfg.shared_gain_gaba, cfg.shared_gain_glu)
    w = rng.standard_normal((n, cfg.n_shared)) / np.sqrt(max(cfg.n_shared, 1)) * gain[:, None]
    if cfg.n_shared:
        # equal total weight per factor, so no factor is left weak by an unlucky draw of few neurons
        w *= np.sqrt(np.sum(gain ** 2) / cfg.n_shared) / np.linalg.norm(w, axis=0, keepdims=True)
    v = rng.standard_normal((n, cfg.n_private)) / np.sqrt(max(cfg.n_private, 1)) * cfg.private_gain
    behaviors = tuple(cfg.behaviors) + ("poke", "hold", "reward")
    resp = np.zeros((n, len(behaviors), 2))
    n_resp = max(1, int(round(cfg.response_fraction * n)))
    for a, b, role in cfg.responses:
        if a != animal:
            continue
        idx = rng.choice(n, size=n_resp, replace=False)
        sign = np.where(rng.random(n_resp) < 0.75, 1.0, -0.5)
        resp[idx, behaviors.index(b), 0 if role == "self" else 1] = sign * cfg.response_gain * rng.uniform(0.7, 1.3, n_resp)
    return Neurons(cell_type=cell_type.astype(str), base_rate=base, shared_loading=w, private_loading=v,
                   behavior_response=resp, behaviors=behaviors)


def calcium_kernel_filter(spikes: np.ndarray, dt: float, tau_rise: float, tau_decay: float) -> np.ndarray:
    """Spike counts (..., t) through k(t) = (exp(-t/td) - exp(-t/tr)) / peak; exact recursive filter."""
    ad, ar = np.exp(-dt / tau_decay), np.exp(-dt / tau_rise)
    tpk = np.log(tau_decay / tau_rise) * tau_decay * tau_rise / (tau_decay - tau_rise)
    peak = np.exp(-tpk / tau_decay) - np.exp(-tpk / tau_rise)
    yd = lfilter([1.0], [1.0, -ad], spikes, axis=-1)
    yr = lfilter([1.0], [1.0, -ar], spikes, axis=-1)
    return (yd - yr) / peak


def simulate_activity(cfg: SimConfig, rng: np.random.Generator, neurons: Neurons, animal: str,
                      shared: np.ndarray, private: np.ndarray, traces: dict, frame_times: np.ndarray,
                      frame_period: float, block: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Spikes and dF/F calcium of every neuron at the given frames.

    shared (n_shared, n_t), private (n_private, n_t) on the fine grid
    (spacing cfg.fine_dt, t = 0 at index 0); frame_times (n_frames,) master s.
    Returns spikes (n, n_frames) int16 (spikes in [t_f, t_f + frame_period))
    and calcium (n, n_frames) float32 (dF/F at t_f, noise-free).
    Neurons are simulated in blocks so memory stays O(block * n_t).
    """
    dt = cfg.fine_dt
    n_t = shared.shape[1]
    partner = "B" if animal == "A" else "A"
    X = np.stack([traces[(b, animal)] for b in neurons.behaviors] + [traces[(b, partner)] for b in neurons.behaviors])
    beta = np.concatenate([neurons.behavior_response[:, :, 0], neurons.behavior_response[:, :, 1]], axis=1)
    fi = frame_times / dt
    f0 = np.clip(np.floor(fi).astype(int), 0, n_t - 2)
    frac = fi - f0
    e0 = np.clip(np.round(frame_times / dt).astype(int), 0, n_t)
    e1 = np.clip(np.round((frame_times + frame_period) / dt).astype(int), 0, n_t)
    n = neurons.base_rate.size
    spikes = np.zeros((n, frame_times.size), np.int16)
    calcium = np.zeros((n, frame_times.size), np.float32)
    for s in range(0, n, block):
        sl = slice(s, min(n, s + block))
        mod = 1.0 + neurons.shared_loading[sl] @ shared + neurons.private_loading[sl] @ private + beta[sl] @ X
        rate = np.minimum(neurons.base_rate[sl][:, None] * np.maximum(mod, 0.0), cfg.max_rate)
        sp = rng.poisson(rate * dt).astype(np.float64)
        c = calcium_kernel_filter(sp, dt, cfg.tau_rise_s, cfg.tau_decay_s)
        calcium[sl] = (cfg.dff_amplitude * (c[:, f0] * (1 - frac) + c[:, f0 + 1] * frac)).astype(np.float32)
        cs = np.concatenate([np.zeros((sp.shape[0], 1)), np.cumsum(sp, axis=1)], axis=1)
        spikes[sl] = (cs[:, e1] - cs[:, e0]).astype(np.int16)
    return spikes, calcium
