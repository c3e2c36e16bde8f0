"""Motion correction with suite2p 1.x registration (two-photon and one-photon).

`register_movie(movie, workdir, modality, params)` writes the movie to a
suite2p int16 binary (`workdir/data.bin`), registers it in place (rigid, then
nonrigid blocks) and returns a `MotionResult`.

Sign convention (same as suite2p): `rigid_shift[t] = (dy, dx)` px is the
displacement of frame t's content relative to the reference image: a feature
at (y, x) in the reference appears at (y + dy, x + dx) in raw frame t, and
registration moves the frame by (-dy, -dx). `rigid_shift` is the shift the
registered frames received: suite2p's integer rigid shift, plus the mean of the
nonrigid block shifts it warped the frame with, plus the subpixel residual
of each registered frame, measured from the peak of its phase correlation with the
reference (3-point Gaussian fit; `subpixel_residual`, always on without nonrigid
blocks) and then applied with one resampling per frame: an all-pass Fourier shift
after suite2p's whole-pixel roll (rigid), or suite2p's own bilinear warp of the raw
frames with the residual added to every block shift (nonrigid).

One-photon: suite2p 1.x has no one-photon switch any more (0.x's `1Preg`,
`spatial_hp_reg`, `pre_smooth` were removed), so shifts are estimated on a
spatially high-passed copy (frame minus its Gaussian blur, `highpass_sigma`),
with suite2p's one-photon smoothing (smooth_sigma 4) and a wide taper, and the
same shifts are applied to the raw frames through suite2p's second-channel path.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.stats import median_abs_deviation

from pipeline.core.parameters import SPEC, MODALITIES
from pipeline.io.binary import ChunkedBinary
from pipeline.io.readers import Movie

log = logging.getLogger("interbrain.motion")

# ---------------------------------------------------------------------------
@dataclass
class MotionResult:
    """Registration outputs of one movie. Shapes: T frames, B blocks, (Y, X) frame."""

    rigid_shift: np.ndarray          # (T, 2) px, (dy, dx), see module docstring for the sign
    nonrigid_shift: np.ndarray       # (T, B, 2) px, residual block shifts after the rigid step
    block_center: np.ndarray         # (B, 2) px, (y, x) block centres
    frame_corr: np.ndarray           # (T,) Pearson r of the registered (1p: high-passed) frame with the reference
    bad_frame: np.ndarray            # (T,) bool: phase-correlation peak robust z < -bad_frame_corr_z
    peak_corr: np.ndarray            # (T,) phase-correlation peak with the reference
    reference_image: np.ndarray      # (Y, X) suite2p reference (high-passed for 1p)
    mean_image: np.ndarray           # (Y, X) mean registered frame, raw units
    mean_image_raw: np.ndarray       # (Y, X) mean raw frame before registration, raw units
    crispness_before: float
    crispness_after: float
    binary: str                      # path of the registered int16 binary
    scale: float                     # raw value = binary value * scale
    valid_yx: tuple                  # ((y0, y1), (x0, x1)) region never shifted in from outside
    settings: dict = field(default_factory=dict)   # suite2p registration settings used


def suite2p_registration_settings(modality: str, params: dict, shape: tuple[int, int, int]) -> dict:
    """suite2p's registration settings merged with ours (suite2p's own merge is one level deep).

    params: the validated [motion] section; unset modality-dependent settings take
    their `modality` default (Param.by_modality). shape: (T, Y, X) of the movie.
    """
    import suite2p
    s = dict(suite2p.default_settings()["registration"])
    params = SPEC["motion"].resolve(params, modality)
    _, Ly, Lx = shape
    taper = params["spatial_taper"]
    # suite2p's taper is flat up to (L-1)/2 - 2*taper from the centre: keep a usable centre on small frames
    taper = float(min(taper, max(min(Ly, Lx) / 10.0, 1.0)))
    s.update(
        # nonrigid needs at least two blocks per axis (suite2p interpolates between block centres);
        # smaller frames are registered rigidly (tiny blocks give noisy shifts that blur the movie)
        nonrigid=bool(params["nonrigid"]) and all(L >= 2 * b for b, L in zip(params["block_size"], (Ly, Lx))),
        block_size=tuple(int(min(b, L // 2)) for b, L in zip(params["block_size"], (Ly, Lx))),
        maxregshift=float(params["maxregshift"]),
        smooth_sigma=float(params["smooth_sigma"]),
        spatial_taper=taper,
        batch_size=int(params["batch_size"]),
        reg_tif=False, reg_tif_chan2=False, two_step_registration=False,
        # a nonrigid shift of up to a quarter block (suite2p default 5 px is too small for 1p/large blocks)
        maxregshiftNR=int(max(5, min(params["block_size"]) // 8)),
    )
    return s


def torch_device():
    import torch
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def int16_scale(movie: Movie, n_sample: int = 200) -> float:
    """Divisor that maps the movie's values into int16 (suite2p's binary type).

    uint16 data are halved as suite2p does; floats are scaled so the sampled
    maximum |value| maps to ~16000 (at least 1 count per unit when possible).
    """
    dt = movie.dtype
    if dt in (np.int8, np.uint8, np.int16):
        return 1.0
    idx = np.linspace(0, len(movie) - 1, min(n_sample, len(movie))).astype(int)
    mx = float(np.abs(movie.take(idx)).max()) or 1.0
    if dt == np.uint16:
        return 2.0 if mx > 16000 else 1.0
    if dt.kind in "iu" and mx < 16000:
        return 1.0
    if dt.kind == "f" and 100 < mx < 16000:
        return 1.0
    return mx / 16000.0


def highpass(frames: np.ndarray, sigma: float) -> np.ndarray:
    """frames (n, Y, X) minus their per-frame Gaussian blur (sigma px); float32."""
    f = frames.astype(np.float32)
    return f - ndimage.gaussian_filter(f, (0, sigma, sigma), mode="nearest")


def crispness(img: np.ndarray, valid=None) -> float:
    """Frobenius norm of the spatial gradient of an image (CaImAn's crispness), over the valid region."""
    if valid is not None:
        (y0, y1), (x0, x1) = valid
        img = img[y0:y1, x0:x1]
    gy, gx = np.gradient(img.astype(np.float64))
    return float(np.sqrt((gy ** 2 + gx ** 2).sum()))


def robust_z(x: np.ndarray) -> np.ndarray:
    """(x - median) / (MAD scaled to a normal SD, 1.482602...); the SD (or 1) when the MAD is 0."""
    med = np.median(x)
    mad = median_abs_deviation(x, scale="normal")
    return (x - med) / (mad if mad > 0 else (np.std(x) or 1.0))


def write_binary(movie: Movie, path: str | Path, scale: float, batch: int = 500,
                 hp_path: str | Path | None = None, hp_sigma: float = 0.0, progress=None) -> np.ndarray:
    """Copy the movie into an int16 binary in chunks (and its high-passed copy to hp_path).

    Returns the mean raw frame (Y, X) in raw units.
    """
    T, Ly, Lx = movie.shape
    out = ChunkedBinary(path, movie.shape, write=True)
    hp = ChunkedBinary(hp_path, movie.shape, write=True) if hp_path else None
    hp_scale = None
    total = np.zeros((Ly, Lx), np.float64)
    it = movie.iter_chunks(batch)
    for i, fr in (progress(it, "read", total=-(-T // batch)) if progress else it):
        total += fr.sum(0, dtype=np.float64)
        out[i: i + len(fr)] = np.round(fr / scale) if scale != 1 else fr
        if hp is not None:
            h = highpass(fr, hp_sigma)
            if hp_scale is None:   # fixed from the first chunk so all frames share it
                hp_scale = max(float(np.abs(h).max()) / 8000.0, 1e-6)
            hp[i: i + len(fr)] = np.round(h / hp_scale)
    out.close()
    if hp is not None:
        hp.close()
    return (total / T).astype(np.float32)


def _block_centers(blocks) -> np.ndarray:
    yb, xb = blocks[0], blocks[1]
    return np.array([[(y[0] + y[1] - 1) / 2, (x[0] + x[1] - 1) / 2] for y, x in zip(yb, xb)], np.float32)


def _suite2p_register(raw: ChunkedBinary, align: ChunkedBinary, settings: dict, device) -> tuple[dict, np.ndarray]:
    """suite2p's registration_wrapper: shifts estimated on `align` and applied to `align` and `raw`
    (1p: `align` is the high-passed copy, `raw` goes through suite2p's second-channel path).
    Returns (suite2p's output dict, mean registered raw frame (Y, X) in binary units)."""
    from suite2p.registration import register as s2p_register
    if align is not raw:
        out = s2p_register.registration_wrapper(align, f_reg_chan2=raw, settings=settings, device=device)
        return out, np.asarray(out["meanImg_chan2"], np.float32)
    out = s2p_register.registration_wrapper(raw, settings=settings, device=device)
    return out, np.asarray(out["meanImg"], np.float32)


def _nonrigid_shifts(out: dict, settings: dict, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(nonrigid shifts (T, B, 2) px, block centres (B, 2) px); without nonrigid blocks one zero-shift
    block at the frame centre."""
    from suite2p.registration import register as s2p_register
    T, Ly, Lx = shape
    if settings["nonrigid"] and out.get("yoff1") is not None:
        nr = np.stack([np.asarray(out["yoff1"], np.float32), np.asarray(out["xoff1"], np.float32)], -1)
        blocks = s2p_register.nonrigid.make_blocks(Ly=Ly, Lx=Lx, block_size=settings["block_size"])
        return nr, _block_centers(blocks)
    return np.zeros((T, 1, 2), np.float32), np.array([[(Ly - 1) / 2, (Lx - 1) / 2]], np.float32)


def _valid_region(applied: np.ndarray, nr: np.ndarray, Ly: int, Lx: int) -> tuple:
    """((y0, y1), (x0, x1)): pixels never filled from outside the field of view by any shift
    (applied: (T, 2) mean shift per frame; nr: (T, B, 2) block shifts), at most a quarter side per edge."""
    m = int(np.ceil(np.abs(applied).max() + (np.abs(nr - nr.mean(1, keepdims=True)).max() if nr.size else 0)))
    m = min(m, min(Ly, Lx) // 4)
    return ((m, Ly - m), (m, Lx - m))


def _frame_quality(out: dict, align: ChunkedBinary, ref: np.ndarray, settings: dict, params: dict, valid: tuple,
                   device, T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(subpixel residual shift (T, 2) px, Pearson r with the reference (T,), phase-correlation peak (T,))
    of each registered frame of `align`."""
    if settings["nonrigid"] and out.get("corrXY") is not None and not params["subpixel_residual"]:
        # suite2p's nonrigid block shifts are already subpixel, and its rigid pass measured each frame's
        # phase-correlation peak: only the (cheap) Pearson r with the reference is left to compute
        residual = np.zeros((T, 2), np.float32)
        peak = np.asarray(out["corrXY"], np.float32)
        return residual, _frame_corr(align, ref, valid, settings["batch_size"]), peak
    # suite2p's rigid step is integer; the remaining subpixel offset of each registered frame is measured
    # from the peak of its phase correlation with the reference, in the same pass as frame_corr
    residual, corr, peak = _residual_and_corr(align, ref, settings, valid, device)
    # suite2p applied the integer part; a larger residual is a mismatched peak, not motion
    return np.clip(residual, -1.0, 1.0), corr, peak


def shift_frames(frames, d, method: str = "fourier"):
    """Frames (n, Y, X) float torch tensor moved by -d (n, 2) px (output pixel (y, x) takes the input at
    (y + dy, x + dx)). 'fourier': phase ramp on the frame mirror-padded to odd sides (no edge wrap, no
    Nyquist bin, so the shift is exact for band-limited content and does not smooth); 'bilinear' /
    'bicubic': torch grid_sample with edge values repeated (they smooth; measured worse for detection,
    docs/imaging.md)."""
    import torch
    import torch.nn.functional as F
    n, Ly, Lx = frames.shape
    if method == "fourier":
        py, px = max(0, min(8, Ly - 2)), max(0, min(8, Lx - 2))    # reflect padding needs pad < side
        # odd padded sides: every frequency has its conjugate partner, so the shifted frame stays real
        x = F.pad(frames[:, None], (px, px + 1 - (Lx % 2), py, py + 1 - (Ly % 2)), mode="reflect")[:, 0]
        H, W = x.shape[1:]
        ky = torch.fft.fftfreq(H, device=frames.device, dtype=torch.float64)
        kx = torch.fft.rfftfreq(W, device=frames.device, dtype=torch.float64)
        d = d.to(torch.float64)
        phase = 2 * np.pi * (ky[None, :, None] * d[:, 0, None, None] + kx[None, None, :] * d[:, 1, None, None])
        X = torch.fft.rfft2(x.to(torch.float64)) * torch.polar(torch.ones_like(phase), phase)
        return torch.fft.irfft2(X, s=(H, W))[:, py:py + Ly, px:px + Lx].to(torch.float32)
    yy, xx = torch.meshgrid(torch.arange(Ly, dtype=torch.float32, device=frames.device),
                            torch.arange(Lx, dtype=torch.float32, device=frames.device), indexing="ij")
    gy = (yy[None] + d[:, 0, None, None]) * (2.0 / max(Ly - 1, 1)) - 1
    gx = (xx[None] + d[:, 1, None, None]) * (2.0 / max(Lx - 1, 1)) - 1
    return F.grid_sample(frames[:, None], torch.stack([gx, gy], -1), mode=method, padding_mode="border",
                         align_corners=True)[:, 0]


def _apply_subpixel(raw: ChunkedBinary, shift: np.ndarray, batch: int, device, method: str) -> np.ndarray:
    """Move each frame of `raw` (in place) by -shift (T, 2) px (`shift_frames`); returns the mean shifted
    frame (Y, X) in binary units."""
    import torch
    T, Ly, Lx = raw.shape
    total = np.zeros((Ly, Lx), np.float64)
    for i, fr in raw.iter_chunks(batch):
        d = torch.from_numpy(np.asarray(shift[i:i + len(fr)], np.float32)).to(device)
        moved = shift_frames(torch.from_numpy(fr).to(device).float(), d, method)
        moved = torch.round(moved).clamp(-32768, 32767).cpu().numpy().astype(np.int16)
        raw[i:i + len(fr)] = moved
        total += moved.sum(0, dtype=np.float64)
    return (total / T).astype(np.float32)


def _warp_with_residual(raw: ChunkedBinary, out: dict, settings: dict, residual: np.ndarray, device) -> np.ndarray:
    """Register the raw frames of `raw` (in place) once more with suite2p's own shift code: its integer rigid
    shift, then its bilinear nonrigid warp with the residual (T, 2) px added to every block shift (one
    resampling). Returns the mean registered frame (Y, X) in binary units."""
    from suite2p.registration import register as s2p_register
    T, Ly, Lx = raw.shape
    blocks = s2p_register.nonrigid.make_blocks(Ly=Ly, Lx=Lx, block_size=settings["block_size"])
    yoff1 = np.asarray(out["yoff1"], np.float32) + residual[:, :1].astype(np.float32)
    xoff1 = np.asarray(out["xoff1"], np.float32) + residual[:, 1:].astype(np.float32)
    mean = s2p_register.shift_frames_and_write(raw, None, settings["batch_size"], np.asarray(out["yoff"]),
                                               np.asarray(out["xoff"]), yoff1, xoff1, blocks, device=device)
    return np.asarray(mean, np.float32)


def register_movie(movie: Movie, workdir: str | Path, modality: str, params: dict,
                   progress=None, device=None) -> MotionResult:
    """Register `movie` (T, Y, X) with suite2p; the registered int16 binary is `workdir/data.bin`.

    modality: '2p' or '1p'. params: the validated [motion] section
    (see pipeline/core/parameters/stages.py). Memory stays bounded by batch_size frames.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be '2p' or '1p', got {modality!r}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    T, Ly, Lx = movie.shape
    if T < 2:
        raise ValueError(f"{movie.source[0]}: a movie of {T} frame(s) cannot be registered")
    params = SPEC["motion"].resolve(params, modality)     # modality defaults of unset keys
    settings = suite2p_registration_settings(modality, params, movie.shape)
    device = device or torch_device()
    scale = int16_scale(movie)
    bin_path = workdir / "data.bin"
    hp_path = workdir / "data_highpass.bin" if modality == "1p" else None
    for p in (bin_path, hp_path):
        if p is not None and p.exists():
            p.unlink()
    mean_raw = write_binary(movie, bin_path, scale, settings["batch_size"], hp_path,
                            params["highpass_sigma"], progress)

    raw = ChunkedBinary(bin_path, movie.shape, write=True)
    align = ChunkedBinary(hp_path, movie.shape, write=True) if modality == "1p" else raw
    out, mean_img = _suite2p_register(raw, align, settings, device)
    nr, centers = _nonrigid_shifts(out, settings, movie.shape)
    ref = np.asarray(out["refImg"], np.float32)
    # the shift suite2p applied: its integer rigid shift plus the mean of the block shifts it warped the frame
    # with (not the pixel mean of the interpolated field, which weighs edge blocks more: less accurate against
    # planted shifts, docs/imaging.md)
    applied = np.stack([np.asarray(out["yoff"], np.float32), np.asarray(out["xoff"], np.float32)], 1) + nr.mean(1)
    valid = _valid_region(applied, nr, Ly, Lx)
    residual, frame_corr, peak = _frame_quality(out, align, ref, settings, params, valid, device, T)
    if np.any(residual):
        # the measured subpixel residual is applied to the frames too, so that rigid_shift is the shift the
        # registered binary received; each frame is resampled once (docs/imaging.md, "What rigid_shift is")
        if settings["nonrigid"] and out.get("yoff1") is not None:
            # suite2p warped the frames already: warp the raw frames again with the residual folded into the
            # block shifts (a second resampling of warped frames lost planted ROIs)
            raw.close()
            write_binary(movie, bin_path, scale, settings["batch_size"])
            raw = ChunkedBinary(bin_path, movie.shape, write=True)
            mean_img = _warp_with_residual(raw, out, settings, residual, device)
        else:
            # suite2p's rigid shift is a whole-pixel roll (lossless): one all-pass Fourier shift on top
            mean_img = _apply_subpixel(raw, residual, settings["batch_size"], device, "fourier")
    rigid = applied + residual
    valid = _valid_region(rigid, nr, Ly, Lx)
    # bad frames from the whitened phase-correlation peak: Pearson r also drops when many cells fire
    # together, which is activity, not a registration failure
    bad = robust_z(peak) < -params["bad_frame_corr_z"]
    raw.close()
    if modality == "1p":
        align.close()
        os.unlink(hp_path)   # the high-passed copy only served to estimate shifts

    mean_img = mean_img * scale
    crisp_img = (lambda im: im) if modality == "2p" else (lambda im: highpass(im[None], params["highpass_sigma"])[0])
    return MotionResult(
        rigid_shift=rigid.astype(np.float32), nonrigid_shift=nr, block_center=centers,
        frame_corr=frame_corr.astype(np.float32), bad_frame=bad, peak_corr=peak, reference_image=ref,
        mean_image=mean_img, mean_image_raw=mean_raw,
        crispness_before=crispness(crisp_img(mean_raw), valid),
        crispness_after=crispness(crisp_img(mean_img), valid),
        binary=str(bin_path), scale=float(scale), valid_yx=valid,
        settings={k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()},
    )


def _subpixel_peak(cc: np.ndarray) -> np.ndarray:
    """Peak positions (N, 2) of correlation maps cc (N, H, W) relative to the centre, by a 3-point
    Gaussian fit (parabola where values are not positive) around the integer maximum."""
    N, H, W = cc.shape
    flat = cc.reshape(N, -1).argmax(1)
    iy, ix = np.clip(flat // W, 1, H - 2), np.clip(flat % W, 1, W - 2)
    n = np.arange(N)
    out = np.empty((N, 2), np.float64)
    for k, (lo, c0, hi) in enumerate(((cc[n, iy - 1, ix], cc[n, iy, ix], cc[n, iy + 1, ix]),
                                      (cc[n, iy, ix - 1], cc[n, iy, ix], cc[n, iy, ix + 1]))):
        pos = (lo > 0) & (c0 > 0) & (hi > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            lg = np.log(np.where(pos, lo, 1)), np.log(np.where(pos, c0, 1)), np.log(np.where(pos, hi, 1))
            dg = (lg[0] - lg[2]) / (2 * (lg[0] - 2 * lg[1] + lg[2]))
            dp = (lo - hi) / (2 * (lo - 2 * c0 + hi))
        d = np.where(pos, dg, dp)
        d = np.where(np.isfinite(d), np.clip(d, -0.5, 0.5), 0.0)
        out[:, k] = (iy if k == 0 else ix) + d
    return out - np.array([(H - 1) / 2, (W - 1) / 2])


def _residual_and_corr(align: ChunkedBinary, ref: np.ndarray, settings: dict, valid, device):
    """Per registered frame: subpixel residual shift (T, 2) px, Pearson r (T,) with the reference and
    the phase-correlation peak (T,) with the reference (suite2p's registration quality measure)."""
    import torch
    from suite2p.registration import register as s2p_register
    maskMul, maskOffset, cfRef, *_, rmin, rmax = s2p_register.compute_filters_and_norm(
        ref.astype(np.int16), norm_frames=settings["norm_frames"], spatial_smooth=settings["smooth_sigma"],
        spatial_taper=settings["spatial_taper"], block_size=None, device=device)
    r = _standardised(ref, valid)
    T = align.n_frames
    residual, corr, peak = np.zeros((T, 2), np.float32), np.zeros(T, np.float32), np.zeros(T, np.float32)
    for i, fr in align.iter_chunks(settings["batch_size"]):
        t = torch.from_numpy(fr).to(device)
        t = torch.clip(t, int(rmin), int(rmax)) if rmin > -np.inf else t
        # small search window: registered frames are within a pixel of the reference
        cmax, cc = phasecorr_window(t, cfRef, maskMul, maskOffset, lcorr=3)
        residual[i:i + len(fr)] = _subpixel_peak(cc)
        peak[i:i + len(fr)] = cmax
        corr[i:i + len(fr)] = _pearson_with(fr, r, valid)
    return residual, corr, peak


def phasecorr_window(frames, cfRef, maskMul, maskOffset, lcorr: int):
    """suite2p's rigid phase correlation (`rigid.phasecorr`) at shifts within +-lcorr px only.

    frames (n, Y, X) torch tensor; cfRef (Y, X) complex, maskMul/maskOffset (Y, X) from
    suite2p's `compute_filters_and_norm`. Returns the peak value (n,) and the correlation maps
    (n, 2 lcorr + 1, 2 lcorr + 1) as numpy float32, centre = zero shift.
    The frames are real and cfRef is Hermitian (conjugate FFT of a real image times a real,
    symmetric Gaussian), so a half spectrum suffices, and only (2 lcorr + 1)^2 lags are needed:
    they are two small matrix products with the inverse-DFT rows instead of a full inverse FFT
    (about 4x faster than suite2p's call on 128 x 128 frames; tests/test_motion.py checks the values).
    """
    import torch
    Ly, Lx = frames.shape[1:]
    Ex, Ey = _idft_rows(Ly, Lx, lcorr, frames.device)
    X = torch.fft.rfft2(frames.float() * maskMul.float() + maskOffset.float())
    X = torch.sgn(X) * cfRef[:, : Lx // 2 + 1].to(torch.complex64)    # whitened cross-power spectrum
    cc = torch.real(Ey @ (X @ Ex))
    cmax = cc.reshape(len(cc), -1).max(1).values
    return cmax.cpu().numpy(), cc.cpu().numpy()


_IDFT_CACHE: dict = {}


def _idft_rows(Ly: int, Lx: int, lcorr: int, device):
    """Inverse-DFT factors for lags -lcorr..lcorr: Ex (Lx//2+1, 2l+1) over the half spectrum (conjugate
    bins counted twice), Ey (2l+1, Ly); real(Ey @ X @ Ex) = real(ifft2(full X)) at those lags."""
    import torch
    key = (Ly, Lx, lcorr, str(device))
    if key not in _IDFT_CACHE:
        h = Lx // 2 + 1
        d = torch.arange(-lcorr, lcorr + 1, dtype=torch.float64)
        w = torch.full((h,), 2.0, dtype=torch.float64)
        w[0] = 1.0
        if Lx % 2 == 0:
            w[-1] = 1.0      # the Nyquist column has no conjugate partner
        kx, ky = torch.arange(h, dtype=torch.float64), torch.arange(Ly, dtype=torch.float64)
        Ex = w[:, None] * torch.exp(2j * np.pi * kx[:, None] * d[None] / Lx) / (Ly * Lx)
        Ey = torch.exp(2j * np.pi * d[:, None] * ky[None] / Ly)
        _IDFT_CACHE[key] = (Ex.to(torch.complex64).to(device), Ey.to(torch.complex64).to(device))
    return _IDFT_CACHE[key]


def _standardised(ref: np.ndarray, valid) -> np.ndarray:
    (y0, y1), (x0, x1) = valid
    r = ref[y0:y1, x0:x1].ravel().astype(np.float64)
    return (r - r.mean()) / (r.std() or 1.0)


def _pearson_with(frames: np.ndarray, r: np.ndarray, valid) -> np.ndarray:
    """Pearson r (n,) of each frame (n, Y, X) over the valid region with the standardised reference r."""
    (y0, y1), (x0, x1) = valid
    f = frames[:, y0:y1, x0:x1].reshape(len(frames), -1).astype(np.float64)
    f = (f - f.mean(1, keepdims=True)) / np.maximum(f.std(1, keepdims=True), 1e-9)
    return f @ r / r.size


def _frame_corr(align: ChunkedBinary, ref: np.ndarray, valid, batch: int) -> np.ndarray:
    """Pearson r (T,) of each registered frame with the reference, over the valid region."""
    r = _standardised(ref, valid)
    corr = np.zeros(align.n_frames, np.float32)
    for i, fr in align.iter_chunks(batch):
        corr[i:i + len(fr)] = _pearson_with(fr, r, valid)
    return corr


