"""Packaging for pilotage: the repository's top-level folders install as subpackages of ``pilotage``."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SUBPACKAGES = ("core", "core.protocol", "signal_priority", "routing", "parking", "adapters", "adapters.sumo")


class BuildPy(build_py):
    """Leaves this script out of the ``pilotage`` package, whose folder it shares."""

    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, str, str]]:
        modules = super().find_package_modules(package, package_dir)
        return [module for module in modules if (module[0], module[1]) != ("pilotage", "setup")]

setup(
    name="pilotage",
    version="0.1.0",
    description="Real-time traffic and mobility optimisation core for a city's connected control centre",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    # The repository root is the ``pilotage`` package, so no generic name such as ``core``
    # lands in site-packages.
    package_dir={"pilotage": "."},
    packages=["pilotage", *(f"pilotage.{name}" for name in SUBPACKAGES)],
    package_data={"pilotage": ["py.typed"], "pilotage.adapters": ["data/*.osm.xz", "data/*.md"],
                  "pilotage.parking": ["data/*.csv", "data/*.md"], "pilotage.core.protocol": ["schemas/*.json"]},
    install_requires=[
        "numpy>=1.26,<3",
        "numba>=0.60,<1",
        "scipy>=1.11,<2",
        "networkx>=3.2,<4",
        "osmnx>=2.0,<3",
        "ortools>=9.10,<10",
        "pyzmq>=25,<28",
        "msgspec>=0.18,<1",
        "prometheus-client>=0.20,<1",
        "partridge>=1.1,<2",
        # 3.x needs protobuf 7, which OR-Tools does not take yet.
        "gtfs-realtime-bindings>=2,<3",
    ],
    extras_require={
        # rtree: SUMO's gtfs2pt.py imports it (scenarios built from a GTFS feed).
        "sim": ["eclipse-sumo>=1.20,<2", "libsumo>=1.20,<2", "sumolib>=1.20,<2", "rtree>=1.0,<2"],
        "plot": ["matplotlib>=3.7,<4"],
        "compare": ["pyvrp>=0.9,<1"],
        "test": ["pytest>=8,<10", "pytest-benchmark>=4,<6", "hypothesis>=6.100,<7", "ruff>=0.17,<0.18", "mypy>=2.4,<3",
                 "scipy-stubs>=1.14,<2", "types-networkx>=3.2,<4", "jsonschema>=4.18,<5",
                 "types-jsonschema>=4.18,<5", "types-protobuf>=6.30,<7"],
    },
    entry_points={"console_scripts": ["pilotage = pilotage.adapters.cli:main"]},
    cmdclass={"build_py": BuildPy},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: GIS",
        "Intended Audience :: Science/Research",
    ],
)
