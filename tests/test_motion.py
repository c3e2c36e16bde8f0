"""Motion correction recovers the simulator's planted rigid shifts (2p and 1p), with the documented sign."""
from __future__ import annotations

import glob

import numpy as np
import pytest
from scipy import ndimage

from imaging_synth import sensor_background_1p_movie, shift_rmse, shift_slope, synth_movie
from pipeline.io.binary import ChunkedBinary
from pipeline.imaging.motion import _subpixel_peak, phasecorr_window, register_movie, robust_z
from pipeline.core.parameters import SPEC
from pipeline.io.readers import ArrayMovie, open_movie
from pipeline.simulator import load_truth, simulate_session

FAST = dict(preset="small", duration_s=40.0, fov=(64, 64))     # 400 frames of 64 x 64 px per animal


def _register_sim(tmp_path_factory, modality, seed, **over):
    d = tmp_path_factory.mktemp(f"sim{modality}")
    toml = simulate_session(d / "s", seed=seed, modality=modality, **{**FAST, **over})
    truth = load_truth(toml)["/A"]
    movie = open_movie(glob.glob(str(d / "s" / "A" / "movie*"))[0])
    r = register_movie(movie, d / "work", modality, SPEC["motion"].validate({}, "test"))
    return r, truth, movie


@pytest.fixture(scope="module")
def reg2p(tmp_path_factory):
    return _register_sim(tmp_path_factory, "2p", seed=11)


@pytest.fixture(scope="module")
def reg1p(tmp_path_factory):
    return _register_sim(tmp_path_factory, "1p", seed=12)


def test_2p_rigid_shifts_recovered_with_the_simulator_sign(reg2p):
    r, truth, movie = reg2p
    true = truth["rigid_shift"].values
    assert np.abs(true).max() > 1.0                       # there is motion to recover
    assert shift_rmse(r.rigid_shift, true) < 0.2          # planted subpixel shifts, realistic noise + warp
    assert shift_rmse(-r.rigid_shift, true) > 0.5         # the opposite sign convention would be far off
    assert r.rigid_shift.shape == (len(movie), 2)


def test_1p_rigid_shifts_recovered_under_strong_background(reg1p):
    r, truth, _ = reg1p
    assert shift_rmse(r.rigid_shift, truth["rigid_shift"].values) < 0.5
    assert r.settings["smooth_sigma"] == 2.0             # the spec's one-photon default


def test_unset_registration_settings_take_the_modality_default_of_the_spec():
    from pipeline.imaging.motion import suite2p_registration_settings
    unset = SPEC["motion"].validate({}, "test")
    for modality, (sigma, taper) in {"2p": (1.15, 3.45), "1p": (2.0, 50.0)}.items():
        s = suite2p_registration_settings(modality, unset, (100, 512, 512))
        assert (s["smooth_sigma"], s["spatial_taper"]) == (sigma, taper)
    s = suite2p_registration_settings("1p", {**unset, "smooth_sigma": 2.0, "spatial_taper": 8.0}, (100, 512, 512))
    assert (s["smooth_sigma"], s["spatial_taper"]) == (2.0, 8.0)
    assert suite2p_registration_settings("1p", unset, (100, 64, 64))["spatial_taper"] == 6.4   # capped: side / 10


@pytest.mark.parametrize("which", ["reg2p", "reg1p"])
def test_registration_makes_the_mean_image_crisper_and_writes_the_binary(which, request):
    r, _, movie = request.getfixturevalue(which)
    assert r.crispness_after > r.crispness_before
    b = ChunkedBinary(r.binary, movie.shape)
    assert b.shape == movie.shape
    # the binary holds the registered frames: its mean is the reported mean image
    binary_mean = np.mean([c.mean(0) for _, c in b.iter_chunks(100)], axis=0) * r.scale
    (y0, y1), (x0, x1) = r.valid_yx
    np.testing.assert_allclose(binary_mean[y0:y1, x0:x1], r.mean_image[y0:y1, x0:x1], rtol=0.02, atol=2)
    b.close()


def test_subpixel_on_synthetic_movie_without_warp(tmp_path):
    mov, truth = synth_movie(T=300, Ly=64, Lx=64, seed=3, modality="2p")
    r = register_movie(ArrayMovie(mov), tmp_path, "2p", SPEC["motion"].validate({}, "test"))
    assert shift_rmse(r.rigid_shift, truth["rigid_shift"]) < 0.15
    # integer-only shifts would be off by ~0.3 px: the subpixel residual is doing work
    assert shift_rmse(np.round(r.rigid_shift), truth["rigid_shift"]) > shift_rmse(r.rigid_shift, truth["rigid_shift"])


def test_rigid_shift_is_the_shift_applied_to_the_frames(tmp_path):
    """Moving each raw frame by -rigid_shift ourselves gives the registered frames, and those frames are
    aligned: rigid_shift is the shift the registered binary received, subpixel part included."""
    from skimage.registration import phase_cross_correlation
    mov, truth = synth_movie(T=120, Ly=64, Lx=64, seed=5, modality="2p")   # 64 px: rigid only
    r = register_movie(ArrayMovie(mov), tmp_path, "2p", SPEC["motion"].validate({}, "test"))
    assert not r.settings["nonrigid"]
    assert np.abs(r.rigid_shift - np.round(r.rigid_shift)).mean() > 0.15      # subpixel shifts were applied
    b = ChunkedBinary(r.binary, mov.shape)
    reg = b[:].astype(np.float64) * r.scale
    b.close()
    (y0, y1), (x0, x1) = r.valid_yx
    inner = (slice(None), slice(y0 + 2, y1 - 2), slice(x0 + 2, x1 - 2))

    def moved_back(shifts):
        # an independent all-pass shift (scipy's Fourier shift of the frame mirrored 8 px beyond each edge)
        def one(f, d):
            p = np.pad(f.astype(np.float64), 8, mode="reflect")
            return np.real(np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(p), -d)))[8:-8, 8:-8]
        return np.stack([one(f, d) for f, d in zip(mov, shifts)])

    def misfit(shifts):
        return np.sqrt(((moved_back(shifts)[inner] - reg[inner]) ** 2).mean()) / reg[inner].std()

    ours = misfit(r.rigid_shift)
    assert ours < 0.05                                     # the stage's Fourier shift (padding differs at the edges)
    assert misfit(np.round(r.rigid_shift)) > 3 * ours      # the integer part alone is not what was applied
    assert misfit(r.rigid_shift + [0.3, -0.3]) > 3 * ours
    # the registered frames sit on the reference: their leftover shift against the registered mean is tiny
    mean = reg.mean(0)
    left = np.array([phase_cross_correlation(mean[inner[1:]], f[inner[1:]], upsample_factor=20)[0] for f in reg])
    assert np.sqrt((left ** 2).mean()) < 0.1
    assert shift_rmse(r.rigid_shift, truth["rigid_shift"]) < 0.15


def test_1p_shifts_are_not_shrunk_by_a_sensor_fixed_background(tmp_path):
    """Tissue moves under a vignette and a stray-light glow fixed to the sensor (1p miniscope): the
    estimate follows the planted shifts with slope ~1."""
    mov, truth = sensor_background_1p_movie(T=400, Ly=128, Lx=128, seed=0, contrast=0.06, optics_sigma=2.5,
                                            glow=1500, glow_sigma=0.08, vignetting=0.7, noise=25)
    r = register_movie(ArrayMovie(mov), tmp_path, "1p", SPEC["motion"].validate({}, "test"))
    true = truth["rigid_shift"]
    assert np.abs(true).max() > 3.0
    assert shift_rmse(r.rigid_shift, true) < 0.5
    assert 0.9 < shift_slope(r.rigid_shift, true) < 1.1


@pytest.mark.slow
def test_1p_broad_highpass_and_smoothing_shrink_shifts_under_a_fixed_glow(tmp_path):
    """The former 1p defaults (high-pass 10 px, smoothing 4 px, residual pass after the blocks) keep the glow:
    the estimate shrinks."""
    mov, truth = sensor_background_1p_movie(T=400, Ly=128, Lx=128, seed=0, contrast=0.06, optics_sigma=2.5,
                                            glow=1500, glow_sigma=0.08, vignetting=0.7, noise=25)
    r = register_movie(ArrayMovie(mov), tmp_path, "1p",
                       SPEC["motion"].validate({"highpass_sigma": 10.0, "smooth_sigma": 4.0,
                                                 "subpixel_residual": True}, "test"))
    assert shift_slope(r.rigid_shift, truth["rigid_shift"]) < 0.88


def test_bad_frames_are_flagged(tmp_path):
    mov, _ = synth_movie(T=300, Ly=48, Lx=48, seed=4, modality="2p")
    rng = np.random.default_rng(0)
    bad = [40, 41, 200]
    for t in bad:   # blank frames (shutter closed / PMT glitch): dark level plus read noise
        mov[t] = rng.normal(100, 10, mov.shape[1:]).clip(0).astype(np.uint16)
    r = register_movie(ArrayMovie(mov), tmp_path, "2p", SPEC["motion"].validate({}, "test"))
    assert set(np.nonzero(r.bad_frame)[0]) == set(bad)


def test_subpixel_peak_fit_and_robust_z():
    yy, xx = np.mgrid[-4:5, -4:5]
    maps = np.stack([np.exp(-((yy - dy) ** 2 + (xx - dx) ** 2) / 4.0) for dy, dx in [(0.3, -0.2), (-1.4, 2.45)]])
    np.testing.assert_allclose(_subpixel_peak(maps), [[0.3, -0.2], [-1.4, 2.45]], atol=1e-6)
    x = np.r_[np.random.default_rng(0).normal(0, 1, 1000), -50.0]
    z = robust_z(x)
    assert z[-1] < -30 and np.abs(np.median(z)) < 0.1
    # scipy's normal-consistent MAD is the textbook 1.4826 MAD to its 5 digits (1.4826022)
    np.testing.assert_allclose(z, (x - np.median(x)) / (1.4826 * np.median(np.abs(x - np.median(x)))), rtol=2e-6)


@pytest.mark.parametrize("shape", [(64, 64), (48, 71)])
def test_real_fft_phase_correlation_equals_suite2ps(shape):
    """The QC pass's half-spectrum phase correlation gives suite2p's rigid.phasecorr maps and peaks."""
    import torch
    from suite2p.registration import register as s2p_register, rigid as s2p_rigid
    mov, _ = synth_movie(T=30, Ly=shape[0], Lx=shape[1], seed=2, max_shift=2.0)
    ref = mov[:10].mean(0).astype(np.int16)
    mul, off, cf, *_ = s2p_register.compute_filters_and_norm(ref, norm_frames=True, spatial_smooth=1.15,
                                                            spatial_taper=3.45, block_size=None,
                                                            device=torch.device("cpu"))
    t = torch.from_numpy(mov.astype(np.int16))
    ymax, xmax, cmax, cc = s2p_rigid.phasecorr(t, cf, mul, off, maxregshift=3.0 / min(shape),
                                               smooth_sigma_time=0, return_cc=True)
    peak, cc2 = phasecorr_window(t, cf, mul, off, lcorr=3)
    assert cc2.shape == cc.shape == (30, 7, 7)
    np.testing.assert_allclose(cc2, cc, atol=1e-5 * np.abs(cc).max())
    np.testing.assert_allclose(peak, cmax.numpy(), rtol=1e-4)
    flat = cc2.reshape(30, -1).argmax(1)
    np.testing.assert_array_equal(np.c_[flat // 7 - 3, flat % 7 - 3], np.c_[ymax.numpy(), xmax.numpy()])
    assert np.abs(ymax.numpy()).max() > 0     # the frames do move


def test_chunked_binary_roundtrip(tmp_path):
    a = np.random.default_rng(0).integers(-3000, 3000, (17, 5, 6)).astype(np.int16)
    b = ChunkedBinary(tmp_path / "x.bin", a.shape, write=True)
    b[0:10] = a[:10]
    b[10:17] = a[10:]
    np.testing.assert_array_equal(b[3:12], a[3:12])
    np.testing.assert_array_equal(b[np.array([16, 2, 5])], a[[16, 2, 5]])
    np.testing.assert_array_equal(b[4], a[4])
    b.close()
    assert ChunkedBinary(tmp_path / "x.bin", Ly=5, Lx=6).shape == a.shape


def test_too_short_movie_is_refused(tmp_path):
    with pytest.raises(ValueError, match="1 frame"):
        register_movie(ArrayMovie(np.zeros((1, 32, 32), np.uint16)), tmp_path, "2p",
                       SPEC["motion"].validate({}, "test"))


@pytest.mark.slow
@pytest.mark.parametrize("modality,bar", [("2p", 0.2), ("1p", 0.5)])
def test_realistic_size_shifts(tmp_path_factory, modality, bar):
    """The simulator's default preset (128 x 128 px, 600 s at 15 Hz, jumps and nonrigid warp)."""
    d = tmp_path_factory.mktemp("real")
    toml = simulate_session(d / "s", seed=21, modality=modality, preset="default")
    truth = load_truth(toml)["/A"]["rigid_shift"].values
    movie = open_movie(glob.glob(str(d / "s" / "A" / "movie*"))[0])
    r = register_movie(movie, d / "work", modality, SPEC["motion"].validate({}, "test"))
    assert shift_rmse(r.rigid_shift, truth) < bar
    assert r.crispness_after > r.crispness_before


@pytest.mark.parametrize("shape", [(64, 64), (48, 71)])
def test_fourier_shift_moves_a_smooth_image_exactly_and_does_not_smooth(shape):
    """The residual's resampling: a smooth pattern moved by -d matches the pattern evaluated at (y + dy, x + dx)
    away from the mirrored edges; white noise keeps its variance (bilinear at half a pixel halves it)."""
    import torch
    from pipeline.imaging.motion import shift_frames
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(np.float64)
    pattern = lambda y, x: np.sin(2 * np.pi * y / 13.0) * np.cos(2 * np.pi * x / 9.0)
    d = np.array([[0.3, -0.45], [-1.2, 0.5]])
    out = shift_frames(torch.from_numpy(np.stack([pattern(yy, xx)] * 2)).float(), torch.from_numpy(d)).numpy()
    inner = (slice(12, -12), slice(12, -12))
    for o, (dy, dx) in zip(out, d):
        np.testing.assert_allclose(o[inner], pattern(yy + dy, xx + dx)[inner], atol=0.03)
    noise = torch.from_numpy(np.random.default_rng(0).normal(0, 1, (4, *shape))).float()
    half = torch.full((4, 2), 0.5)
    assert shift_frames(noise, half).std() > 0.9
    assert shift_frames(noise, half, "bilinear").std() < 0.8
