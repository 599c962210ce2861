"""Where the studies' figures and tables are found.

A study is a package ``experiments/<study>/``. Its figures live in
``experiments/<study>/figures.py`` (``FIGURES = {name: draw(results) -> Figure}``,
see ``mdtheory.plots.__main__``) and its paper tables in
``experiments/<study>/tables.py`` (see ``mdtheory.plots.paper_tables``). Both
modules keep their study's result paths: they are called with the results
root (``results``, or e.g. ``results/gpu``) and know where under it their
study's aggregators write.

This module is the only place in mdtheory that names the experiments
package: it looks for those modules in every package under it, so a new
study is a new folder there and nothing here changes. The modules are taken
in the order of their ``ORDER`` (then the study's name): the order of the
figures and of the studies' sections of comparison.tex.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import pkgutil
from types import ModuleType

STUDIES_PACKAGE = "experiments"


@functools.lru_cache(maxsize=None)
def study_modules(part: str) -> tuple[ModuleType, ...]:
    """Each study's ``part`` module ("figures" or "tables") that exists, in ORDER."""
    try:
        package = importlib.import_module(STUDIES_PACKAGE)
    except ModuleNotFoundError as exc:
        if exc.name != STUDIES_PACKAGE:
            raise
        return ()  # mdtheory without the studies: the theory figures and tables only
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        name = f"{STUDIES_PACKAGE}.{info.name}.{part}"
        if info.ispkg and importlib.util.find_spec(name) is not None:
            found.append(importlib.import_module(name))  # an error inside a study module is raised, not hidden
    return tuple(sorted(found, key=lambda m: (getattr(m, "ORDER", 100), m.__name__)))


def gather(part: str, hook: str, *args) -> list:
    """The lists that each study's ``part`` module returns from ``hook(*args)``,
    joined in study order; modules without that function add nothing."""
    out: list = []
    for module in study_modules(part):
        if callable(getattr(module, hook, None)):
            out += getattr(module, hook)(*args)
    return out
