"""The package's architecture, read from its source with ``ast``: each part imports only the parts
below it (adapters -> engines -> core), and each outside library is imported by its one module.

The allowed graph and the home of each outside library are data, at the top. numpy and the
standard library (``typing_extensions`` with it) may be imported anywhere. Every import counts: at
the top of a module, in a function, under ``TYPE_CHECKING``. A new subpackage or a new outside
library gets its place here before it is imported. And no module of the tests or the benchmarks
imports a test module: what tests share lives in helper modules and fixtures.
"""

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

#: The package's folder: the repository's root.
PACKAGE_ROOT = Path(__file__).resolve().parents[1]

#: What each part of the package may import from the package, itself included. ``pilotage`` is the
#: package's own ``__init__`` (its version: it imports nothing of the package, so any part may read
#: it); ``__main__`` runs the command line. The engines import core only, never one another.
LAYERS: dict[str, frozenset[str]] = {
    "pilotage": frozenset(),
    "core": frozenset({"pilotage", "core"}),
    "signal_priority": frozenset({"pilotage", "core", "signal_priority"}),
    "routing": frozenset({"pilotage", "core", "routing"}),
    "parking": frozenset({"pilotage", "core", "parking"}),
    "adapters": frozenset({"pilotage", "core", "signal_priority", "routing", "parking", "adapters"}),
    "__main__": frozenset({"adapters"}),
}

#: Outside libraries every module may import, beside the standard library: numpy, and the standard
#: library's ``typing`` of later Pythons.
EVERYWHERE = frozenset({"numpy", "typing_extensions"})

#: The one module (or package, ending in ``/``) that imports each outside library (its top-level
#: import name), from the package's root. numba: the one kernel decorator, which every
#: ``_kernels.py`` module takes from there.
HOMES: dict[str, str] = {
    "numba": "core/_jit.py",
    "msgspec": "core/protocol/",
    "scipy": "core/network.py",
    "ortools": "routing/solver.py",
    "networkx": "adapters/osm.py",
    "osmnx": "adapters/osm.py",
    "zmq": "adapters/zeromq.py",
    "prometheus_client": "adapters/operations.py",
    "libsumo": "adapters/sumo/network.py",
    "sumo": "adapters/sumo/scenario.py",
    "sumolib": "adapters/sumo/scenario.py",
    "matplotlib": "adapters/sumo/report.py",
    "google": "adapters/gtfs_realtime.py",
    "partridge": "adapters/gtfs.py",
}

#: Modules that import a library outside its home today: breaches of the rule, each to move to the
#: library's module. The list may only shrink: a breach that is gone must leave it.
BREACHES: dict[str, frozenset[str]] = {
    "msgspec": frozenset({"adapters/config.py", "adapters/service.py", "adapters/sumo/closed_loop.py",
                          "adapters/zeromq.py", "routing/queue.py"}),
    "scipy": frozenset({"routing/formats.py", "adapters/sumo/report.py", "adapters/sumo/scenario.py"}),
}


@dataclass(frozen=True)
class Import:
    """One import in a module of the package: the module (its path from the package's root), the
    line, and the absolute dotted name imported (``pilotage.core.errors``, ``zmq.auth``)."""

    module: str
    line: int
    name: str


def package_modules(root: Path) -> list[Path]:
    """Every module of the package whose folder is ``root``: the modules at the root (but the
    packaging script, ``setup.py``) and those of each subpackage, a folder with an ``__init__.py``."""
    modules = [path for path in root.glob("*.py") if path.name != "setup.py"]
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and not folder.name.startswith(".") and (folder / "__init__.py").is_file():
            modules += folder.rglob("*.py")
    return sorted(modules)


def part_of(module: str) -> str:
    """The part of the package a module (its path from the root) belongs to: its top folder, or for
    the modules at the root, ``pilotage`` (the ``__init__``) or its own name."""
    path = Path(module)
    if len(path.parts) > 1:
        return path.parts[0]
    return "pilotage" if path.stem == "__init__" else path.stem


def imported_part(name: str) -> str:
    """The part of the package that ``pilotage.X...`` names: X when it is a part, else the package's
    ``__init__`` (``pilotage``, ``pilotage.__version__``)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "pilotage"


def imports(root: Path) -> list[Import]:
    """Every import of every module of the package, relative ones made absolute."""
    found = []
    for path in package_modules(root):
        module = path.relative_to(root).as_posix()
        package = ["pilotage", *Path(module).parts[:-1]]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                found += [Import(module, node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base == "pilotage" or (node.level and not node.module):
                    # ``from pilotage import core``, ``from . import engine``: each name may be a module.
                    found += [Import(module, node.lineno, f"{base}.{alias.name}") for alias in node.names]
                else:
                    found.append(Import(module, node.lineno, base))
    return found


def layer_breaks(root: Path) -> list[str]:
    """The imports by which a part of the package reaches a part it may not (:data:`LAYERS`), and the
    modules of subpackages that have no place there."""
    modules = [path.relative_to(root).as_posix() for path in package_modules(root)]
    breaks = [f"{module}: the subpackage {part_of(module)} has no place in LAYERS" for module in modules
              if part_of(module) not in LAYERS]
    for found in imports(root):
        part = part_of(found.module)
        if part in LAYERS and found.name.split(".")[0] == "pilotage" and imported_part(found.name) not in LAYERS[part]:
            breaks.append(f"{found.module}:{found.line}: {part} imports {found.name}, of "
                          f"{imported_part(found.name)}; {part} may import only {sorted(LAYERS[part])}")
    return sorted(breaks)


def library_breaks(root: Path, breaches: dict[str, frozenset[str]]) -> list[str]:
    """The imports of an outside library by a module other than its home (:data:`HOMES`), but those
    listed in ``breaches``, and the outside libraries with no home."""
    breaks = []
    for found in imports(root):
        library = found.name.split(".")[0]
        if library == "pilotage" or library in sys.stdlib_module_names or library in EVERYWHERE:
            continue
        if library not in HOMES:
            breaks.append(f"{found.module}:{found.line}: imports {library}, an outside library with no module of "
                          f"its own in HOMES")
        elif not at_home(found.module, HOMES[library]) and found.module not in breaches.get(library, frozenset()):
            breaks.append(f"{found.module}:{found.line}: imports {library}, whose one module is {HOMES[library]}; "
                          f"go through that module")
    return sorted(breaks)


def at_home(module: str, home: str) -> bool:
    """Whether ``module`` is ``home``, or inside it when ``home`` is a package (``core/protocol/``)."""
    return module.startswith(home) if home.endswith("/") else module == home


def imports_of_test_modules(root: Path) -> list[str]:
    """The imports of a test module (``test_*``) by a module of the tests or the benchmarks under
    ``root``: what two test modules share belongs in a helper module or a fixture."""
    found = []
    for folder in ("tests", "benchmarks"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    module = "." * node.level + (node.module or "")
                    names = [module, *(module + ("." if node.module else "") + alias.name for alias in node.names)]
                else:
                    continue
                found += [f"{path.relative_to(root).as_posix()}:{node.lineno}: imports {name}" for name in names
                          if name.rsplit(".", 1)[-1].startswith("test_")]
    return found


def test_each_part_imports_only_the_parts_below_it() -> None:
    assert layer_breaks(PACKAGE_ROOT) == []


def test_each_outside_library_is_imported_by_its_one_module() -> None:
    assert library_breaks(PACKAGE_ROOT, BREACHES) == []


def test_every_home_and_every_breach_listed_is_in_the_code() -> None:
    """Each home imports its library, and each breach listed is still there, so the lists say what
    the code does and the breaches only shrink."""
    imported = {(found.module, found.name.split(".")[0]) for found in imports(PACKAGE_ROOT)}
    homeless = [(home, library) for library, home in HOMES.items()
                if not any(at_home(module, home) and name == library for module, name in imported)]
    breaches = [(module, library) for library, modules in BREACHES.items() for module in modules]
    assert homeless + [pair for pair in breaches if pair not in imported] == []


def test_no_test_module_imports_another() -> None:
    assert imports_of_test_modules(PACKAGE_ROOT) == []


def write_package(root: Path, modules: dict[str, str]) -> None:
    """A package in ``root``: each module (path from the root) with its source."""
    for module, source in modules.items():
        path = root / module
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")


def test_the_checks_find_what_is_planted(tmp_path: Path) -> None:
    """A small package where core reaches adapters, one engine another (by a relative import), an
    outside library leaves its module (inside a function), another has no home, and a subpackage
    has no place: each is found, and the imports that keep the rules are not."""
    write_package(tmp_path, {
        "__init__.py": '__version__ = "0"\n',
        "__main__.py": "from pilotage.adapters.cli import main\n",
        "setup.py": "import setuptools\n",
        "core/__init__.py": "",
        "core/_jit.py": "from numba import njit\n",
        "core/network.py": "import math\n\nimport numpy as np\n\nfrom pilotage.adapters import cli\n",
        "signal_priority/__init__.py": "from . import engine\n",
        "signal_priority/engine.py": "from pilotage.core._jit import kernel\n\nfrom ..routing import solver\n\n\n"
                                     "def send() -> None:\n    import zmq\n",
        "routing/__init__.py": "",
        "routing/solver.py": "from ortools.constraint_solver import pywrapcp\n\nfrom pilotage import __version__\n",
        "parking/__init__.py": "import requests\n",
        "adapters/__init__.py": "",
        "adapters/cli.py": "from pilotage import core, parking, routing, signal_priority\n",
        "adapters/zeromq.py": "import zmq\n",
        "dashboard/__init__.py": "",
    })
    assert layer_breaks(tmp_path) == [
        "core/network.py:5: core imports pilotage.adapters, of adapters; core may import only ['core', 'pilotage']",
        "dashboard/__init__.py: the subpackage dashboard has no place in LAYERS",
        "signal_priority/engine.py:3: signal_priority imports pilotage.routing, of routing; signal_priority may "
        "import only ['core', 'pilotage', 'signal_priority']",
    ]
    assert library_breaks(tmp_path, {}) == [
        "parking/__init__.py:1: imports requests, an outside library with no module of its own in HOMES",
        "signal_priority/engine.py:7: imports zmq, whose one module is adapters/zeromq.py; go through that module",
    ]
    assert library_breaks(tmp_path, {"zmq": frozenset({"signal_priority/engine.py"})}) == [
        "parking/__init__.py:1: imports requests, an outside library with no module of its own in HOMES"]


def test_a_test_module_imported_by_another_is_found(tmp_path: Path) -> None:
    """Test modules imported by a test, by a benchmark, relatively or not, are found; helpers are not."""
    write_package(tmp_path, {
        "tests/conftest.py": "from .clock import ManualClock\n",
        "tests/engine/test_decide.py": "from ..signal_plans import crossroads\nfrom .test_plans import bus\n",
        "tests/engine/test_plans.py": "from . import test_decide\n",
        "benchmarks/test_decide.py": "import test_plans\n",
    })
    assert imports_of_test_modules(tmp_path) == [
        "tests/engine/test_decide.py:2: imports .test_plans",
        "tests/engine/test_plans.py:1: imports .test_decide",
        "benchmarks/test_decide.py:1: imports test_plans",
    ]
