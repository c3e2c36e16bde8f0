"""Annotation importers: round trips, property-based parsing, malformed files,
pose social variables and identity-swap detection (behavior/)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from behavior.annot import write_annot
from behavior.boris import write_boris_aggregated, write_boris_tabular
from behavior.events import AnnotationError, make_events, runs_to_bouts
from behavior.generic import write_generic
from behavior.importers import read_annotations
from behavior.pose import Pose, detect_swaps, load_pair, pose_features, write_dlc, write_sleap
from behavior.simba import write_simba

FPS = 30.0
SUBJ = {"mouse_A": "A", "mouse_B": "B"}
NAMES = {"A": "mouse_A", "B": "mouse_B"}


def ev(rows):
    return make_events([dict(animal=a, behavior=b, start=s, stop=e, kind=k, source="x", line=0)
                        for a, b, s, e, k in rows])


def same(a: pd.DataFrame, b: pd.DataFrame):
    key = ["animal", "behavior", "kind", "start", "stop"]
    a = a[key].sort_values(key).reset_index(drop=True)
    b = b[key].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


EVENTS = ev([("A", "sniff", 1.0, 2.5, "state"), ("B", "sniff", 2.0, 3.0, "state"),
             ("A", "follow", 2.5, 4.0, "state"), ("A", "sniff", 2.5, 3.5, "state"),  # touches previous sniff
             ("B", "approach", 5.0, 6.1, "state"), ("A", "poke", 3.2, 3.2, "point"),
             ("B", "poke", 3.2, 3.2, "point")])


# --------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name,layout", [("e.csv", "current"), ("e.tsv", "current"), ("e.xlsx", "current"),
                                         ("old.csv", "old"), ("old.xlsx", "old")])
def test_boris_tabular_round_trip(tmp_path, name, layout):
    p = write_boris_tabular(EVENTS, tmp_path / name, fps=25.0, media_duration_s=600.0, subjects=NAMES, layout=layout)
    got = read_annotations(p, "boris", subjects=SUBJ)
    same(got, EVENTS)
    assert got.attrs["fps"] == 25.0 and got.attrs["media_duration_s"] == 600.0
    assert got.attrs["time_unit"] == "s" and got.attrs["clock"] == "video" and got.attrs["repairs"] == []
    assert set(got["source"]) == {name}
    # line numbers point at the START row in the file
    lines = (tmp_path / name).read_text().splitlines() if not name.endswith("xlsx") else None
    if lines:
        r = got[(got.animal == "B") & (got.behavior == "approach")].iloc[0]
        assert "approach" in lines[r.line - 1] and "START" in lines[r.line - 1]


def test_boris_aggregated_round_trip(tmp_path):
    p = write_boris_aggregated(EVENTS, tmp_path / "agg.csv", fps=30.0, media_duration_s=100.0, subjects=NAMES)
    same(read_annotations(p, "boris_aggregated", subjects=SUBJ), EVENTS)


def test_annot_round_trip_frames_and_seconds(tmp_path):
    states = EVENTS[EVENTS.kind == "state"].copy()
    # frame-aligned copy for the frames layout
    fr = states.copy()
    fr["start"] = np.round(fr["start"] * FPS) / FPS
    fr["stop"] = np.round(fr["stop"] * FPS) / FPS
    p = write_annot(fr, tmp_path / "f.annot", fps=FPS)
    got = read_annotations(p, "annot", options={"channels": {"Ch1": "A", "Ch2": "B"}})
    same(got, fr)
    assert got.attrs["fps"] == FPS and got.attrs["annot_units"] == "frames"
    p = write_annot(states, tmp_path / "s.annot", fps=FPS, units="seconds")
    got = read_annotations(p, "annot", subjects={"Ch1": "A", "Ch2": "B"})
    same(got, states)
    assert got.attrs["annot_units"] == "seconds"


def test_annot_frame_convention(tmp_path):
    """Frames are 1-based and inclusive: bout 31..60 at 30 Hz is [1, 2) s."""
    text = ("Bento annotation file\nMovie file(s):  m.seq\n\nStimulus name: \nAnnotation start frame: 1\n"
            "Annotation stop frame: 300\nAnnotation framerate: 30\n\nList of channels:\nCh1\n\n"
            "List of annotations:\nattack\n\nCh1----------\n>attack\nStart\t Stop\t Duration \n31\t60\t30\n\n")
    (tmp_path / "a.annot").write_text(text)
    got = read_annotations(tmp_path / "a.annot", "annot", animal="A")
    assert got[["start", "stop"]].values.tolist() == [[1.0, 2.0]] and got.line.tolist() == [18]


def test_simba_round_trip_and_thresholds(tmp_path):
    truth = ev([("A", "attack", 1.0, 2.0, "state"), ("A", "attack", 3.0, 3.5, "state"),
                ("A", "mount", 0.0, 0.5, "state"), ("A", "mount", 9.0, 10.0, "state")])
    df = write_simba(truth, tmp_path / "mr.csv", fps=FPS, n_frames=300)
    got = read_annotations(tmp_path / "mr.csv", "simba", animal="A", options={"fps": FPS})
    same(got, truth)
    # a threshold on the probability column: 0.6..1 inside bouts, 0..0.4 outside -> same bouts at 0.5
    got = read_annotations(tmp_path / "mr.csv", "simba", animal="A",
                           options={"fps": FPS, "thresholds": {"attack": 0.5, "mount": 0.5}})
    same(got, truth)
    # a threshold above some in-bout probabilities splits bouts: must match the planted probabilities exactly
    got = read_annotations(tmp_path / "mr.csv", "simba", animal="A",
                           options={"fps": FPS, "thresholds": {"attack": 0.9}, "behaviors": ["attack"]})
    expect = runs_to_bouts(df["Probability_attack"].to_numpy() >= 0.9, FPS)
    assert list(zip(got.start, got.stop)) == expect and len(expect) > 2
    # minimum bout length drops the 0.5 s bouts
    got = read_annotations(tmp_path / "mr.csv", "simba", animal="A", options={"fps": FPS, "min_bout_s": 0.6})
    same(got, truth[truth.stop - truth.start > 0.6])


def test_generic_intervals_and_frames(tmp_path):
    p = write_generic(EVENTS, tmp_path / "g.csv")
    same(read_annotations(p, "csv"), EVENTS)
    # other column names and milliseconds
    (tmp_path / "ms.csv").write_text("who,label,on,off\nmouse_A,sniff,1000,2500\nmouse_B,poke,3200,\n")
    got = read_annotations(tmp_path / "ms.csv", "csv", subjects=SUBJ, options={
        "columns": {"animal": "who", "behavior": "label", "start": "on", "stop": "off"}, "time_unit": "ms"})
    same(got, ev([("A", "sniff", 1.0, 2.5, "state"), ("B", "poke", 3.2, 3.2, "point")]))
    # per-frame labels: frames 2-4 sniff, 6 follow (fps 10)
    labels = ["none", "none", "sniff", "sniff", "sniff", "none", "follow", "none"]
    (tmp_path / "f.csv").write_text("frame,behavior\n" + "".join(f"{i},{b}\n" for i, b in enumerate(labels)))
    got = read_annotations(tmp_path / "f.csv", "csv", animal="B", options={"layout": "frames", "fps": 10})
    same(got, ev([("B", "sniff", 0.2, 0.5, "state"), ("B", "follow", 0.6, 0.7, "state")]))
    (tmp_path / "c.csv").write_text("sniff,follow\n0,1\n1,1\n1,0\n0,0\n")
    got = read_annotations(tmp_path / "c.csv", "csv", animal="A",
                           options={"layout": "frames", "fps": 10, "behavior_columns": ["sniff", "follow"]})
    same(got, ev([("A", "sniff", 0.1, 0.3, "state"), ("A", "follow", 0.0, 0.2, "state")]))


# --------------------------------------------------------------------- property-based
@st.composite
def event_tables(draw, points=True):
    """Random valid tables on a 30 Hz frame grid: per (animal, behaviour)
    non-overlapping (possibly touching) state bouts; point events."""
    rows = []
    for a in ("A", "B"):
        for b in draw(st.lists(st.sampled_from(["sniff", "follow", "approach", "other"]), max_size=3, unique=True)):
            t = draw(st.integers(0, 50))
            for gap, dur in draw(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 90)), max_size=6)):
                t += gap
                rows.append((a, b, t / FPS, (t + dur) / FPS, "state"))
                t += dur
        if points:
            for b, f in draw(st.lists(st.tuples(st.sampled_from(["poke", "reward"]), st.integers(0, 3000)),
                                      max_size=5)):
                rows.append((a, b, f / FPS, f / FPS, "point"))
    return ev(rows)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=event_tables(), layout=st.sampled_from(["current", "old"]), sep=st.sampled_from([".csv", ".tsv"]))
def test_boris_parser_property(tmp_path, events, layout, sep):
    p = write_boris_tabular(events, tmp_path / f"h{sep}", fps=FPS, subjects=NAMES, layout=layout)
    same(read_annotations(p, "boris", subjects=SUBJ), events)
    p = write_boris_aggregated(events, tmp_path / "agg.csv", fps=FPS, subjects=NAMES)
    same(read_annotations(p, "boris_aggregated", subjects=SUBJ), events)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=event_tables(points=False), units=st.sampled_from(["frames", "seconds"]))
def test_annot_parser_property(tmp_path, events, units):
    p = write_annot(events, tmp_path / "h.annot", fps=FPS, units=units, channels={"A": "resident", "B": "intruder"})
    got = read_annotations(p, "annot", options={"channels": {"resident": "A", "intruder": "B"}})
    same(got, events)


# --------------------------------------------------------------------- malformed files
BORIS_HEAD = ("Observation id,Observation date,Media duration (s),FPS,Subject,Behavior,Behavioral category,"
              "Behavior type,Time\n")


def _boris(tmp_path, body, name="bad.csv", head=BORIS_HEAD):
    p = tmp_path / name
    p.write_text(head + body)
    return p


def _row(subj, beh, typ, t):
    return f"o1,2024,600,30,{subj},{beh},,{typ},{t}\n"


MALFORMED = {
    # name: (format, file text builder, kwargs, substrings the message must contain)
    "truncated row": ("boris", lambda: BORIS_HEAD + _row("mouse_A", "sniff", "START", 1) + "o1,2024,600,30,mouse_A,sniff\n",
                      {}, ["line 3", "truncated"]),
    "missing column": ("boris", lambda: BORIS_HEAD.replace(",Behavior type", "") + "o1,2024,600,30,mouse_A,sniff,,1\n",
                       {}, ["line 1", "missing column", "'Behavior type' or 'Status'"]),
    "bad behavior type": ("boris", lambda: BORIS_HEAD + _row("mouse_A", "sniff", "BEGIN", 1), {},
                          ["line 2", "'BEGIN' is not START, STOP or POINT"]),
    "non-numeric time": ("boris", lambda: BORIS_HEAD + _row("mouse_A", "sniff", "POINT", "1.2.3"), {},
                         ["line 2", "'1.2.3' is not a number"]),
    "unpaired START": ("boris", lambda: BORIS_HEAD + _row("mouse_A", "sniff", "START", 1) + _row("mouse_A", "sniff", "STOP", 2)
                       + _row("mouse_B", "sniff", "START", 3), {}, ["line 4", "has no STOP"]),
    "STOP without START": ("boris", lambda: BORIS_HEAD + _row("mouse_A", "sniff", "STOP", 2), {},
                           ["line 2", "STOP of 'sniff'", "without a START"]),
    "duplicate START": ("boris", lambda: BORIS_HEAD + _row("mouse_A", "sniff", "START", 1)
                        + _row("mouse_A", "sniff", "START", 2), {}, ["line 3", "START at line 2 is still open"]),
    "overlapping states": ("boris_aggregated", lambda: "Subject,Behavior,Behavior type,Start (s),Stop (s)\n"
                           "mouse_A,sniff,STATE,1,3\nmouse_A,sniff,STATE,2,4\n", {}, ["line 3", "overlap", "(line 2)"]),
    "unknown subject": ("boris", lambda: BORIS_HEAD + _row("mouse_C", "sniff", "POINT", 1), {},
                        ["line 2", "unknown subject 'mouse_C'", "'mouse_A', 'mouse_B'"]),
    "unknown behaviour": ("boris", lambda: BORIS_HEAD + _row("mouse_A", "sniff", "POINT", 1) + _row("mouse_B", "groom", "POINT", 2),
                          {"known_behaviors": ["sniff", "follow"]}, ["line 3", "'groom'", "'sniff', 'follow'"]),
    "annot without framerate": ("annot", lambda: "Bento annotation file\nList of channels:\nCh1\n\nCh1----------\n>sniff\n"
                                "Start\t Stop\t Duration \n1\t10\t10\n", {"animal": "A"}, ["Annotation framerate"]),
    "annot bad row": ("annot", lambda: "Annotation framerate: 30\nCh1----------\n>sniff\nStart\t Stop\t Duration \n1\t10\t10\n"
                      "12\tx\t3\n", {"animal": "A"}, ["line 6", "must be numbers"]),
    "annot unknown channel": ("annot", lambda: "Annotation framerate: 30\nCh3----------\n>sniff\nStart Stop Duration\n1 10 10\n",
                              {"options": {"channels": {"Ch1": "A", "Ch2": "B"}}}, ["line 5", "unknown channel 'Ch3'", "'Ch1'"]),
    "simba missing probability": ("simba", lambda: ",Nose_x,attack,Probability_attack\n0,1,0,0.1\n1,1,1,0.9\n",
                                  {"animal": "A", "options": {"fps": 30, "behaviors": ["attack", "mount"]}},
                                  ["line 1", "missing column 'Probability_mount'"]),
    "simba not binary": ("simba", lambda: ",attack,Probability_attack\n0,0,0.1\n1,2,0.9\n",
                         {"animal": "A", "options": {"fps": 30}}, ["line 3", "'attack'", "not 0 or 1"]),
    "dlc wrong header levels": ("dlc", lambda: "scorer,DLC,DLC\nanimals,m1,m1\nbodyparts,nose,nose\ncoords,x,y\n0,1,2\n",
                                {"options": {"fps": 30, "rules": {"c": {"variable": "nose_nose", "below": 1}}}},
                                ["line 2", "'animals'", "scorer, individuals, bodyparts, coords"]),
    "csv non-numeric": ("csv", lambda: "animal,behavior,start,stop\nA,sniff,1,2\nB,sniff,two,3\n", {},
                        ["line 3", "'two' is not a number"]),
    "csv stop before start": ("csv", lambda: "animal,behavior,start,stop\nA,sniff,5,2\n", {}, ["line 2", "before start"]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_errors_name_file_and_line(tmp_path, case):
    fmt, text, kwargs, needles = MALFORMED[case]
    suffix = {"annot": ".annot", "dlc": ".csv"}.get(fmt, ".csv")
    p = tmp_path / f"bad_{case.replace(' ', '_')}{suffix}"
    p.write_text(text())
    kwargs = dict(kwargs)
    kwargs.setdefault("subjects", SUBJ if fmt in ("boris", "boris_aggregated") else {})
    with pytest.raises(AnnotationError) as exc:
        read_annotations(p, fmt, **kwargs)
    msg = str(exc.value)
    assert msg.startswith(str(p)), msg
    for n in needles:
        assert n in msg, (n, msg)


def test_unknown_option_and_format(tmp_path):
    p = _boris(tmp_path, _row("mouse_A", "sniff", "POINT", 1))
    with pytest.raises(AnnotationError, match="unknown option.*'thresholds'.*allowed"):
        read_annotations(p, "boris", subjects=SUBJ, options={"thresholds": {}})
    with pytest.raises(AnnotationError, match="unknown annotation format 'ethovision'"):
        read_annotations(p, "ethovision", subjects=SUBJ)


def test_boris_several_observations_need_a_choice(tmp_path):
    p = _boris(tmp_path, _row("mouse_A", "sniff", "POINT", 1) + _row("mouse_A", "sniff", "POINT", 2).replace("o1", "o2"))
    with pytest.raises(AnnotationError, match=r"2 observations \['o1', 'o2'\]"):
        read_annotations(p, "boris", subjects=SUBJ)
    got = read_annotations(p, "boris", subjects=SUBJ, options={"observation": "o2"})
    assert got.start.tolist() == [2.0] and got.attrs["observation"] == "o2"


# --------------------------------------------------------------------- repairs
def test_boris_repairs_are_explicit(tmp_path):
    body = (_row("mouse_A", "sniff", "STOP", 0.5)          # line 2: STOP without START -> dropped
            + _row("mouse_A", "sniff", "START", 1)          # line 3
            + _row("mouse_A", "sniff", "START", 2)          # line 4: duplicate -> dropped
            + _row("mouse_A", "sniff", "STOP", 3)           # line 5
            + _row("mouse_B", "follow", "START", 4))        # line 6: never stopped -> closed at 600 s
    p = _boris(tmp_path, body)
    got = read_annotations(p, "boris", subjects=SUBJ, options={"repair": True})
    same(got, ev([("A", "sniff", 1.0, 3.0, "state"), ("B", "follow", 4.0, 600.0, "state")]))
    rep = got.attrs["repairs"]
    assert len(rep) == 3
    assert "line 2" in rep[0] and "dropped STOP" in rep[0]
    assert "line 4" in rep[1] and "duplicate START" in rep[1]
    assert "line 6" in rep[2] and "media duration (600 s)" in rep[2]


def test_overlap_repair_merges(tmp_path):
    (tmp_path / "agg.csv").write_text("Subject,Behavior,Behavior type,Start (s),Stop (s)\n"
                                      "mouse_A,sniff,STATE,1,3\nmouse_A,sniff,STATE,2,4\nmouse_B,sniff,STATE,2,4\n")
    got = read_annotations(tmp_path / "agg.csv", "boris_aggregated", subjects=SUBJ, options={"repair": True})
    same(got, ev([("A", "sniff", 1.0, 4.0, "state"), ("B", "sniff", 2.0, 4.0, "state")]))
    assert len(got.attrs["repairs"]) == 1 and "line 3" in got.attrs["repairs"][0]


def test_single_animal_file_and_no_focal_subject(tmp_path):
    p = _boris(tmp_path, _row("", "sniff", "POINT", 1) + _row("", "groom", "POINT", 2))
    got = read_annotations(p, "boris", animal="B")
    assert got.animal.tolist() == ["B", "B"]
    with pytest.raises(AnnotationError, match="line 2: unknown subject ''"):
        read_annotations(p, "boris", subjects=SUBJ)


# --------------------------------------------------------------------- pose
NODES = ["nose", "left_ear", "right_ear", "tail_base"]


def _body(centre, heading):
    """(frame, node, 2) points of a mouse with body centre and unit heading (frame, 2)."""
    perp = np.stack([-heading[:, 1], heading[:, 0]], axis=-1)
    return np.stack([centre + 10 * heading, centre + 5 * heading + 4 * perp,
                     centre + 5 * heading - 4 * perp, centre - 12 * heading], axis=1)


def test_pose_features_planted_geometry():
    A = np.array([[0, 0], [-5, 4], [-5, -4], [-20, 0]], float)           # nose, ears, tail; facing +x
    B = np.array([[30, 40], [26, 45], [34, 45], [30, 60]], float)         # facing -y
    xy = np.stack([A, B])[None].repeat(3, axis=0)
    xy[:, 0] += np.array([[-1, 0], [0, 0], [1, 0]])[:, None, :]          # A moves +x, 1 px/frame; frame 1 as above
    f = pose_features(Pose(xy, NODES, ["A", "B"]), fps=10.0).iloc[1]
    assert f.nose_nose == pytest.approx(50.0, abs=1e-12)
    assert f.nose_tail_A_B == pytest.approx(math.hypot(30, 60), abs=1e-12)
    assert f.nose_tail_B_A == pytest.approx(math.hypot(50, 40), abs=1e-12)
    cA, cB = np.array([-7.5, 0.0]), np.array([30.0, 47.5])
    assert f.distance == pytest.approx(np.linalg.norm(cB - cA), abs=1e-12)
    # facing: A's head ref is the ear midpoint (-5, 0), head direction +x
    assert f.facing_A == pytest.approx(math.degrees(math.atan2(47.5, 35.0)), abs=1e-9)
    tv = cA - np.array([30.0, 45.0])
    assert f.facing_B == pytest.approx(math.degrees(math.acos(45.0 / np.linalg.norm(tv))), abs=1e-9)
    # A moves at 10 px/s along +x: its speed toward B is the projection on the unit vector A->B; B is still
    u = (cB - cA) / np.linalg.norm(cB - cA)
    assert f.approach_A == pytest.approx(10.0 * u[0], abs=1e-9)
    assert f.approach_B == pytest.approx(0.0, abs=1e-12)
    # px_per_unit rescales lengths, not angles
    g = pose_features(Pose(xy, NODES, ["A", "B"]), fps=10.0, px_per_unit=2.0, unit="mm").iloc[1]
    assert g.nose_nose == pytest.approx(25.0) and g.facing_A == pytest.approx(f.facing_A)


def _two_mice(T=2400, seed=0, swaps=((300, 420), (1000, 1003), (1500, 2000)), noise=0.5):
    """Two mice on smooth paths that come within ~30 px of each other, with
    planted identity-swap segments [s, e). Returns (true xy, observed xy, swap frames)."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    phase = 2 * np.pi * t / 600
    cA = np.stack([200 + 100 * np.cos(phase), 200 + 100 * np.sin(phase)], -1)
    sep = 165 + 135 * np.cos(2 * np.pi * t / 1200)          # 30 .. 300 px from A
    cB = cA + np.stack([sep, np.zeros(T)], -1)
    hA = np.gradient(cA, axis=0)
    hA /= np.linalg.norm(hA, axis=1, keepdims=True)
    hB = np.stack([np.cos(phase / 3), np.sin(phase / 3)], -1)
    truth = np.stack([_body(cA, hA), _body(cB, hB)], axis=1) + rng.normal(0, noise, (T, 2, 4, 2))
    obs = truth.copy()
    frames = []
    for s, e in swaps:
        obs[s:e] = obs[s:e, ::-1]
        frames += [s, e]
    return truth, obs, sorted(frames)


def test_swap_detection_finds_planted_swaps_only():
    truth, obs, planted = _two_mice()
    assert detect_swaps(obs).tolist() == planted
    assert detect_swaps(truth).tolist() == []
    # missing stretches (tracking lost) are bridged by the last seen position, without false alarms
    gappy = obs.copy()
    gappy[700:720, 1] = np.nan
    gappy[2100:2105] = np.nan
    assert detect_swaps(gappy).tolist() == planted


def test_pose_file_round_trip_swaps_and_rules(tmp_path):
    truth, obs, planted = _two_mice()
    lik = np.full(obs.shape[:3], 0.95)
    write_dlc(Pose(obs, NODES, ["m1", "m2"], lik), tmp_path / "p.h5")
    rules = {"close": {"variable": "nose_nose", "below": 60.0, "min_duration_s": 0.5},
             "approach": {"variable": "approach_{self}", "above": 20.0, "min_duration_s": 0.2},
             "sniff_rear": {"variable": "nose_tail_{self}_{partner}", "below": 40.0}}
    opts = {"fps": FPS, "rules": rules}
    with pytest.raises(AnnotationError, match=r"6 identity swap\(s\).*\[300, 420, 1000, 1003, 1500, 2000\]"):
        read_annotations(tmp_path / "p.h5", "dlc", subjects={"m1": "A", "m2": "B"}, options=opts)
    got = read_annotations(tmp_path / "p.h5", "dlc", subjects={"m1": "A", "m2": "B"},
                           options=dict(opts, swaps="repair"))
    assert got.attrs["pose_report"]["swap_frames"] == planted
    assert "[300, 420, 1000, 1003, 1500, 2000]" in got.attrs["repairs"][0]
    # expected events straight from the true tracks
    feats = pose_features(Pose(truth, NODES, ["A", "B"]), FPS)
    expect = []
    for a, p in (("A", "B"), ("B", "A")):
        for name, col, below, mn in (("close", "nose_nose", 60.0, 15), ("approach", f"approach_{a}", None, 6),
                                     ("sniff_rear", f"nose_tail_{a}_{p}", 40.0, 1)):
            v = feats[col].to_numpy()
            on = v < below if below is not None else v > 20.0
            expect += [(a, name, s, e, "state") for s, e in runs_to_bouts(on, FPS, mn)]
    expect = ev(expect)
    assert len(expect[expect.behavior == "approach"]) > 0 and len(expect[expect.behavior == "close"]) > 0
    same(got, expect)
    # the same tracks as DLC CSV and SLEAP analysis h5 give the same events; swapped subject map swaps animals
    write_dlc(Pose(obs, NODES, ["m1", "m2"], lik), tmp_path / "p.csv")
    write_sleap(Pose(obs, NODES, ["m1", "m2"], lik), tmp_path / "s.h5")
    for f in ("p.csv", "s.h5"):
        same(read_annotations(tmp_path / f, "dlc", subjects={"m1": "A", "m2": "B"}, options=dict(opts, swaps="repair")),
             expect)
    flipped = read_annotations(tmp_path / "s.h5", "dlc", subjects={"m2": "A", "m1": "B"},
                               options=dict(opts, swaps="repair"))
    close_a = flipped[(flipped.behavior == "close") & (flipped.animal == "A")]
    same(close_a, expect[(expect.behavior == "close") & (expect.animal == "A")])
    appr = flipped[flipped.behavior == "approach"].assign(animal=lambda d: d.animal.map({"A": "B", "B": "A"}))
    same(appr, expect[expect.behavior == "approach"])


def test_pose_low_likelihood_masked_and_single_animal_files(tmp_path):
    truth, _, _ = _two_mice(T=600, swaps=())
    lik = np.full(truth.shape[:3], 0.99)
    lik[100:110, 0, 0] = 0.1                                  # A's nose lost for 10 frames
    pose, rep = load_pair(_write(tmp_path, truth, lik), {}, "", {})
    assert np.isnan(pose.xy[100:110, 0, 0]).all() and not np.isnan(pose.xy[:100]).any()
    assert rep["low_likelihood_fraction"] == pytest.approx(10 / lik.size)
    assert rep["identity"] == {"A": "m1", "B": "m2"} and "file order" in rep["notes"][0]
    # single-animal DLC files, one per mouse
    write_dlc(Pose(truth[:, :1], NODES, ["m1"]), tmp_path / "a.csv")
    write_dlc(Pose(truth[:, 1:], NODES, ["m2"]), tmp_path / "b.csv")
    pose2, _ = load_pair(tmp_path / "b.csv", {}, "B", {"partner_file": "a.csv"})
    np.testing.assert_allclose(pose2.xy, truth)
    with pytest.raises(AnnotationError, match="single-animal pose file"):
        load_pair(tmp_path / "b.csv", {}, "", {})


def _write(tmp_path, xy, lik):
    return write_dlc(Pose(xy, NODES, ["m1", "m2"], lik), tmp_path / "l.h5")


# --------------------------------------------------------------------- slow tier
@pytest.mark.slow
def test_swap_detection_long_noisy_session():
    """An hour at 30 Hz with 40 planted swaps, 2 px noise: all found, none spurious, in >= 9 of 10 seeds."""
    ok = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        T = 108_000
        starts = np.sort(rng.choice(np.arange(100, T - 500, 2000), 40, replace=False))
        swaps = [(int(s), int(s + rng.integers(2, 900))) for s in starts]
        _, obs, planted = _two_mice(T=T, seed=seed, swaps=swaps, noise=2.0)
        ok += detect_swaps(obs).tolist() == planted
    assert ok >= 9


@pytest.mark.slow
def test_boris_large_file_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for a in "AB":
        for b in ("sniff", "follow", "approach", "other"):
            t = 0.0
            for _ in range(2500):
                t += rng.uniform(0, 2)
                d = rng.uniform(0.1, 3)
                rows.append((a, b, t, t + d, "state"))
                t += d
    events = ev(rows)
    p = write_boris_tabular(events, tmp_path / "big.csv", fps=FPS, subjects=NAMES)
    same(read_annotations(p, "boris", subjects=SUBJ), events)


def test_every_format_of_the_spec_has_a_reader():
    """The session spec's [[annotations]] format choices are the importers' formats, one reader each."""
    from behavior.importers import FORMATS, READERS
    from pipeline.core.parameters import SPEC
    assert SPEC["annotations"].param("format").choices == FORMATS
    assert list(READERS) == list(FORMATS)
