"""The report of a SUMO closed-loop comparison: one scenario and seed run with priority and corridors
off (the baseline) and with them on, compared class by class, as a JSON document, a table for a
terminal and two plots.

**Runs.** A *run* is the JSON-able dict one closed-loop run produces: plain dicts, lists, numbers,
strings and booleans, ``None`` where a value does not exist (a mean over no trips). Times are
seconds, distances metres. Its keys:

- ``scenario`` (str), ``seed`` (int), ``priority`` and ``corridors`` (bool: whether the priority
  engine and the corridor engine drove the traffic lights), ``begin_s``, ``end_s``, ``step_s``,
  ``steps``, ``wall_time_s``;
- ``classes``: per vehicle class (``bus``, ``tram``, ``car``, ``emergency``, ``other``; any may be
  missing), over the trips that ended in the run: ``trips``, ``unfinished``, and the means per trip
  ``travel_time_s``, ``time_loss_s``, ``stops`` (SUMO's waiting count) and ``signal_time_loss_s``
  (time lost approaching traffic lights; ``None`` but for bus, tram and emergency);
- ``buses``: ``signal_time_loss_s``, one value per bus trip, and ``schedule``: ``stops`` (stop
  arrivals), ``mean_delay_s``, ``mean_abs_delay_s``, ``on_time_share`` (arrivals from 60 s early to
  300 s late) and ``late_share``;
- ``emergency``: ``trips``, each with ``vehicle``, ``depart_s``, ``travel_time_s`` (``None`` when
  it did not arrive), ``length_m``, ``crossings``, ``planned`` and ``refused``;
- ``priority_requests``: the priority engine's counters ``requests``, ``granted``, ``by_strategy``,
  ``denied``, ``checkouts``, ``errors`` (by code); ``corridor_requests``: the corridor engine's
  ``opened``, ``closed``, ``updates``, ``reroutes``, ``errors``. They have names of their own because
  ``priority`` and ``corridors`` are the switches;
- ``safety``: ``traffic_lights``, ``state_changes``, ``refused_states``, ``violations``, ``by_rule``;
- ``time_space``: ``None``, or the time-space record of one bus line: ``corridor`` (its name),
  ``length_m``, ``signals`` (``traffic_light``, ``distance_m`` along the line, ``green``: the
  ``[start_s, end_s]`` intervals of the line's signal group) and ``vehicles`` (vehicle id to its
  ``[time_s, distance_m]`` points).

**Changes.** Each metric of a compared run is given with the baseline's value, the difference and
the relative change in percent of the baseline's magnitude: ``None`` when either value is ``None``,
and when the baseline is 0 but the run's value is not (0 to 0 is no change). The emergency travel
time is compared over the same vehicles: those that arrived in both runs.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pilotage.core import InvalidInputError

logger = logging.getLogger(__name__)

#: Column label of a run by its switches (priority, corridors).
RUN_LABELS = {(False, False): "off", (True, False): "priority on", (False, True): "corridors on",
              (True, True): "on"}
#: Vehicle classes in the order they are reported; classes not named here follow, by name.
CLASS_ORDER = ("bus", "tram", "emergency", "car", "other")
#: Shown in the table where a value does not exist.
NO_VALUE = "\N{EN DASH}"

_BASELINE = (False, False)
_RUN_COLORS = {"off": "#7f7f7f", "priority on": "#1f77b4", "corridors on": "#ff7f0e", "on": "#2ca02c"}
_GREEN = "#2ca02c"
_RED = "#d62728"
_TRAJECTORY_COLOR = "#1f3f7f"
_PLOT_HINT = "pip install 'pilotage[plot]'"


# -- comparison ---------------------------------------------------------------------------------


def comparison(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Compare each run to the baseline of the same scenario and seed (priority and corridors off).

    Returns a JSON-able dict: ``scenario``, ``seed``, ``baseline`` (its index in ``runs``),
    ``comparisons`` (one per other run, in the order of ``runs``) and ``runs`` (a copy). Each
    comparison has the run's ``index`` and ``label``; ``headline``: the relative changes in percent
    ``bus_signal_time_loss_change_pct``, ``car_time_loss_change_pct`` and
    ``emergency_travel_time_change_pct`` (over the ``emergency_trips_matched`` vehicles that arrived in
    both runs), and the run's safety ``violations``; then ``classes`` (per class, per metric),
    ``bus_schedule``, ``emergency`` (``matched`` and ``travel_time_s``) and ``safety``, each metric as
    ``{"baseline", "run", "difference", "change_pct"}`` (rules in the module docstring).

    Raises:
        InvalidInputError: no run, a run without its ``priority`` and ``corridors`` switches, runs of
            several scenarios or seeds, or not exactly one baseline.
    """
    baseline_index = _baseline_index(runs)
    baseline = runs[baseline_index]
    compared = []
    for index, run in enumerate(runs):
        if index == baseline_index:
            continue
        compared.append(_compare(baseline, run, index))
        _log_comparison(compared[-1], run)
    return {"scenario": baseline.get("scenario"), "seed": baseline.get("seed"), "baseline": baseline_index,
            "comparisons": compared, "runs": copy.deepcopy(list(runs))}


def _compare(baseline: Mapping[str, Any], run: Mapping[str, Any], index: int) -> dict[str, Any]:
    class_names = _class_names([baseline, run])
    classes = {name: _changes(_section(baseline, "classes", name), _section(run, "classes", name))
               for name in class_names}
    matched, (baseline_emergency_s, run_emergency_s) = _matched_emergency_means_s([baseline, run])
    emergency_travel_time_s = _change(baseline_emergency_s, run_emergency_s)
    safety = _changes(_section(baseline, "safety"), _section(run, "safety"))
    return {
        "index": index,
        "label": _label(run),
        "headline": {
            "bus_signal_time_loss_change_pct": classes.get("bus", {}).get("signal_time_loss_s", {}).get("change_pct"),
            "car_time_loss_change_pct": classes.get("car", {}).get("time_loss_s", {}).get("change_pct"),
            "emergency_travel_time_change_pct": emergency_travel_time_s["change_pct"],
            "emergency_trips_matched": matched,
            "violations": _section(run, "safety").get("violations"),
        },
        "classes": classes,
        "bus_schedule": _changes(_section(baseline, "buses", "schedule"), _section(run, "buses", "schedule")),
        "emergency": {"matched": matched, "travel_time_s": emergency_travel_time_s},
        "safety": safety,
    }


def _log_comparison(compared: Mapping[str, Any], run: Mapping[str, Any]) -> None:
    headline = compared["headline"]
    logger.info("%s vs off: bus time loss at signals %s, car time loss %s, emergency travel time %s (%d trips), "
                "%s safety violations", compared["label"],
                _format_change_pct(headline["bus_signal_time_loss_change_pct"]),
                _format_change_pct(headline["car_time_loss_change_pct"]),
                _format_change_pct(headline["emergency_travel_time_change_pct"]), headline["emergency_trips_matched"],
                headline["violations"])
    if headline["violations"]:
        logger.warning("%s: %s safety violations (%s)", compared["label"], headline["violations"],
                       _section(run, "safety").get("by_rule"))


def _format_change_pct(change_pct: float | None) -> str:
    return NO_VALUE if change_pct is None else f"{change_pct:+.1f} %"


def _baseline_index(runs: Sequence[Mapping[str, Any]]) -> int:
    """The index of the one baseline among runs of one scenario and seed (raises as :func:`comparison`)."""
    if not runs:
        raise InvalidInputError("expected runs to compare, got none: pass the runs of one scenario and seed",
                                field="runs")
    switches = [_switches(run, index) for index, run in enumerate(runs)]
    identities = sorted({f"{run.get('scenario')} seed {run.get('seed')}" for run in runs})
    if len(identities) > 1:
        raise InvalidInputError(f"expected runs of one scenario and seed, got {', '.join(identities)}: compare "
                                "runs of the same scenario with the same seed", field="runs")
    baselines = [index for index, run_switches in enumerate(switches) if run_switches == _BASELINE]
    if len(baselines) != 1:
        labels = ", ".join(RUN_LABELS[run_switches] for run_switches in switches)
        raise InvalidInputError(f"expected one baseline run (priority and corridors off), got {len(baselines)} "
                                f"among runs {labels}: run the scenario once with both off, with the same seed",
                                field="runs")
    return baselines[0]


def _switches(run: Mapping[str, Any], index: int) -> tuple[bool, bool]:
    """(priority, corridors) of a run."""
    if not isinstance(run, Mapping):
        raise InvalidInputError(f"expected run {index} to be a dict, got {type(run).__name__}", field="runs")
    for key in ("priority", "corridors"):
        if not isinstance(run.get(key), bool):
            raise InvalidInputError(f"expected run {index} to have {key!r} true or false (whether the engine drove "
                                    f"the lights), got {run.get(key)!r}: the engines' counters go under "
                                    "'priority_requests' and 'corridor_requests'", field=key)
    return run["priority"], run["corridors"]


def _label(run: Mapping[str, Any]) -> str:
    return RUN_LABELS[run["priority"], run["corridors"]]


def _section(run: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    """The dict at ``run[keys[0]][keys[1]]...``, empty where a key is missing or holds ``None``."""
    section: Any = run
    for key in keys:
        section = section.get(key) or {}
    return section


def _class_names(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    present = {name for run in runs for name in _section(run, "classes")}
    return [name for name in CLASS_ORDER if name in present] + sorted(present - set(CLASS_ORDER))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _changes(baseline: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """:func:`_change` of every number (or ``None``) of two flat sections, in the baseline's key order."""
    keys = [*baseline, *(key for key in run if key not in baseline)]
    return {key: _change(baseline.get(key), run.get(key)) for key in keys
            if all(value is None or _is_number(value) for value in (baseline.get(key), run.get(key)))}


def _change(baseline: float | None, value: float | None) -> dict[str, float | None]:
    if baseline is None or value is None:
        return {"baseline": baseline, "run": value, "difference": None, "change_pct": None}
    return {"baseline": baseline, "run": value, "difference": value - baseline,
            "change_pct": _change_pct(baseline, value)}


def _change_pct(baseline: float | None, value: float | None) -> float | None:
    if baseline is None or value is None:
        return None
    if baseline == 0:
        return 0.0 if value == 0 else None
    # Of the baseline's magnitude, so that a rise is positive even for a negative baseline (an early bus).
    return 100.0 * (value - baseline) / abs(baseline)


def _arrived_emergency_s(run: Mapping[str, Any]) -> dict[str, float]:
    """Travel time of each emergency vehicle that arrived, by vehicle id."""
    return {trip["vehicle"]: trip["travel_time_s"] for trip in _section(run, "emergency").get("trips") or []
            if trip.get("travel_time_s") is not None}


def _matched_emergency_means_s(runs: Sequence[Mapping[str, Any]]) -> tuple[int, list[float | None]]:
    """The number of emergency vehicles that arrived in every run, and each run's mean travel time over
    them (``None`` when there are none)."""
    arrived = [_arrived_emergency_s(run) for run in runs]
    matched = set.intersection(*(set(times_s) for times_s in arrived))
    means_s = [sum(times_s[vehicle] for vehicle in matched) / len(matched) if matched else None
               for times_s in arrived]
    return len(matched), means_s


# -- table --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """One metric row of the table: ``value`` of a run, shown as ``unit``; Δ as ``change``."""

    label: str
    value: Callable[[Mapping[str, Any]], float | None]
    unit: str  # "count", "s", "per trip" or "share"
    change: str  # "relative" (percent of the baseline) or "difference" (in the row's unit)


def format_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """The runs as a plain-text table for a terminal, at most 100 columns wide for up to four runs.

    One row per metric (per vehicle class, the bus schedule, emergency trips, the engines, safety,
    the run itself), one column per run (the baseline first), and after each other run a column Δ of
    its change from the baseline: in percent of the baseline for times, trips and stops, as a
    difference for counts of events, delays and shares (in points). There is no Δ when the runs do not
    compare (see :func:`comparison`). The emergency travel time is the mean over the vehicles that
    arrived in every run of the table. :data:`NO_VALUE` (an en dash) marks a value that does not exist.

    Raises:
        InvalidInputError: a run without its ``priority`` and ``corridors`` switches.
    """
    for index, run in enumerate(runs):
        _switches(run, index)
    ordered, compares = _baseline_first(runs)
    seeds = {run.get("seed") for run in ordered}
    headers = [[*_label(run).split(), *([f"seed {run.get('seed')}"] if len(seeds) > 1 else [])] for run in ordered]
    columns: list[list[str]] = [[]]
    with_change = [compares and position > 0 for position in range(len(ordered))]
    for position, header in enumerate(headers):
        columns.append(header)
        if with_change[position]:
            columns.append(["\N{GREEK CAPITAL LETTER DELTA}"])

    lines: list[list[str]] = []
    for section, rows in _table_sections(ordered):
        lines.append([section] + [""] * (len(columns) - 1))
        for row in rows:
            values = [row.value(run) for run in ordered]
            cells = [f"  {row.label}"]
            for position, value in enumerate(values):
                cells.append(_format(value, row.unit))
                if with_change[position]:
                    cells.append(_format_change(values[0], value, row))
            lines.append(cells)
    return _render(_title(ordered), columns, lines)


def _baseline_first(runs: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], bool]:
    """The runs with the baseline first and ``True`` when they compare, else as given and ``False``."""
    try:
        baseline_index = _baseline_index(runs)
    except InvalidInputError as error:
        logger.debug("the runs do not compare: %s", error)
        return list(runs), False
    return [runs[baseline_index], *(run for index, run in enumerate(runs) if index != baseline_index)], True


def _table_sections(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[_Row]]]:
    sections = []
    for name in _class_names(runs):
        rows = [_Row("trips", _getter("classes", name, "trips"), "count", "relative"),
                _Row("unfinished", _getter("classes", name, "unfinished"), "count", "difference"),
                _Row("travel time", _getter("classes", name, "travel_time_s"), "s", "relative"),
                _Row("time loss", _getter("classes", name, "time_loss_s"), "s", "relative"),
                _Row("stops per trip", _getter("classes", name, "stops"), "per trip", "relative")]
        if any(_section(run, "classes", name).get("signal_time_loss_s") is not None for run in runs):
            rows.append(_Row("time lost at signals", _getter("classes", name, "signal_time_loss_s"), "s", "relative"))
        sections.append((name, rows))
    if any(_section(run, "buses", "schedule") for run in runs):
        sections.append(("bus schedule", [
            _Row("stop arrivals", _getter("buses", "schedule", "stops"), "count", "relative"),
            _Row("mean delay", _getter("buses", "schedule", "mean_delay_s"), "s", "difference"),
            _Row("mean |delay|", _getter("buses", "schedule", "mean_abs_delay_s"), "s", "difference"),
            _Row("on time", _getter("buses", "schedule", "on_time_share"), "share", "difference"),
            _Row("late", _getter("buses", "schedule", "late_share"), "share", "difference")]))
    if any(_section(run, "emergency").get("trips") for run in runs):
        matched, means_s = _matched_emergency_means_s(runs)
        mean_s_by_run = {id(run): mean_s for run, mean_s in zip(runs, means_s, strict=True)}
        sections.append(("emergency trips", [
            _Row(f"travel time ({matched} matched)", lambda run: mean_s_by_run[id(run)], "s", "relative"),
            _Row("crossings", _emergency_total("crossings"), "count", "difference"),
            _Row("crossings planned", _emergency_total("planned"), "count", "difference"),
            _Row("crossings refused", _emergency_total("refused"), "count", "difference")]))
    sections += [
        ("priority engine", [_Row("requests", _getter("priority_requests", "requests"), "count", "difference"),
                             _Row("granted", _getter("priority_requests", "granted"), "count", "difference"),
                             _Row("errors", _error_total("priority_requests"), "count", "difference")]),
        ("corridor engine", [_Row("opened", _getter("corridor_requests", "opened"), "count", "difference"),
                             _Row("reroutes", _getter("corridor_requests", "reroutes"), "count", "difference"),
                             _Row("errors", _error_total("corridor_requests"), "count", "difference")]),
        ("safety", [_Row("state changes", _getter("safety", "state_changes"), "count", "difference"),
                    _Row("refused states", _getter("safety", "refused_states"), "count", "difference"),
                    _Row("violations", _getter("safety", "violations"), "count", "difference")]),
        ("run", [_Row("wall time", _getter("wall_time_s"), "s", "relative")]),
    ]
    return sections


def _getter(*keys: str) -> Callable[[Mapping[str, Any]], float | None]:
    return lambda run: _section(run, *keys[:-1]).get(keys[-1])


def _emergency_total(key: str) -> Callable[[Mapping[str, Any]], float | None]:
    return lambda run: sum(trip.get(key) or 0 for trip in _section(run, "emergency").get("trips") or [])


def _error_total(section: str) -> Callable[[Mapping[str, Any]], float | None]:
    def total(run: Mapping[str, Any]) -> float | None:
        errors = _section(run, section).get("errors")
        return None if errors is None else sum(errors.values())

    return total


def _format(value: float | None, unit: str, *, signed: bool = False) -> str:
    """A value in its unit; ``signed`` for a difference (a share's then in points)."""
    if value is None:
        return NO_VALUE
    sign = "+" if signed else ""
    if unit == "count":
        return f"{round(value):{sign},d}"
    if unit == "share":
        return f"{_rounded(100.0 * value, 1):{sign}.1f} {'pp' if signed else '%'}"
    if unit == "s":
        return f"{_rounded(value, 1):{sign},.1f} s"
    return f"{_rounded(value, 2):{sign}.2f}"


def _rounded(value: float, decimals: int) -> float:
    # Adding 0.0 turns the -0.0 of a tiny negative value into 0.0, never shown as "-0.0".
    return round(value, decimals) + 0.0


def _format_change(baseline: float | None, value: float | None, row: _Row) -> str:
    if row.change == "relative":
        change_pct = _change_pct(baseline, value)
        return NO_VALUE if change_pct is None else f"{_rounded(change_pct, 1):+.1f} %"
    if baseline is None or value is None:
        return NO_VALUE
    return _format(value - baseline, row.unit, signed=True)


def _title(runs: Sequence[Mapping[str, Any]]) -> str:
    def distinct(key: str) -> str:
        return ", ".join(dict.fromkeys(str(run.get(key)) for run in runs))

    return (f"SUMO closed loop: {distinct('scenario')}, seed {distinct('seed')}, "
            f"{distinct('begin_s')}-{distinct('end_s')} s simulated in steps of {distinct('step_s')} s")


def _render(title: str, headers: list[list[str]], lines: list[list[str]]) -> str:
    """Labels left-aligned, columns right-aligned under headers of one or more lines (aligned at the bottom)."""
    widths = [max(len(text) for text in [*header, *(line[k] for line in lines)]) for k, header in enumerate(headers)]
    height = max(len(header) for header in headers)
    padded = [[""] * (height - len(header)) + header for header in headers]

    def joined(cells: list[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in
                                                       zip(cells[1:], widths[1:], strict=True))]).rstrip()

    header_lines = [joined([column[k] for column in padded]) for k in range(height)]
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([title, "", *header_lines, rule, *(joined(line) for line in lines)]) + "\n"


# -- files ----------------------------------------------------------------------------------------


def write_report(runs: Sequence[Mapping[str, Any]], out: str | os.PathLike[str]) -> Path:
    """Write the report of ``runs`` to ``out``, a ``.json`` path (its folders created), and its plots.

    The JSON file holds :func:`comparison` when the runs compare, else ``{"runs": [...]}`` (a warning
    says why), so that a long simulation's results are never lost to a mismatch. Next to it, with
    matplotlib (the ``plot`` extra): ``<stem>-bus-time-loss.png``, the distributions (ECDF) of the
    time each bus trip lost approaching traffic lights, one line per run, means dashed; and
    ``<stem>-time-space.png``, the time-space diagram of each run that has one, side by side: bus
    trajectories along the line, each traffic light a bar at its distance, green while the line's
    signal group is green and red otherwise. A plot with nothing to show is not written, and an older
    file of its name is removed so that the folder never mixes two reports. Each file is written
    whole or not at all. Returns the JSON file's path.

    Raises:
        InvalidInputError: ``out`` is not a ``.json`` path, or a run without its ``priority`` and
            ``corridors`` switches.
        OSError: a file cannot be written.
    """
    path = Path(out)
    if path.suffix != ".json":
        raise InvalidInputError(f"expected a report path ending in .json, got {str(out)!r}: name the file "
                                "<name>.json; the plots go next to it", field="out")
    # A run without its switches is the caller's error, not runs that merely do not compare.
    for index, run in enumerate(runs):
        _switches(run, index)
    try:
        document = comparison(runs)
    except InvalidInputError as error:
        logger.warning("the runs are written without comparison: %s", error)
        document = {"runs": copy.deepcopy(list(runs))}
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, lambda file: file.write((json.dumps(document, indent=1) + "\n").encode()))
    logger.info("wrote %s", path)

    bus_plot = path.with_name(f"{path.stem}-bus-time-loss.png")
    time_space_plot = path.with_name(f"{path.stem}-time-space.png")
    # matplotlib is an optional dependency (the plot extra): the JSON report is worth having without it.
    if importlib.util.find_spec("matplotlib") is None:
        logger.warning("no plots: matplotlib is missing (%s)", _PLOT_HINT)
        return path
    ordered, _ = _baseline_first(document["runs"])
    for plot, draw in ((bus_plot, _plot_bus_time_loss), (time_space_plot, _plot_time_space)):
        if draw(ordered, plot):
            logger.info("wrote %s", plot)
        else:
            plot.unlink(missing_ok=True)
    return path


def _write_atomically(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through a temporary file in its folder that then replaces it: a reader never sees
    half a file, and a failed write leaves the previous one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            write(file)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _new_figure(width_in: float, height_in: float) -> Any:
    """A matplotlib figure on the Agg canvas, made without pyplot: no global backend switched, no figure kept."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - optional: the plot extra
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save_png(figure: Any, path: Path) -> None:
    _write_atomically(path, lambda file: figure.savefig(file, format="png", dpi=120))


def _plot_bus_time_loss(runs: Sequence[Mapping[str, Any]], path: Path) -> bool:
    """ECDFs of the time each bus trip lost at signals, one per run; ``False`` when no run has a bus trip."""
    samples_s = [(run, sorted(_section(run, "buses").get("signal_time_loss_s") or [])) for run in runs]
    if not any(values_s for _, values_s in samples_s):
        return False
    figure = _new_figure(8.0, 5.0)
    axes = figure.subplots()
    for run, values_s in samples_s:
        if not values_s:
            continue
        label = _label(run)
        color = _RUN_COLORS[label]
        mean_s = sum(values_s) / len(values_s)
        shares = [(k + 1) / len(values_s) for k in range(len(values_s))]
        axes.step([values_s[0], *values_s], [0.0, *shares], where="post", color=color, linewidth=1.6,
                  label=f"{label}: mean {mean_s:.1f} s over {len(values_s)} trips")
        axes.axvline(mean_s, color=color, linestyle="--", linewidth=1.0)
    axes.set_xlabel("time lost approaching traffic lights per bus trip (s)")
    axes.set_ylabel("share of bus trips losing at most that")
    axes.set_ylim(0.0, 1.0)
    axes.set_xlim(left=0.0)
    axes.grid(alpha=0.3)
    axes.set_title(f"{runs[0].get('scenario')}, seed {runs[0].get('seed')}: bus time loss at traffic lights "
                   "(dashed: means)", loc="left", fontsize=10)
    axes.legend(loc="lower right", fontsize=9)
    _save_png(figure, path)
    return True


def _plot_time_space(runs: Sequence[Mapping[str, Any]], path: Path) -> bool:
    """The time-space diagram of each run that has one, side by side; ``False`` when none has."""
    from matplotlib.lines import Line2D  # noqa: PLC0415 - optional: the plot extra
    from matplotlib.patches import Patch  # noqa: PLC0415

    panels = [run for run in runs if run.get("time_space")]
    if not panels:
        return False
    # One time window for every panel, so that they compare at a glance.
    times_s = [time_s for run in panels for points in run["time_space"]["vehicles"].values() for time_s, _ in points]
    if times_s:
        window_s = (min(times_s), max(times_s))
    else:
        window_s = (min(run["begin_s"] for run in panels), max(run["end_s"] for run in panels))
    figure = _new_figure(1.0 + 6.0 * len(panels), 6.0)
    for axes, run in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        _draw_time_space(axes, run["time_space"], window_s)
        axes.set_title(f"{_label(run)}: {run['time_space']['corridor']}", loc="left", fontsize=10)
    figure.legend(handles=[Line2D([], [], color=_TRAJECTORY_COLOR, label="bus"),
                           Patch(color=_GREEN, label="the line's signal group green"),
                           Patch(color=_RED, label="not green")], loc="outside lower center", ncols=3, fontsize=9)
    figure.suptitle(f"{panels[0].get('scenario')}, seed {panels[0].get('seed')}: time-space diagram",
                    fontsize=11)
    _save_png(figure, path)
    return True


def _draw_time_space(axes: Any, diagram: Mapping[str, Any], window_s: tuple[float, float]) -> None:
    start_s, end_s = window_s
    length_m = diagram["length_m"]
    band_m = length_m / 80.0
    for signal in diagram["signals"]:
        bottom_m = signal["distance_m"] - band_m / 2.0
        axes.broken_barh([(start_s, end_s - start_s)], (bottom_m, band_m), color=_RED, linewidth=0)
        greens_s = [(max(left_s, start_s), min(right_s, end_s)) for left_s, right_s in signal["green"]]
        axes.broken_barh([(left_s, right_s - left_s) for left_s, right_s in greens_s if right_s > left_s],
                         (bottom_m, band_m), color=_GREEN, linewidth=0)
    for points in diagram["vehicles"].values():
        axes.plot([time_s for time_s, _ in points], [distance_m for _, distance_m in points],
                  color=_TRAJECTORY_COLOR, linewidth=0.9)
    axes.set_xlim(start_s, end_s)
    axes.set_ylim(0.0, length_m)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("distance along the line (m)")
    names = axes.twinx()
    names.set_ylim(0.0, length_m)
    names.set_yticks([signal["distance_m"] for signal in diagram["signals"]],
                     [signal["traffic_light"] for signal in diagram["signals"]], fontsize=7)
