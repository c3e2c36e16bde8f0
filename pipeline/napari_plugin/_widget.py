"""Dock widget: choose an ROI of either animal, see its traces with both animals' behaviour, curate it.

The widget works on the layers the result reader added (labels layers whose
`metadata["interbrain"]["kind"] == "rois"`). It shows the selected ROI's dF/F
and deconvolved activity against master-clock time, with the animal's own
behaviour bouts shaded and an ethogram of its own and its partner's bouts.
A time cursor follows the widget's slider, the viewer's time slider (when raw
movies are loaded) and clicks on the plot. Curation edits go to
`OUT/curation.csv` at once (see curation.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QListWidget, QPushButton, QSlider,
                            QVBoxLayout, QWidget)

from pipeline.core.dataset import load, read_root

from pipeline.napari_plugin import curation
from pipeline.napari_plugin._reader import (ANIMALS, NOT_CELL_COLOR, TYPE_COLORS, group, movie_layer,
                                            not_cell_outlines, roi_colormap, roi_table)

BG, FG = "#262930", "#d6d6d6"
FONT, SMALL = 10, 9                       # plot text (pt): readable in a dock of ~400 px
SELECTION_COLOR = (0.0, 0.85, 1.0, 1.0)   # outline of the selected ROI (cyan, like the time cursor)
TASK_EVENTS = {"port_entry", "port_exit", "poke", "poke_coordinated", "poke_uncoordinated", "hold",
               "partner_arrival", "reward", "at_port"}
MAX_POINTS = 2000                         # trace points drawn; longer traces are drawn as a min/max envelope
BEHAVIOR_COLORS = ["#4c9be8", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7",
                   "#9c755f", "#bab0ac"]


# ----------------------------------------------------------------------------- data access (no Qt)
def behaviour_bouts(tree, animal: str) -> pd.DataFrame:
    """Bouts relative to `animal`: columns role (self/partner), behavior, start, stop (s, master clock), kind.

    From the /behavior event table when present, else from /A/behavior (self, partner) grids.
    """
    cols = ["role", "behavior", "start", "stop", "kind"]
    for path in ("/behavior/events", "/behavior"):
        ds = group(tree, path)
        if ds is not None:
            if {"animal", "behavior", "start", "stop"} <= set(ds.data_vars):
                ev = pd.DataFrame({k: ds[k].values for k in ("animal", "behavior", "start", "stop")})
                ev["kind"] = ds["kind"].values if "kind" in ds else "state"
                ev["animal"] = ev["animal"].astype(str)
                ev["role"] = np.where(ev["animal"] == animal, "self", "partner")
                ev["behavior"] = ev["behavior"].astype(str)
                return ev[cols].reset_index(drop=True)
    ds = group(tree, f"/{animal}/behavior")
    rows = []
    if ds is not None:
        t = ds["time"].values.astype(float)
        half = float(np.median(np.diff(t))) / 2 if len(t) > 1 else 0.0
        for role in ("self", "partner"):
            if role not in ds:
                continue
            for b, row in zip(ds["behavior"].values, ds[role].values.astype(bool)):
                edges = np.diff(np.r_[0, row.astype(np.int8), 0])
                for i, j in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
                    rows.append((role, str(b), t[i] - half, t[j - 1] + half, "state"))
    return pd.DataFrame(rows, columns=cols)


def display_envelope(t: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS):
    """(t, y) to draw: unchanged up to `max_points` samples, else each of max_points / 2 runs of frames
    drawn as its minimum and maximum, in time order.

    A dock a few hundred pixels wide cannot show more; the envelope keeps every peak and trough,
    and drawing 9000 frames per trace was a third of the cost of switching the selection.
    """
    t, y = np.asarray(t), np.asarray(y)
    n = len(y)
    if n <= max_points:
        return t, y
    n_bins = max_points // 2
    k = int(np.ceil(n / n_bins))
    pad = n_bins * k - n
    yy = np.concatenate([y, np.full(pad, np.nan)]).reshape(n_bins, k)
    lo = np.argmin(np.where(np.isnan(yy), np.inf, yy), axis=1)
    hi = np.argmax(np.where(np.isnan(yy), -np.inf, yy), axis=1)
    base = np.arange(n_bins) * k
    idx = np.sort(np.stack([base + lo, base + hi], axis=1), axis=1).ravel()
    idx = np.minimum(idx[np.r_[True, np.diff(idx) != 0]], n - 1)
    return t[idx], y[idx]


class AnimalData:
    """What the widget needs of one animal of a result: ROI table, traces (lazy), bouts."""

    def __init__(self, tree, out: Path, animal: str, edits):
        self.tree, self.out, self.animal = tree, out, animal
        self.table = roi_table(tree, animal, edits)
        self.traces = group(tree, f"/{animal}/traces")
        if self.traces is not None and "frame_time" in self.traces.coords:
            self.frame_time = np.asarray(self.traces["frame_time"].values, float)
        elif self.traces is not None:
            self.frame_time = np.arange(self.traces.sizes["frame"], dtype=float)
        else:
            self.frame_time = np.zeros(0)
        self.bouts = behaviour_bouts(tree, animal)

    def trace(self, var: str, index: int) -> np.ndarray | None:
        """(frame,) row `index` of /A/traces/<var>, or None when absent."""
        if self.traces is None or var not in self.traces:
            return None
        return np.asarray(self.traces[var][index].values, float)


# ----------------------------------------------------------------------------- the widget
class RoiInspector(QWidget):
    """ROI inspector and curation dock widget (npe2 widget contribution; takes the viewer)."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.out: Path | None = None
        self.tree = None
        self.log: curation.CurationLog | None = None
        self.data: dict[str, AnimalData] = {}
        self.animal = "A"
        self.index: int | None = None    # selected ROI (position in the neuron dim)
        self.time: float | None = None
        self._hooked: set[int] = set()
        self._syncing = False
        self._owns_overlay = False       # the canvas text overlay shows our time readout
        self._build_ui()
        self.viewer.layers.events.inserted.connect(self._scan_layers)
        self.viewer.layers.events.removed.connect(self._scan_layers)
        self.viewer.layers.events.inserted.connect(self._on_dims)     # movies added / removed: readout
        self.viewer.layers.events.removed.connect(self._on_dims)
        self.viewer.dims.events.point.connect(self._on_dims)
        self._scan_layers()

    # -- UI ------------------------------------------------------------------
    def _build_ui(self):
        lay = QVBoxLayout(self)
        self.header = QLabel("open an interbrain result folder (File > Open Folder)")
        self.header.setWordWrap(True)
        lay.addWidget(self.header)
        hexc = lambda c: "#" + "".join(f"{int(round(255 * v)):02x}" for v in c[:3])  # noqa: E731
        legend = [(hexc(c), t) for t, c in TYPE_COLORS.items()] + [(hexc(NOT_CELL_COLOR), "not cell")]
        self.legend = QLabel("  ".join(f'<span style="color:{c}">&#9632;</span> {t}' for c, t in legend))
        lrow = QHBoxLayout()
        lrow.addWidget(self.legend)
        self.notcell_box = QCheckBox("show not-cell outlines")
        self.notcell_box.setChecked(True)
        self.notcell_box.toggled.connect(self.show_not_cells)
        lrow.addWidget(self.notcell_box)
        lay.addLayout(lrow)
        row = QHBoxLayout()
        row.addWidget(QLabel("animal"))
        self.animal_box = QComboBox()
        self.animal_box.addItems(list(ANIMALS))
        self.animal_box.currentTextChanged.connect(self._on_animal)
        row.addWidget(self.animal_box)
        self.movie_btn = QPushButton("Load raw movies")
        self.movie_btn.setToolTip("Open both animals' raw movies lazily, from the session file of this result")
        self.movie_btn.clicked.connect(self.load_movies)
        row.addWidget(self.movie_btn)
        lay.addLayout(row)
        self.roi_list = QListWidget()
        self.roi_list.setMaximumHeight(160)
        self.roi_list.currentRowChanged.connect(self._on_list)
        lay.addWidget(self.roi_list)
        cur = QHBoxLayout()
        self.cell_btn = QPushButton("Cell")
        self.cell_btn.clicked.connect(lambda: self.set_is_cell(True))
        self.notcell_btn = QPushButton("Not cell")
        self.notcell_btn.clicked.connect(lambda: self.set_is_cell(False))
        self.type_box = QComboBox()
        self.type_box.addItems(list(curation.CELL_TYPES))
        self.type_btn = QPushButton("Set type")
        self.type_btn.clicked.connect(lambda: self.set_cell_type(self.type_box.currentText()))
        self.undo_btn = QPushButton("Undo")
        self.undo_btn.clicked.connect(self.undo)
        for w in (self.cell_btn, self.notcell_btn, self.type_box, self.type_btn, self.undo_btn):
            cur.addWidget(w)
        lay.addLayout(cur)
        srow = QHBoxLayout()
        srow.addWidget(QLabel("shade behaviour"))
        self.shade_box = QComboBox()
        self.shade_box.setToolTip("Bouts shaded behind the traces: own solid, the partner's hatched")
        self.shade_box.currentTextChanged.connect(lambda _: self._plot())
        srow.addWidget(self.shade_box)
        lay.addLayout(srow)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        # The constrained layout is computed only when the canvas is resized or the ethogram's rows change,
        # not on every draw: on a 9000-frame trace it was half the cost of switching the selection.
        self.figure = Figure(figsize=(5, 4.8), facecolor=BG)
        self._layout = ConstrainedLayoutEngine()
        self._layout_rows: list | None = None
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(300)
        self.canvas.mpl_connect("button_press_event", self._on_plot_click)
        self.canvas.mpl_connect("resize_event", lambda _e: self._relayout())
        lay.addWidget(self.canvas)
        trow = QHBoxLayout()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.valueChanged.connect(self._on_slider)
        self.time_label = QLabel("t = -")
        trow.addWidget(self.slider)
        trow.addWidget(self.time_label)
        lay.addLayout(trow)
        self.ax_dff, self.ax_spk, self.ax_beh = self.figure.subplots(
            3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 1.6]})
        for ax in (self.ax_dff, self.ax_spk, self.ax_beh):
            ax.set_facecolor(BG)
            ax.tick_params(colors=FG, labelsize=SMALL)
            for s in ax.spines.values():
                s.set_color("#5a5f6a")
        self.dff_line, = self.ax_dff.plot([], [], color="#e8e8e8", lw=0.8)
        self.spk_line, = self.ax_spk.plot([], [], color="#f2b134", lw=0.8)
        self.ax_dff.set_ylabel("dF/F", color=FG, fontsize=FONT)
        self.ax_spk.set_ylabel("deconv.", color=FG, fontsize=FONT)
        self.ax_beh.set_xlabel("time (s, master clock)", color=FG, fontsize=FONT)
        self.cursors = [ax.axvline(np.nan, color="#00d5ff", lw=1) for ax in (self.ax_dff, self.ax_spk, self.ax_beh)]
        self._shading: list = []
        self._behaviour_key = None        # (animal, bouts, shaded behaviour) the ethogram was drawn for
        self.n_layouts = 0                # layout passes so far (the selection-switch test counts them)

    def _relayout(self):
        """Lay the figure out again (constrained layout), once."""
        self._layout.execute(self.figure)
        self.n_layouts += 1
    # -- layers ----------------------------------------------------------------
    def roi_layers(self) -> dict:
        """{animal: labels layer} of the current result."""
        out = {}
        for layer in self.viewer.layers:
            meta = layer.metadata.get("interbrain", {}) if hasattr(layer, "metadata") else {}
            if meta.get("kind") == "rois" and (self.out is None or Path(meta["result"]) == self.out):
                out[meta["animal"]] = layer
        return out

    def _layer_of(self, animal: str, kind: str):
        return next((lyr for lyr in self.viewer.layers if lyr.metadata.get("interbrain", {}).get("kind") == kind
                     and lyr.metadata["interbrain"].get("animal") == animal), None)

    def show_not_cells(self, show: bool = True):
        """Show or hide the outlines of the ROIs marked "not cell" (both animals)."""
        for a in ANIMALS:
            lyr = self._layer_of(a, "not_cell")
            if lyr is not None:
                lyr.visible = bool(show)

    def movie_layers(self) -> dict:
        return {layer.metadata["interbrain"]["animal"]: layer for layer in self.viewer.layers
                if layer.metadata.get("interbrain", {}).get("kind") == "movie"}

    def _scan_layers(self, event=None):
        found = None
        for layer in self.viewer.layers:
            meta = layer.metadata.get("interbrain", {})
            if meta.get("kind") == "rois":
                found = found or Path(meta["result"])
                if id(layer) not in self._hooked:
                    layer.mouse_drag_callbacks.append(self._on_layer_click)
                    self._hooked.add(id(layer))
        if found is not None and found != self.out:
            self.set_result(found)
        elif found is None and self.out is not None:
            self.out, self.data = None, {}
            self.roi_list.clear()

    def set_result(self, out: str | Path):
        """Load the result the widget works on (done automatically when its layers are added)."""
        self.out = Path(out)
        meta = read_root(self.out)
        self.tree = load(self.out, lazy=True)
        self.log = curation.CurationLog(self.out)
        self.data = {a: AnimalData(self.tree, self.out, a, self.log.edits) for a in ANIMALS
                     if group(self.tree, f"/{a}/rois") is not None}
        self.header.setText(f"<b>{meta.get('pair', '')}</b>  {self.out}")
        self.animal = None
        self._behaviour_key = None
        first = "A" if "A" in self.data else next(iter(self.data), "A")
        self.select(first, 0 if first in self.data and len(self.data[first].table) else None)

    # -- selection ---------------------------------------------------------------
    def select(self, animal: str, index: int | None):
        """Select ROI `index` (position in /<animal>/rois neuron dim) of `animal` and plot it."""
        if animal not in self.data:
            return
        if animal != self.animal:
            self.animal = animal
            self.animal_box.blockSignals(True)
            self.animal_box.setCurrentText(animal)
            self.animal_box.blockSignals(False)
            self._fill_list()
            self._setup_slider()
        self.index = index
        self.roi_list.blockSignals(True)
        self.roi_list.setCurrentRow(-1 if index is None else index)
        self.roi_list.blockSignals(False)
        layer = self.roi_layers().get(animal)
        if layer is not None and index is not None:
            layer.selected_label = index + 1
        self._show_selection(layer, index)
        self._plot()

    def _show_selection(self, layer, index: int | None):
        """Outline the selected ROI on the image (layer "selected ROI") and centre the view on it.

        With hundreds of ROIs the colour fill alone does not tell the user which one "ROI 321" is.
        The outline layer spans both animals' fields of view (no translate), so switching animals
        changes only its data: one texture upload instead of a translate and a data refresh.
        """
        sel = next((lyr for lyr in self.viewer.layers
                    if lyr.metadata.get("interbrain", {}).get("kind") == "selection"), None)
        if layer is None or index is None:
            if sel is not None:
                sel.visible = False
            return
        lab = np.asarray(layer.data)
        y0, x0 = (int(round(v)) for v in tuple(layer.translate)[-2:])
        data = np.zeros(self._selection_shape(), np.int32)
        mask = lab == index + 1
        data[y0:y0 + lab.shape[0], x0:x0 + lab.shape[1]][mask] = 1
        if sel is None:
            from napari.utils.colormaps import DirectLabelColormap
            cmap = DirectLabelColormap(color_dict={None: (0, 0, 0, 0), 0: (0, 0, 0, 0), 1: SELECTION_COLOR})
            sel = self.viewer.add_labels(data, name="selected ROI", colormap=cmap, opacity=1.0,
                                         metadata={"interbrain": {"kind": "selection", "result": str(self.out)}})
            sel.contour = 1
            self.viewer.layers.selection.active = layer      # keep the ROI layer active for clicks
        else:
            # each setter refreshes the layer, so only what changed is set
            sel.data = data
            if not sel.visible:
                sel.visible = True
        if mask.any():
            yy, xx = np.nonzero(mask)
            centre = (float(yy.mean()) + y0, float(xx.mean()) + x0)
            if self.viewer.dims.ndisplay == 2:
                cam = self.viewer.camera.center
                self.viewer.camera.center = tuple(cam[:-2]) + centre if len(cam) > 2 else centre

    def _selection_shape(self) -> tuple[int, int]:
        """(y, x) extent of both animals' ROI layers together, translate included (px)."""
        ys, xs = [1], [1]
        for lyr in self.roi_layers().values():
            h, w = np.shape(lyr.data)[-2:]
            ty, tx = tuple(lyr.translate)[-2:]
            ys.append(int(round(ty)) + h)
            xs.append(int(round(tx)) + w)
        return max(ys), max(xs)

    def _fill_list(self):
        self.roi_list.blockSignals(True)
        self.roi_list.clear()
        for _, r in self.data[self.animal].table.iterrows():
            self.roi_list.addItem(self._item_text(r))
        self.roi_list.blockSignals(False)

    @staticmethod
    def _item_text(r) -> str:
        # a label set by hand has no pipeline confidence: say "manual" instead of the stale number
        conf = (" (manual)" if r.get("label_source") == "curation" else
                "" if not np.isfinite(r["confidence"]) else f" ({r['confidence']:.2f})")
        return (f"ROI {int(r['roi_id']):>4}  {r['cell_type']}{conf}"
                f"{'' if r['is_cell'] else '  [not cell]'}{'  *' if r['curated'] else ''}")

    def _on_animal(self, animal: str):
        if animal in self.data:
            self.select(animal, 0 if len(self.data[animal].table) else None)

    def _on_list(self, row: int):
        if row >= 0:
            self.select(self.animal, row)

    def _on_layer_click(self, layer, event):
        meta = layer.metadata.get("interbrain", {})
        value = layer.get_value(event.position, world=True, view_direction=event.view_direction,
                                dims_displayed=event.dims_displayed)
        if value is not None and not isinstance(value, tuple) and int(value) > 0:
            self.select(meta["animal"], int(value) - 1)

    # -- plotting -----------------------------------------------------------------
    def _plot(self):
        d = self.data.get(self.animal)
        if d is None or self.index is None:
            self._clear_behaviour()
            self.dff_line.set_data([], [])
            self.spk_line.set_data([], [])
            self.canvas.draw_idle()
            return
        t = d.frame_time
        r = d.table.iloc[self.index]
        for line, var in ((self.dff_line, "dff"), (self.spk_line, "spikes")):
            y = d.trace(var, self.index)
            line.set_data(display_envelope(t, y) if y is not None else ([], []))
        self.ax_dff.set_title(f"{self.animal}: ROI {int(r['roi_id'])}  {r['cell_type']}"
                              f"{'' if r['is_cell'] else ' (not cell)'}", color=FG, fontsize=FONT + 1)
        # the ethogram and the shading depend on the animal and the shaded behaviour, not on the ROI
        if (self.animal, id(d.bouts), self.shade_box.currentText()) != self._behaviour_key:
            rows = self._draw_behaviour(d)
            self._behaviour_key = (self.animal, id(d.bouts), self.shade_box.currentText())
            if rows != self._layout_rows:          # new row labels change the margins
                self._layout_rows = rows
                self._relayout()
        for ax in (self.ax_dff, self.ax_spk):
            ax.relim()
            ax.autoscale_view()
        if len(t):
            self.ax_beh.set_xlim(t[0], t[-1])
        self._draw_cursor()

    def _clear_behaviour(self):
        for art in self._shading:
            art.remove()
        self._shading = []
        self._behaviour_key = None

    def _draw_behaviour(self, d) -> list[str]:
        """Ethogram rows and the shading behind the traces for animal data `d`; returns the row labels."""
        self._clear_behaviour()
        bouts = d.bouts
        behaviors = sorted(bouts["behavior"].unique()) if len(bouts) else []
        color = {b: BEHAVIOR_COLORS[i % len(BEHAVIOR_COLORS)] for i, b in enumerate(behaviors)}
        is_state = bouts["stop"] > bouts["start"]
        states = [b for b in behaviors if (is_state & (bouts["behavior"] == b)).any()]
        # ethogram: one row per state behaviour (own bouts in the upper half, the partner's hatched below),
        # and one row of point events (ticks), so task logs with many event kinds stay readable
        rows = states + (["events"] if (~is_state).any() else [])
        for k, b in enumerate(rows):
            y0 = len(rows) - 1 - k
            for role, (lo, hi) in (("self", (0.52, 0.42)), ("partner", (0.08, 0.42))):
                sel = bouts[(bouts["role"] == role) & (~is_state if b == "events" else is_state & (bouts["behavior"] == b))]
                if not len(sel):
                    continue
                if b == "events":
                    self._shading.append(self.ax_beh.vlines(sel["start"], y0 + lo, y0 + lo + hi,
                                                            colors=[color[x] for x in sel["behavior"]], lw=1))
                else:
                    self._shading.append(self.ax_beh.broken_barh(
                        list(zip(sel["start"], sel["stop"] - sel["start"])), (y0 + lo, hi), facecolors=color[b],
                        alpha=1.0 if role == "self" else 0.6, hatch=None if role == "self" else "////"))
        self.ax_beh.set_yticks(np.arange(len(rows))[::-1] + 0.5 if rows else [])
        self.ax_beh.set_yticklabels(rows, fontsize=SMALL)
        self.ax_beh.set_ylim(0, max(1, len(rows)))
        self.ax_beh.set_title("upper half: own bouts, lower (hatched): partner's", color=FG, fontsize=SMALL, loc="left")
        # the chosen behaviour's bouts shaded behind the traces: own solid, partner's hatched
        self._fill_shade_box(states)
        # (one collection per axis and role: hundreds of separate span patches made every redraw slow)
        shade = self.shade_box.currentText()
        if shade in states:
            for role in ("self", "partner"):
                sel = bouts[(bouts["role"] == role) & is_state & (bouts["behavior"] == shade)]
                if not len(sel):
                    continue
                spans = [[(s0, 0.0), (s0, 1.0), (s1, 1.0), (s1, 0.0)] for s0, s1 in zip(sel["start"], sel["stop"])]
                for ax in (self.ax_dff, self.ax_spk):
                    kw = (dict(facecolors=color[shade], alpha=0.25, linewidths=0) if role == "self" else
                          dict(facecolors="none", edgecolors=color[shade], hatchcolors=color[shade], alpha=0.7,
                               hatch="///", linewidths=0))
                    coll = PolyCollection(spans, transform=ax.get_xaxis_transform(), label=f"{role}:{shade}", **kw)
                    ax.add_collection(coll, autolim=False)
                    self._shading.append(coll)
        return rows

    def shaded_spans(self, ax=None) -> list[tuple[float, float, str]]:
        """(start, stop, role) of the bouts shaded behind the traces (s), sorted."""
        ax = self.ax_dff if ax is None else ax
        out = []
        for coll in self._shading:
            if coll.axes is ax and isinstance(coll, PolyCollection) and ":" in str(coll.get_label()):
                role = str(coll.get_label()).split(":")[0]
                out += [(float(p.vertices[0, 0]), float(p.vertices[2, 0]), role) for p in coll.get_paths()]
        return sorted(out)

    def _fill_shade_box(self, states: list[str]):
        """Behaviours offered for shading; default: the first annotated (not task-derived) one."""
        items = ["none"] + states
        if [self.shade_box.itemText(i) for i in range(self.shade_box.count())] == items:
            return
        keep = self.shade_box.currentText()
        annotated = [b for b in states if b not in TASK_EVENTS]
        self.shade_box.blockSignals(True)
        self.shade_box.clear()
        self.shade_box.addItems(items)
        self.shade_box.setCurrentText(keep if keep in items else (annotated or states or ["none"])[0])
        self.shade_box.blockSignals(False)

    def _draw_cursor(self):
        x = np.nan if self.time is None else self.time
        for c in self.cursors:
            c.set_xdata([x, x])
        self.canvas.draw_idle()

    # -- time ---------------------------------------------------------------------
    def _setup_slider(self):
        d = self.data.get(self.animal)
        n = len(d.frame_time) if d is not None else 0
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, n - 1))
        if self.time is not None and n:
            self.slider.setValue(int(np.argmin(np.abs(d.frame_time - self.time))))
        self.slider.blockSignals(False)

    def set_time(self, t: float, source: str = ""):
        """Move the cursor (and the movie frame, and the slider) to master-clock time t (s)."""
        if self._syncing:
            return
        self._syncing = True
        try:
            self.time = float(t)
            d = self.data.get(self.animal)
            frame = ""
            if d is not None and len(d.frame_time):
                k = int(np.argmin(np.abs(d.frame_time - self.time)))
                frame = f" ({self.animal} frame {k})"
                if source != "slider":
                    self.slider.setValue(k)
            if source != "dims" and self.movie_layers():
                self.viewer.dims.set_point(0, self.time)
            # with movies: napari's point and the frame each movie shows; else the selected animal's frame
            if not self._show_time_readout():
                self.time_label.setText(f"t = {self.time:.2f} s{frame}")
            self._draw_cursor()
        finally:
            self._syncing = False

    def _on_slider(self, i: int):
        d = self.data.get(self.animal)
        if d is not None and 0 <= i < len(d.frame_time):
            self.set_time(d.frame_time[i], source="slider")

    def _on_dims(self, event=None):
        if self._syncing:
            return        # set_time moved napari's point itself and shows the readout once it has
        if self.movie_layers() and self.viewer.dims.ndim >= 3:
            self.set_time(self.viewer.dims.point[0], source="dims")
        else:
            self._show_time_readout()       # movies removed: hide the overlay we showed

    def movie_frames(self) -> dict[str, int | None]:
        """{animal: frame index its movie layer shows now}, None where the time is outside that movie.

        napari rounds the data coordinate of the time axis to the nearest frame and draws nothing
        outside 0..T-1; this applies the same rule to `layer.world_to_data(dims.point)`.
        """
        point = np.asarray(self.viewer.dims.point, float)
        out = {}
        for a, lyr in sorted(self.movie_layers().items()):
            k = int(np.round(lyr.world_to_data(point[-lyr.ndim:])[0]))
            out[a] = k if 0 <= k < lyr.data.shape[0] else None
        return out

    def time_readout(self) -> str:
        """"t = 12.35 s (A frame 123, B frame 98)": napari's time point (s, master clock) and each raw
        movie's frame shown, or "" without movies. napari's own slider box shows only the step number."""
        if not self.movie_layers() or self.viewer.dims.ndim < 3:
            return ""
        frames = ", ".join(f"{a} frame {'-' if k is None else k}" for a, k in self.movie_frames().items())
        return f"t = {float(self.viewer.dims.point[0]):.2f} s ({frames})"

    def _show_time_readout(self) -> str:
        """Show time_readout() in the dock and on the canvas (napari's text overlay, top left) while raw
        movies are loaded; the overlay is hidden again once they are removed (only if we showed it).
        Returns the text shown ("" without movies)."""
        text = self.time_readout()
        overlay = self.viewer.canvas.overlays.text
        if text:
            self.time_label.setText(text)
            if overlay.text != text:
                overlay.text = text
            if not overlay.visible:
                overlay.visible = True
                overlay.position = "top_left"
                overlay.font_size = 12
            self._owns_overlay = True
        elif self._owns_overlay:
            overlay.visible = False
            overlay.text = ""
            self._owns_overlay = False
        return text

    def _on_plot_click(self, event):
        if event.inaxes is not None and event.xdata is not None and event.button == 1:
            self.set_time(event.xdata, source="plot")

    def load_movies(self):
        """Add both animals' raw movies (lazily) from the session file recorded in interbrain.json."""
        from napari.utils.notifications import show_error, show_info
        if self.out is None:
            show_error("open an interbrain result first")
            return
        sfile = read_root(self.out).get("session_file", "")
        if not sfile or not Path(sfile).is_file():
            show_error(f"{self.out}: the session file {sfile!r} recorded in interbrain.json is not found; "
                       "open the raw movie with File > Open and the interbrain reader instead")
            return
        from pipeline.core.session import Session
        try:
            s = Session.load(sfile, check_files=False)
            layers = self.roi_layers()
            for a, d in self.data.items():
                spec = s.animals[a]
                x0 = layers[a].metadata["interbrain"].get("x_offset", 0) if a in layers else 0
                data, kw, kind = movie_layer(spec["raw"], a, d.frame_time, x0, spec["raw_format"],
                                             spec.get("hdf5_dataset", ""))
                layer = self.viewer.add_image(data, **kw)
                # right above this animal's still images (which are opaque), so the movie is what is seen,
                # and under its ROIs
                images = [i for i, lyr in enumerate(self.viewer.layers)
                          if lyr.metadata.get("interbrain", {}).get("animal") == a
                          and lyr.metadata["interbrain"].get("kind") in ("mean_image", "correlation_image",
                                                                         "max_projection")]
                target = max(images) + 1 if images else 0
                self.viewer.layers.move(self.viewer.layers.index(layer), target)
        except Exception as exc:  # show a config / movie error, don't raise into the GUI
            show_error(f"cannot load the raw movies: {exc}")
            return
        show_info("raw movies loaded; the time slider moves the trace cursor")

    # -- curation -------------------------------------------------------------------
    def _current(self):
        if self.log is None or self.index is None or self.animal not in self.data:
            return None
        return int(self.data[self.animal].table.iloc[self.index]["roi_id"])

    def set_is_cell(self, is_cell: bool):
        roi = self._current()
        if roi is not None:
            self.log.add(self.animal, roi, is_cell=is_cell)
            self._refresh(f"ROI {roi}: {'cell' if is_cell else 'not cell'}")

    def set_cell_type(self, label: str):
        roi = self._current()
        if roi is not None:
            self.log.add(self.animal, roi, label=label)
            self._refresh(f"ROI {roi}: {label}")

    def undo(self):
        if self.log is None:
            return
        e = self.log.undo()
        self._refresh("nothing to undo" if e is None else f"undone: {e.animal} ROI {e.roi_id}")

    def _refresh(self, msg: str):
        """Recompute the curated tables, recolour the labels layers, save message."""
        layers = self.roi_layers()
        for a, d in self.data.items():
            d.table = roi_table(self.tree, a, self.log.edits)
            if a in layers:
                layers[a].features = d.table
                layers[a].colormap = roi_colormap(d.table["cell_type"], d.table["is_cell"])
                outline = self._layer_of(a, "not_cell")
                if outline is not None:
                    outline.data = not_cell_outlines(layers[a].data, d.table["is_cell"])
        self._fill_list()
        self.roi_list.blockSignals(True)
        self.roi_list.setCurrentRow(-1 if self.index is None else self.index)
        self.roi_list.blockSignals(False)
        self.status.setText(f"{msg}  (saved to {self.log.path.name}; "
                            f"{len(self.log.edits)} row(s); used by the next `interbrain run`)")
        self.undo_btn.setEnabled(self.log.can_undo)
        self._plot()
