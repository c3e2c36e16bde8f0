"""Cooperation-task derivation (behavior/task.py) on planted logs with known pokes and holds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from behavior.task import TaskLogError, derive_task_events, read_task_log, validate_task_log


def _log(rows):
    df = pd.DataFrame(rows, columns=["time_s", "animal", "event"]).sort_values("time_s", kind="stable")
    return validate_task_log(df.reset_index(drop=True), "planted.csv")


def _times(ev, animal, behavior):
    sel = ev[(ev.animal == animal) & (ev.behavior == behavior)]
    return sel.start.round(9).tolist()


def _bouts(ev, animal, behavior):
    sel = ev[(ev.animal == animal) & (ev.behavior == behavior)]
    return [(round(a, 9), round(b, 9)) for a, b in zip(sel.start, sel.stop)]


HAND = [
    (1.0, "A", "port_entry"), (2.0, "B", "port_entry"),
    (3.0, "A", "poke"),           # B pokes 0.5 s later -> coordinated; hold 1.0-3.0
    (3.2, "A", "poke"),           # 0.2 s after the previous poke: coordinated, hold too short
    (3.5, "B", "poke"),           # coordinated with A's 3.0 and 3.2; hold 2.0-3.5
    (3.7, "A", "reward"), (3.7, "B", "reward"),
    (4.0, "B", "port_exit"),
    (4.5, "A", "poke"),           # nearest B poke 1.0 s away -> uncoordinated; hold 3.2-4.5
    (5.0, "A", "port_exit"),
    (6.0, "B", "poke"),           # no port entry logged: a poke, but no hold
    (6.5, "A", "port_entry"), (6.75, "A", "poke"),  # exactly 0.75 s after B's: coordinated (window inclusive); hold 0.25 s < 0.5
]


def test_hand_planted_log_derivation():
    ev = derive_task_events(_log(HAND), coordination_window_s=0.75, min_hold_s=0.5)
    assert _times(ev, "A", "poke") == [3.0, 3.2, 4.5, 6.75]
    assert _times(ev, "A", "poke_coordinated") == [3.0, 3.2, 6.75]
    assert _times(ev, "A", "poke_uncoordinated") == [4.5]
    assert _times(ev, "B", "poke_coordinated") == [3.5, 6.0]
    assert _times(ev, "B", "poke_uncoordinated") == []
    assert _bouts(ev, "A", "hold") == [(1.0, 3.0), (3.2, 4.5)]
    assert _bouts(ev, "B", "hold") == [(2.0, 3.5)]
    assert _times(ev, "A", "partner_arrival") == [2.0]
    assert _times(ev, "B", "partner_arrival") == [1.0, 6.5]
    assert _times(ev, "A", "reward") == [3.7] and _times(ev, "B", "reward") == [3.7]
    assert _bouts(ev, "A", "at_port") == [(1.0, 5.0), (6.5, 6.75)]   # open visit closes at the last log time
    assert set(ev.kind[ev.behavior == "hold"]) == {"state"}
    assert set(ev.kind[ev.behavior == "poke"]) == {"point"}
    assert (ev.stop[ev.kind == "point"] == ev.start[ev.kind == "point"]).all()


def test_window_edge_and_min_hold_are_parameters():
    rows = [(0.0, "A", "port_entry"), (1.0, "A", "poke"), (1.9, "B", "poke")]
    ev = derive_task_events(_log(rows), coordination_window_s=0.75, min_hold_s=0.5)
    assert _times(ev, "A", "poke_uncoordinated") == [1.0]
    ev = derive_task_events(_log(rows), coordination_window_s=1.0, min_hold_s=1.5)
    assert _times(ev, "A", "poke_coordinated") == [1.0] and _times(ev, "B", "poke_coordinated") == [1.9]
    assert _bouts(ev, "A", "hold") == []          # 1.0 s wait < min_hold_s = 1.5


def _random_session(seed, window=0.75, min_hold=0.5):
    """Simulated task in the simulator's style, with the truth computed while generating."""
    rng = np.random.default_rng(seed)
    rows, truth_holds = [], []
    pokes = {"A": [], "B": []}
    for a in "AB":
        t = rng.uniform(0, 3)
        while t < 300:
            hold = float(np.clip(rng.gamma(2.0, 1.0), 0.1, 8.0))
            stay = rng.uniform(0.3, 1.0)
            rows += [(t, a, "port_entry"), (t + hold, a, "poke"), (t + hold + stay, a, "port_exit")]
            pokes[a].append(t + hold)
            if hold >= min_hold:
                truth_holds.append((a, t, t + hold))
            t += hold + stay + 1.0 + rng.exponential(2.0)
    coord = {a: [min(abs(np.array(pokes["B" if a == "A" else "A"]) - p)) <= window for p in pokes[a]] for a in "AB"}
    return _log(rows), pokes, coord, truth_holds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_planted_sessions_reproduced_exactly(seed):
    log, pokes, coord, holds = _random_session(seed)
    ev = derive_task_events(log, 0.75, 0.5)
    for a in "AB":
        p = np.array(pokes[a])
        c = np.array(coord[a])
        assert 0 < c.sum() < c.size           # both classes present: the test can fail either way
        np.testing.assert_allclose(_times(ev, a, "poke_coordinated"), p[c], atol=1e-9)
        np.testing.assert_allclose(_times(ev, a, "poke_uncoordinated"), p[~c], atol=1e-9)
        want = [(s, e) for b, s, e in holds if b == a]
        got = _bouts(ev, a, "hold")
        assert len(got) == len(want)
        np.testing.assert_allclose(np.array(got), np.array(want), atol=1e-9)


def test_log_errors_name_file_and_line(tmp_path):
    f = tmp_path / "task_log.csv"
    f.write_text("time_s,animal,event\n0.5,A,port_entry\n1.0,A,nosepoke\n")
    with pytest.raises(TaskLogError, match=r"task_log.csv: line 3: unknown event 'nosepoke'"):
        read_task_log(f)
    f.write_text("time_s,animal,event\n0.5,A,port_entry\n1.0,C,poke\n")
    with pytest.raises(TaskLogError, match=r"task_log.csv: line 3: unknown animal 'C'"):
        read_task_log(f)
    f.write_text("time_s,animal,event\n0.5,A,port_entry\n1.0,A,poke\n0.9,B,poke\n")
    with pytest.raises(TaskLogError, match=r"task_log.csv: line 4: time_s = 0.9 is earlier"):
        read_task_log(f)
    f.write_text("time,animal,event\n0.5,A,poke\n")
    with pytest.raises(TaskLogError, match=r"task_log.csv: task log lacks column\(s\) \['time_s'\]"):
        read_task_log(f)


def test_animal_ids_map_to_roles(tmp_path):
    f = tmp_path / "task_log.csv"
    f.write_text("time_s,animal,event\n0.5,m1,port_entry\n1.0,m1,poke\n1.2,m2,poke\n")
    log = read_task_log(f, {"m1": "A", "m2": "B"})
    assert log.animal.tolist() == ["A", "A", "B"]
