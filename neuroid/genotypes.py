"""Cell type from genotype / indicator metadata (METHODS.md section 6, first source).

An animal whose indicator is restricted to one population (a Cre line, or a
cell-type-specific promoter in the virus) gives every one of its ROIs that
population's label. `KNOWN_LINES` is the table of lines this module knows; add
a `Line` to it to extend it. Matching ignores case, punctuation and the usual
decorations of line names ("-IRES-Cre", "Tg", founder codes such as "KL100",
reporter crosses such as "x Ai14", indicator names such as "GCaMP6f").
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.core.parameters import ConfigError

GABA = "GABAergic"
GLU = "glutamatergic"
UNKNOWN = "unknown"
LABELS = (GABA, GLU, UNKNOWN)


@dataclass(frozen=True)
class Line:
    """A driver line or promoter.

    label: GABA, GLU, or None for pan-neuronal (no label from this source).
    aliases: spellings after normalisation (lower case, letters and digits only).
    confidence: how exclusively the line marks that population (1 = by construction).
    note: caveat shown in the docs and in the result's attrs.
    """

    name: str
    label: str | None
    aliases: tuple[str, ...]
    confidence: float = 1.0
    note: str = ""


KNOWN_LINES: tuple[Line, ...] = (
    # --- GABAergic: vesicular GABA transporter, GAD, forebrain-interneuron enhancers ---
    Line("Vgat-Cre (Slc32a1)", GABA, ("vgat", "slc32a1", "viaat")),
    Line("Gad2-Cre (GAD65)", GABA, ("gad2", "gad65")),
    Line("Gad1-Cre (GAD67)", GABA, ("gad1", "gad67")),
    Line("Dlx5/6-Cre", GABA, ("dlx56", "dlx5", "dlx6", "dlx")),
    Line("mDlx enhancer (AAV)", GABA, ("mdlx", "dlxi12b", "hdlx"),
         note="forebrain GABAergic enhancer; validated in cortex and hippocampus"),
    Line("PV-Cre (Pvalb)", GABA, ("pv", "pvalb", "parvalbumin"),
         note="GABAergic in cortex and hippocampus; PV marks glutamatergic cells in some thalamic/brainstem nuclei"),
    Line("SST-Cre (somatostatin)", GABA, ("sst", "som", "somatostatin"),
         note="GABAergic in cortex and hippocampus; not in all hypothalamic nuclei"),
    Line("VIP-Cre", GABA, ("vip",), note="GABAergic in cortex and hippocampus"),
    Line("Htr3a-Cre (5HT3aR)", GABA, ("htr3a", "5ht3a", "5ht3ar"), note="cortical interneurons"),
    Line("Nkx2.1-Cre", GABA, ("nkx21",), note="MGE-derived cortical interneurons"),
    Line("Lhx6-Cre", GABA, ("lhx6",), note="MGE-derived cortical interneurons"),
    Line("Ndnf-Cre", GABA, ("ndnf",), note="cortical layer-1 interneurons"),
    # --- glutamatergic: vesicular glutamate transporters, pyramidal-cell drivers ---
    Line("Vglut1-Cre (Slc17a7)", GLU, ("vglut1", "slc17a7")),
    Line("Vglut2-Cre (Slc17a6)", GLU, ("vglut2", "slc17a6")),
    Line("CaMKIIa (Cre line or AAV promoter)", GLU, ("camkii", "camkiia", "camk2", "camk2a", "camkiialpha", "camkiiα"),
         note="viral CaMKIIa promoters also drive weak expression in some interneurons at high titre"),
    Line("Emx1-Cre", GLU, ("emx1",), note="cortical excitatory neurons (and glia)"),
    Line("Nex-Cre (Neurod6)", GLU, ("nex", "neurod6"), note="cortical excitatory neurons"),
    Line("Rbp4-Cre", GLU, ("rbp4",), note="cortical layer-5 pyramidal neurons"),
    Line("Cux2-Cre", GLU, ("cux2",), note="cortical layer 2/3/4 excitatory neurons"),
    Line("Scnn1a-Cre", GLU, ("scnn1a",), note="cortical layer-4 excitatory neurons"),
    Line("Tlx3-Cre", GLU, ("tlx3",), note="cortical layer-5 IT neurons"),
    Line("Ntsr1-Cre", GLU, ("ntsr1",), note="cortical layer-6 corticothalamic neurons"),
    Line("Rorb-Cre", GLU, ("rorb",), note="cortical layer-4 excitatory neurons"),
    Line("Thy1 (e.g. Thy1-GCaMP6 GP4.3/GP5.17)", GLU, ("thy1",), confidence=0.9,
         note="Thy1 transgenics express mostly in excitatory projection neurons, but not exclusively "
              "(expression depends on the founder line; some interneurons are labelled): confidence 0.9"),
    # --- pan-neuronal or not restricting: no label from this source ---
    Line("pan-neuronal promoter (hSyn, CAG, EF1a, ...)", None,
         ("hsyn", "syn", "syn1", "synapsin", "hsyn1", "cag", "ef1a", "cmv", "panneuronal", "pan", "snap25", "baf53b")),
    Line("wild type", None, ("wt", "wildtype", "c57bl6", "c57bl6j", "c57bl6n", "c57", "b6", "none")),
)

# Tokens that decorate a line name without changing what it marks.
_NOISE = {"cre", "ires", "ires2", "creert2", "ert2", "tg", "het", "hom", "ki", "knockin", "mice", "mouse",
          "line", "driver", "flp", "flpo", "dre", "tta", "tta2", "aav", "retro", "promoter", "enhancer",
          "flex", "dio", "fas", "wpre", "sv40", "pa", "jax", "and", "mut", "x", "cre/+", "dependent"}
# Indicators, reporters, founder codes (GENSAT "KL100"), AAV serotypes.
_SKIP = re.compile(r"^(j?gcamp\w*|x?rcamp\w*|rgeco\w*|gcamp|tdtomato|td|tomato|mcherry|mscarlet\w*|e?gfp|e?yfp|"
                   r"ai\d+|[a-z]{2}\d{2,3}|aav\w*|phpeb|phps|dj|rg|\d+)$")
_BY_ALIAS = {a: line for line in KNOWN_LINES for a in line.aliases}


def known_lines() -> str:
    """The known lines, one per entry, for error messages and docs."""
    return "; ".join(f"{l.name} -> {l.label or 'pan-neuronal'}" for l in KNOWN_LINES)


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9α]+", text.lower()) if t]


def _match_part(part: str) -> list[Line] | None:
    """Lines named in one part of a genotype string; [] if it only holds decorations; None if not understood."""
    toks = [t for t in _tokens(part) if t not in _NOISE]
    key = "".join(toks)
    if not key:
        return []
    if key in _BY_ALIAS:
        return [_BY_ALIAS[key]]
    found = []
    for i, t in enumerate(toks):          # "Dlx5/6" -> dlx5 + 6 -> dlx56; "C57BL/6J" -> c57bl + 6j
        for cand in ((t + toks[i + 1]) if i + 1 < len(toks) else None, t):
            if cand and cand in _BY_ALIAS:
                found.append(_BY_ALIAS[cand])
                break
    rest = [t for t in toks if t not in _BY_ALIAS and not _SKIP.match(t)]
    if not found and rest:
        return None
    return found


def _split(text: str) -> list[str]:
    """Crosses are written 'A x B', 'A;B', 'A, B' or 'A × B'."""
    return [p for p in re.split(r"[;,×]|\s+x\s+", text) if p.strip()]


def line_label(genotype: str, where: str = "genotype") -> tuple[str | None, float, str]:
    """(label or None for pan-neuronal/empty, confidence, basis) of a genotype string.

    Raises ConfigError naming `where` and listing the known lines when a part of
    the string is not a known line, or when it names lines of both populations.
    """
    genotype = (genotype or "").strip()
    if not genotype:
        return None, 1.0, "empty genotype (pan-neuronal)"
    lines: list[Line] = []
    for part in _split(genotype):
        m = _match_part(part)
        if m is None:
            raise ConfigError(
                f"{where} = {genotype!r}: unknown line {part.strip()!r}. Known lines: {known_lines()}. "
                "Add it to neuroid.genotypes.KNOWN_LINES, leave genotype empty for pan-neuronal expression, "
                "or give a label_table.")
        lines += m
    labels = {l.label for l in lines if l.label}
    if len(labels) > 1:
        raise ConfigError(f"{where} = {genotype!r} names lines of both populations "
                          f"({', '.join(l.name for l in lines if l.label)}); give a label_table instead")
    if not labels:
        return None, 1.0, f"{genotype!r}: pan-neuronal"
    driver = [l for l in lines if l.label]
    conf = min(l.confidence for l in driver)
    return labels.pop(), conf, f"{genotype!r} -> " + ", ".join(sorted({l.name for l in driver}))


def promoter_label(indicator: str) -> tuple[str | None, float, str]:
    """Label implied by a cell-type-specific promoter inside an indicator name, e.g. 'AAV-mDlx-GCaMP6f'.

    Unknown words are ignored (an indicator name is mostly the sensor's name).
    """
    lines = [_BY_ALIAS[t] for t in _tokens(indicator or "") if t in _BY_ALIAS and _BY_ALIAS[t].label]
    labels = {l.label for l in lines}
    if len(labels) != 1:
        return None, 1.0, ""
    return labels.pop(), min(l.confidence for l in lines), f"indicator {indicator!r} -> " + \
        ", ".join(sorted({l.name for l in lines}))


def animal_label(genotype: str, indicator: str = "", where: str = "") -> tuple[str | None, float, str]:
    """Label of every ROI of an animal from its genotype and indicator (None: this source gives none).

    The genotype decides; a promoter in the indicator name is used when the
    genotype is empty or pan-neuronal. The two must not contradict each other.
    """
    g = line_label(genotype, f"{where} genotype".strip())
    i = promoter_label(indicator)
    if g[0] and i[0] and g[0] != i[0]:
        raise ConfigError(f"{where}: genotype {genotype!r} marks {g[0]} cells but indicator {indicator!r} "
                          f"has a {i[0]} promoter; fix one of them")
    return g if g[0] else i if i[0] else (None, 1.0, g[2])
