"""Cell detection and trace extraction on a registered movie (suite2p 1.x).

`extract(binary, shape, fs, params, modality)` runs suite2p's functional
detection (sparsery for 2p, sourcery for 1p) on a temporally binned copy of the registered binary,
suite2p's extraction (ROI and neuropil traces), its built-in classifier, and
then pipeline.imaging.traces (neuropil correction, dF/F, OASIS deconvolution).
ROIs under `iscell_threshold` (2p: or whose trace, slow drift removed, is not right-skewed by transients,
`min_transient_skew_2p`) are kept with `is_cell = False`.

Memory: the binned movie holds at most `max_binned_frames` frames
(float32, Y x X each); everything else streams through the binary in batches.

One-photon (engine_1p = 'suite2p', default): suite2p's sourcery on the binned movie spatially
high-passed first (background_1p: a morphological top-hat with a disk of one cell diameter by
default; the out-of-focus background is much brighter than cells), over the whole
frame (detect_full_frame_1p), with its own threshold (threshold_scaling_1p) and ROIs larger
than max_area_1p cell areas dropped. engine_1p = 'minian': minian's CNMF
(pipeline.imaging.extraction.minian_cnmf). engine_1p = 'seeded': pipeline.imaging.extraction.seeded (top-hat
background removal, CNMF-E-style correlation x peak-to-noise seeding). suite2p scored the
best ROI F1 on the simulator's 1p sessions, minian the best trace correlation; none meets the
quality bar for every animal yet (docs/imaging.md).
"""
from __future__ import annotations

import logging
import numpy as np
from scipy import ndimage

from pipeline.core.parameters import SPEC
from pipeline.imaging import traces
from pipeline.imaging.motion import highpass, torch_device
from pipeline.imaging.extraction.result import ExtractionResult
from pipeline.io.binary import ChunkedBinary

log = logging.getLogger("interbrain.extraction")


def spatial_scale(diameter: float, override: int | None = None) -> int:
    """sparsery's spatial scale for cells of `diameter` px: the largest whose template (3 x 2^scale px:
    6, 12, 24, 48) is no wider than the cell, 1 + floor(log2(diameter / 6)), clamped to 1..4.

    A template wider than the cell sums it with its surround. On the real 2p movie (cells 9-10 px,
    diameter 10) scale 1 found 2.6 times the labelled cells that scale 2 found, and suite2p's own
    estimate there found as many ROIs as scale 1 (docs/imaging.md); rounding log2 had given scale 2.
    """
    if override:
        return int(override)
    return int(np.clip(1 + np.floor(np.log2(max(diameter, 1.0) / 6.0)), 1, 4))


def detection_bin(n_frames: int, fs: float, params: dict, modality: str) -> int:
    """Frames per bin of the detection movie.

    2p: suite2p's rule, round(tau x fs) frames (a bin as long as one transient's decay: averaging
    within it keeps the transient and cuts the noise by sqrt(bin)), raised where needed so the
    binned movie holds at most `max_binned_frames` frames (memory). On the real 2p movie
    (docs/imaging.md) the earlier rule below, which kept >= 300 bins, halved the bin and the F1.
    1p: ceil(tau x fs / 4), a quarter of the decay (rounded up): a bin that short keeps ~90% of a transient's
    peak, which is what sourcery finds a dim 1p cell by under the bright background. It replaced
    min(round(tau x fs), n_frames // 300), whose floor of 300 bins tied the bin to the movie's length
    (bin 1 for 400 frames, 3 for 1200); on the realistic 1p simulator the new rule scored a higher
    mean F1 and the full tau x fs a lower one (docs/imaging.md). No real 1p movie to check it on yet.
    """
    bin_tau = max(1, int(round(params["tau"] * fs)))
    if modality == "1p":
        bin_tau = max(1, int(np.ceil(params["tau"] * fs / 4 - 1e-9)))
    return int(max(1, int(np.ceil(n_frames / params["max_binned_frames"])), bin_tau))


def suite2p_settings(params: dict, modality: str, fs: float, n_frames: int) -> dict:
    """suite2p settings with ours merged in per nested section (suite2p merges only one level)."""
    import suite2p
    s = suite2p.default_settings()
    d = float(params["diameter"])
    s["diameter"] = np.array([d, d])
    s["tau"] = float(params["tau"])
    s["fs"] = float(fs)
    det = dict(s["detection"])
    det["nbins"] = int(params["max_binned_frames"])
    det["bin_size"] = detection_bin(n_frames, fs, params, modality)
    det["sparsery_settings"] = dict(det["sparsery_settings"])
    det["algorithm"] = "sparsery"
    det["threshold_scaling"] = float(params["threshold_scaling"])
    det["max_overlap"] = float(SPEC["extraction"].resolve(params, modality)["max_overlap"])
    # sparsery's spatial scale (1, 2, 3, 4 = cells of 6, 12, 24, 48 px) from the configured diameter rather than
    # suite2p's estimate: that takes the most common scale among the 50 brightest maxima of its multi-scale maps,
    # and beyond the coarsest grid's outer nodes (frame edges) those maps are flat, so one plateau casts dozens
    # of tied votes; on a 64 x 64 frame they outvoted the cells, the threshold quadrupled and no ROI was found
    det["sparsery_settings"]["spatial_scale"] = spatial_scale(d, params.get("spatial_scale"))
    if modality == "1p":
        # sourcery (model-based, with a neuropil basis) fits the large blurry 1p somata better than
        # sparsery on the simulator (docs/imaging.md)
        det["algorithm"] = "sourcery"
        det["threshold_scaling"] = float(params["threshold_scaling_1p"])
        det["sparsery_settings"]["highpass_neuropil"] = max(5, int(round(1.5 * d)))
    s["detection"] = det
    ext = dict(s["extraction"])
    ext["neuropil_coefficient"] = float(params["neuropil_coefficient"])
    ext["batch_size"] = int(params["batch_size"])
    s["extraction"] = ext
    s["classification"] = dict(s["classification"], use_builtin_classifier=True)
    return s


def _bin_movie(binary: ChunkedBinary, bin_size: int, bad: np.ndarray | None, hp_sigma: float,
               batch: int = 500, hp_method: str = "gaussian") -> np.ndarray:
    """Temporal means of `bin_size` good frames, (n_bins, Y, X) float32; spatially high-passed if hp_sigma.

    hp_method 'gaussian': minus the Gaussian blur of hp_sigma px; 'tophat': minus the grey opening
    with a disk of radius hp_sigma px (after a 0.7 px blur), pipeline.imaging.extraction.seeded.tophat.
    """
    T, Ly, Lx = binary.shape
    good = np.ones(T, bool) if bad is None else ~np.asarray(bad, bool)
    n_bins = int(good.sum()) // bin_size
    out = np.zeros((n_bins, Ly, Lx), np.float32)
    carry = np.zeros((0, Ly, Lx), np.float32)
    k = 0
    batch = max(batch, bin_size) // bin_size * bin_size
    for i, fr in binary.iter_chunks(batch):
        fr = np.concatenate([carry, fr[good[i:i + len(fr)]].astype(np.float32)])
        m = len(fr) // bin_size
        m = min(m, n_bins - k)
        if m > 0:
            out[k:k + m] = fr[:m * bin_size].reshape(m, bin_size, Ly, Lx).mean(1)
            k += m
        carry = fr[m * bin_size:]
    if hp_sigma > 0:
        for j in range(0, n_bins, 500):
            if hp_method == "tophat":
                from pipeline.imaging.extraction.seeded import tophat
                out[j:j + 500] = tophat(out[j:j + 500], hp_sigma, 0.7)
            else:
                out[j:j + 500] = highpass(out[j:j + 500], hp_sigma)
    return out


def _detect_suite2p(f_reg, mov, s, device, binary_path, yr, xr):
    """suite2p's functional detection on the binned movie; (stat, detection output)."""
    from suite2p import detection
    try:
        det_out, stat, _ = detection.detection_wrapper(
            f_reg, mov=mov, diameter=s["diameter"], tau=s["tau"], fs=s["fs"], yrange=list(yr), xrange=list(xr),
            settings=s["detection"], device=device)
    except ValueError as exc:
        if "no ROIs were found" not in str(exc):
            raise
        log.warning("%s: suite2p found no ROIs", binary_path)
        return np.array([]), {}
    return stat, det_out


def drop_fragments(stat: np.ndarray, min_npix: float) -> np.ndarray:
    """ROIs of at least `min_npix` pixels, with suite2p's npix_norm recomputed over the ROIs kept.

    On real 2p data sparsery returns many ROIs a third of a cell across (dendrites, parts of
    somata, noise): on the neurofinder movie they were most ROIs and few matched a labelled cell
    (docs/imaging.md). They also set the scale of suite2p's npix_norm (soma pixels over the median
    of the first 100 ROIs), so the built-in classifier called the real, larger cells oversized.
    """
    keep = np.array([len(st["ypix"]) >= min_npix for st in stat], bool)
    stat = stat[keep]
    if len(stat):
        soma = np.array([float(st["npix_soma"]) for st in stat])
        norm = np.median(soma[:100]) + 1e-10    # suite2p's normaliser (roi_stats, median=False)
        for st, n in zip(stat, soma):
            st["npix_norm"] = n / norm
    return stat


def _detect_seeded(mov, s, params, y0, x0, Ly, Lx):
    """pipeline.imaging.extraction.seeded detection on the cropped binned movie, ROIs in frame coordinates + suite2p stats."""
    from suite2p.detection.stats import roi_stats
    from pipeline.imaging.extraction.seeded import detect_1p
    stat, img = detect_1p(mov, float(params["diameter"]), min_corr=float(params["min_corr_1p"]),
                          min_pnr=float(params["min_pnr_1p"]))
    for st in stat:
        st["ypix"] = st["ypix"] + y0
        st["xpix"] = st["xpix"] + x0
    if stat:
        stat = roi_stats(np.array(stat), Ly, Lx, diameter=s["diameter"], max_overlap=s["detection"]["max_overlap"],
                          do_soma_crop=True)
    else:
        stat = np.array([])
    return stat, {"Vcorr": img["correlation"]}


def extract(binary_path: str, shape: tuple[int, int, int], fs: float, params: dict, modality: str = "2p",
            bad_frame: np.ndarray | None = None, valid_yx=None, scale: float = 1.0,
            mean_image: np.ndarray | None = None, device=None,
            spatial_highpass: float | None = None) -> ExtractionResult:
    """Detect ROIs and extract traces from the registered int16 binary (T, Y, X) at `fs` Hz.

    params: validated [extraction] section. scale: raw units per binary count (MotionResult.scale).
    spatial_highpass: sigma (px) of the Gaussian blur subtracted from the binned movie before
    detection; default: the cell diameter for 1p, none for 2p.
    Returns an ExtractionResult; traces are in raw movie units.
    """
    engine = params["engine_1p"] if modality == "1p" else params["engine_2p"]
    if engine == "minian":
        from pipeline.imaging.extraction.minian_cnmf import extract_minian
        return extract_minian(binary_path, shape, fs, params, bad_frame=bad_frame, valid_yx=valid_yx, scale=scale,
                              mean_image=mean_image)
    from suite2p import extraction as s2p_extraction
    from pipeline.imaging.extraction import classifier
    device = device or torch_device()
    T, Ly, Lx = shape
    s = suite2p_settings(params, modality, fs, T)
    f_reg = ChunkedBinary(binary_path, shape)
    (y0, y1), (x0, x1) = valid_yx if valid_yx is not None else ((0, Ly), (0, Lx))
    if spatial_highpass is None:
        spatial_highpass = float(params["diameter"]) if modality == "1p" else 0.0
    hp_sigma = float(spatial_highpass)
    if params["detect_full_frame_1p" if modality == "1p" else "detect_full_frame_2p"]:
        # the valid region (pixels never filled by registration) is capped at a quarter of the side per edge;
        # cropping to it lost ~half the cells of the simulator's 64 x 64 1p sessions (docs/imaging.md)
        (y0, y1), (x0, x1) = (0, Ly), (0, Lx)
    if engine == "seeded":
        # 1p: our background-removing detector (pipeline.imaging.extraction.seeded) on the raw binned movie
        hp_sigma = 0.0
    hp_method = params["background_1p"] if modality == "1p" else "gaussian"
    mov = _bin_movie(f_reg, s["detection"]["bin_size"], bad_frame, hp_sigma, batch=int(params["batch_size"]),
                     hp_method=hp_method)[:, y0:y1, x0:x1]
    if len(mov) < 2:
        raise ValueError(f"{binary_path}: only {len(mov)} binned frame(s); the movie is too short for detection")
    if engine == "seeded":
        stat, det_out = _detect_seeded(mov, s, params, y0, x0, Ly, Lx)
    else:
        stat, det_out = _detect_suite2p(f_reg, mov, s, device, binary_path, (y0, y1), (x0, x1))
        if modality == "1p" and len(stat):
            # sourcery also returns background patches many cells wide; a soma covers ~pi (d/2)^2 px
            max_npix = float(params["max_area_1p"]) * np.pi * (float(params["diameter"]) / 2) ** 2
            stat = stat[np.array([len(st["ypix"]) <= max_npix for st in stat], bool)]
        if modality == "2p" and len(stat):
            stat = drop_fragments(stat, float(params["min_area_2p"]) * np.pi * (float(params["diameter"]) / 2) ** 2)
    del mov
    N = len(stat)
    if N:
        F, Fneu, _, _ = s2p_extraction.extraction_wrapper(stat, f_reg, settings=s["extraction"], device=device)
        F, Fneu = F.astype(np.float32) * scale, Fneu.astype(np.float32) * scale
        Fc = traces.neuropil_correct(F, Fneu, params["neuropil_coefficient"])
        from scipy.stats import skew
        snr = 1 - 0.5 * np.diff(Fc, axis=1).var(axis=1) / np.maximum(Fc.var(axis=1), 1e-12)
        sk, sd = skew(Fc, axis=1), Fc.std(axis=1)
        for k, st in enumerate(stat):
            st["snr"], st["skew"], st["std"] = snr[k], sk[k], sd[k]
        feats = classifier.features(stat)
        prob = classifier.classify(stat, params.get("classifier_file") or None)
    else:
        F = Fneu = Fc = np.zeros((0, T), np.float32)
        prob = np.zeros(0, np.float32)
        feats = {k: np.zeros(0) for k in classifier.FEATURES}
    f_reg.close()
    dff = traces.dff(Fc, F, fs, params["baseline_window_s"], params["baseline_percentile"])
    feats["transient_skew"] = classifier.transient_skew(Fc, fs, params["tau"])
    spikes = traces.deconvolve(Fc, fs, params["tau"], params["baseline_window_s"], params["baseline_percentile"])
    C = traces.denoised_calcium(spikes, fs, params["tau"])

    pn = np.concatenate([np.full(len(st["ypix"]), k) for k, st in enumerate(stat)]) if N else np.zeros(0, int)
    py = np.concatenate([st["ypix"] for st in stat]) if N else np.zeros(0, int)
    px = np.concatenate([st["xpix"] for st in stat]) if N else np.zeros(0, int)
    pw = np.concatenate([st["lam"] / max(st["lam"].sum(), 1e-12) for st in stat]) if N else np.zeros(0)
    cen = np.array([[np.average(st["ypix"], weights=st["lam"]), np.average(st["xpix"], weights=st["lam"])]
                    for st in stat], np.float32).reshape(N, 2)
    corr = np.zeros((Ly, Lx), np.float32)
    vc = det_out.get("Vcorr") if isinstance(det_out, dict) else None
    if vc is not None and vc.shape == (y1 - y0, x1 - x0):
        corr[y0:y1, x0:x1] = vc
    elif vc is not None:
        zoom = ((y1 - y0) / vc.shape[0], (x1 - x0) / vc.shape[1])
        z = ndimage.zoom(vc, zoom, order=1)
        corr[y0:y0 + z.shape[0], x0:x0 + z.shape[1]] = z[: y1 - y0, : x1 - x0]
    return ExtractionResult(
        pix_neuron=pn.astype(np.int32), pix_y=py.astype(np.int32), pix_x=px.astype(np.int32),
        pix_weight=pw.astype(np.float32), centroid=cen, iscell_prob=prob,
        is_cell=classifier.is_cell(prob, feats["transient_skew"], params, modality),
        F=F, Fneu=Fneu, F_corrected=Fc, dff=dff, spikes=spikes,
        mean_image=np.zeros((Ly, Lx), np.float32) if mean_image is None else mean_image.astype(np.float32),
        correlation_image=corr, engine=engine, C=C, features=feats,
        settings={"bin_size": s["detection"]["bin_size"], "nbins": s["detection"]["nbins"],
                  "highpass_neuropil": s["detection"]["sparsery_settings"]["highpass_neuropil"],
                  "spatial_scale": s["detection"]["sparsery_settings"]["spatial_scale"],
                  "max_overlap": s["detection"]["max_overlap"],
                  "min_area_2p": float(params["min_area_2p"]) if modality == "2p" else None,
                  "iscell_threshold": classifier.iscell_threshold(params),
                  "min_transient_skew_2p": classifier.min_transient_skew(params) if modality == "2p" else None,
                  "spatial_highpass_px": hp_sigma,
                  "spatial_highpass_method": hp_method if hp_sigma > 0 else "none"},
    )
