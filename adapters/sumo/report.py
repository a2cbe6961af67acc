"""The report of SUMO closed-loop runs: arms (priority and corridors off, the baseline, and on),
each run with one or more seeds, the arms of a seed paired on the same demand; per arm the mean over
its seeds, and per other arm its change from the baseline with a 95 % confidence interval over the
paired seeds; as a JSON document, a table for a terminal and two plots.

**Runs.** A *run* is the JSON-able dict one closed-loop run produces: plain dicts, lists, numbers,
strings and booleans, ``None`` where a value does not exist (a mean over no trips). Times are
seconds, distances metres. Its keys:

- ``scenario`` (str), ``seed`` (int), ``priority`` and ``corridors`` (bool: whether the priority
  engine and the corridor engine drove the traffic lights), ``begin_s``, ``end_s``, ``step_s``,
  ``steps``, ``wall_time_s``;
- ``classes``: per vehicle class (``bus``, ``tram``, ``car``, ``emergency``, ``other``; any may be
  missing), over the trips that ended in the run: ``trips``, ``unfinished``, and the means per trip
  ``travel_time_s``, ``time_loss_s``, ``stops`` (SUMO's waiting count) and ``signal_time_loss_s``
  (time lost approaching traffic lights; ``None`` but for bus, tram and emergency); and the class's
  ``person_hours_lost`` (its time loss times the persons aboard, summed, in hours);
- ``buses``: ``signal_time_loss_s``, one value per bus trip, and ``schedule``: ``timetable`` (how
  the bus stops were timed: ``"arrival"``, ``"until"``, ``"arrival and until"`` or ``"none"``;
  ``None`` when no bus stop ended), ``stops`` (the stops timed), ``mean_delay_s``,
  ``mean_abs_delay_s``, ``on_time_share`` (delays from 60 s early to 300 s late) and ``late_share``;
- ``person_delay``: ``person_hours_lost`` (every class), ``car_occupancy`` (persons per car),
  ``transit_passengers`` (``"counted"`` by SUMO, or ``"assumed"`` when the scenario models none)
  and ``assumed_transit_occupancy`` (persons per bus and per tram then; ``None`` when counted);
- ``emergency``: ``trips``, each with ``vehicle``, ``depart_s``, ``travel_time_s`` (``None`` when
  it did not arrive), ``length_m``, ``corridor`` (``"opened"``, why it could not open, an error
  code such as ``OFF_NETWORK``, or ``None`` with corridors off), the lights on its corridor's routes
  ``crossings``, of them ``planned`` (held), ``refused`` (by reason in ``refused_by_reason``) and
  ``pending`` (never planned), which add up, ``crossed_in_hold``, and every light it crossed,
  ``lights_crossed``, and ``waited_at_lights``, those it waited at;
- ``priority_requests``: the priority engine's counters ``requests``, ``granted``, ``already_green``
  (granted, the green already there), ``plan_changes`` (granted by changing the plan),
  ``by_strategy``, ``denied``, ``checkouts``, ``errors`` (by code); ``corridor_requests``: the
  corridors ``asked`` for, ``opened`` (``opened_in_part`` of them on the part of the route the
  network holds) and ``not_opened`` (by reason in ``not_opened_by_reason``), which add up,
  ``reopened``, ``closed``, ``updates``, ``reroutes``, the sums of the trips' counts of lights
  (``lights``, ``held``, ``refused``, ``refused_by_reason``, ``pending``, ``crossed_in_hold``), and
  ``errors`` (by code). They have names of their own because ``priority`` and ``corridors`` are the
  switches;
- ``grant_use``: of the last plan-changing grant of each vehicle at each light, ``grants``,
  ``crossed`` (the vehicle crossed the light), ``in_green`` and ``outside_green`` (the crossing was
  within the grant's green, give or take a step, or not), ``not_crossed`` (by the end of the run),
  and ``grants_used_share`` (``in_green`` over ``crossed``; ``None`` when none crossed);
- ``offsets``: how far each plan's first stage starts from its coordinated start, sampled every
  ``sample_every_s``: ``samples``, ``p95_abs_error_s`` and ``max_abs_error_s`` over every light,
  and ``by_light`` (traffic light id to its own ``samples``, ``p95_abs_error_s``,
  ``max_abs_error_s``);
- ``traffic``: ``teleports`` (SUMO's), ``insertion_backlog_max`` and ``insertion_backlog_end``
  (vehicles due but not yet inserted: the most at once, and at the end);
- ``safety``: ``traffic_lights``, ``state_changes``, ``refused_states``, ``violations``, ``by_rule``
  (the states shown, checked as they are sent and over the whole run), and ``plans_checked``,
  ``plans_refused``, ``plan_fallbacks`` (the engine's own monitor: every plan it made, checked
  before it was applied);
- ``time_space``: ``None``, or the time-space record of one bus line: ``corridor`` (its name),
  ``length_m``, ``signals`` (``traffic_light``, ``distance_m`` along the line, ``green``: the
  ``[start_s, end_s]`` intervals of the line's signal group) and ``vehicles`` (vehicle id to its
  ``[time_s, distance_m]`` points);
- ``outputs``: ``None`` (written to a temporary folder), or ``folder`` (where the run wrote every
  output file, the scenario's own included) and ``files`` (their names).

**Arms and seeds.** An *arm* is the runs of one setting of the switches (:data:`RUN_LABELS`). Runs
compare when they are of one scenario, every seed among them has exactly one baseline run
(priority and corridors off), and no arm has two runs of one seed; each other arm's run of a seed
is paired with the baseline's of that seed.

**Changes.** Each metric of a compared arm is given as ``baseline`` and ``run``, the means over the
seeds of the baseline and of the arm (over the seeds where it exists); ``difference``, the mean over
the paired seeds of the arm's value minus the baseline's; ``change_pct``, the mean over the paired
seeds of the change in percent of the baseline's magnitude (none for a seed where either value is
``None``, or where the baseline is 0 but the run's value is not: 0 to 0 is no change);
``difference_ci95`` and ``change_pct_ci95``, their 95 % confidence intervals ``[low, high]`` (Student's
t over the paired seeds' values, :func:`mean_confidence_interval`; ``None`` with fewer than two);
and ``pairs``, the number of seeds paired. With one seed, these are that seed's values. The emergency
travel time is compared over the same vehicles: at each seed, those that arrived in both runs, and,
in a run with corridors on, whose corridor opened: no change is put down to a corridor that did not
open (:func:`corridor_note` says what the corridors did).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import math
import os
import textwrap
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from scipy import stats

from pilotage.core import InvalidInputError

logger = logging.getLogger(__name__)

#: Column label of a run by its switches (priority, corridors).
RUN_LABELS = {(False, False): "off", (True, False): "priority on", (False, True): "corridors on",
              (True, True): "on"}
#: The label of the runs in which SUMO runs the scenario's own control (the engine drives no light).
OWN_CONTROL_LABEL = "own"
#: Vehicle classes in the order they are reported; classes not named here follow, by name.
CLASS_ORDER = ("bus", "tram", "emergency", "car", "other")
#: The longest light name the lights table shows whole (the full name is in the report).
_NAME_WIDTH = 40
#: The width the table's notes are wrapped to.
_NOTE_WIDTH = 100
#: Shown in the table where a value does not exist.
NO_VALUE = "\N{EN DASH}"
#: The confidence level of the intervals of the changes.
CONFIDENCE = 0.95
#: The fewest trips a headline figure rests on, in each of the two arms, summed over the paired
#: seeds: below it the headline gives the count and no percentage. A mean over fewer trips swings
#: by tens of percent with one trip (on a street with few buses, one bus trip once made -86 %).
MIN_HEADLINE_TRIPS = 20

_BASELINE = (False, False)
_BASELINE_LABEL = RUN_LABELS[_BASELINE]
# The flat sections compared metric by metric: their name in a comparison, and where they are in a run.
_SECTIONS = {"bus_schedule": ("buses", "schedule"), "person_delay": ("person_delay",),
             "priority_requests": ("priority_requests",), "grant_use": ("grant_use",), "offsets": ("offsets",),
             "traffic": ("traffic",), "corridor_requests": ("corridor_requests",), "safety": ("safety",)}
_RUN_COLORS = {OWN_CONTROL_LABEL: "#9467bd", "off": "#7f7f7f", "priority on": "#1f77b4", "corridors on": "#ff7f0e",
               "on": "#2ca02c"}
_GREEN = "#2ca02c"
_RED = "#d62728"
_TRAJECTORY_COLOR = "#1f3f7f"
_PLOT_HINT = "pip install 'pilotage[plot]'"


# -- statistics ---------------------------------------------------------------------------------


def mean_confidence_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> list[float] | None:
    """The two-sided ``confidence`` interval ``[low, high]`` of the mean of ``values``, taken as
    independent draws (here the paired seeds' changes): the mean plus and minus Student's t quantile
    with ``n - 1`` degrees of freedom times the sample standard deviation over ``sqrt(n)``. None with
    fewer than two values.

    Raises:
        InvalidInputError: ``confidence`` not strictly between 0 and 1, or a value not finite.
    """
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"expected a confidence strictly between 0 and 1, got {confidence!r}",
                                field="confidence")
    if not all(math.isfinite(value) for value in values):
        raise InvalidInputError(f"expected finite values, got {list(values)!r}", field="values")
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    deviation = math.sqrt(sum((value - mean) ** 2 for value in values) / (n - 1))
    half_width = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * deviation / math.sqrt(n)
    return [mean - half_width, mean + half_width]


def paired_change(baseline: Sequence[float | None], run: Sequence[float | None]) -> dict[str, Any]:
    """The change of one metric from the baseline to a run, seed by seed: ``baseline[i]`` and
    ``run[i]`` are the values at the same seed (``None`` where there is none). Returns ``baseline``,
    ``run``, ``difference``, ``difference_ci95``, ``change_pct``, ``change_pct_ci95`` and ``pairs``,
    as the module docstring says.

    Raises:
        InvalidInputError: sequences of different lengths.
    """
    if len(baseline) != len(run):
        raise InvalidInputError(f"expected one baseline value per run value, got {len(baseline)} and {len(run)}",
                                field="baseline")
    pairs = [(b, r) for b, r in zip(baseline, run, strict=True) if b is not None and r is not None]
    differences = [r - b for b, r in pairs]
    changes_pct = [change for change in (_change_pct(b, r) for b, r in pairs) if change is not None]
    return {"baseline": _mean([b for b in baseline if b is not None]), "run": _mean([r for r in run if r is not None]),
            "difference": _mean(differences), "difference_ci95": mean_confidence_interval(differences),
            "change_pct": _mean(changes_pct), "change_pct_ci95": mean_confidence_interval(changes_pct),
            "pairs": len(pairs)}


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _change_pct(baseline: float | None, value: float | None) -> float | None:
    if baseline is None or value is None:
        return None
    if baseline == 0:
        return 0.0 if value == 0 else None
    # Of the baseline's magnitude, so that a rise is positive even for a negative baseline (an early bus).
    return 100.0 * (value - baseline) / abs(baseline)


# -- arms -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Arm:
    """The runs of one arm: their indices among all runs, and their seeds, in the same order."""

    label: str
    indices: tuple[int, ...]
    seeds: tuple[Any, ...]


def _paired_arms(runs: Sequence[Mapping[str, Any]]) -> list[_Arm]:
    """The arms of runs that compare, the baseline first, each arm's runs in the order of the seeds.

    Raises:
        InvalidInputError: as :func:`comparison`.
    """
    if not runs:
        raise InvalidInputError("expected runs to compare, got none: pass the runs of one scenario", field="runs")
    for index, run in enumerate(runs):
        _switches(run, index)
    scenarios = sorted({str(run.get("scenario")) for run in runs})
    if len(scenarios) > 1:
        raise InvalidInputError(f"expected runs of one scenario, got {', '.join(scenarios)}: compare runs of the "
                                "same scenario", field="runs")
    seeds = list(dict.fromkeys(run.get("seed") for run in runs))
    for seed in seeds:
        labels = [_label(run) for run in runs if run.get("seed") == seed]
        if labels.count(_BASELINE_LABEL) != 1:
            raise InvalidInputError(f"expected one baseline run (priority and corridors off) for seed {seed}, got "
                                    f"{labels.count(_BASELINE_LABEL)} among runs {', '.join(labels)}: run the "
                                    "scenario once with both off, with the same seed", field="runs")
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise InvalidInputError(f"expected one run per arm and seed, got several {', '.join(repeated)} runs of "
                                    f"seed {seed}", field="runs")
    return _arms_by_label(runs, seeds)


def _arms_by_label(runs: Sequence[Mapping[str, Any]], seeds: Sequence[Any]) -> list[_Arm]:
    """One arm per label (the baseline first, then in the order of the runs), its runs by seed."""
    labels = list(dict.fromkeys([_BASELINE_LABEL, *(_label(run) for run in runs)]))
    arms = []
    for label in labels:
        indices = sorted((index for index, run in enumerate(runs) if _label(run) == label),
                         key=lambda index: seeds.index(runs[index].get("seed")))
        if indices:
            arms.append(_Arm(label, tuple(indices), tuple(runs[index].get("seed") for index in indices)))
    return arms


def _any_arms(runs: Sequence[Mapping[str, Any]]) -> tuple[list[_Arm], bool]:
    """The arms of any runs, and whether they compare: the paired arms; else one arm per label when
    no label has two runs of a seed; else one arm per run, in their order."""
    try:
        return _paired_arms(runs), True
    except InvalidInputError as error:
        logger.debug("the runs do not compare: %s", error)
    keys = [(_label(run), run.get("seed")) for run in runs]
    if len(set(keys)) == len(keys):
        return _arms_by_label(runs, list(dict.fromkeys(run.get("seed") for run in runs))), False
    return [_Arm(_label(run), (index,), (run.get("seed"),)) for index, run in enumerate(runs)], False


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
    return OWN_CONTROL_LABEL if run.get("own_control") else RUN_LABELS[run["priority"], run["corridors"]]


# -- comparison -----------------------------------------------------------------------------------


def comparison(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Compare each arm of ``runs`` to the baseline (priority and corridors off), seed by seed.

    Returns a JSON-able dict: ``scenario``, ``seeds`` (in the order of the runs) and ``seed`` (the
    first), ``baseline`` (the index in ``runs`` of the first seed's baseline run), ``arms`` (per arm:
    ``label``, ``seeds``, ``runs``, the indices of its runs, and ``mean``, each flat section's and each
    class's numbers averaged over its seeds), ``comparisons`` (one per arm but the baseline, in the
    order of ``runs``), ``outputs`` (where each run wrote its files: ``label``, ``seed``, ``folder``
    and ``files``, for the runs that kept them) and ``runs`` (a copy). Each comparison has its
    arm's ``label``, ``runs``, ``index`` (its first run) and ``seeds``; ``headline``: the number of
    ``seeds`` paired, the mean relative changes in percent ``bus_signal_time_loss_change_pct``,
    ``tram_signal_time_loss_change_pct``, ``car_time_loss_change_pct`` and
    ``person_hours_lost_change_pct``, each with its ``..._ci95``, its ``..._trips`` (the trips of its
    class, of every class for person-hours, that set off, ended or not, in the arm with fewer, summed
    over the seeds) and ``..._too_few`` (fewer than ``min_trips``, :data:`MIN_HEADLINE_TRIPS`: the
    change and its interval are then ``None``), ``bus_timetable`` (:func:`_timetable`),
    ``emergency_travel_time_change_pct`` (over the ``emergency_trips_matched`` vehicles that arrived
    in both runs of a seed, with their corridor opened where corridors are on: None when none did)
    with its ``..._ci95``, ``emergency_travel_time_note`` (with corridors on, what they did:
    :func:`corridor_note`; else None), and the arm's safety ``violations`` and
    ``refused_states`` over its runs; then ``classes`` (per class, per metric), ``emergency``
    (``matched`` and ``travel_time_s``) and the sections ``bus_schedule``, ``person_delay``,
    ``priority_requests``, ``grant_use``, ``offsets``, ``traffic``, ``corridor_requests`` and
    ``safety``, each metric as :func:`paired_change` gives it.

    Raises:
        InvalidInputError: no run, a run without its ``priority`` and ``corridors`` switches, runs of
            several scenarios, a seed without exactly one baseline run, or an arm with two runs of
            one seed.
    """
    arms = _paired_arms(runs)
    baseline = arms[0]
    compared = []
    for arm in arms[1:]:
        compared.append(_compare(runs, baseline, arm))
        _log_comparison(compared[-1], [runs[index] for index in arm.indices])
    return {"scenario": runs[0].get("scenario"), "seed": baseline.seeds[0], "seeds": list(baseline.seeds),
            "baseline": baseline.indices[0], "arms": [_arm_summary(runs, arm) for arm in arms],
            "comparisons": compared, "outputs": _outputs(runs), "runs": copy.deepcopy(list(runs))}


def _compare(runs: Sequence[Mapping[str, Any]], baseline: _Arm, arm: _Arm) -> dict[str, Any]:
    baseline_of_seed = dict(zip(baseline.seeds, baseline.indices, strict=True))
    base = [runs[baseline_of_seed[seed]] for seed in arm.seeds]
    own = [runs[index] for index in arm.indices]
    classes = {name: _paired_section(base, own, "classes", name) for name in _class_names([*base, *own])}
    matched, base_emergency_s, own_emergency_s = 0, [], []
    for base_run, own_run in zip(base, own, strict=True):
        seed_matched, (base_s, own_s) = _matched_emergency_means_s([base_run, own_run])
        matched += seed_matched
        base_emergency_s.append(base_s)
        own_emergency_s.append(own_s)
    emergency_travel_time_s = paired_change(base_emergency_s, own_emergency_s)
    sections = {name: _paired_section(base, own, *keys) for name, keys in _SECTIONS.items()}
    headline: dict[str, Any] = {"seeds": len(own), "min_trips": MIN_HEADLINE_TRIPS}
    for name, vehicle_class, change in (
            ("bus_signal_time_loss", "bus", classes.get("bus", {}).get("signal_time_loss_s", {})),
            ("tram_signal_time_loss", "tram", classes.get("tram", {}).get("signal_time_loss_s", {})),
            ("car_time_loss", "car", classes.get("car", {}).get("time_loss_s", {})),
            ("person_hours_lost", None, sections["person_delay"].get("person_hours_lost", {}))):
        trips = min(_trips_set_off(base, vehicle_class), _trips_set_off(own, vehicle_class))
        too_few = trips < MIN_HEADLINE_TRIPS
        headline[f"{name}_change_pct"] = None if too_few else change.get("change_pct")
        headline[f"{name}_change_pct_ci95"] = None if too_few else change.get("change_pct_ci95")
        headline[f"{name}_trips"] = trips
        headline[f"{name}_too_few"] = too_few
    headline["bus_timetable"] = _timetable([*base, *own])
    headline["emergency_travel_time_change_pct"] = emergency_travel_time_s["change_pct"]
    headline["emergency_travel_time_change_pct_ci95"] = emergency_travel_time_s["change_pct_ci95"]
    headline["emergency_trips_matched"] = matched
    headline["emergency_travel_time_note"] = corridor_note(base, own)
    for key in ("violations", "refused_states"):
        counts = [_section(run, "safety").get(key) for run in own]
        headline[key] = None if None in counts else sum(counts)
    return {"index": arm.indices[0], "runs": list(arm.indices), "label": arm.label, "seeds": list(arm.seeds),
            "headline": headline, "classes": classes,
            "emergency": {"matched": matched, "travel_time_s": emergency_travel_time_s}, **sections}


def _arm_summary(runs: Sequence[Mapping[str, Any]], arm: _Arm) -> dict[str, Any]:
    """An arm's runs and the mean over them of each number of its classes and flat sections."""
    own = [runs[index] for index in arm.indices]

    def means(*keys: str) -> dict[str, float | None]:
        sections = [_section(run, *keys) for run in own]
        mean = {}
        for key in _keys(sections):
            values = [section.get(key) for section in sections]
            if _numbers(values):
                mean[key] = _mean([value for value in values if value is not None])
        return mean

    return {"label": arm.label, "seeds": list(arm.seeds), "runs": list(arm.indices),
            "mean": {"classes": {name: means("classes", name) for name in _class_names(own)},
                     **{name: means(*keys) for name, keys in _SECTIONS.items()}}}


def _outputs(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"label": _label(run), "seed": run.get("seed"), **run["outputs"]} for run in runs if run.get("outputs")]


def _trips_set_off(runs: Sequence[Mapping[str, Any]], vehicle_class: str | None) -> int:
    """The trips of ``vehicle_class`` (of every class when None) that set off in ``runs``, ended or
    not: those the class's means are over."""
    return sum(int((counts or {}).get("trips") or 0) + int((counts or {}).get("unfinished") or 0)
               for run in runs for name, counts in _section(run, "classes").items() if vehicle_class in (None, name))


def _timetable(runs: Sequence[Mapping[str, Any]]) -> str | None:
    """How the runs' bus stops were timed (``arrival``, ``until``, ``arrival and until`` or ``none``;
    the runs' different answers joined by commas); None when no run says."""
    timetables = dict.fromkeys(timetable for run in runs
                               if (timetable := _section(run, "buses", "schedule").get("timetable")) is not None)
    return ", ".join(timetables) or None


#: The headline's relative changes, as the line logged names them.
_HEADLINE_FIGURES = (("bus time loss at signals", "bus_signal_time_loss"),
                     ("tram time loss at signals", "tram_signal_time_loss"), ("car time loss", "car_time_loss"),
                     ("person-hours lost", "person_hours_lost"))


def _log_comparison(compared: Mapping[str, Any], own: Sequence[Mapping[str, Any]]) -> None:
    """Log an arm's headline: each relative change with its confidence interval (or, once, that one
    seed gives none) and the trips it rests on, or why it has no percentage; the emergency travel
    time; the safety violations, and a warning when there are any."""
    headline = compared["headline"]
    seeds = headline["seeds"]
    note = headline.get("emergency_travel_time_note")
    logger.info("%s vs off over %d seed%s: %s, emergency travel time %s (%d trips%s), %s safety violations",
                compared["label"], seeds, "s" if seeds > 1 else " (no confidence interval with one seed)",
                ", ".join(_headline_figure(label, headline, name) for label, name in _HEADLINE_FIGURES),
                _format_change_pct(headline["emergency_travel_time_change_pct"],
                                   headline["emergency_travel_time_change_pct_ci95"]),
                headline["emergency_trips_matched"], f"; {note}" if note else "", headline["violations"])
    if headline["violations"]:
        logger.warning("%s: %s safety violations (%s)", compared["label"], headline["violations"],
                       [_section(run, "safety").get("by_rule") for run in own])


def _headline_figure(label: str, headline: Mapping[str, Any], name: str) -> str:
    """One relative change of a headline, named ``label``: with its interval and its trips, or the
    trips alone when they are too few for a percentage."""
    trips = headline[f"{name}_trips"]
    if not trips:
        return f"{label}: no trips"
    if headline[f"{name}_too_few"]:
        return f"{label}: {trips:,d} trips, too few for a percentage (under {headline['min_trips']})"
    change = _format_change_pct(headline[f"{name}_change_pct"], headline[f"{name}_change_pct_ci95"])
    return f"{label} {change} over {trips:,d} trips"


def _format_change_pct(change_pct: float | None, interval: Sequence[float] | None = None) -> str:
    """A change in percent, with its confidence interval when there is one."""
    if change_pct is None:
        return NO_VALUE
    if interval is None:
        return f"{_rounded(change_pct, 1):+.1f} %"
    low, high = (_rounded(bound, 1) for bound in interval)
    return f"{_rounded(change_pct, 1):+.1f} % [{low:+.1f}, {high:+.1f}]"


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


def _numbers(values: Sequence[object]) -> bool:
    """Whether every value is a number or ``None``: a metric, not a nested record or a label."""
    return all(value is None or _is_number(value) for value in values)


def _keys(sections: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys of several sections, in the order they first appear."""
    return list(dict.fromkeys(key for section in sections for key in section))


def _paired_section(base: Sequence[Mapping[str, Any]], own: Sequence[Mapping[str, Any]],
                    *keys: str) -> dict[str, dict[str, Any]]:
    """:func:`paired_change` of every number (or ``None``) of a flat section, the baseline's keys first."""
    base_sections = [_section(run, *keys) for run in base]
    own_sections = [_section(run, *keys) for run in own]
    changes = {}
    for key in _keys([*base_sections, *own_sections]):
        base_values = [section.get(key) for section in base_sections]
        own_values = [section.get(key) for section in own_sections]
        if _numbers([*base_values, *own_values]):
            changes[key] = paired_change(base_values, own_values)
    return changes


def _arrived_emergency_s(run: Mapping[str, Any]) -> dict[str, float]:
    """Travel time of each emergency vehicle that arrived, by vehicle id; in a run with corridors
    on, of those whose corridor opened (a trip that does not say counts as one)."""
    return {trip["vehicle"]: trip["travel_time_s"] for trip in _section(run, "emergency").get("trips") or []
            if trip.get("travel_time_s") is not None
            and (not run.get("corridors") or trip.get("corridor", "opened") == "opened")}


def corridor_note(base: Sequence[Mapping[str, Any]], own: Sequence[Mapping[str, Any]]) -> str | None:
    """What the corridors of the runs ``own`` did, from their counts (``corridor_requests``, and
    the trips' lights crossed and waited at, against those of the runs ``base`` without corridors):
    why none opened, or how many opened, the lights on their routes held, refused (by reason) and
    never planned, those crossed in their hold, and the lights emergency vehicles waited at. None
    when no run of ``own`` has corridors on."""
    if not any(run.get("corridors") for run in own):
        return None
    counts: Counter[str] = Counter()
    not_opened: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for run in own:
        requests = _section(run, "corridor_requests")
        counts.update({key: value for key, value in requests.items() if _is_number(value)})
        not_opened.update(requests.get("not_opened_by_reason") or {})
        refused.update(requests.get("refused_by_reason") or {})
    # Runs of an older report count no corridor asked for, nor the lights: those opened were asked.
    asked = max(counts["asked"], counts["opened"] + sum(not_opened.values()))
    if not asked:
        return "no emergency vehicle asked for a corridor"
    if not counts["opened"]:
        return f"no corridor opened: {_tally(not_opened)}"
    notes = [f"{counts['opened']} of {asked} corridors opened"
             + (f" (not opened: {_tally(not_opened)})" if not_opened else "")]
    if "lights" in counts:
        notes += [f"{counts['held']} of {counts['lights']} lights on their routes held"
                  + (f", {counts['refused']} refused ({_tally(refused)})" if counts["refused"] else "")
                  + (f", {counts['pending']} never planned" if counts["pending"] else ""),
                  f"{counts['crossed_in_hold']} crossed in their hold"]
    waited, crossed = _emergency_total("waited_at_lights"), _emergency_total("lights_crossed")
    own_crossed, base_crossed = sum(crossed(run) or 0 for run in own), sum(crossed(run) or 0 for run in base)
    if own_crossed:
        notes.append(f"emergency vehicles waited at {sum(waited(run) or 0 for run in own):g} of {own_crossed:g} "
                     "lights crossed" + (f" ({sum(waited(run) or 0 for run in base):g} of {base_crossed:g} without "
                                         "corridors)" if base_crossed else ""))
    return "; ".join(notes)


def _tally(counts: Mapping[str, int]) -> str:
    """``counts`` by reason as ``"4 OFF_NETWORK, 1 NO_ROUTE"``, the most frequent first."""
    return ", ".join(f"{count} {reason}" for reason, count in Counter(counts).most_common())


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
    unit: str  # "count", "s", "h", "per trip" or "share"
    change: str  # "relative" (percent of the baseline) or "difference" (in the row's unit)
    # A mean over the trips of this class: its change needs MIN_HEADLINE_TRIPS of them.
    per_trip_of: str | None = None


def format_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """The runs as a plain-text table for a terminal, at most 100 columns wide for two arms.

    One row per metric (per vehicle class, the bus schedule, person delay, emergency trips, the
    engines and their grants, the plans' offsets, the traffic SUMO could not place, safety, the run
    itself), one column per arm (the baseline first) with the mean over its seeds, and when the runs
    compare (see :func:`comparison`), after each other arm a column Δ, its mean change from the
    baseline over the paired seeds, and a column of the 95 % confidence interval of that change
    (:data:`NO_VALUE` with one seed, as the footer then says). Δ is in percent of the baseline for
    times, trips, stops and person-hours, a difference for counts of events, delays, offset errors
    and shares (in points).
    Runs that do not compare get a column per arm, or per run when an arm has two runs of a seed. The
    emergency travel time is the mean over the vehicles that arrived in every run of a seed.
    :data:`NO_VALUE` (an en dash) marks a value that does not exist.

    Raises:
        InvalidInputError: a run without its ``priority`` and ``corridors`` switches.
    """
    for index, run in enumerate(runs):
        _switches(run, index)
    arms, compares = _any_arms(runs)
    seed_sets = {arm.seeds for arm in arms}
    columns: list[list[str]] = [[]]
    for position, arm in enumerate(arms):
        header = arm.label.split()
        if len(seed_sets) > 1:
            header.append(f"seed {arm.seeds[0]}" if len(arm.seeds) == 1 else f"{len(arm.seeds)} seeds")
        columns.append(header)
        if compares and position > 0:
            columns += [["\N{GREEK CAPITAL LETTER DELTA}"], [f"{round(100 * CONFIDENCE)} % CI"]]
    baseline_of_seed = dict(zip(arms[0].seeds, arms[0].indices, strict=True)) if compares else {}
    lines: list[list[str]] = []
    too_few = False
    for section, rows in _table_sections(runs):
        lines.append([section] + [""] * (len(columns) - 1))
        for row in rows:
            cells = [f"  {row.label}"]
            for position, arm in enumerate(arms):
                values = [row.value(runs[index]) for index in arm.indices]
                cells.append(_format(_mean([value for value in values if value is not None]), row.unit))
                if compares and position > 0:
                    base_runs = [runs[baseline_of_seed[seed]] for seed in arm.seeds]
                    trips = None if row.per_trip_of is None else min(
                        _trips_set_off(base_runs, row.per_trip_of),
                        _trips_set_off([runs[index] for index in arm.indices], row.per_trip_of))
                    if trips is not None and trips < MIN_HEADLINE_TRIPS:
                        cells += [f"{trips} trips", NO_VALUE]
                        too_few = True
                        continue
                    cells += _format_change([row.value(run) for run in base_runs], values, row)
            lines.append(cells)
    footer = ("\N{GREEK CAPITAL LETTER DELTA}: the mean change from off over the paired seeds; CI: Student's t over "
              "them" if compares and len(arms) > 1 else "")
    if footer and any(len(arm.seeds) == 1 for arm in arms[1:]):
        footer += f", none with one seed ({NO_VALUE})"
    notes = _corridor_notes(runs, arms, baseline_of_seed)
    sample = f"a class with under {MIN_HEADLINE_TRIPS} trips in an arm: its trips, not a change" if too_few else ""
    footer = "\n".join(text for text in (*notes, sample, footer) if text)
    return _render(_title(runs), columns, lines, footer)


def _corridor_rows(runs: Sequence[Mapping[str, Any]]) -> list[_Row]:
    """The corridor engine's rows: corridors asked for, opened (in part: on the part of the route
    the network holds) and not opened by reason; the lights on their routes held, refused by reason,
    never planned, and crossed in their hold; corridors reopened (the engine had lost them),
    reroutes, and the error replies."""
    def count(key: str, reason: str | None = None) -> Callable[[Mapping[str, Any]], float | None]:
        def value(run: Mapping[str, Any]) -> float | None:
            requests = _section(run, "corridor_requests")
            if reason is None:
                return requests.get(key)
            return None if key not in requests else (requests[key] or {}).get(reason, 0)
        return value

    def reasons(key: str) -> list[str]:
        return sorted({reason for run in runs for reason in _section(run, "corridor_requests").get(key) or {}})

    return [_Row("asked", count("asked"), "count", "difference"),
            _Row("opened", count("opened"), "count", "difference"),
            _Row("opened in part", count("opened_in_part"), "count", "difference"),
            *(_Row(f"not opened: {reason}", count("not_opened_by_reason", reason), "count", "difference")
              for reason in reasons("not_opened_by_reason")),
            _Row("lights on their routes", count("lights"), "count", "difference"),
            _Row("held", count("held"), "count", "difference"),
            *(_Row(f"refused: {reason}", count("refused_by_reason", reason), "count", "difference")
              for reason in reasons("refused_by_reason")),
            _Row("never planned", count("pending"), "count", "difference"),
            _Row("crossed in their hold", count("crossed_in_hold"), "count", "difference"),
            _Row("reopened", count("reopened"), "count", "difference"),
            _Row("reroutes", count("reroutes"), "count", "difference"),
            _Row("errors", _error_total("corridor_requests"), "count", "difference")]


def _corridor_notes(runs: Sequence[Mapping[str, Any]], arms: Sequence[_Arm],
                    baseline_of_seed: Mapping[Any, int]) -> list[str]:
    """What the corridors of each arm with corridors on did (:func:`corridor_note`, against the
    baseline's runs of its seeds when the runs compare), one wrapped paragraph per arm."""
    notes = []
    for arm in arms:
        own = [runs[index] for index in arm.indices]
        base = [runs[baseline_of_seed[seed]] for seed in arm.seeds if seed in baseline_of_seed]
        note = corridor_note(base, own)
        if note is not None:
            notes.append(textwrap.fill(f"{arm.label}: {note}", width=_NOTE_WIDTH, subsequent_indent="  "))
    return notes


def _table_sections(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[_Row]]]:
    def present(*keys: str) -> bool:
        return any(_section(run, *keys) for run in runs)

    sections = []
    for name in _class_names(runs):
        rows = [_Row("trips", _getter("classes", name, "trips"), "count", "relative"),
                _Row("unfinished", _getter("classes", name, "unfinished"), "count", "difference"),
                _Row("travel time", _getter("classes", name, "travel_time_s"), "s", "relative", name),
                _Row("time loss", _getter("classes", name, "time_loss_s"), "s", "relative", name),
                _Row("stops per trip", _getter("classes", name, "stops"), "per trip", "relative", name)]
        if any(_section(run, "classes", name).get("signal_time_loss_s") is not None for run in runs):
            rows.append(_Row("time lost at signals", _getter("classes", name, "signal_time_loss_s"), "s", "relative",
                             name))
        if any(_section(run, "classes", name).get("person_hours_lost") is not None for run in runs):
            rows.append(_Row("person-hours lost", _getter("classes", name, "person_hours_lost"), "h", "relative"))
        sections.append((name, rows))
    if present("buses", "schedule"):
        sections.append(("bus schedule", [
            _Row(_timed_stops_label(runs), _getter("buses", "schedule", "stops"), "count", "relative"),
            _Row("mean delay", _getter("buses", "schedule", "mean_delay_s"), "s", "difference"),
            _Row("mean |delay|", _getter("buses", "schedule", "mean_abs_delay_s"), "s", "difference"),
            _Row("on time", _getter("buses", "schedule", "on_time_share"), "share", "difference"),
            _Row("late", _getter("buses", "schedule", "late_share"), "share", "difference")]))
    if present("person_delay"):
        kinds = (_section(run, "person_delay").get("transit_passengers") for run in runs)
        passengers = "/".join(sorted({kind for kind in kinds if kind is not None}))
        label = f"person-hours lost (bus passengers {passengers})" if passengers else "person-hours lost"
        sections.append(("person delay", [_Row(label, _getter("person_delay", "person_hours_lost"), "h", "relative")]))
    if any(_section(run, "emergency").get("trips") for run in runs):
        matched, mean_s_by_run = _matched_emergency_by_run(runs)
        sections.append(("emergency trips", [
            _Row(f"travel time ({matched} matched)", lambda run: mean_s_by_run[id(run)], "s", "relative"),
            _Row("lights crossed", _emergency_total("lights_crossed"), "count", "difference"),
            _Row("waited at", _emergency_total("waited_at_lights"), "count", "difference")]))
    sections.append(("priority engine", [
        _Row("requests", _getter("priority_requests", "requests"), "count", "difference"),
        _Row("granted", _getter("priority_requests", "granted"), "count", "difference"),
        *([_Row("plan changes", _getter("priority_requests", "plan_changes"), "count", "difference"),
           _Row("already green", _getter("priority_requests", "already_green"), "count", "difference")]
          if any("plan_changes" in _section(run, "priority_requests") for run in runs) else []),
        _Row("errors", _error_total("priority_requests"), "count", "difference")]))
    if present("grant_use"):
        sections.append(("plan-changing grants", [
            _Row("grants", _getter("grant_use", "grants"), "count", "difference"),
            _Row("crossed in their green", _getter("grant_use", "grants_used_share"), "share", "difference"),
            _Row("crossed outside it", _getter("grant_use", "outside_green"), "count", "difference"),
            _Row("not crossed by the end", _getter("grant_use", "not_crossed"), "count", "difference")]))
    if present("offsets"):
        sections.append(("offset error", [
            _Row("95th percentile", _getter("offsets", "p95_abs_error_s"), "s", "difference"),
            _Row("largest", _getter("offsets", "max_abs_error_s"), "s", "difference")]))
    sections.append(("corridor engine", _corridor_rows(runs)))
    if present("traffic"):
        sections.append(("traffic", [
            _Row("teleports", _getter("traffic", "teleports"), "count", "difference"),
            _Row("waiting to enter, most", _getter("traffic", "insertion_backlog_max"), "count", "difference"),
            _Row("waiting to enter, at end", _getter("traffic", "insertion_backlog_end"), "count", "difference")]))
    sections += [
        ("safety", [_Row("state changes", _getter("safety", "state_changes"), "count", "difference"),
                    _Row("refused states", _getter("safety", "refused_states"), "count", "difference"),
                    _Row("violations", _getter("safety", "violations"), "count", "difference"),
                    _Row("plans checked", _getter("safety", "plans_checked"), "count", "difference"),
                    _Row("plans refused", _getter("safety", "plans_refused"), "count", "difference"),
                    _Row("plan fallbacks", _getter("safety", "plan_fallbacks"), "count", "difference")]),
        ("run", [_Row("wall time", _getter("wall_time_s"), "s", "relative")]),
    ]
    return sections


def _timed_stops_label(runs: Sequence[Mapping[str, Any]]) -> str:
    """The label of the bus stops timed, saying by what (:func:`_timetable`), and that lateness is
    unknown when by nothing."""
    timetable = _timetable(runs)
    if timetable is None:
        return "timed stops"
    return f"timed stops ({'none: lateness unknown' if timetable == 'none' else timetable})"


def _matched_emergency_by_run(runs: Sequence[Mapping[str, Any]]) -> tuple[int, dict[int, float | None]]:
    """The emergency vehicles that arrived in every run of their seed, over all seeds, and each
    run's mean travel time over those of its seed (by the run's ``id``)."""
    matched, mean_s_by_run = 0, {}
    for seed in dict.fromkeys(run.get("seed") for run in runs):
        same_seed = [run for run in runs if run.get("seed") == seed]
        seed_matched, means_s = _matched_emergency_means_s(same_seed)
        matched += seed_matched
        mean_s_by_run.update({id(run): mean_s for run, mean_s in zip(same_seed, means_s, strict=True)})
    return matched, mean_s_by_run


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
    number, suffix = _number(value, unit, signed=signed)
    return f"{number} {suffix}" if suffix else number


def _number(value: float, unit: str, *, signed: bool) -> tuple[str, str]:
    """A value's digits in its unit, and the unit's symbol ("" for counts and values per trip)."""
    sign = "+" if signed else ""
    if unit == "count":
        return f"{round(value):{sign},d}", ""
    if unit == "share":
        return f"{_rounded(100.0 * value, 1):{sign}.1f}", "pp" if signed else "%"
    if unit in ("s", "h"):
        return f"{_rounded(value, 1):{sign},.1f}", unit
    return f"{_rounded(value, 2):{sign}.2f}", ""


def _rounded(value: float, decimals: int) -> float:
    # Adding 0.0 turns the -0.0 of a tiny negative value into 0.0, never shown as "-0.0".
    return round(value, decimals) + 0.0


def _format_change(baseline: Sequence[float | None], values: Sequence[float | None], row: _Row) -> list[str]:
    """The cells Δ and its confidence interval of one row, from the values of the paired seeds."""
    change = paired_change(baseline, values)
    if row.change == "relative":
        mean_pct, interval = change["change_pct"], change["change_pct_ci95"]
        if mean_pct is None:
            return [NO_VALUE, NO_VALUE]
        cell = f"{_rounded(mean_pct, 1):+.1f} %"
        if interval is None:
            return [cell, NO_VALUE]
        low, high = (f"{_rounded(bound, 1):+.1f}" for bound in interval)
        return [cell, f"[{low}, {high}] %"]
    difference, interval = change["difference"], change["difference_ci95"]
    if difference is None:
        return [NO_VALUE, NO_VALUE]
    cell = _format(difference, row.unit, signed=True)
    if interval is None:
        return [cell, NO_VALUE]
    (low, suffix), (high, _) = (_number(bound, row.unit, signed=True) for bound in interval)
    return [cell, f"[{low}, {high}] {suffix}".rstrip()]


def _title(runs: Sequence[Mapping[str, Any]]) -> str:
    def distinct(key: str) -> str:
        return ", ".join(dict.fromkeys(str(run.get(key)) for run in runs))

    seeds = dict.fromkeys(run.get("seed") for run in runs)
    return (f"SUMO closed loop: {distinct('scenario')}, {'seeds' if len(seeds) > 1 else 'seed'} {distinct('seed')}, "
            f"{distinct('begin_s')}-{distinct('end_s')} s simulated in steps of {distinct('step_s')} s")


def _render(title: str, headers: list[list[str]], lines: list[list[str]], footer: str = "") -> str:
    """Labels left-aligned, columns right-aligned under headers of one or more lines (aligned at the
    bottom); the footer, if any, after the rows."""
    widths = [max(len(text) for text in [*header, *(line[k] for line in lines)]) for k, header in enumerate(headers)]
    height = max(len(header) for header in headers)
    padded = [[""] * (height - len(header)) + header for header in headers]

    def joined(cells: list[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in
                                                       zip(cells[1:], widths[1:], strict=True))]).rstrip()

    header_lines = [joined([column[k] for column in padded]) for k in range(height)]
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([title, "", *header_lines, rule, *(joined(line) for line in lines),
                      *([rule, footer] if footer else [])]) + "\n"


# -- files ----------------------------------------------------------------------------------------


def write_report(runs: Sequence[Mapping[str, Any]], out: str | os.PathLike[str]) -> Path:
    """Write the report of ``runs`` to ``out``, a ``.json`` path (its folders created), and its plots.

    The JSON file holds :func:`comparison` when the runs compare, else ``{"arms", "outputs",
    "runs"}`` as :func:`comparison` gives them (a warning says why), so that a long simulation's
    results are never lost to a mismatch. Next to it, with matplotlib (the ``plot`` extra):
    ``<stem>-bus-time-loss.png``, the distributions (ECDF) of the time each bus trip lost
    approaching traffic lights, one line per arm over all its seeds, means dashed; and
    ``<stem>-time-space.png``, the time-space diagram of each arm's run of the first seed, side by
    side: bus trajectories along the line, each traffic light a bar at its distance, green while the
    line's signal group is green and red otherwise. A plot with nothing to show is not written, and an older
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
        arms, _ = _any_arms(runs)
        document = {"arms": [_arm_summary(runs, arm) for arm in arms], "outputs": _outputs(runs),
                    "runs": copy.deepcopy(list(runs))}
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, lambda file: file.write((json.dumps(document, indent=1) + "\n").encode()))
    logger.info("wrote %s", path)

    bus_plot = path.with_name(f"{path.stem}-bus-time-loss.png")
    time_space_plot = path.with_name(f"{path.stem}-time-space.png")
    # matplotlib is an optional dependency (the plot extra): the JSON report is worth having without it.
    if importlib.util.find_spec("matplotlib") is None:
        logger.warning("no plots: matplotlib is missing (%s)", _PLOT_HINT)
        return path
    arms, _ = _any_arms(document["runs"])
    for plot, draw in ((bus_plot, _plot_bus_time_loss), (time_space_plot, _plot_time_space)):
        if draw(document["runs"], arms, plot):
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


def _plot_bus_time_loss(runs: Sequence[Mapping[str, Any]], arms: Sequence[_Arm], path: Path) -> bool:
    """ECDFs of the time each bus trip lost at signals, one per arm over all its seeds; ``False``
    when no run has a bus trip."""
    samples_s = [(arm, sorted(value_s for index in arm.indices
                              for value_s in _section(runs[index], "buses").get("signal_time_loss_s") or []))
                 for arm in arms]
    if not any(values_s for _, values_s in samples_s):
        return False
    figure = _new_figure(8.0, 5.0)
    axes = figure.subplots()
    for arm, values_s in samples_s:
        if not values_s:
            continue
        color = _RUN_COLORS[arm.label]
        mean_s = sum(values_s) / len(values_s)
        shares = [(k + 1) / len(values_s) for k in range(len(values_s))]
        seeds = f", {len(arm.seeds)} seeds" if len(arm.seeds) > 1 else ""
        axes.step([values_s[0], *values_s], [0.0, *shares], where="post", color=color, linewidth=1.6,
                  label=f"{arm.label}: mean {mean_s:.1f} s over {len(values_s)} trips{seeds}")
        axes.axvline(mean_s, color=color, linestyle="--", linewidth=1.0)
    axes.set_xlabel("time lost approaching traffic lights per bus trip (s)")
    axes.set_ylabel("share of bus trips losing at most that")
    axes.set_ylim(0.0, 1.0)
    axes.set_xlim(left=0.0)
    axes.grid(alpha=0.3)
    seeds = ", ".join(dict.fromkeys(str(runs[index].get("seed")) for arm in arms for index in arm.indices))
    axes.set_title(f"{runs[0].get('scenario')}, {'seeds' if ',' in seeds else 'seed'} {seeds}: bus time loss at "
                   "traffic lights (dashed: means)", loc="left", fontsize=10)
    axes.legend(loc="lower right", fontsize=9)
    _save_png(figure, path)
    return True


def _plot_time_space(runs: Sequence[Mapping[str, Any]], arms: Sequence[_Arm], path: Path) -> bool:
    """The time-space diagram of each arm's run of the first seed that has one, side by side;
    ``False`` when none has."""
    from matplotlib.lines import Line2D  # noqa: PLC0415 - optional: the plot extra
    from matplotlib.patches import Patch  # noqa: PLC0415

    first_seed = runs[arms[0].indices[0]].get("seed") if arms else None
    panels = [runs[index] for arm in arms for index, seed in zip(arm.indices, arm.seeds, strict=True)
              if seed == first_seed and runs[index].get("time_space")]
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


# -- lights ---------------------------------------------------------------------------------------


def left_to_sumo(runs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The traffic lights no run's engine drove, each with why (SUMO ran its program)."""
    left: dict[str, str] = {}
    driven = set()
    for run in runs:
        for light in run.get("lights") or []:
            if light["driven"]:
                driven.add(light["traffic_light"])
            elif not run.get("own_control") and light.get("reason"):
                left.setdefault(light["traffic_light"], light["reason"])
    return {name: reason for name, reason in left.items() if name not in driven}


def format_lights(runs: Sequence[Mapping[str, Any]]) -> str:
    """Every traffic light of the scenario, as a plain-text table, the driven ones first: its control
    in the scenario, whether the engine drove it, per arm the stopped delay per vehicle on its
    approaches (mean over the arm's seeds), the plans its actuation re-timed (mean over the runs the
    engine drove), and over the runs of the arms with priority the grants and the denials by
    reason (their count; the reasons over all lights below, each light's in the report); then each
    light left to SUMO with why. Empty when the runs measured no light.

    Raises:
        InvalidInputError: a run without its ``priority`` and ``corridors`` switches.
    """
    for index, run in enumerate(runs):
        _switches(run, index)
    arms, _ = _any_arms(runs)
    by_run = [{light["traffic_light"]: light for light in run.get("lights") or []} for run in runs]
    driving = [by_run[index] for arm in arms if arm.label != OWN_CONTROL_LABEL for index in arm.indices]
    # The lights driven first, then those left to SUMO, each by name.
    lights = sorted(by_run[0], key=lambda name: (not any(run.get(name, {}).get("driven") for run in driving), name))
    if not lights:
        return ""
    with_priority = [by_run[index] for index, run in enumerate(runs) if run.get("priority")]
    headers = [["light"], ["control"], ["driven"], *([arm.label] for arm in arms), ["re-timed"], ["grants"],
               ["denied"]]
    lines, left = [], []
    all_denied: Counter[str] = Counter()
    for name in lights:
        driven = any(run.get(name, {}).get("driven") for run in driving)
        cells = [name if len(name) <= _NAME_WIDTH else name[:_NAME_WIDTH - 1] + "\N{HORIZONTAL ELLIPSIS}",
                 by_run[0][name]["control"], "yes" if driven else "no"]
        for arm in arms:
            delays = [by_run[index].get(name, {}).get("stopped_delay_per_vehicle_s") for index in arm.indices]
            cells.append(_format(_mean([delay for delay in delays if delay is not None]), "s"))
        cells.append(_format(_mean([run.get(name, {}).get("actuations", 0) for run in driving]), "")
                     if driving else NO_VALUE)
        denied: Counter[str] = Counter()
        for run in with_priority:
            denied.update(run.get(name, {}).get("denied", {}))
        cells.append(str(sum(run.get(name, {}).get("grants", 0) for run in with_priority)) if with_priority
                     else NO_VALUE)
        cells.append(str(denied.total()) if with_priority else NO_VALUE)
        all_denied.update(denied)
        lines.append(cells)
        reason = next((run[name]["reason"] for run in driving if run.get(name, {}).get("reason")), None)
        if not driven and reason:
            left.append(f"  {name}: {reason}")
    driven_count = sum(line[2] == "yes" for line in lines)
    title = (f"traffic lights: {driven_count} of {len(lights)} driven by the engine; stopped delay per vehicle on "
             "each light's approaches")
    notes = [f"denied, by reason: {', '.join(f'{count} {reason}' for reason, count in all_denied.most_common())}"
             ] if all_denied else []
    if left:
        notes += ["left to SUMO, and why:", *left]
    return _render(title, headers, lines, "\n".join(notes))
