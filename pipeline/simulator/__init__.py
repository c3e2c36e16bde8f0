"""A pair session (two animals imaged together) with full ground truth.

    from pipeline.simulator import simulate_session, load_truth, PRESETS
    toml = simulate_session("sim/pair01", seed=0, preset="small")
    truth = load_truth("sim/pair01")

See docs/simulator.md.
"""
from pipeline.simulator.config import PRESETS, SimConfig, resolve_config
from pipeline.simulator.core import load_truth, simulate_session

__all__ = ["simulate_session", "load_truth", "PRESETS", "SimConfig", "resolve_config", "cli_options"]


def cli_options(preset: str = "default") -> list[dict]:
    """Every SimConfig field as {name, default (of `preset`), type, help}, for `interbrain simulate`.

    Help strings come from the SimConfig docstring, the one place they are written.
    """
    import dataclasses
    import re

    helps: dict[str, str] = {}
    current: list[str] = []
    for line in (SimConfig.__doc__ or "").splitlines():
        m = re.match(r"^\s{8}([a-z_0-9, ]+):\s(.*)$", line)
        if m:
            current = [n.strip() for n in m.group(1).split(",")]
            for n in current:
                helps[n] = m.group(2).strip()
        elif line.startswith(" " * 12) and current:
            for n in current:
                helps[n] += " " + line.strip()
        else:
            current = []
    cfg = PRESETS[preset]
    return [{"name": f.name, "default": getattr(cfg, f.name), "type": f.type, "help": helps.get(f.name, "")}
            for f in dataclasses.fields(SimConfig)]
