"""Render one animal's raw movie: somata, neuropil, background, vessels, motion, optics, noise.

The tissue (somata, neuropil, 1p out-of-focus background, darkened along blood vessels) is drawn
on a canvas padded by `pad` px on every side, warped by the frame's motion (rigid + smooth
nonrigid) and cropped to the field of view. What the optics add is fixed to the sensor and does
not move with the tissue: a Gaussian blur (`psf_sigma_px`), the vignette (illumination fall-off)
and, for 1p, an additive stray-light glow with a slow drift. Then photon (Poisson) and read noise
are added and the frame is stored as uint16:

    frame_t = dark + vignette * bleach_t * blur(warp_t(tissue_t)) + glow_mod_t * glow + noise

Motion convention: ``rigid_shift[t] = (dy, dx)`` means the tissue content of
frame t appears displaced by (+dy, +dx) px relative to the zero-motion
reference: frame_t(y, x) = reference(y - dy - ny, x - dx - nx), with (ny, nx)
the nonrigid warp at (y, x). To correct, shift the frame by (-dy, -dx).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.ndimage import gaussian_filter, map_coordinates

from pipeline.simulator.config import SimConfig


@dataclass
class Scene:
    """Static parts of one animal's field of view (padded canvas, Yp x Xp)."""

    pad: int
    footprints: np.ndarray     # (n, Yp, Xp) float32, peak 1
    centers: np.ndarray        # (n, 2) y, x in FOV pixel coordinates
    sigmas: np.ndarray         # (n, 2) major, minor SD (px)
    angles: np.ndarray         # (n,) rad
    F0: np.ndarray             # (n,) baseline peak brightness (counts)
    neuropil: np.ndarray       # (Yp, Xp) counts
    bg_blobs: np.ndarray       # (k, Yp, Xp) counts (1p only; k = 0 for 2p)
    vignette: np.ndarray       # (Y, X) multiplicative illumination, sensor coordinates
    vessels: np.ndarray = None  # (Yp, Xp) light transmission of the tissue (1 = no vessel), tissue coordinates
    glow: np.ndarray = None     # (Y, X) counts, additive stray light, sensor coordinates (zeros for 2p)


def _smooth_field(rng, shape, sigma):
    f = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    f = (f - f.min()) / (np.ptp(f) + 1e-12)
    return f


def make_vessels(cfg: SimConfig, rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Light transmission (Yp, Xp) of the tissue: 1 - vessel_contrast x a Gaussian profile across each
    of `cfg.vessel_count` smooth curves that cross the canvas (width SD 2.5-6% of the field side)."""
    Yp, Xp = shape
    trans = np.ones(shape)
    for _ in range(cfg.vessel_count):
        w = rng.uniform(0.025, 0.06) * min(cfg.fov)
        side = rng.integers(4)
        u = rng.uniform(0.15, 0.85)
        pos = np.array([[0.0, u * (Xp - 1)], [Yp - 1.0, u * (Xp - 1)], [u * (Yp - 1), 0.0], [u * (Yp - 1), Xp - 1.0]][side])
        ang = [np.pi / 2, -np.pi / 2, 0.0, np.pi][side] + rng.uniform(-0.6, 0.6)   # heading inwards (y, x) = (sin, cos)
        mask = np.zeros(shape, bool)
        for _step in range(8 * (Yp + Xp)):
            iy, ix = int(round(pos[0])), int(round(pos[1]))
            if not (0 <= iy < Yp and 0 <= ix < Xp):
                break
            mask[iy, ix] = True
            ang += rng.normal(0.0, 0.04)     # gently curving
            pos = pos + 0.5 * np.array([np.sin(ang), np.cos(ang)])
        if mask.any():
            d = ndimage.distance_transform_edt(~mask)
            trans *= 1.0 - cfg.vessel_contrast * np.exp(-0.5 * (d / w) ** 2)
    return trans


def make_glow(cfg: SimConfig, rng: np.random.Generator) -> np.ndarray:
    """Stray light on the sensor (Y, X) counts: two broad Gaussians centred anywhere within 30% of a side
    of the field (often off it), scaled to a mean of `glow` x `brightness`."""
    Y, X = cfg.fov
    vy, vx = np.mgrid[0:Y, 0:X].astype(np.float64)
    g = np.zeros((Y, X))
    for _ in range(2):
        c = rng.uniform([-0.3 * Y, -0.3 * X], [1.3 * Y, 1.3 * X])
        s = rng.uniform(0.3, 0.6) * max(Y, X)
        g += rng.uniform(0.5, 1.0) * np.exp(-0.5 * ((vy - c[0]) ** 2 + (vx - c[1]) ** 2) / s ** 2)
    return g * cfg.glow * cfg.brightness / max(g.mean(), 1e-12)


def make_scene(cfg: SimConfig, rng: np.random.Generator, n: int, pad: int) -> Scene:
    """Place `n` elliptical Gaussian somata (some overlapping a little, none on a vessel) and build the fields."""
    Y, X = cfg.fov
    Yp, Xp = Y + 2 * pad, X + 2 * pad
    smin, smax = cfg.sigma_range
    vessels = make_vessels(cfg, rng, (Yp, Xp)) if cfg.vessel_count else np.ones((Yp, Xp))
    centers, sig = [], []
    margin = 2.0
    for _ in range(n):
        s = rng.uniform(smin, smax)
        best, best_d = None, -1.0
        for _try in range(200):
            c = rng.uniform([margin, margin], [Y - 1 - margin, X - 1 - margin])
            if cfg.vessel_count and vessels[int(round(c[0])) + pad, int(round(c[1])) + pad] < 0.97:
                if best is None:
                    best = c      # kept only if every try lands on a vessel
                continue          # somata lie beside vessels, not under them
            if not centers:
                best = c
                break
            d = np.min(np.linalg.norm(np.array(centers) - c, axis=1) / (np.array(sig) + s))
            if d > best_d:
                best, best_d = c, d
            if d > 1.3:  # cells touch at ~1.3 SD each: a little overlap, never on top of each other
                break
        centers.append(best)
        sig.append(s)
    centers = np.array(centers).reshape(n, 2)
    sig = np.array(sig)
    ecc = rng.uniform(1.0, 1.35, n)
    sigmas = np.stack([sig * np.sqrt(ecc), sig / np.sqrt(ecc)], axis=1)
    angles = rng.uniform(0, np.pi, n)
    yy, xx = np.mgrid[0:Yp, 0:Xp].astype(np.float64)
    fps = np.zeros((n, Yp, Xp), np.float32)
    for i in range(n):
        dy, dx = yy - (centers[i, 0] + pad), xx - (centers[i, 1] + pad)
        ca, sa = np.cos(angles[i]), np.sin(angles[i])
        u, v = ca * dy + sa * dx, -sa * dy + ca * dx
        m = (u / sigmas[i, 0]) ** 2 + (v / sigmas[i, 1]) ** 2
        f = np.exp(-0.5 * m)
        f[m > 9.0] = 0.0  # truncate at 3 SD: finite support like a real soma
        fps[i] = f
    F0 = cfg.brightness * rng.lognormal(0.0, 0.35, n)
    neuropil = cfg.neuropil * cfg.brightness * (0.5 + _smooth_field(rng, (Yp, Xp), max(Y, X) / 8))
    if cfg.modality == "1p":
        k = 4
        blobs = np.zeros((k, Yp, Xp))
        for j in range(k):
            c = rng.uniform([0, 0], [Yp, Xp])
            s = rng.uniform(0.2, 0.35) * max(Y, X)
            blobs[j] = np.exp(-0.5 * ((yy - c[0]) ** 2 + (xx - c[1]) ** 2) / s ** 2)
        blobs *= cfg.background * cfg.brightness / max(blobs.sum(0).mean(), 1e-9)
        vy, vx = np.mgrid[0:Y, 0:X].astype(np.float64)
        r2 = (((vy - (Y - 1) / 2) / ((Y - 1) / 2)) ** 2 + ((vx - (X - 1) / 2) / ((X - 1) / 2)) ** 2) / 2  # 1 at corners
        vignette = 1.0 - cfg.vignetting * r2
        glow = make_glow(cfg, rng)
    else:
        blobs = np.zeros((0, Yp, Xp))
        vignette = np.ones((Y, X))
        glow = np.zeros((Y, X))
    # vessels hold no fluorophore: they darken the neuropil and the out-of-focus tissue behind them
    neuropil = neuropil * vessels
    blobs = blobs * vessels[None]
    return Scene(pad=pad, footprints=fps, centers=centers, sigmas=sigmas, angles=angles, F0=F0,
                 neuropil=neuropil.astype(np.float32), bg_blobs=blobs.astype(np.float32),
                 vignette=vignette.astype(np.float32), vessels=vessels.astype(np.float32),
                 glow=glow.astype(np.float32))


def make_motion(cfg: SimConfig, rng: np.random.Generator, times: np.ndarray) -> dict:
    """Rigid shifts (n_frames, 2) px and nonrigid warp coefficients for frames at `times` (s).

    Jitter: AR(1) with a 0.5 s timescale and SD `motion_px` (mostly < 2 px);
    jumps: Poisson (>= 1 if the rate is > 0) transient displacements of
    `jump_px` amplitude lasting 0.5-3 s (e.g. a body movement). Nonrigid: two
    smooth random displacement fields with AR(1) coefficients, scaled so the
    largest displacement is about `nonrigid_px`.
    """
    nf = times.size
    dtf = np.median(np.diff(times)) if nf > 1 else 1.0
    a = np.exp(-dtf / 0.5)
    e = rng.standard_normal((nf, 2)) * cfg.motion_px * np.sqrt(1 - a * a)
    shift = np.zeros((nf, 2))
    shift[0] = rng.standard_normal(2) * cfg.motion_px
    for t in range(1, nf):
        shift[t] = a * shift[t - 1] + e[t]
    span = times[-1] - times[0]
    n_jumps = rng.poisson(cfg.jump_rate_per_min * span / 60.0) if cfg.jump_rate_per_min > 0 else 0
    if cfg.jump_rate_per_min > 0:
        n_jumps = max(1, n_jumps)
    jumps = []
    for _ in range(n_jumps):
        t0 = rng.uniform(times[0] + 0.1 * span, times[-1] - 0.1 * span)
        dur = rng.uniform(0.5, 3.0)
        amp = rng.uniform(*cfg.jump_px)
        ang = rng.uniform(0, 2 * np.pi)
        inside = (times >= t0) & (times < t0 + dur)
        shift[inside] += amp * np.array([np.sin(ang), np.cos(ang)])
        jumps.append((t0, t0 + dur, amp))
    coef = np.zeros((nf, 2))
    if cfg.nonrigid_px > 0:
        a2 = np.exp(-dtf / 1.0)
        c = rng.standard_normal(2)
        for t in range(nf):
            c = a2 * c + np.sqrt(1 - a2 * a2) * rng.standard_normal(2)
            coef[t] = c
    return {"rigid": shift, "nonrigid_coef": coef, "jumps": np.array(jumps).reshape(-1, 3)}


def nonrigid_fields(cfg: SimConfig, rng: np.random.Generator) -> np.ndarray:
    """Two smooth displacement fields, shape (2 components, 2 axes, Y, X), max |field| = nonrigid_px / 2.5.

    Coefficients are ~N(0, 1), so the per-frame warp peaks near `nonrigid_px`.
    """
    Y, X = cfg.fov
    out = np.zeros((2, 2, Y, X))
    for k in range(2):
        for ax in range(2):
            f = gaussian_filter(rng.standard_normal((Y, X)), max(Y, X) / 4, mode="reflect")
            out[k, ax] = f / (np.abs(f).max() + 1e-12)
    return out * cfg.nonrigid_px / 2.5


def render_tissue(scene: Scene, F: np.ndarray, neuropil_mod: np.ndarray, bg_mod: np.ndarray) -> np.ndarray:
    """Noise-free, motion-free tissue for a block of frames: (n_frames, Yp, Xp) float32.

    F: (n_frames, n) soma brightness F0 * (1 + dF/F); neuropil_mod (n_frames,);
    bg_mod (n_frames, k) 1p blob gains.
    """
    n, Yp, Xp = scene.footprints.shape
    img = (F @ scene.footprints.reshape(n, -1)).reshape(-1, Yp, Xp)
    img += neuropil_mod[:, None, None] * scene.neuropil[None]
    if scene.bg_blobs.shape[0]:
        img += np.tensordot(bg_mod, scene.bg_blobs, axes=(1, 0))
    return img.astype(np.float32)


def warp_frame(tissue: np.ndarray, pad: int, shift: np.ndarray, warp: np.ndarray, prefiltered: bool = False) -> np.ndarray:
    """Sample one padded tissue frame at the moved coordinates: (Y, X).

    shift (2,) rigid (dy, dx); warp (2, Y, X) nonrigid displacement. Cubic
    spline interpolation, so sub-pixel shifts keep the spatial frequencies.
    `prefiltered`: `tissue` already holds cubic B-spline coefficients.
    """
    Y, X = warp.shape[1:]
    yy, xx = np.mgrid[0:Y, 0:X].astype(np.float64)
    coords = np.stack([yy + pad - shift[0] - warp[0], xx + pad - shift[1] - warp[1]])
    return map_coordinates(tissue, coords, order=3, mode="nearest", prefilter=not prefiltered)


def prefilter_scene(scene: Scene) -> Scene:
    """The scene with every static image replaced by its cubic B-spline coefficients.

    The spline prefilter is linear, so the coefficients of a frame are the same
    mix of the coefficients of its parts: filtering the parts once saves a
    2D filter per frame.
    """
    from dataclasses import replace
    from scipy.ndimage import spline_filter

    f = lambda a: spline_filter(a.astype(np.float64), order=3, mode="nearest").astype(np.float32)  # noqa: E731
    return replace(scene, footprints=np.stack([f(x) for x in scene.footprints]), neuropil=f(scene.neuropil),
                   bg_blobs=np.stack([f(x) for x in scene.bg_blobs]) if scene.bg_blobs.shape[0] else scene.bg_blobs)


def add_noise(clean: np.ndarray, cfg: SimConfig, rng: np.random.Generator) -> np.ndarray:
    """Photon shot noise (Poisson in photons = counts / photon_gain) + Gaussian read noise, as uint16."""
    if cfg.noise <= 0:
        out = clean + cfg.dark_offset
    else:
        lam = np.maximum(clean, 0) / cfg.photon_gain
        shot = rng.poisson(lam) * cfg.photon_gain - np.maximum(clean, 0)
        read = rng.standard_normal(clean.shape) * cfg.read_noise
        out = clean + cfg.dark_offset + cfg.noise * (shot + read)
    return np.clip(np.round(out), 0, 65535).astype(np.uint16)


def write_movie(path: Path, cfg: SimConfig, scene: Scene, dff: np.ndarray, frame_times: np.ndarray,
                motion: dict, fields_: np.ndarray, neuropil_mod: np.ndarray, bg_mod: np.ndarray,
                bleach: np.ndarray, rng: np.random.Generator, glow_mod: np.ndarray | None = None) -> None:
    """Write the uint16 (T, Y, X) multipage TIFF in blocks of `chunk_frames` (bounded memory).

    dff (n, T) planted dF/F; neuropil_mod (T,), bg_mod (T, k), bleach (T,)
    multiplicative fluorescence loss; glow_mod (T,) gain of the sensor-fixed glow (default 1).
    """
    import tifffile

    T = frame_times.size
    Y, X = cfg.fov
    pad = scene.pad
    coef = prefilter_scene(scene)
    psf = cfg.psf_sigma
    glow = scene.glow if scene.glow is not None else np.zeros((Y, X), np.float32)
    glow_mod = np.ones(T) if glow_mod is None else glow_mod

    def frames():
        for s in range(0, T, cfg.chunk_frames):
            sl = slice(s, min(T, s + cfg.chunk_frames))
            F = (scene.F0[None, :] * (1.0 + dff[:, sl].T)).astype(np.float32)
            tissue = render_tissue(coef, F, neuropil_mod[sl], bg_mod[sl])
            for j, t in enumerate(range(sl.start, sl.stop)):
                warp = np.tensordot(motion["nonrigid_coef"][t], fields_, axes=(0, 0))
                img = warp_frame(tissue[j], pad, motion["rigid"][t], warp, prefiltered=True)
                if psf > 0:     # the optics blur what lands on the sensor (it commutes with the tissue's shift)
                    img = gaussian_filter(img, psf, mode="nearest")
                # vignette and glow belong to the optics and sensor: they stay put while the tissue moves
                img = img * scene.vignette * bleach[t] + glow_mod[t] * glow
                yield add_noise(img, cfg, rng)

    bigtiff = T * Y * X * 2 > 2**31
    with tifffile.TiffWriter(path, bigtiff=bigtiff) as tw:
        tw.write(frames(), shape=(T, Y, X), dtype=np.uint16, photometric="minisblack",
                 compression=cfg.compression, metadata={"axes": "TYX"})


def structural_image(cfg: SimConfig, rng: np.random.Generator, scene: Scene, cell_type: np.ndarray) -> np.ndarray:
    """Noise-free red reporter image (Y, X): marked cells bright, others faint, smooth autofluorescence."""
    Y, X = cfg.fov
    p = scene.pad
    marked = cell_type == cfg.structural_marks
    gain = np.where(marked, rng.uniform(0.7, 1.3, marked.size), rng.uniform(0.0, 0.08, marked.size))
    img = np.tensordot(gain * cfg.brightness, scene.footprints, axes=(0, 0))[p:p + Y, p:p + X]
    img += 0.15 * cfg.brightness * (0.5 + _smooth_field(rng, (Y, X), max(Y, X) / 6))
    return img.astype(np.float32)
