"""Stage adapters: importing this package registers every stage.

Each module is one stage: it reads upstream groups from the dataset, calls the
science module, and returns a DataTree. Order is by declared dependencies.
"""
from importlib import import_module

# One entry per stage module; a module that fails to import is a bug, not a skip.
_MODULES = ("motion", "extraction", "celltypes", "behavior", "align", "subspace", "encoding", "decoding")

for _m in _MODULES:
    try:
        import_module(f"{__name__}.{_m}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{_m}":
            raise
