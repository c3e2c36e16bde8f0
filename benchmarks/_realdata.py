"""The shared real 2p movie (neurofinder 00.00, top-left quadrant) and its scoring rule.

The data live beside the repository: `<repo>/../shared/data/neurofinder_00_00_topleft/`
(movie.tif: 600 x 256 x 256 uint16, ~7 Hz; regions.json: 106 human-labelled ROIs).
Scoring (neurofinder): ROI centroids are matched greedily, closest pair first, a match only
below 5 px; recall, precision and F1 follow from the matches.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NAME = "neurofinder_00_00_topleft"
FS = 7.0          # Hz (neurofinder 00.00)
DIAMETER = 10     # px (cells ~9-10 px across, median labelled area 67 px)
MATCH_PX = 5.0    # neurofinder's centroid-matching radius


def data_dir(repo: Path = REPO) -> Path | None:
    """The real-data folder beside the repository, or None when absent."""
    d = Path(repo).parent / "shared" / "data" / NAME
    return d if (d / "movie.tif").is_file() and (d / "regions.json").is_file() else None


def truth_centroids(d: Path) -> np.ndarray:
    """(n, 2) centroids (row, col) px of the labelled ROIs (unweighted mean of their pixels)."""
    regions = json.loads((Path(d) / "regions.json").read_text())
    return np.array([np.mean(np.asarray(r["coordinates"], float), 0) for r in regions]).reshape(-1, 2)


def match(truth: np.ndarray, found: np.ndarray, radius: float = MATCH_PX) -> dict:
    """Greedy centroid matching (closest pair first, distance < radius): recall, precision, F1, matches.

    truth (n, 2), found (m, 2) px. 'matched_found' flags the found ROIs with a partner (m,) bool.
    """
    truth, found = np.asarray(truth, float).reshape(-1, 2), np.asarray(found, float).reshape(-1, 2)
    hit_t, hit_f = np.zeros(len(truth), bool), np.zeros(len(found), bool)
    if len(truth) and len(found):
        dist = np.linalg.norm(truth[:, None] - found[None], axis=-1)
        for k in np.argsort(dist, axis=None, kind="stable"):
            i, j = divmod(int(k), len(found))
            if dist[i, j] >= radius:
                break
            if not hit_t[i] and not hit_f[j]:
                hit_t[i] = hit_f[j] = True
    n = int(hit_t.sum())
    rec = n / len(truth) if len(truth) else 0.0
    prec = n / len(found) if len(found) else 0.0
    f1 = 2 * rec * prec / (rec + prec) if rec + prec else 0.0
    return {"recall": rec, "precision": prec, "f1": f1, "n_matched": n, "n_found": len(found),
            "n_truth": len(truth), "matched_found": hit_f, "matched_truth": hit_t}


def stat_centroids(stat) -> np.ndarray:
    """(m, 2) unweighted pixel centroids of suite2p stat entries (as neurofinder scores masks)."""
    return np.array([[np.mean(s["ypix"]), np.mean(s["xpix"])] for s in stat], float).reshape(-1, 2)


def result_centroids(e) -> np.ndarray:
    """(m, 2) unweighted pixel centroids of an ExtractionResult's ROIs."""
    n = len(e.iscell_prob)
    cnt = np.bincount(e.pix_neuron, minlength=n).astype(float)
    y = np.bincount(e.pix_neuron, e.pix_y, minlength=n) / np.maximum(cnt, 1)
    x = np.bincount(e.pix_neuron, e.pix_x, minlength=n) / np.maximum(cnt, 1)
    return np.stack([y, x], 1)


def run_suite2p_direct(d: Path, work: Path, spatial_scale: int = 0) -> dict:
    """suite2p.run_s2p with its defaults (diameter 10, fs 7) on the movie; {'centroid', 'is_cell', 'prob'}.

    spatial_scale: sparsery's cell scale (0: suite2p's default, estimated from the movie; 2: cells of
    ~12 px, what the project derives from diameter 10). work: suite2p's save folder; its registration
    is reused by later calls, and each arm's result is cached there (arm_<spatial_scale>.npz).
    When suite2p finds no ROI (it raises), the arm has none.
    """
    work = Path(work)
    cache = work / f"arm_{spatial_scale}.npz"
    if not cache.is_file():
        import suite2p
        from pipeline.imaging.motion import torch_device
        settings = suite2p.default_settings()
        settings.update(diameter=[float(DIAMETER), float(DIAMETER)], fs=FS, torch_device=str(torch_device()))
        settings["detection"] = dict(settings["detection"])
        settings["detection"]["sparsery_settings"] = dict(settings["detection"]["sparsery_settings"],
                                                          spatial_scale=int(spatial_scale))
        work.mkdir(parents=True, exist_ok=True)
        try:
            # force_sktiff: with ScanImageTiffReader installed suite2p reads this zlib-compressed TIFF with it,
            # which returns the compressed bytes as pixels (registration then fails); tifffile reads it right
            suite2p.run_s2p(db={"data_path": [str(d)], "tiff_list": ["movie.tif"], "save_path0": str(work),
                                "force_sktiff": True},
                            settings=settings)
            plane = work / "suite2p" / "plane0"
            stat = np.load(plane / "stat.npy", allow_pickle=True)
            iscell = np.load(plane / "iscell.npy")
        except ValueError as exc:
            if "no ROIs were found" not in str(exc):
                raise
            stat, iscell = [], np.zeros((0, 2))
        np.savez(cache, centroid=stat_centroids(stat), is_cell=iscell[:, 0] > 0.5, prob=iscell[:, 1])
    z = np.load(cache)
    return {k: z[k] for k in ("centroid", "is_cell", "prob")}


def register(d: Path, work: Path):
    """The project's motion stage (defaults) on the movie; a MotionResult whose binary is in `work`."""
    from pipeline.core.parameters import SPEC
    from pipeline.imaging.motion import register_movie
    from pipeline.io.readers import open_movie
    with open_movie(Path(d) / "movie.tif") as movie:
        return register_movie(movie, work, "2p", SPEC["motion"].validate({}, "bench"))


def run_project(motion, overrides: dict | None = None):
    """The project's extraction (defaults, diameter 10, fs 7, plus `overrides`) on a registered movie."""
    from pipeline.core.parameters import SPEC
    from pipeline.imaging.extraction import extract
    params = SPEC["extraction"].validate({"diameter": DIAMETER, **(overrides or {})}, "bench")
    shape = (len(motion.rigid_shift), *motion.mean_image.shape)
    return extract(motion.binary, shape, FS, params, "2p", bad_frame=motion.bad_frame, valid_yx=motion.valid_yx,
                   scale=motion.scale, mean_image=motion.mean_image)
