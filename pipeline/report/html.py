"""Session report: one self-contained HTML file plus the figures as files.

Every number drawn comes from the dataset (`pipeline.load`); a section whose
stage has not run is replaced by a note. Figures are matplotlib (Agg).
"""
from __future__ import annotations

import base64
import html
import io
import json
import warnings
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from pipeline.core import dataset  # noqa: E402
from pipeline.core.animals import ANIMALS  # noqa: E402
from pipeline.report import truth as truth_mod  # noqa: E402

TYPE_COLOURS = {"GABAergic": "#d62728", "glutamatergic": "#1f77b4", "unknown": "#7f7f7f"}


def _has(tree: xr.DataTree, path: str) -> bool:
    try:
        node = tree[path]
    except KeyError:
        return False
    return bool(node.has_data or node.children)


def _ds(tree, path) -> xr.Dataset:
    return tree[path].to_dataset()


def _begin(r, tree, title: str, group: str, stage: str) -> list[str]:
    """Start section `title`; return the animals whose group `group` ("{a}/rois") exists, or [] after
    noting that `stage` has not run. A group without "{a}" ("subspace") stands for every animal."""
    r.section(title)
    have = [a for a in ANIMALS if _has(tree, group.format(a=a))]
    if not have:
        r.note(f"The {stage} stage has not run.")
    return have


@contextmanager
def _figure(r, name: str, caption: str, nrows: int = 1, ncols: int = 1, figsize=(11, 3), **kw):
    """(fig, axes) of a new figure, axes always 2-D; on leaving the block the figure is laid out and
    added to the report as `name` with `caption` (and closed if the block fails)."""
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, **kw)
    try:
        yield fig, axes
    except BaseException:
        plt.close(fig)
        raise
    fig.tight_layout()
    r.figure(fig, name, caption)


class _Report:
    def __init__(self, out: Path, fmt: str = "png", dpi: int = 100):
        self.out, self.fmt, self.dpi = out, fmt, dpi
        self.sections: list[tuple[str, list[str]]] = []
        self.figdir = out / "report" / "figures"
        self.figdir.mkdir(parents=True, exist_ok=True)

    def section(self, title: str):
        self.sections.append((title, []))

    def note(self, text: str):
        self.sections[-1][1].append(f"<p class='note'>{html.escape(text)}</p>")

    def html(self, snippet: str):
        self.sections[-1][1].append(snippet)

    def figure(self, fig, name: str, caption: str = ""):
        buf = io.BytesIO()
        fig.savefig(buf, format=self.fmt, dpi=self.dpi, bbox_inches="tight")
        plt.close(fig)
        data = buf.getvalue()
        (self.figdir / f"{name}.{self.fmt}").write_bytes(data)
        mime = "image/png" if self.fmt == "png" else "image/svg+xml"
        b64 = base64.b64encode(data).decode()
        self.sections[-1][1].append(
            f"<figure><img alt='{html.escape(name)}' src='data:{mime};base64,{b64}'/>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def render(self, title: str) -> str:
        body = []
        for t, parts in self.sections:
            anchor = t.lower().replace(" ", "-")
            body.append(f"<section id='{anchor}'><h2>{html.escape(t)}</h2>{''.join(parts)}</section>")
        toc = "".join(f"<li><a href='#{t.lower().replace(' ', '-')}'>{html.escape(t)}</a></li>" for t, _ in self.sections)
        return f"""<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}} img{{max-width:100%}}
.note{{color:#666;font-style:italic}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:2px 6px;font-size:90%;vertical-align:top}}
pre{{white-space:pre-wrap;font-size:80%}}</style></head>
<body><h1>{html.escape(title)}</h1><ul>{toc}</ul>{''.join(body)}</body></html>"""


def _motion(r: _Report, tree):
    have = _begin(r, tree, "Motion", "{a}/motion", "motion")
    if not have:
        return
    with _figure(r, "motion", "Rigid shifts per frame and mean-image crispness before/after registration.",
                 len(have), 2, figsize=(11, 2.6 * len(have))) as (fig, axes):
        for i, a in enumerate(have):
            m = _ds(tree, f"{a}/motion")
            sh = m["rigid_shift"].values
            ax = axes[i, 0]
            ax.plot(sh[:, 0], lw=0.7, label="y")
            ax.plot(sh[:, 1], lw=0.7, label="x")
            ax.set(title=f"{a}: rigid shifts", xlabel="frame", ylabel="px")
            ax.legend(fontsize=7)
            before, after = m.attrs.get("crispness_before", np.nan), m.attrs.get("crispness_after", np.nan)
            axes[i, 1].bar(["before", "after"], [before, after], color=["#aaa", "#2ca02c"])
            axes[i, 1].set(title=f"{a}: mean-image crispness")


def _draw_footprints(ax, rois: xr.Dataset, shape, cell_type=None):
    """Outline each ROI (pixels above 20% of its peak weight) in its cell type's colour."""
    w = rois["pix_weight"].values
    n = rois["pix_neuron"].values.astype(int)
    y, x = rois["pix_y"].values.astype(int), rois["pix_x"].values.astype(int)
    for i in range(rois.sizes["neuron"]):
        sel = n == i
        if not sel.any():
            continue
        mask = np.zeros(shape)
        mask[y[sel], x[sel]] = w[sel] >= 0.2 * w[sel].max()
        t = str(cell_type[i]) if cell_type is not None else "unknown"
        ax.contour(mask, levels=[0.5], colors=[TYPE_COLOURS.get(t, "#7f7f7f")], linewidths=1.0)


def _rois(r: _Report, tree):
    have = _begin(r, tree, "ROIs and cell types", "{a}/rois", "extraction")
    if not have:
        return
    with _figure(r, "rois", "Mean image with ROI outlines coloured by cell type (red GABAergic, blue glutamatergic, "
                            "grey unknown); classifier-probability histograms.",
                 2, len(have), figsize=(5 * len(have), 8.5)) as (fig, axes):
        for i, a in enumerate(have):
            rois = _ds(tree, f"{a}/rois")
            mean = rois["mean_image"].values
            ct = _ds(tree, f"{a}/celltypes")["cell_type"].values if _has(tree, f"{a}/celltypes") else None
            ax = axes[0, i]
            ax.imshow(mean, cmap="gray")
            _draw_footprints(ax, rois, mean.shape, ct)
            counts = {t: int(np.sum(ct == t)) for t in TYPE_COLOURS} if ct is not None else {}
            ax.set_title(f"{a}: {rois.sizes['neuron']} ROIs "
                         + " ".join(f"{t[:4]}={c}" for t, c in counts.items() if c))
            ax.axis("off")
            ax = axes[1, i]
            prob = rois["iscell_prob"].values
            ax.hist(prob, bins=np.linspace(0, 1, 21), color="#555")
            ax.set(title=f"{a}: classifier probability", xlabel="P(cell)", ylabel="ROIs")
    rows = []
    for a in have:
        if _has(tree, f"{a}/celltypes"):
            c = _ds(tree, f"{a}/celltypes")
            src = {str(s) for s in np.unique(c["cell_type_source"].values)}
            low = int(np.sum(c["cell_type_confidence"].values < 0.8))
            rows.append(f"<tr><td>{a}</td><td>{', '.join(sorted(src))}</td><td>{low}</td></tr>")
    if rows:
        r.html("<table><tr><th>animal</th><th>label source</th><th>ROIs with confidence &lt; 0.8</th></tr>"
               + "".join(rows) + "</table>")


MAX_LANES = 16


def _n_lanes(tree, a: str) -> int:
    """Behaviour lanes drawn under animal a's raster: (role, behaviour) rows with any bout, at most MAX_LANES."""
    if not _has(tree, f"{a}/behavior"):
        return 1
    b = _ds(tree, f"{a}/behavior")
    n = sum(int(np.asarray(b[role].values, bool).any(axis=-1).sum()) for role in ("self", "partner") if role in b)
    return min(MAX_LANES, max(1, n))


def _activity(r: _Report, tree):
    have = _begin(r, tree, "Activity and behaviour", "{a}/activity", "align")
    if not have:
        return
    n_lanes = max([_n_lanes(tree, a) for a in have] + [1])
    beh_h = max(1.0, 0.22 * n_lanes)                      # ~0.22 in per lane: 9 pt labels do not overlap
    with _figure(r, "activity", "Raster of z-scored activity per animal with its own (red) and partner's (blue) "
                                "behaviour bouts on the common clock.", 2 * len(have), 1,
                 figsize=(11, (3.2 + beh_h) * len(have)),
                 gridspec_kw={"height_ratios": [3.2, beh_h] * len(have)}) as (fig, axes):
        for i, a in enumerate(have):
            act = _ds(tree, f"{a}/activity")["activity"]
            z = act.values
            with warnings.catch_warnings():    # a neuron with no valid bin stays NaN (drawn blank), no warning
                warnings.simplefilter("ignore", RuntimeWarning)
                z = (z - np.nanmean(z, 1, keepdims=True)) / (np.nanstd(z, 1, ddof=1, keepdims=True) + 1e-12)
            ct = act["cell_type"].values if "cell_type" in act.coords else np.array(["unknown"] * z.shape[0])
            order = np.argsort(ct, kind="stable")
            t = act["time"].values
            ax = axes[2 * i, 0]
            im = ax.imshow(z[order], aspect="auto", cmap="magma", vmin=-1, vmax=3,
                           extent=(t[0], t[-1], z.shape[0], 0), interpolation="nearest")
            fig.colorbar(im, ax=ax, label="z-score", fraction=0.03, pad=0.01)
            edges = np.flatnonzero(ct[order][1:] != ct[order][:-1]) + 1
            for e in edges:
                ax.axhline(e, color="w", lw=0.8)
            ax.set(title=f"{a}: z-scored activity, sorted by cell type ({', '.join(np.unique(ct))})", ylabel="neuron")
            ax = axes[2 * i + 1, 0]
            if _has(tree, f"{a}/behavior"):
                b = _ds(tree, f"{a}/behavior")
                names = [str(x) for x in b["behavior"].values]
                lanes = []
                for role in ("self", "partner"):
                    if role in b:
                        for j, n in enumerate(names):
                            v = b[role].values[j].astype(bool)
                            if v.any():
                                lanes.append((f"{role}:{n}", v))
                for k, (lab, v) in enumerate(lanes[:MAX_LANES]):
                    ax.fill_between(b["time"].values, k, k + 0.8, where=v, step="mid",
                                    color="#d62728" if lab.startswith("self") else "#1f77b4")
                ax.set_yticks(np.arange(len(lanes[:MAX_LANES])) + 0.4, [lb for lb, _ in lanes[:MAX_LANES]], fontsize=9)
                ax.set_ylim(0, max(1, len(lanes[:MAX_LANES])))
                ax.set_xlim(t[0], t[-1])
                if len(lanes) > MAX_LANES:
                    ax.set_title(f"first {MAX_LANES} of {len(lanes)} behaviour lanes", fontsize=9, loc="left")
                # same width as the raster above it, whose colour bar takes a slice
                fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01).ax.set_visible(False)
            ax.set(xlabel="time (s, master clock)")
    if _has(tree, "clock"):
        c = _ds(tree, "clock")
        r.html("<pre>" + html.escape(str(c)) + "</pre>")


def _subspace(r: _Report, tree):
    if not _begin(r, tree, "Shared subspace", "subspace", "subspace"):
        return
    s = _ds(tree, "subspace")
    K = int(s.attrs.get("K", s.attrs.get("n_shared", -1)))
    with _figure(r, "subspace", "Per-dimension covariance and correlation against the surrogate thresholds; "
                                "shared-variance fraction by cell type (neuron-count matched).",
                 1, 3, figsize=(14, 3.6)) as (fig, axes):
        dims = np.arange(1, s.sizes.get("dim", len(s["cov"])) + 1)
        nshow = min(len(dims), max(10, K + 5))
        for ax, stat in zip(axes[0, :2], ("cov", "r")):
            if stat in s:
                ax.plot(dims[:nshow], s[stat].values[:nshow], "o-", label="observed")
                th = f"{stat}_threshold"
                if th in s:
                    ax.plot(dims[:nshow], s[th].values[:nshow], "k--", label="97.5% surrogate")
                ax.axvline(K + 0.5, color="g", lw=1)
                ax.set(xlabel="dimension k", title=f"{stat}_k (K = {K})")
                ax.legend(fontsize=7)
        ax = axes[0, 2]
        drew = False
        if K <= 0:
            # no shared dimension: nothing to split by cell type or project onto; say so instead of empty axes
            ax.axis("off")
            ax.text(0.5, 0.5, "K = 0: no dimension above the\nsurrogate threshold, so no shared\nvariance to show",
                    ha="center", va="center", fontsize=11, transform=ax.transAxes)
            drew = True
        elif _has(tree, "subspace/by_cell_type"):
            b = _ds(tree, "subspace/by_cell_type")
            var = next((v for v in b.data_vars if "fraction" in v), None)
            if var is not None and "cell_type" in b[var].dims:
                data, labels = [], []
                for ct in b["cell_type"].values:
                    sel = b[var].sel(cell_type=ct)
                    vals = sel.values.ravel()
                    vals = vals[np.isfinite(vals)]
                    if vals.size:
                        data.append(vals)
                        labels.append(str(ct))
                if data:
                    ax.boxplot(data, labels=labels)
                    ax.set(title="shared-variance fraction, count-matched", ylabel="fraction")
                    drew = True
        if not drew:
            fr = [float(_ds(tree, f"subspace/{a}").get("shared_variance_fraction", np.nan))
                  if _has(tree, f"subspace/{a}") else np.nan for a in ANIMALS]
            ax.bar(ANIMALS, fr)
            ax.set(title="shared-variance fraction", ylabel="fraction")
    if K <= 0:
        r.note("K = 0: no shared dimension exceeded the surrogate threshold, so there is no shared-variance "
               "fraction and no shared-dimension projection to show. Longer recordings or more neurons raise "
               "the power to detect weak shared signals.")
        return
    proj = [(a, _ds(tree, f"subspace/{a}")) for a in ANIMALS if _has(tree, f"subspace/{a}")]
    proj = [(a, d[v]) for a, d in proj for v in d.data_vars if v.startswith("projection") and "time" in d[v].dims]
    # a projection with no finite sample (no dimension to project on) is left out, not drawn as a NaN line
    proj = [(a, p) for a, p in proj if np.isfinite(p.isel({d: 0 for d in p.dims if d != "time"}).values).any()]
    if proj:
        with _figure(r, "subspace_projection", "Projections of both animals onto the first shared dimension.",
                     figsize=(11, 2.6)) as (fig, axes):
            ax = axes[0, 0]
            for a, p in proj:
                v = p.isel({d: 0 for d in p.dims if d != "time"}).values
                ax.plot(p["time"].values, (v - np.nanmean(v)) / (np.nanstd(v) + 1e-12), lw=0.7, label=a)
            ax.set(xlabel="time (s)", title="first shared dimension: projections of A and B")
            ax.legend()


def _null_fraction(e: xr.Dataset, role) -> float:
    """Mean over behaviours of the shift null's activated + suppressed fraction (all neurons), for one role."""
    parts = [e[v].sel(role=role).values.astype(float) for v in ("null_fraction_activated_all",
                                                                 "null_fraction_suppressed_all")
             if v in e and "role" in e[v].dims]
    if not parts:
        return np.nan
    tot = np.sum(parts, axis=0)
    return float(np.nanmean(tot)) if np.isfinite(tot).any() else np.nan


def _encoding(r: _Report, tree):
    have = _begin(r, tree, "Encoding", "encoding/{a}", "encoding")
    if not have:
        return
    with _figure(r, "encoding", "Fraction of self- and partner-encoding neurons by cell type (encoding at least one "
                                "behaviour); dashed: the fraction the circular-shift null itself calls significant "
                                "(mean over behaviours of activated + suppressed), the level to beat.",
                 1, len(have), figsize=(6 * len(have), 3.4)) as (fig, axes):
        for i, a in enumerate(have):
            e = _ds(tree, f"encoding/{a}")
            cls = e["class"] if "class" in e else None
            ax = axes[0, i]
            if cls is None or "role" not in cls.dims:
                ax.set_title(f"{a}: no class variable")
                continue
            ct = cls["cell_type"].values if "cell_type" in cls.coords else np.array(["all"] * cls.sizes["neuron"])
            types = list(np.unique(ct))
            width = 0.8 / max(1, 2 * len(types))
            for j, role in enumerate(cls["role"].values):
                c = cls.sel(role=role)
                enc = (c != "none").any([d for d in c.dims if d != "neuron"]).values
                for k, t in enumerate(types):
                    m = ct == t
                    ax.bar(j + (k - len(types) / 2) * width * 2, enc[m].mean() if m.any() else np.nan, width * 2,
                           color=TYPE_COLOURS.get(t, "#777"), label=t if j == 0 else None)
                null = _null_fraction(e, role)
                if np.isfinite(null):
                    ax.hlines(null, j - 0.45, j + 0.45, colors="k", linestyles="--", lw=1.2, gid="shift-null",
                              label="shift null" if j == 0 else None)
            ax.set_xticks(range(cls.sizes["role"]), [str(x) for x in cls["role"].values])
            ax.set(title=f"{a}: fraction of neurons encoding a behaviour", ylabel="fraction")
            ax.legend(fontsize=8)


def _decoding(r: _Report, tree):
    if not _begin(r, tree, "Decoders", "decoding", "decoding"):
        return
    d = _ds(tree, "decoding")
    acc = d.get("accuracy")
    if acc is None or not {"animal", "variable", "time_bin"} <= set(acc.dims):
        r.note("No accuracy over time in the decoding group.")
        return
    cond = "full" if "condition" in acc.dims and "full" in acc["condition"].values else None
    sel0 = {"condition": cond} if cond else {}
    panels = [(a, v) for a in acc["animal"].values for v in acc["variable"].values
              if np.isfinite(acc.sel(animal=a, variable=v, **sel0).values).any()]
    skipped = [(a, v) for a in acc["animal"].values for v in acc["variable"].values if (a, v) not in panels]
    if not panels:
        r.note("No decoder had enough bouts.")
        return
    ncol = min(3, len(panels))
    nrow = int(np.ceil(len(panels) / ncol))
    with _figure(r, "decoding", "Decoding accuracy around events (all neurons) against the surrogate null "
                                "(mean and 95% band); red ticks mark bins in significant clusters.",
                 nrow, ncol, figsize=(4.2 * ncol, 2.9 * nrow)) as (fig, axes):
        tb = acc["time_bin"].values
        for ax, (a, v) in zip(axes.flat, panels):
            sel = {"animal": a, "variable": v, **sel0}
            ax.plot(tb, acc.sel(sel).values, "k", lw=1, label="accuracy")
            if "null_mean" in d:
                ax.plot(tb, d["null_mean"].sel(sel).values, color="#888", lw=0.8, label="null mean")
            if "null_lo" in d and "null_hi" in d:
                ax.fill_between(tb, d["null_lo"].sel(sel).values, d["null_hi"].sel(sel).values, color="#ccc",
                                alpha=0.6, label="null 95%")
            if "significant" in d:
                sig = d["significant"].sel(sel).values.astype(bool)
                ax.plot(tb[sig], np.full(sig.sum(), 1.02), "r|", ms=6)
            ax.axvline(0, color="g", lw=0.6)
            ax.set_ylim(0.2, 1.06)
            ax.set(title=f"{a}: {v}", xlabel="time from event (s)", ylabel="accuracy")
            ax.title.set_fontsize(9)
        axes.flat[0].legend(fontsize=8)
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
    if cond and acc.sizes["condition"] > 1:
        conds = [str(c) for c in acc["condition"].values]
        with _figure(r, "decoding_conditions", "Peak accuracy per condition: neuron-count-matched cell types, "
                                               "shared or unique subspace only, shared subspace or random "
                                               "dimensions removed. Missing bars: not enough bouts or neurons.",
                     figsize=(max(7, 1.2 * len(conds) * len(panels) / 2), 4)) as (fig, axes):
            ax = axes[0, 0]
            width = 0.8 / len(panels)
            for k, (a, v) in enumerate(panels):
                peak = [np.nanmax(acc.sel(animal=a, variable=v, condition=c).values)
                        if np.isfinite(acc.sel(animal=a, variable=v, condition=c).values).any() else np.nan
                        for c in conds]
                ax.bar(np.arange(len(conds)) + k * width, peak, width, label=f"{a}: {v}")
            ax.set_xticks(np.arange(len(conds)) + 0.4 - width / 2, conds, fontsize=10, rotation=30, ha="right")
            ax.axhline(0.5, color="k", lw=0.6)
            ax.set_ylabel("peak accuracy", fontsize=11)
            ax.set_title("decoding by condition (cell type, subspace)", fontsize=12)
            ax.tick_params(axis="y", labelsize=10)
            ax.legend(fontsize=9)
    if skipped:
        r.note("Not decoded (not enough bouts): " + "; ".join(f"{a}: {v}" for a, v in skipped))


def _truth(r: _Report, out: Path, meta: dict, tree) -> dict | None:
    """'Truth versus recovered' section when the session has simulator ground truth (see truth.py)."""
    path = truth_mod.truth_path(out, meta)
    if path is None:
        return None
    r.section("Truth versus recovered")
    c = truth_mod.compare(tree, truth_mod.load_truth_file(path))
    head = "".join(f"<th>{a['animal']}</th>" for a in c["animals"])
    rows = "".join(f"<tr><td>{html.escape(label)}</td>" + "".join(f"<td>{html.escape(fmt(a))}</td>" for a in c["animals"])
                   + "</tr>" for label, fmt in truth_mod.ROWS)
    r.html(f"<p>Scored against the planted ground truth in <code>{html.escape(str(path))}</code> "
           f"(simulator preset {html.escape(c['preset'] or '?')}, seed {c['seed']}). ROIs are matched one-to-one "
           f"by footprint overlap (IoU &ge; {truth_mod.IOU_MIN}).</p>"
           f"<table><tr><th></th>{head}</tr>{rows}</table>")
    k = ("the subspace stage has not run" if c["K_found"] is None else f"found K = {c['K_found']}")
    r.html(f"<p><b>Shared dimensions:</b> planted {c['K_planted']}, {k}.</p>")
    dec = c.get("decoders") or []
    if dec:
        rows = "".join(f"<tr><td>{d['animal']}</td><td>{html.escape(d['contrast'])}</td>"
                       f"<td>{html.escape(truth_mod.planted_text(d))}</td>"
                       f"<td>{html.escape(truth_mod.significant_text(d))}</td><td><b>{d['verdict']}</b></td></tr>"
                       for d in dec)
        r.html("<p><b>Decoders</b> (condition full): a signal is planted when some neuron of the decoded animal "
               "has a different planted gain for the two events; significant = a cluster of time bins with "
               "cluster p &le; alpha.</p><table><tr><th>animal</th><th>contrast</th><th>planted</th>"
               f"<th>significant (smallest cluster p)</th><th>verdict</th></tr>{rows}</table>")
    else:
        r.html("<p><b>Decoders:</b> the decoding stage has not run.</p>")
    dataset.atomic_write_text(out / "report" / "truth_vs_recovered.json", truth_mod.as_json(c))
    return c


def truth_text(out: str | Path) -> str | None:
    """The truth-versus-recovered table as text, when the result's session has simulator ground truth."""
    out = Path(out)
    meta = dataset.read_root(out)
    path = truth_mod.truth_path(out, meta)
    if path is None:
        return None
    try:
        return truth_mod.as_text(truth_mod.compare(dataset.load(out), truth_mod.load_truth_file(path)))
    except Exception as exc:  # a summary line must never fail a finished run
        return f"truth vs recovered: could not be computed ({type(exc).__name__}: {exc})"


def _provenance(r: _Report, out: Path):
    r.section("Provenance and warnings")
    rows, warn = [], []
    for name in sorted(p.name for p in (out / "stages").iterdir() if not p.name.startswith(".")):
        rec = json.loads((out / "stages" / name / "done.json").read_text())
        v = rec.get("versions", {})
        rows.append(f"<tr><td>{name}</td><td>{html.escape(rec.get('status', ''))}</td><td>{rec.get('time', '')}</td>"
                    f"<td><pre>{html.escape(json.dumps(rec.get('config', {}), indent=1))}</pre></td>"
                    f"<td><pre>{html.escape(json.dumps(rec.get('inputs', {}), indent=1))}</pre></td>"
                    f"<td>{html.escape(', '.join(f'{k} {x}' for k, x in v.items() if k != 'platform'))}</td></tr>")
        warn += [f"{name}: {w}" for w in rec.get("warnings", [])]
    r.html("<table><tr><th>stage</th><th>status</th><th>time</th><th>config</th><th>inputs</th><th>versions</th></tr>"
           + "".join(rows) + "</table>")
    r.html("<h3>Warnings</h3>" + ("<ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in warn) + "</ul>"
                                  if warn else "<p>None.</p>"))


SECTIONS = (_motion, _rois, _activity, _subspace, _encoding, _decoding)


def write_report(out: str | Path, fmt: str = "png", dpi: int = 100) -> Path:
    """Write OUT/report/report.html (self-contained) and OUT/report/figures/*. Returns the HTML path."""
    out = Path(out)
    meta = dataset.read_root(out)
    tree = dataset.load(out)
    r = _Report(out, fmt, dpi)
    try:
        _truth(r, out, meta, tree)
    except Exception as exc:  # the comparison must not hide the report
        r.note(f"The truth comparison could not be made: {type(exc).__name__}: {exc}")
    for f in SECTIONS:
        try:
            f(r, tree)
        except Exception as exc:  # a broken figure must not hide the rest of the report
            r.note(f"This section could not be drawn: {type(exc).__name__}: {exc}")
    _provenance(r, out)
    path = out / "report" / "report.html"
    dataset.atomic_write_text(path, r.render(f"interbrain report: pair {meta['pair']}"))
    return path
