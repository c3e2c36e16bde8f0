"""Per-stage settings. Reference defaults follow ../shared/METHODS.md."""
from pipeline.core.parameters.spec import Param, Section

# feature sets of the decoders (pipeline.analysis.decoding; docs/decoders.md)
DECODING_CONDITIONS = ("full", "GABAergic", "glutamatergic", "shared", "unique", "shared_removed", "random_removed")

MOTION = Section("motion", "Motion correction with suite2p registration (docs/imaging.md).", (
    Param("nonrigid", True, bool, "Run nonrigid (block) registration after rigid; used only when the frame holds at least two blocks per axis."),
    Param("block_size", None, list, "Nonrigid block size (y, x); the 2p default is suite2p's (docs/imaging.md).", unit="px", item_type=int,
          by_modality={"2p": [128, 128], "1p": [64, 64]}),
    Param("maxregshift", 0.1, float, "Largest rigid shift as a fraction of the smaller frame side.", range=(0.0, 0.5)),
    Param("smooth_sigma", None, float, "Gaussian smoothing of the phase correlation (1p: of the high-passed frames; larger values weight the coarse structure a sensor-fixed glow dominates, docs/imaging.md).", unit="px", range=(0.0, 10.0),
          by_modality={"2p": 1.15, "1p": 2.0}),
    Param("spatial_taper", None, float, "Edge taper (the 1p default is suite2p's one-photon value); capped at a tenth of the smaller frame side.", unit="px", range=(0.0, 200.0),
          by_modality={"2p": 3.45, "1p": 50.0}),
    Param("highpass_sigma", 3.0, float, "1p only: shifts are estimated on frames minus their Gaussian blur of this width (the shifts are then applied to the raw frames); it must remove the vignette and stray-light glow, which stay fixed to the sensor while the tissue moves.", unit="px", range=(0.0, 100.0)),
    Param("batch_size", 100, int, "Frames per registration batch (suite2p's default); bounds the stage's memory (docs/performance.md).", range=(10, 100000)),
    Param("subpixel_residual", None, bool, "With nonrigid blocks, also measure each registered frame's subpixel residual shift and phase-correlation peak with the reference (one phase correlation per frame at lags within 3 px) and apply the residual (the raw frames are warped again with it added to every block shift); off for 1p, where it shrank the shifts (docs/imaging.md). Off: suite2p's block shifts and rigid peak (corrXY) are used. Always on without nonrigid blocks.",
          by_modality={"2p": True, "1p": False}),
    Param("bad_frame_corr_z", 4.0, float, "Flag frames whose phase-correlation peak with the reference is this many robust SDs (1.4826 MAD) below the median.", range=(0.0, 100.0)),
))

EXTRACTION = Section("extraction", "Cell detection and trace extraction (docs/imaging.md).", (
    Param("engine_2p", "suite2p", str, "Engine for two-photon data.", choices=("suite2p",)),
    Param("engine_1p", "suite2p", str, "Engine for one-photon data (see docs/imaging.md for the comparison).", choices=("seeded", "suite2p", "minian")),
    Param("diameter", 10, int, "Expected cell diameter.", unit="px", range=(2, 200)),
    Param("threshold_scaling_1p", 0.5, float, "1p with engine_1p = 'suite2p': sourcery's detection threshold multiplier (replaces threshold_scaling for 1p data).", range=(0.01, 100.0)),
    Param("background_1p", "tophat", str, "1p with engine_1p = 'suite2p': background removal of the detection movie: each frame minus its grey opening with a disk of one diameter (minian's top-hat), or minus its Gaussian blur of one diameter.", choices=("tophat", "gaussian")),
    Param("detect_full_frame_1p", True, bool, "1p: detect cells over the whole frame, not only the valid region (pixels no registration shift filled); the valid region is up to a quarter of the side smaller per edge."),
    Param("detect_full_frame_2p", True, bool, "2p: detect cells over the whole frame, not only the valid region (see detect_full_frame_1p; docs/imaging.md)."),
    Param("max_area_1p", 2.0, float, "1p (engines 'suite2p' and 'minian'): drop detected ROIs larger than this many times pi (diameter/2)^2 (sourcery also returns background patches; docs/imaging.md).", range=(0.1, 1000.0)),
    Param("min_corr_1p", 0.3, float, "engine_1p = 'seeded': least local correlation (mean r with the 8 neighbours, background-removed movie) at a cell seed (CNMF-E's min_corr).", range=(0.0, 1.0)),
    Param("minian_pnr_1p", 1.0, float, "engine_1p = 'minian': least peak-to-noise ratio of a seed (minian's pnr_refine thres; low-pass over high-pass peak-to-peak).", range=(0.0, 100.0)),
    Param("min_pnr_1p", 4.0, float, "engine_1p = 'seeded': least peak-to-noise ratio of a seed pixel's background-removed trace (CNMF-E's min_pnr).", range=(0.0, 1000.0)),
    Param("max_overlap", None, float, "suite2p's max_overlap: an ROI sharing more than this fraction of its pixels with other ROIs is dropped (the later, weaker one first); the 2p default drops sparsery's duplicate detections of one cell, the 1p default is suite2p's (docs/imaging.md).", range=(0.0, 1.0),
          by_modality={"2p": 0.5, "1p": 0.75}),
    Param("min_area_2p", 0.5, float, "2p: drop detected ROIs with fewer pixels than this many times pi (diameter/2)^2 (fragments: dendrites, parts of somata, noise; docs/imaging.md); 0 keeps all.", range=(0.0, 10.0)),
    Param("spatial_scale", None, int, "2p: sparsery's cell scale (1, 2, 3, 4 = cells of about 6, 12, 24, 48 px); default from diameter: the largest no wider than the cell, 1 + floor(log2(diameter / 6)).", range=(1, 4)),
    Param("threshold_scaling", 1.0, float, "suite2p detection threshold multiplier (2p; 1p uses threshold_scaling_1p); raise it (2-3) for short or noisy movies with many false ROIs.", range=(0.01, 100.0)),
    Param("tau", 1.0, float, "Indicator decay time (GCaMP6f 0.7, 6s 1.25-1.5).", unit="s", range=(0.01, 10.0)),
    Param("iscell_threshold", None, float, "ROIs below this classifier probability are kept but marked is_cell = false; default 0.1 with suite2p's built-in classifier, 0.5 with a lab's classifier_file (docs/imaging.md).", range=(0.0, 1.0)),
    Param("min_transient_skew_2p", None, float, "2p: ROIs whose neuropil-corrected trace, minus its running median over 10 x tau, has a skewness at or below this are kept but marked is_cell = false whatever the classifier says: calcium transients make a cell's trace right-skewed, a patch of neuropil's is symmetric noise (docs/imaging.md); default 0.1 with suite2p's built-in classifier, off with a lab's classifier_file (is_cell then follows the lab's classifier); -10 turns the test off.", range=(-10.0, 10.0)),
    Param("classifier_file", "", "path", "A lab's cell classifier (suite2p classifier .npy, written by `interbrain train-classifier` from curated sessions; relative to the session file); empty: suite2p's built-in classifier."),
    Param("neuropil_coefficient", 0.7, float, "F_corrected = F - coefficient * Fneu.", range=(0.0, 2.0)),
    Param("baseline_window_s", 60.0, float, "Running-percentile baseline window for dF/F.", unit="s", range=(1.0, 3600.0)),
    Param("baseline_percentile", 8.0, float, "Percentile of the running baseline for dF/F.", range=(0.0, 100.0)),
    Param("batch_size", 100, int, "Frames per batch when binning the detection movie and extracting traces (bounds memory; results do not depend on it).", range=(10, 100000)),
    Param("max_binned_frames", 2000, int, "Upper bound on the frames of suite2p's binned detection movie (sets its bin size); memory ~ 4 x value x Y x X bytes (2 GB at 512 x 512).", range=(100, 1000000)),
))

CELLTYPES = Section("celltypes", "Cell-type labels (METHODS.md section 6; docs/celltypes.md).", (
    Param("method", "mixture", str, "Structural-channel classifier: a two-component Gaussian mixture on the reporter score, or a fixed threshold.", choices=("mixture", "threshold")),
    Param("threshold", 0.65, float, "Reporter-score cut for method = 'threshold'; score = inside / (inside + surround), 0.5 = as bright as the surround (suite2p's chan2_thres is 0.65).", range=(0.0, 1.0)),
    Param("threshold_width", 0.03, float, "method = 'threshold': width of the logistic that turns the distance to the threshold into a confidence.", range=(1e-6, 1.0)),
    Param("surround_px", 6, int, "Width of the surround ring (beyond a 1 px guard band; other ROIs' pixels excluded).", unit="px", range=(1, 100)),
    Param("dark_level", 0.0, float, "Offset of the structural image (e.g. PMT/camera dark level), subtracted before the reporter score; matters for method = 'threshold'.", unit="counts"),
    Param("min_confidence", 0.8, float, "Labels below this confidence become 'unknown'.", range=(0.0, 1.0)),
))

BEHAVIOR = Section("behavior", "Import annotations and derive task events.", (
    Param("coordination_window_s", 0.75, float, "A poke is coordinated when the partner pokes within this window.", unit="s", range=(0.0, 60.0)),
    Param("min_hold_s", 0.5, float, "Shortest wait at the port that counts as a hold bout.", unit="s", range=(0.0, 60.0)),
    Param("repair_unpaired", False, bool, "Close unpaired BORIS START events at the file end instead of failing (reported)."),
    Param("behaviors", [], list, "Behaviour labels that may appear; empty accepts every label in the files.", item_type=str),
    Param("derived", {}, dict, "Derived behaviours: name -> list of behaviours OR-ed, e.g. {social = ['sniff', 'follow']}."),
    Param("sync_tolerance_s", 0.05, float, "Largest allowed residual of a sync-pulse clock fit; a larger one is an error (missed or extra pulse).", unit="s", range=(0.0, 10.0)),
))

ALIGN = Section("align", "Put both animals and all behaviour on one clock (METHODS.md section 7).", (
    Param("bin_s", None, float, "Common bin width; default: the slower imaging frame interval.", unit="s", range=(0.001, 60.0)),
    Param("trace", "dff", str, "Trace that enters the analyses.", choices=("dff", "F_corrected", "spikes", "C")),
    Param("max_gap_s", None, float, "Gaps longer than this become NaN; default 1.5 frame intervals.", unit="s", range=(0.0, 60.0)),
    Param("min_overlap_fraction", 0.9, float, "Least overlap: of each imaging stream's span by the two streams' overlap, and of the common time base by each behaviour source.", range=(0.0, 1.0)),
    Param("include_non_cells", False, bool, "Keep ROIs marked is_cell = false in the analyses."),
    Param("media_duration_tolerance_s", 1.0, float, "Allowed mismatch between an annotation file's media duration and its video clock.", unit="s", range=(0.0, 3600.0)),
))

SUBSPACE = Section("subspace", "Shared/unique inter-brain subspaces by PLSC (METHODS.md section 2).", (
    Param("n_surrogates", 2000, int, "Circular-shift surrogates of animal B.", range=(1, 100000)),
    Param("lag_s", 4.0, float, "Guard lag: shifts are uniform on [1+floor(lag/2), T-lag+floor(lag/2)] frames, lag = round(lag_s / bin) (reference: 60 frames at 15 Hz).", unit="s", range=(0.0, 3600.0)),
    Param("percentile", 97.5, float, "Rank of the surrogate threshold: 1-based round(p/100 * n) of the ascending null (reference 1950 of 2000).", range=(50.0, 100.0)),
    Param("null", "full", str, "Surrogate null for every dimension (reference), or 'adaptive': only the leading dimensions needed to decide K (same K; thresholds beyond are NaN).", choices=("full", "adaptive")),
    Param("nan_bins", "drop", str, "Time bins with NaN (dropped frames) in any neuron of either animal: 'drop' them (the rest is concatenated) or 'interpolate' linearly in time.", choices=("drop", "interpolate")),
    Param("detrend_s", 0.0, float, "High-pass before PLSC: subtract a running mean of this window; 0 = off (reference).", unit="s", range=(0.0, 3600.0)),
    Param("regress_behavior", False, bool, "Run PLSC on residuals after regressing out both animals' behaviour indicators (least squares with intercept)."),
    Param("by_cell_type", True, bool, "Also run per cell type with neuron-count matching (K and shared-variance fraction distributions)."),
    Param("n_subsamples", 20, int, "Repeats of the neuron-count-matched subsampling.", range=(1, 10000)),
    Param("min_type_neurons", 5, int, "Cell types with fewer neurons are left out of the count-matched comparison.", range=(2, 100000)),
    Param("cell_type_surrogates", 200, int, "Surrogates per count-matched subsample (threshold rank scaled: round(p/100 * n)).", range=(1, 100000)),
    Param("cv_block_s", 30.0, float, "Block length of the cross-validated shared correlation (>= 30 s).", unit="s", range=(30.0, 3600.0)),
    Param("cv_folds", 5, int, "Folds of the blocked cross-validation.", range=(2, 100)),
))

ENCODING = Section("encoding", "Single-neuron auROC encoding (METHODS.md section 3).", (
    Param("n_surrogates", 2000, int, "Circular-shift surrogates per behaviour (one shift sequence per behaviour, shared by all neurons).", range=(1, 100000)),
    Param("min_shift_s", 4.0, float, "Shifts are uniform on [min_shift+1, L-min_shift] frames, min_shift = round(min_shift_s / bin) (reference: 61..L-60 at 15 Hz).", unit="s", range=(0.0, 3600.0)),
    Param("baseline", "all", str, "Negative frames: all frames, or 'other' (METHODS.md section 3).", choices=("all", "other")),
    Param("other_label", "other", str, "Behaviour label meaning 'no annotated behaviour', used by baseline = 'other'."),
    Param("alpha", 0.05, float, "Two-sided p cut-off.", range=(0.0, 1.0)),
    Param("fdr", False, bool, "Benjamini-Hochberg FDR across neurons x behaviours instead of the plain cut-off."),
))

DECODING = Section("decoding", "Time-resolved decoders (METHODS.md section 5; docs/decoders.md).", (
    Param("contrasts", ["self:hold vs self:poke", "self:poke vs partner:poke", "self:approach vs partner:approach"], list,
          "Event contrasts decoded for each animal: 'WHO:BEHAVIOR[@start|stop|mid] vs WHO:BEHAVIOR[@...]', WHO = self, "
          "partner, A or B (default anchor: bout start). 'hold' events follow the hold rule (hold_guard_s).", item_type=str),
    Param("hold_guard_s", 1.0, float, "A hold bout is used only when no own poke lies within this time of its anchor.", unit="s", range=(0.0, 3600.0)),
    Param("window_s", [-3.0, 3.0], list, "Window around each event [start, stop].", unit="s", item_type=float),
    Param("exclusion_s", 15.0, float, "Drop from training every bout starting within this time of the test bout.", unit="s", range=(0.0, 3600.0)),
    Param("min_bouts", 4, int, "Fewest bouts per class; fewer gives 'not enough bouts'.", range=(2, 10000)),
    Param("n_repeats", 50, int, "Class-balancing subsampling repeats (conditions drawn n_subsamples times split them over "
          "the draws).", range=(1, 10000)),
    Param("n_surrogates", 500, int, "Surrogates of the null (one balanced subsample each).", range=(0, 100000)),
    Param("null", "shift", str, "Null: 'shift' circularly shifts the activity against the event train (keeps the "
          "clustering of bouts in time); 'permute' permutes labels across bouts (valid only for independent bouts).",
          choices=("shift", "permute")),
    Param("min_shift_s", 15.0, float, "Shortest circular shift of the 'shift' null, from either end of the recording.",
          unit="s", range=(0.0, 1e6)),
    Param("C", 1.0, float, "Mode 'svm': SVM regularisation (LinearSVC's C).", range=(1e-9, 1e9)),
    Param("mode", "lda", str, "Classifier per time bin: 'lda' = closed-form ridge least squares on +-1 labels (the shrinkage-LDA "
          "direction; exact leave-bouts-out from one hat matrix per bin), or 'svm' = the template's linear SVM "
          "(squared hinge, as LinearSVC; much slower). docs/decoders.md compares the two.", choices=("svm", "lda")),
    Param("ridge", 100.0, float, "Mode 'lda': ridge penalty lambda, added as lambda * I to X'X of the training bouts "
          "(z-scored features and the bias); larger values shrink the weights toward the difference of class means.",
          range=(1e-9, 1e9)),
    Param("alpha", 0.05, float, "Family-wise level of the cluster permutation test over time bins.", range=(0.0, 1.0)),
    Param("conditions", list(DECODING_CONDITIONS), list, "Feature sets decoded (docs/decoders.md).", item_type=str,
          choices=DECODING_CONDITIONS),
    Param("n_subsamples", 5, int, "Draws of the count-matched cell-type subsample and of the random removed dimensions.", range=(1, 1000)),
    Param("condition_surrogates", 100, int, "Surrogates of each condition other than 'full' (split over its subsamples).", range=(0, 100000)),
    Param("n_jobs", 2, int, "Parallel workers over surrogates (joblib).", range=(1, 256)),
))

REPORT = Section("report", "HTML report with figures, written at the end of `interbrain run`.", (
    Param("format", "png", str, "Figure format.", choices=("png", "svg")),
    Param("dpi", 100, int, "Figure resolution.", range=(30, 600)),
))
