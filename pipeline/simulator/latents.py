"""What the two brains share: latent factors, behaviour bouts, task events.

Everything here lives on the master clock (seconds). The fine grid
``t = k * fine_dt`` carries the latents and the spikes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.simulator.config import SimConfig


def smooth_factors(rng: np.random.Generator, n: int, n_t: int, dt: float, tau_range: tuple) -> tuple[np.ndarray, np.ndarray]:
    """`n` independent unit-variance smooth signals, shape (n, n_t).

    Each is white noise through a second-order (two cascaded AR(1)) low-pass
    with timescale tau (s) drawn from `tau_range`; the cascade gives smooth
    (differentiable-looking) signals, unlike a plain Ornstein-Uhlenbeck walk.
    Returns (factors, taus).
    """
    from scipy.signal import lfilter

    taus = np.sort(rng.uniform(tau_range[0], tau_range[1], size=n))[::-1] if n else np.zeros(0)
    out = np.empty((n, n_t), dtype=np.float64)
    burn = int(5 * tau_range[1] / dt) + 1
    for k in range(n):
        a = np.exp(-dt / (taus[k] / 2))
        x = rng.standard_normal(n_t + burn)
        x = lfilter([1 - a], [1, -a], x)
        x = lfilter([1 - a], [1, -a], x)[burn:]
        out[k] = (x - x.mean()) / x.std()
    return out, taus


def alternating_bouts(rng: np.random.Generator, t0: float, t1: float, rate_per_min: float,
                      mean_s: float) -> list[tuple[float, float]]:
    """Bouts of one behaviour: exponential gaps (rate per minute of free time), gamma(k=3) lengths."""
    out = []
    if rate_per_min <= 0:
        return out
    t = t0 + rng.exponential(60.0 / rate_per_min)
    while True:
        dur = float(np.clip(rng.gamma(3.0, mean_s / 3.0), 0.5, 6 * mean_s))
        if t + dur > t1:
            break
        out.append((t, t + dur))
        t = t + dur + 1.0 + rng.exponential(60.0 / rate_per_min)
    return out


def snap(times: np.ndarray, fps: float, offset: float) -> np.ndarray:
    """Snap master-clock times to the nearest behaviour-video frame time (annotators code frames)."""
    return offset + np.round((np.asarray(times) - offset) * fps) / fps


def simulate_behavior(cfg: SimConfig, rng: np.random.Generator, t0: float, t1: float) -> pd.DataFrame:
    """Annotated behaviour of both animals on the master clock.

    Columns animal, behavior, start, stop, kind (state/point). Every
    (animal, behaviour) is its own independent process (bouts of different
    behaviours may overlap, as BORIS allows), so no behaviour couples the
    animals unless `responses` says so. Times sit on video frames.
    """
    rows = []
    for animal in ("A", "B"):
        for b in cfg.behaviors:
            for s, e in alternating_bouts(rng, t0, t1, cfg.behavior_rate_per_min, cfg.bout_mean_s):
                s, e = snap([s, e], cfg.video_fps, cfg.video_offset_s)
                if e > s:
                    rows.append((animal, b, s, e, "state"))
        for b in cfg.point_behaviors:
            n = rng.poisson(cfg.point_rate_per_min * (t1 - t0) / 60.0)
            for t in snap(np.sort(rng.uniform(t0, t1, n)), cfg.video_fps, cfg.video_offset_s):
                rows.append((animal, b, t, t, "point"))
    df = pd.DataFrame(rows, columns=["animal", "behavior", "start", "stop", "kind"])
    return df.sort_values(["start", "animal", "behavior"], kind="stable").reset_index(drop=True)


def simulate_task(cfg: SimConfig, rng: np.random.Generator, t0: float, t1: float) -> dict[str, pd.DataFrame]:
    """Cooperation task on the master clock.

    Each animal, independently: away from the port (exponential, mean
    `port_interval_mean_s`, >= 1 s) -> port entry -> hold (gamma k=2, mean
    `hold_mean_s`, 0.3-8 s) -> poke -> port exit 0.3-1 s later. A poke is
    coordinated when the partner poked within `coordination_window_s`
    (either side). With probability `coordination_prob` a visit waits for the
    partner's poke (trained coordination). A reward (both animals, 0.2 s after the later poke) follows
    each coordinated pair once.

    Returns {"visits": animal, entry, poke, exit; "pokes": animal, time,
    coordinated; "rewards": time}.
    """
    visits = []
    for animal in ("A", "B"):
        t = t0 + 1.0 + rng.exponential(cfg.port_interval_mean_s)
        while True:
            hold = float(np.clip(rng.gamma(2.0, cfg.hold_mean_s / 2.0), 0.3, 8.0))
            stay = float(rng.uniform(0.3, 1.0))
            if t + hold + stay > t1 - 1.0:
                break
            visits.append((animal, t, t + hold, t + hold + stay))
            t = t + hold + stay + 1.0 + rng.exponential(cfg.port_interval_mean_s)
    visits = pd.DataFrame(visits, columns=["animal", "entry", "poke", "exit"]).sort_values("entry", kind="stable").reset_index(drop=True)
    visits = _wait_for_partner(visits, rng, cfg.coordination_prob)
    w = cfg.coordination_window_s
    pa = visits.loc[visits.animal == "A", "poke"].to_numpy()
    pb = visits.loc[visits.animal == "B", "poke"].to_numpy()
    rows = []
    for animal, own, other in (("A", pa, pb), ("B", pb, pa)):
        for t in own:
            rows.append((animal, t, bool(other.size and np.min(np.abs(other - t)) <= w)))
    pokes = pd.DataFrame(rows, columns=["animal", "time", "coordinated"]).sort_values("time", kind="stable").reset_index(drop=True)
    # one reward per coordinated pair, at the later poke (+0.2 s)
    rewards = []
    used = {"A": set(), "B": set()}
    for _, p in pokes.iterrows():
        partner = "B" if p.animal == "A" else "A"
        cand = [t for t in (pa if partner == "A" else pb) if p.time - w <= t <= p.time and t not in used[partner]]
        if cand and p.time not in used[p.animal]:
            used[partner].add(cand[-1])
            used[p.animal].add(p.time)
            rewards.append(p.time + 0.2)
    return {"visits": visits, "pokes": pokes, "rewards": pd.DataFrame({"time": rewards})}


def _wait_for_partner(visits: pd.DataFrame, rng: np.random.Generator, prob: float) -> pd.DataFrame:
    """With probability `prob` per visit, the animal waits for a partner poke due
    0.3-6 s after its entry and pokes just after it (U(-0.25, 0.5) s): trained
    coordination. Leader visits keep their timing."""
    v = visits.copy()
    follower = np.zeros(len(v), bool)
    for i in range(len(v)):
        if rng.random() >= prob:
            continue
        a, entry = v.animal[i], v.entry[i]
        part = v[(v.animal != a) & ~follower & (v.poke >= entry + 0.3) & (v.poke <= entry + 6.0)]
        if part.empty:
            continue
        poke = max(entry + 0.3, float(part.poke.iloc[0]) + rng.uniform(-0.25, 0.5))
        stay = v.exit[i] - v.poke[i]
        nxt = v[(v.animal == a) & (v.entry > entry)].entry
        if not nxt.empty and poke + stay > float(nxt.iloc[0]) - 0.5:
            continue
        v.loc[i, "poke"], v.loc[i, "exit"] = poke, poke + stay
        follower[i] = True
        follower[part.index[0]] = True  # a leader is not re-timed later
    return v


# ---------------------------------------------------------------------------
# which variables drive which animal (defines n_shared_planted)

def variable_group(behavior: str, actor: str, cfg: SimConfig) -> str:
    """Independent source a driving variable belongs to.

    Annotated behaviours are independent per (actor, behaviour). Pokes and
    holds of an animal are one source (a hold ends in a poke); the reward
    depends on both animals' pokes, so it joins both task sources.
    """
    if behavior in cfg.behaviors:
        return f"{behavior}:{actor}"
    return f"task:{actor}"


def driven_groups(cfg: SimConfig) -> tuple[dict[str, set], int]:
    """({source: animals it drives}, number of sources driving both animals)."""
    parent: dict[str, str] = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    drives: dict[str, set] = {}
    # rewards depend on both animals' pokes, and trained waiting couples the pokes themselves
    if cfg.coordination_prob > 0 or any(b == "reward" for _, b, _ in cfg.responses):
        parent[find("task:A")] = find("task:B")
    for animal, b, role in cfg.responses:
        actor = animal if role == "self" else ("B" if animal == "A" else "A")
        g = variable_group(b, actor, cfg)
        drives.setdefault(g, set()).add(animal)
    merged: dict[str, set] = {}
    for g, animals in drives.items():
        merged.setdefault(find(g), set()).update(animals)
    n_both = sum(1 for a in merged.values() if a == {"A", "B"})
    return merged, n_both


def variable_traces(cfg: SimConfig, t_fine: np.ndarray, events: pd.DataFrame, task: dict) -> dict[tuple[str, str], np.ndarray]:
    """Indicator traces on the fine grid, keyed (behaviour, actor): 1 inside a
    state bout, 1 for `point_response_s` after a point event (poke, reward)."""
    dt = t_fine[1] - t_fine[0]
    n = t_fine.size

    def box(starts, stops):
        x = np.zeros(n + 1)
        i0 = np.clip(np.round(np.asarray(starts) / dt).astype(int), 0, n)
        i1 = np.clip(np.round(np.asarray(stops) / dt).astype(int), 0, n)
        np.add.at(x, i0, 1.0)
        np.add.at(x, i1, -1.0)
        return (np.cumsum(x)[:n] > 0).astype(np.float64)

    out = {}
    for actor in ("A", "B"):
        for b in cfg.behaviors:
            e = events[(events.animal == actor) & (events.behavior == b)]
            out[(b, actor)] = box(e.start, e.stop)
        v = task["visits"][task["visits"].animal == actor]
        out[("hold", actor)] = box(v.entry, v.poke)
        out[("poke", actor)] = box(v.poke, v.poke + cfg.point_response_s)
        r = task["rewards"].time
        out[("reward", actor)] = box(r, r + cfg.point_response_s)
    return out
