"""Simulator settings: one dataclass, four presets.

Per-animal settings are (A, B) pairs; an override given as a single value
applies to both animals (``n_neurons=20`` means 20 in A and 20 in B).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

BEHAVIORS = ("approach", "sniff", "follow")
TASK_VARIABLES = ("poke", "hold", "reward")
ROLES = ("self", "partner")

# (animal whose neurons respond, behaviour, role). The default drives every
# independent source into ONE animal only, so behaviour adds no inter-brain
# dimension: A's neurons follow A's approach/sniff, B's follow, both animals'
# pokes (coordination couples them into one source), A's holds and rewards;
# B's neurons follow B's approach/sniff and A's follow.
DEFAULT_RESPONSES = (
    ("A", "approach", "self"), ("A", "sniff", "self"), ("A", "follow", "partner"),
    ("A", "poke", "self"), ("A", "poke", "partner"), ("A", "hold", "self"), ("A", "reward", "self"),
    ("B", "approach", "self"), ("B", "sniff", "self"), ("B", "follow", "partner"),
)

# session.toml sections the simulator writes itself (session_params may not add to them)
SIMULATOR_SECTIONS = frozenset({"session", "animals", "annotations", "clocks", "task", "motion", "extraction",
                                "behavior"})
_PAIR_FIELDS = ("n_neurons", "frame_rate", "start_offset_s", "genotype", "structural", "dropped_frames", "animal_id")


@dataclass
class SimConfig:
    """Every knob of the pair-session simulator (units in the field names or comments).

    Imaging
        n_neurons: neurons per animal (A, B).
        fov: field of view (y, x) in pixels, both animals.
        frame_rate: camera rate per animal (Hz).
        start_offset_s: master-clock time of each camera's first frame (s).
        duration_s: imaging duration (s) of each animal.
        modality: "2p" (point-scanning) or "1p" (widefield / miniscope: strong
            background, bigger cells, lower SNR).
        dropped_frames: frames each camera drops (count, >= 0).
        timestamp_jitter_s: SD of the frame-time jitter (s).
        cell_sigma_px: (min, max) Gaussian SD of somata (px); None picks by modality and fov.
        brightness: mean baseline peak brightness F0 of a soma (counts above dark).
        dff_per_spike: peak dF/F of one isolated spike; None picks by modality (2p 0.5, 1p 0.25).
        neuropil: neuropil level relative to mean F0.
        background: 1p only: out-of-focus background relative to mean F0 (several times brighter than cells).
        vignetting: 1p only: fractional fall-off of illumination at the corners (fixed to the sensor).
        glow: 1p only: stray-light glow fixed to the sensor (does not move with the tissue), mean level
            relative to mean F0; broad and off-centre, with a slow drift.
        n_vessels: blood vessels crossing the field (dark: they absorb the tissue's fluorescence; they
            move with the tissue); None picks by modality (1p 3, 2p 0).
        vessel_contrast: fraction of the tissue light a vessel's centre line absorbs.
        psf_sigma_px: optics blur, Gaussian SD (px) applied in sensor coordinates; None picks by
            modality (1p 1.2, 2p 0: point scanning images the focal plane sharply).
        bleach_fraction: fractional loss of all fluorescence over the session (0 = none).
        dark_offset: detector offset (counts).
        photon_gain: counts per detected photon (sets shot noise).
        read_noise: SD of read noise (counts).
        noise: multiplier on shot + read noise (0 renders noise-free movies).
        motion_px: SD of the rigid jitter (px); the jitter has a ~0.5 s timescale.
        jump_rate_per_min: rate of large transient displacements (at least one per animal when > 0).
        jump_px: (min, max) amplitude of those jumps (px); keep below ~10% of the fov (suite2p's maxregshift).
        nonrigid_px: peak amplitude of the smooth nonrigid warp (px).
        compression: TIFF compression ("zlib" or None).
        chunk_frames: frames rendered per block (bounds memory).
        render_movies: False skips the movies and structural images (truth, behaviour and task
            files only; fast for analysis tests; session.toml then names missing raw files).
    Cell types
        genotype: per animal; a Cre line ("Vgat-Cre" -> all GABAergic, "Vglut2-Cre"/"CaMKII" -> all
            glutamatergic) or "" for pan-neuronal.
        structural: per animal; write a red structural image marking `structural_marks`.
        gaba_fraction: GABAergic fraction in pan-neuronal animals.
        structural_marks: population the red reporter marks ("GABAergic" or "glutamatergic").
    Latents and spiking
        n_shared: independent shared latent factors driving both animals.
        shared_tau_s: (min, max) timescales of the shared factors (s).
        shared_gain_gaba, shared_gain_glu: SD of each neuron's shared drive (fraction of its base rate).
        n_private: private latent factors per animal.
        private_gain: SD of each neuron's private drive (fraction of base rate).
        base_rate_gaba, base_rate_glu: baseline firing rates (Hz).
        max_rate: firing-rate ceiling (Hz).
        tau_rise_s, tau_decay_s: calcium kernel (s).
        fine_dt: master-clock grid of the latents and spikes (s).
    Behaviour and task
        behaviors: annotated state behaviours.
        behavior_rate_per_min: bouts per minute per behaviour per animal.
        bout_mean_s: mean bout length (s).
        point_behaviors: annotated point events (no neuron responds to them).
        point_rate_per_min: point events per minute per animal.
        responses: (neuron animal, behaviour, role) entries; role "self" = the animal's own
            behaviour, "partner" = the partner's. Behaviours: `behaviors` + poke, hold, reward.
        response_fraction: fraction of an animal's neurons responding to each entry.
        response_gain: mean rate gain of an activated neuron (fraction of base rate; suppressed: -0.5x).
        point_response_s: response window after a point event (s).
        port_interval_mean_s: mean time away from the port between visits (s).
        hold_mean_s: mean wait at the port before the poke (s).
        coordination_window_s: a poke is coordinated when the partner pokes within this window (s).
        coordination_prob: probability that a port visit waits for the partner's poke (trained
            coordination; couples the two animals' task events).
        video_fps, video_offset_s: behaviour video rate and master time of its frame 0.
        task_offset_s, task_drift_ppm: task clock: master = offset + (1 + drift) * local.
        sync_interval_s: period of the TTL sync pulses (s).
    Identity
        animal_id, subject_names: ids in session.toml and subject names in the BORIS file.
        condition: session condition written to session.toml.
    Session settings
        detect_full_frame: write `[extraction] detect_full_frame_2p = true` (small fields of view, where
            the registration-valid crop would drop the edge cells).
        session_params: extra analysis settings written to session.toml, as (section, key, value)
            entries, in sections the simulator does not write itself (e.g. ("decoding", "mode", "lda")).
        latent_seed: seed of the shared latents only (None: derived from the session seed).
    """

    # imaging
    n_neurons: tuple = (60, 52)
    fov: tuple = (128, 128)
    frame_rate: tuple = (15.0, 14.98)
    start_offset_s: tuple = (0.4, 1.1)
    duration_s: float = 600.0
    modality: str = "2p"
    dropped_frames: tuple = (1, 2)
    timestamp_jitter_s: float = 0.0002
    cell_sigma_px: tuple | None = None
    brightness: float = 160.0
    dff_per_spike: float | None = None
    neuropil: float = 0.3
    background: float = 5.0
    vignetting: float = 0.5
    glow: float = 2.0
    n_vessels: int | None = None
    vessel_contrast: float = 0.5
    psf_sigma_px: float | None = None
    bleach_fraction: float = 0.0
    dark_offset: float = 100.0
    photon_gain: float = 4.0
    read_noise: float = 3.0
    noise: float = 1.0
    motion_px: float = 0.5
    jump_rate_per_min: float = 0.5
    jump_px: tuple = (3.0, 6.0)
    nonrigid_px: float = 0.6
    compression: str | None = None
    chunk_frames: int = 500
    render_movies: bool = True
    # cell types
    genotype: tuple = ("Vgat-Cre", "")
    structural: tuple = (False, True)
    gaba_fraction: float = 0.3
    structural_marks: str = "GABAergic"
    # latents and spiking
    n_shared: int = 3
    shared_tau_s: tuple = (1.0, 5.0)
    shared_gain_gaba: float = 0.5
    shared_gain_glu: float = 0.3
    n_private: int = 3
    private_gain: float = 0.3
    base_rate_gaba: float = 5.0
    base_rate_glu: float = 1.5
    max_rate: float = 30.0
    tau_rise_s: float = 0.05
    tau_decay_s: float = 0.7
    fine_dt: float = 0.01
    # behaviour and task
    behaviors: tuple = BEHAVIORS
    behavior_rate_per_min: float = 3.0
    bout_mean_s: float = 2.5
    point_behaviors: tuple = ("rear",)
    point_rate_per_min: float = 1.0
    responses: tuple = DEFAULT_RESPONSES
    response_fraction: float = 0.2
    response_gain: float = 0.8
    point_response_s: float = 1.0
    port_interval_mean_s: float = 6.0
    hold_mean_s: float = 2.0
    coordination_window_s: float = 0.75
    coordination_prob: float = 0.5
    video_fps: float = 30.0
    video_offset_s: float = 0.25
    task_offset_s: float = -4.783
    task_drift_ppm: float = 50.0
    sync_interval_s: float = 1.0
    # identity
    animal_id: tuple = ("m01", "m02")
    subject_names: tuple = ("mouse_A", "mouse_B")
    # session settings
    detect_full_frame: bool = False
    condition: str = "social"
    latent_seed: int | None = None
    session_params: tuple = ()

    def __post_init__(self) -> None:
        for name in _PAIR_FIELDS:
            v = getattr(self, name)
            if isinstance(v, list):
                v = tuple(v)
            if not isinstance(v, tuple):
                v = (v, v)
            if len(v) != 2:
                raise ValueError(f"SimConfig.{name}: expected one value or an (A, B) pair, got {v!r}")
            setattr(self, name, v)
        self.fov = tuple(int(v) for v in (self.fov if isinstance(self.fov, (tuple, list)) else (self.fov, self.fov)))
        self.n_neurons = tuple(int(v) for v in self.n_neurons)
        self.frame_rate = tuple(float(v) for v in self.frame_rate)
        self.dropped_frames = tuple(int(v) for v in self.dropped_frames)
        self.responses = tuple(tuple(r) for r in self.responses)
        self.behaviors = tuple(self.behaviors)
        self.point_behaviors = tuple(self.point_behaviors)
        self.session_params = tuple(tuple(e) for e in self.session_params)
        self._check()

    def _check(self) -> None:
        def bad(name, expected):
            raise ValueError(f"SimConfig.{name} = {getattr(self, name)!r}: expected {expected}")
        if self.modality not in ("2p", "1p"):
            bad("modality", "'2p' or '1p'")
        if min(self.n_neurons) < 1:
            bad("n_neurons", "at least 1 neuron per animal")
        if min(self.fov) < 16:
            bad("fov", "at least 16 x 16 px")
        if min(self.frame_rate) <= 0:
            bad("frame_rate", "positive rates (Hz)")
        if self.duration_s < 10:
            bad("duration_s", ">= 10 s")
        if min(self.dropped_frames) < 0:
            bad("dropped_frames", "counts >= 0")
        if self.n_shared < 0 or self.n_private < 0:
            bad("n_shared", "n_shared and n_private >= 0")
        if not 0 <= self.gaba_fraction <= 1:
            bad("gaba_fraction", "a fraction in [0, 1]")
        if self.structural_marks not in ("GABAergic", "glutamatergic"):
            bad("structural_marks", "'GABAergic' or 'glutamatergic'")
        if self.n_vessels is not None and self.n_vessels < 0:
            bad("n_vessels", "a count >= 0 or None")
        if not 0 <= self.vessel_contrast <= 1:
            bad("vessel_contrast", "a fraction in [0, 1]")
        if self.psf_sigma_px is not None and self.psf_sigma_px < 0:
            bad("psf_sigma_px", "an SD >= 0 (px) or None")
        if self.glow < 0:
            bad("glow", ">= 0")
        if self.compression not in (None, "zlib"):
            bad("compression", "None or 'zlib'")
        known = set(self.behaviors) | set(TASK_VARIABLES)
        for r in self.responses:
            if len(r) != 3 or r[0] not in ("A", "B") or r[1] not in known or r[2] not in ROLES:
                raise ValueError(f"SimConfig.responses: entry {r!r} must be (animal A/B, behaviour in "
                                 f"{sorted(known)}, role self/partner)")
        for e in self.session_params:
            if len(e) != 3 or e[0] in SIMULATOR_SECTIONS or not all(isinstance(x, str) for x in e[:2]):
                raise ValueError(f"SimConfig.session_params: entry {e!r} must be (section, key, value) with a "
                                 f"section other than {sorted(SIMULATOR_SECTIONS)}")
        for g in self.genotype:
            if g and genotype_type(g) is None:
                raise ValueError(f"SimConfig.genotype: unknown genotype {g!r}; known: {sorted(_GENOTYPES)} or '' (pan-neuronal)")

    def replace(self, **overrides: Any) -> "SimConfig":
        names = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown simulator setting(s) {unknown}; known: {sorted(names)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # derived -------------------------------------------------------------
    @property
    def sigma_range(self) -> tuple:
        if self.cell_sigma_px is not None:
            return tuple(self.cell_sigma_px)
        big = min(self.fov) > 80
        if self.modality == "2p":
            return (2.2, 3.4) if big else (1.5, 2.3)
        return (3.5, 5.0) if big else (2.2, 3.0)

    @property
    def psf_sigma(self) -> float:
        if self.psf_sigma_px is not None:
            return float(self.psf_sigma_px)
        return 1.2 if self.modality == "1p" else 0.0

    @property
    def vessel_count(self) -> int:
        if self.n_vessels is not None:
            return int(self.n_vessels)
        return 3 if self.modality == "1p" else 0

    @property
    def dff_amplitude(self) -> float:
        if self.dff_per_spike is not None:
            return float(self.dff_per_spike)
        return 0.5 if self.modality == "2p" else 0.25


_GENOTYPES = {
    "vgat-cre": "GABAergic", "dlx": "GABAergic", "dlx5/6": "GABAergic", "gad2-cre": "GABAergic",
    "vglut2-cre": "glutamatergic", "vglut1-cre": "glutamatergic", "camkii": "glutamatergic",
    "emx1-cre": "glutamatergic",
}


def genotype_type(genotype: str) -> str | None:
    """Cell type a genotype restricts expression to, or None if unknown/pan-neuronal."""
    return _GENOTYPES.get(genotype.strip().lower())


PRESETS: dict[str, SimConfig] = {
    # committed demo: small enough to commit (<= ~12 MB), long enough for the analyses
    "sample": SimConfig(n_neurons=(16, 14), fov=(40, 40), frame_rate=(7.5, 7.49), duration_s=190.0,
                        compression="zlib", chunk_frames=400, jump_px=(2.5, 3.5), detect_full_frame=True),
    # fast tests
    "small": SimConfig(n_neurons=(15, 13), fov=(40, 40), frame_rate=(10.0, 9.98), duration_s=240.0,
                       jump_px=(2.5, 3.5)),
    # `make demo`: the default pair, 400 s, simulated at demo time. Long enough that the planted K = 3
    # stands well clear of the surrogate threshold; twice the default behaviour bouts and twice the default
    # response gain so every planted behaviour/task contrast is decodable (in 300 s A's approach contrast
    # was not, docs/getting_started.md); fewer decoding surrogates keep the run to minutes.
    "demo": SimConfig(duration_s=400.0, behavior_rate_per_min=6.0, response_gain=1.6, session_params=(
        ("decoding", "n_surrogates", 200), ("decoding", "condition_surrogates", 50))),
    # realistic
    "default": SimConfig(),
    # big: chunked writing keeps memory bounded
    "large": SimConfig(n_neurons=(250, 220), fov=(256, 256), frame_rate=(30.0, 29.97), duration_s=1800.0,
                       chunk_frames=300, compression=None),
}


def resolve_config(preset: str = "default", **overrides: Any) -> SimConfig:
    """The preset's SimConfig with `overrides` applied (ValueError names an unknown preset/field)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown simulator preset {preset!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[preset].replace(**overrides)


__all__ = ["SimConfig", "PRESETS", "resolve_config", "genotype_type", "BEHAVIORS", "DEFAULT_RESPONSES"]
