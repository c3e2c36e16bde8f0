"""Stage adapters: importing this package registers every stage.

Each module is one stage: it reads upstream groups from the dataset, calls the
science module, and returns a DataTree. Order is by declared dependencies.
"""
from importlib import import_module

from pipeline.core import orchestrate

# One entry per stage module; a module that fails to import is a bug, and raises.
_MODULES = ("motion", "extraction", "celltypes", "behavior", "align", "subspace", "encoding", "decoding")

for _m in _MODULES:
    import_module(f"{__name__}.{_m}")


def load_stages() -> dict[str, orchestrate.Stage]:
    """The pipeline's stages, by name, in registration order."""
    return orchestrate.REGISTRY


def run(session, out=None, only=None, force: bool = False, show_progress: bool = True) -> dict[str, str]:
    """Run (or resume) every pipeline stage of `session`; see `pipeline.core.orchestrate.run`."""
    return orchestrate.run(session, out, only=only, force=force, show_progress=show_progress,
                           registry=load_stages())
