"""SUMO traffic-light programs (``<tlLogic>``) read into :class:`~pilotage.core.signals.IntersectionPlan`.

This is the only module that knows SUMO's formats. It reads additional files (``*.add.xml``) and
network files (``*.net.xml``) with the standard library's XML parser, so it needs no SUMO package.
Each ``<tlLogic>`` program becomes one plan, with the rules below. Times are seconds; SUMO gives
them to the millisecond, and they are computed in whole milliseconds so that sums are exact.

**Signal groups.** A program's ``state`` strings hold one character per link (a connection from an
incoming lane to an outgoing lane, in SUMO's link-index order). Each character is read as green
(``G``, ``g``: a permissive ``g`` is still a green), amber (``y``, ``Y``, and ``u``, the red-amber
before a green) or not green (``r``, ``s``, ``o``, ``O`` and anything else). Links whose column of
green/amber/not-green is the same in every phase always show the same signal: they form one
signal group, named by its link indices joined by ``+`` (``"3+4+5"``, or ``"7"`` for one link),
groups ordered by their first link. Every group is a vehicle group with no walk and no clearance
time: a SUMO program does not say which links are pedestrian crossings. A group that is never
green cannot be served by any stage, and the program is refused.

**Conflicts and intergreens.** Two groups conflict when no phase has both green. The intergreen
from ``i`` to a conflicting ``j`` is a clearance time, measured where the program shows one: the
shortest time from the end of a green of ``i`` (the end of its last green phase: amber and all-red
count as not green) to a start of ``j`` in the same transition, with no stage phase between them.
Two conflicting groups whose greens never follow each other that way get the longest such clearance
of the program (it never shows theirs, and longer is the safe side), but no more than the time the
program itself leaves between them.

**Stages.** A phase with no amber and at least one green link is a *stage phase*; adjacent stage
phases with the same green groups form one stage, across the end of the cycle too. Phases with
amber and phases with no green at all (all-red) are *transitions*. A stage phase whose green groups
are exactly those green in both the stage before and the stage after (an all-red for every movement
that changes while the others keep their green: phase 8 of the Bologna program 221, in which only
the never-stopped links 3+4+14+19+20+21 are green) is a transition too. The same green groups may
form two stages in one cycle (the plan repeats a stage). Stages are listed in program order, from
the first stage that begins within the program (a stage that runs across the end of the cycle comes
last). A program with fewer than two stages is refused.

**Stage greens.** Between two stages the model places an interstage as long as the longest
intergreen from a group that ends to a conflicting group that starts (0 when no group ends or none
starts); the groups green in both stages stay green through it. The transition phases between two
stages are shared so that the plan keeps the program's timing: the plan's stage ends when the first
of its ending groups ends its green in the program (at the latest one interstage before the next
stage's first phase), the interstage follows, and the next stage's green starts right after it.
Transition time that the interstage does not cover is thus green of a stage: in program 209 the
3-s amber of links 0+5+6, while links 2+3+4 stay green, is green of the stage {2+3+4}, and the
interstage before that stage is 0. So the base cycle of the plan (greens plus interstages) is always
the program's cycle. A stage's ``green_s`` is the duration of its phases plus the transition time it
takes over; ``stage_min_s`` and ``stage_max_s`` add ``minDur`` and ``maxDur`` of its phases
(``duration`` where not given) to that same transition time, which does not stretch. A group that
keeps its green into a transition after its stage ended (program 210: links 8+9+10+14+15, 5 s
after links 0+1+2) is green a little longer in SUMO than in the plan. The plan cannot show a group
that stops and restarts between two consecutive stages that both hold it (SUMO's netconvert
programs do that): it keeps it green, and says so in the log (information) whenever the plan shows a group green
while the program does not.

**Group minimum green.** The shortest green the plan can give a group: over each run of
consecutive stages in which the group is green, the sum of their ``stage_min_s`` and of the
interstages between them; the smallest over the runs.

**Cycle and offset.** ``max_cycle_s`` is the sum over all phases of ``maxDur`` (``duration`` where
not given), and at least the base cycle. SUMO starts phase 0 at ``offset`` on the simulation clock
(modulo the cycle); the plan's ``offset_s`` is when its first stage starts, so it is that offset
plus the time from phase 0 to the start of the first stage. Links are not mapped to network edges:
``group_edges`` stays -1.

**Programs.** Every ``<tlLogic>`` of the file is read, or only those whose ``programID`` is the one
asked for. When a traffic light has several programs and none is asked for, its first one in the
file is used. A program whose phases jump (``next``) elsewhere than to the following phase does not
run as one cycle, and is refused.
"""

from __future__ import annotations

import logging
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pilotage.core import DataFileError, InvalidInputError
from pilotage.core.signals import VEHICLE, IntersectionPlan, interstages_s

logger = logging.getLogger(__name__)

#: State characters read as green (``g``: green without priority).
GREEN_STATES = frozenset("Gg")
#: State characters read as amber (``u``: red-amber before a green).
AMBER_STATES = frozenset("yYu")

_NOT_GREEN, _AMBER, _GREEN = 0, 1, 2
_MS_PER_S = 1000


@dataclass(frozen=True)
class _Program:
    """One ``<tlLogic>`` as written in the file, times in milliseconds."""

    tl_id: str
    program_id: str
    offset_ms: int
    duration_ms: np.ndarray
    min_ms: np.ndarray
    max_ms: np.ndarray
    states: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"traffic light {self.tl_id!r} (program {self.program_id!r})"


def read_signal_plans(path: str | os.PathLike[str], *, program_id: str | None = None) -> list[IntersectionPlan]:
    """Read the traffic-light programs of a SUMO additional or network file as signal plans.

    Each ``<tlLogic>`` becomes one :class:`IntersectionPlan` (rules in the module docstring) whose
    ``id`` is the traffic light's id, a string; times are seconds. With ``program_id``, only the
    programs with that ``programID`` are read; without it, the first program of each traffic light.

    Raises:
        DataFileError: the file is missing or not XML; it holds no ``<tlLogic>`` (with that
            ``programID``); a phase has no ``duration`` or ``state``, a bad number, or a state of
            another length than the others, or a ``next`` other than the following phase; a program
            has fewer than two stages or a link that is never green; or the plan it makes is refused
            by :class:`IntersectionPlan` (the message names the traffic light and keeps the reason).
    """
    path = Path(path)
    programs = _read_programs(path)
    if program_id is not None:
        chosen = [program for program in programs if program.program_id == program_id]
        if not chosen:
            found = sorted({program.program_id for program in programs})
            raise DataFileError(f"{path} has no <tlLogic> with programID {program_id!r}; its programs are "
                                f"{', '.join(map(repr, found))}: give one of these, or none for the first of each "
                                "traffic light")
    else:
        chosen, tl_ids = [], set()
        for program in programs:
            if program.tl_id in tl_ids:
                logger.info("%s: %s is not read, the first program of the traffic light is; give program_id "
                            "to choose", path.name, program.label)
            else:
                chosen.append(program)
                tl_ids.add(program.tl_id)
    return [_plan(program, str(path)) for program in chosen]


def _read_programs(path: Path) -> list[_Program]:
    if not path.is_file():
        raise DataFileError(f"no SUMO file at {path}; give the path of an additional file (*.add.xml) or a "
                            "network file (*.net.xml) with <tlLogic> elements")
    programs: list[_Program] = []
    root_tag = None
    try:
        # Network files can be large: keep only the programs, and drop every other element once read.
        depth = 0
        for event, element in ET.iterparse(path, events=("start", "end")):
            if event == "start":
                root_tag = root_tag or element.tag
                depth += 1
                continue
            depth -= 1
            if element.tag == "tlLogic":
                programs.append(_parse_program(element, path))
            if depth == 1:
                element.clear()
    except ET.ParseError as exc:
        raise DataFileError(f"cannot read {path} as XML ({exc}); expected a SUMO additional or network file"
                            ) from exc
    except OSError as exc:
        raise DataFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not programs:
        raise DataFileError(f"expected <tlLogic> elements in {path}, found none (its root element is "
                            f"<{root_tag}>); give an additional file with traffic-light programs, or a network "
                            "file with traffic lights")
    return programs


def _parse_program(element: ET.Element, path: Path) -> _Program:
    tl_id = element.get("id")
    if not tl_id:
        raise DataFileError(f"{path}: a <tlLogic> has no id; expected <tlLogic id=... programID=...>")
    return _program(tl_id, element.get("programID", ""), element.get("offset"),
                    [(phase.get("duration"), phase.get("minDur"), phase.get("maxDur"), phase.get("state"),
                      (phase.get("next") or "").split()) for phase in element.findall("phase")], str(path))


def _program(tl_id: str, program_id: str, offset: str | float | None,
             phases: Sequence[tuple[str | float | None, str | float | None, str | float | None, str | None,
                                    Sequence[str | int]]],
             source: str) -> _Program:
    """A program from its phases ``(duration, minDur, maxDur, state, next)``, as written in a file
    or read from a running simulation (times in seconds, None where not given; ``next`` empty for
    the following phase)."""
    label = f"traffic light {tl_id!r} (program {program_id!r})"
    if not phases:
        raise DataFileError(f"{source}: {label} has no <phase>; expected its phases, each with a duration and state")
    width = len(phases[0][3] or "")
    durations, minimums, maximums, states = [], [], [], []
    for k, (duration, min_dur, max_dur, state, following) in enumerate(phases):
        where = f"{source}: phase {k} of {label}"
        if following and [str(phase) for phase in following] != [str((k + 1) % len(phases))]:
            raise DataFileError(f"{where} goes next to phase {' '.join(map(str, following))}; only programs that "
                                "run their phases in the order written can be read as a cycle")
        if duration is None:
            raise DataFileError(f"{where} has no duration; expected <phase duration=\"seconds\" state=\"...\"/>")
        if not state:
            raise DataFileError(f"{where} has no state; expected one character (G g y r ...) per link")
        if len(state) != width:
            raise DataFileError(f"{where} has a state of {len(state)} characters, phase 0 one of {width}; every "
                                "state of a program has one character per link of the traffic light, so all have "
                                "the same length")
        duration_ms = _milliseconds(duration, where, "duration")
        durations.append(duration_ms)
        minimums.append(_milliseconds(min_dur, where, "minDur", default_ms=duration_ms))
        maximums.append(_milliseconds(max_dur, where, "maxDur", default_ms=duration_ms))
        states.append(state)
    if sum(durations) == 0:
        raise DataFileError(f"{source}: the phases of {label} last 0 s in all; expected a cycle longer than 0 s")
    offset_ms = _milliseconds(offset, f"{source}: {label}", "offset", default_ms=0, signed=True)
    return _Program(tl_id=tl_id, program_id=program_id, offset_ms=offset_ms,
                    duration_ms=np.array(durations, dtype=np.int64), min_ms=np.array(minimums, dtype=np.int64),
                    max_ms=np.array(maximums, dtype=np.int64), states=tuple(states))


def program_plan(tl_id: str, program_id: str, offset_s: float,
                 phases: Sequence[tuple[float, float, float, str, Sequence[int]]], *,
                 source: str = "simulation") -> IntersectionPlan:
    """The signal plan of one program given by its phases ``(duration_s, min_dur_s, max_dur_s,
    state, next)`` (a program read from a running simulation; ``next`` empty for the following
    phase), by the rules of the module docstring; ``offset_s`` is when phase 0 starts on the clock,
    modulo the cycle.

    Raises:
        DataFileError: as :func:`read_signal_plans` for a program it refuses; ``source`` starts the
            message.
    """
    return _plan(_program(tl_id, program_id, offset_s, phases, source), source)


def _milliseconds(text: str | float | None, where: str, attribute: str, *, default_ms: int = 0,
                  signed: bool = False) -> int:
    if text is None:
        return default_ms
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or (seconds < 0 and not signed):
        raise DataFileError(f"{where} has {attribute}={text!r}; expected a {'' if signed else 'non-negative '}"
                            "number of seconds")
    return round(seconds * _MS_PER_S)


def _plan(program: _Program, source: str) -> IntersectionPlan:
    signal = np.array([[_signal(c) for c in state] for state in program.states], dtype=np.int64)
    group_links = _signal_groups(signal)
    group_signal = signal[:, [links[0] for links in group_links]]
    green = group_signal == _GREEN
    never_green = [links for g, links in enumerate(group_links) if not green[:, g].any()]
    if never_green:
        links = ", ".join(str(link) for group in never_green for link in group)
        raise DataFileError(f"{source}: {program.label}: links {links} are never green, so no stage can serve them; "
                            "give a program in which every link has a green")
    timeline = _Timeline(program.duration_ms)
    stages = _stages(green, amber=(signal == _AMBER).any(axis=1))
    if len(stages) < 2:
        raise DataFileError(f"{source}: {program.label} has {len(stages)} stage(s); expected at least two (phases "
                            "without amber, with different green links), so a plan can be made of it")
    stage_phase = np.zeros(timeline.n_phases, dtype=np.bool_)
    for first, n_phases in stages:
        stage_phase[[(first + k) % timeline.n_phases for k in range(n_phases)]] = True
    intergreen_ms = _intergreens(green, timeline, stage_phase)
    stage_groups = np.array([green[first] for first, _ in stages])
    interstage_ms = interstages_s(intergreen_ms, stage_groups).astype(np.int64)
    green_ms, first_start_ms = _stage_greens(stages, stage_groups, interstage_ms, green, timeline)
    span_ms = np.array([timeline.span_sum(program.duration_ms, first, n) for first, n in stages])
    carried_ms = green_ms - span_ms
    stage_min_ms = np.array([timeline.span_sum(program.min_ms, first, n) for first, n in stages]) + carried_ms
    stage_max_ms = np.array([timeline.span_sum(program.max_ms, first, n) for first, n in stages]) + carried_ms
    cycle_ms = timeline.cycle_ms
    n_groups = len(group_links)
    try:
        plan = IntersectionPlan(
            id=program.tl_id,
            group_names=tuple("+".join(str(link) for link in links) for links in group_links),
            group_kind=np.full(n_groups, VEHICLE),
            min_green_s=_group_min_green_ms(stage_groups, stage_min_ms, interstage_ms) / _MS_PER_S,
            walk_s=np.zeros(n_groups),
            clearance_s=np.zeros(n_groups),
            intergreen_s=intergreen_ms / _MS_PER_S,
            stage_groups=stage_groups,
            green_s=green_ms / _MS_PER_S,
            stage_min_s=stage_min_ms / _MS_PER_S,
            stage_max_s=stage_max_ms / _MS_PER_S,
            offset_s=((program.offset_ms + first_start_ms) % cycle_ms) / _MS_PER_S,
            max_cycle_s=max(int(program.max_ms.sum()), cycle_ms) / _MS_PER_S,
        )
    except InvalidInputError as exc:
        raise DataFileError(f"{source}: {program.label} does not make a valid signal plan: {exc}") from exc
    _warn_where_plan_shows_more_green(plan, green, program, first_start_ms, source)
    return plan


def _signal(character: str) -> int:
    if character in GREEN_STATES:
        return _GREEN
    return _AMBER if character in AMBER_STATES else _NOT_GREEN


def _signal_groups(signal: np.ndarray) -> list[list[int]]:
    # Links are visited in index order, so groups come ordered by their first link.
    groups: dict[bytes, list[int]] = {}
    for link in range(signal.shape[1]):
        groups.setdefault(signal[:, link].tobytes(), []).append(link)
    return list(groups.values())


class _Timeline:
    """Phase start times of one cycle, and sums over spans of phases that may wrap round the cycle."""

    def __init__(self, duration_ms: np.ndarray) -> None:
        self.duration_ms = duration_ms
        self.n_phases = len(duration_ms)
        self.start_ms = np.concatenate(([0], np.cumsum(duration_ms)[:-1]))
        self.cycle_ms = int(duration_ms.sum())

    def span_sum(self, values: np.ndarray, first: int, n_phases: int) -> int:
        """Sum of ``values`` over ``n_phases`` phases from ``first``, round the cycle."""
        return int(sum(values[(first + k) % self.n_phases] for k in range(n_phases)))

    def any_between(self, mask: np.ndarray, start_ms: int, end_ms: int) -> bool:
        """Whether a phase flagged in ``mask`` (P,) runs between ``start_ms`` and ``end_ms`` (phase
        boundaries, going round the cycle)."""
        p = int(np.searchsorted(self.start_ms, start_ms % self.cycle_ms, side="right")) - 1
        elapsed = 0
        while elapsed < (end_ms - start_ms) % self.cycle_ms:
            if mask[p % self.n_phases]:
                return True
            elapsed += int(self.duration_ms[p % self.n_phases])
            p += 1
        return False

    def green_runs(self, green: np.ndarray) -> list[tuple[int, int]]:
        """(start, end) of each run of consecutive phases where ``green`` (P,) holds, start within the
        cycle, end possibly in the next one; no run if it always holds."""
        runs = []
        for p in range(self.n_phases):
            if green[p] and not green[p - 1]:
                n = 1
                while green[(p + n) % self.n_phases]:
                    n += 1
                runs.append((int(self.start_ms[p]), int(self.start_ms[p]) + self.span_sum(self.duration_ms, p, n)))
        return runs


def _intergreens(green: np.ndarray, timeline: _Timeline, stage_phase: np.ndarray) -> np.ndarray:
    n_groups = green.shape[1]
    together = (green[:, :, None] & green[:, None, :]).any(axis=0)
    runs = [timeline.green_runs(green[:, g]) for g in range(n_groups)]
    intergreen_ms = np.full((n_groups, n_groups), np.nan)
    unseen = []
    for i in range(n_groups):
        for j in range(n_groups):
            if i == j or together[i, j]:
                continue
            pairs = [(end_i, start_j) for _, end_i in runs[i] for start_j, _ in runs[j]]
            direct = [(start_j - end_i) % timeline.cycle_ms for end_i, start_j in pairs
                      if not timeline.any_between(stage_phase, end_i, start_j)]
            if direct:
                intergreen_ms[i, j] = min(direct)
            else:
                unseen.append((i, j, min((start_j - end_i) % timeline.cycle_ms for end_i, start_j in pairs)))
    # Pairs the program never runs one after the other: its longest clearance, on the safe side, but
    # no more than the program itself leaves between them.
    longest = np.nanmax(intergreen_ms) if not np.isnan(intergreen_ms).all() else 0.0
    for i, j, programmed in unseen:
        intergreen_ms[i, j] = min(longest, programmed)
    return intergreen_ms


def _stages(green: np.ndarray, amber: np.ndarray) -> list[tuple[int, int]]:
    """(first phase, number of phases) of each stage, in the order of the plan."""
    green_sets: list[frozenset[int] | None] = [
        None if amber[p] or not green[p].any() else frozenset(np.flatnonzero(green[p]).tolist())
        for p in range(len(green))]
    while True:
        spans = _spans(green_sets)
        # A span starts at a phase with greens: its set is never None.
        sets = [green_sets[first] or frozenset() for first, _ in spans]
        for k, (first, n_phases) in enumerate(spans):
            before, after = sets[k - 1], sets[(k + 1) % len(spans)]
            if len(spans) >= 3 and sets[k] != before and sets[k] != after and sets[k] == before & after:
                for p in range(first, first + n_phases):
                    green_sets[p % len(green_sets)] = None
                break
        else:
            return spans


def _spans(green_sets: list[frozenset[int] | None]) -> list[tuple[int, int]]:
    n_phases = len(green_sets)

    def continues(p: int) -> bool:
        return green_sets[p] is not None and green_sets[p] == green_sets[p - 1]

    spans = []
    for first in range(n_phases):
        if green_sets[first] is not None and not continues(first):
            n = 1
            while n < n_phases and continues((first + n) % n_phases):
                n += 1
            spans.append((first, n))
    if not spans and green_sets[0] is not None:
        spans.append((0, n_phases))
    return spans


def _stage_greens(stages: list[tuple[int, int]], stage_groups: np.ndarray, interstage_ms: np.ndarray,
                  green: np.ndarray, timeline: _Timeline) -> tuple[np.ndarray, int]:
    """Green of each stage (ms) and start of the first one (ms from phase 0), so that greens and
    interstages fill the cycle (rule "Stage greens" of the module docstring)."""
    n_stages = len(stages)
    stage_end_ms = np.zeros(n_stages, dtype=np.int64)
    next_start_ms = np.zeros(n_stages, dtype=np.int64)
    for k, (first, n_phases) in enumerate(stages):
        phases_end_ms = int(timeline.start_ms[first]) + timeline.span_sum(timeline.duration_ms, first, n_phases)
        following = (k + 1) % n_stages
        next_phases_start_ms = int(timeline.start_ms[stages[following][0]]) + (timeline.cycle_ms if following == 0
                                                                                else 0)
        last_phase = (first + n_phases - 1) % timeline.n_phases
        ending_green_ends_ms = [_green_end_ms(green[:, g], last_phase, phases_end_ms, timeline)
                                for g in np.flatnonzero(stage_groups[k] & ~stage_groups[following])]
        stage_end_ms[k] = min([*ending_green_ends_ms, next_phases_start_ms - interstage_ms[k]])
        next_start_ms[k] = stage_end_ms[k] + interstage_ms[k]
    stage_start_ms = np.roll(next_start_ms, 1)
    stage_start_ms[0] -= timeline.cycle_ms
    return stage_end_ms - stage_start_ms, int(stage_start_ms[0])


def _green_end_ms(green: np.ndarray, last_phase: int, phase_end_ms: int, timeline: _Timeline) -> int:
    # The group is green up to phase_end_ms, the end of last_phase; it may keep its green after it.
    p = (last_phase + 1) % timeline.n_phases
    while green[p]:
        phase_end_ms += int(timeline.duration_ms[p])
        p = (p + 1) % timeline.n_phases
    return phase_end_ms


def _group_min_green_ms(stage_groups: np.ndarray, stage_min_ms: np.ndarray, interstage_ms: np.ndarray) -> np.ndarray:
    n_stages, n_groups = stage_groups.shape
    min_green_ms = np.zeros(n_groups)
    for g in range(n_groups):
        member = stage_groups[:, g]
        if member.all():
            min_green_ms[g] = stage_min_ms.sum() + interstage_ms.sum()
            continue
        runs = []
        for first in np.flatnonzero(member & ~np.roll(member, 1)):
            total, k = 0, first
            while member[k % n_stages]:
                total += stage_min_ms[k % n_stages]
                if member[(k + 1) % n_stages]:
                    total += interstage_ms[k % n_stages]
                k += 1
            runs.append(total)
        min_green_ms[g] = min(runs)
    return min_green_ms


def _warn_where_plan_shows_more_green(plan: IntersectionPlan, green: np.ndarray, program: _Program,
                                      first_start_ms: int, source: str) -> None:
    # Both timelines from phase 0, what SUMO shows and what the plan shows, in steps that divide every
    # boundary (whole seconds for most programs).
    stage_ms = np.round(plan.green_s * _MS_PER_S).astype(np.int64)
    interstage_ms = np.round(interstages_s(plan.intergreen_s, plan.stage_groups) * _MS_PER_S).astype(np.int64)
    step_ms = int(np.gcd.reduce(np.concatenate((program.duration_ms, stage_ms, interstage_ms, [first_start_ms]))))
    shown = np.repeat(green, program.duration_ms // step_ms, axis=0)
    rows = []
    for k in range(plan.n_stages):
        following = plan.stage_groups[(k + 1) % plan.n_stages]
        rows.extend([plan.stage_groups[k], plan.stage_groups[k] & following])
    lengths = np.column_stack((stage_ms, interstage_ms)).ravel() // step_ms
    planned = np.roll(np.repeat(np.array(rows), lengths, axis=0), first_start_ms // step_ms, axis=0)
    extra_ms = (planned & ~shown).sum(axis=0) * step_ms
    if extra_ms.any():
        extra = ", ".join(f"{plan.group_names[g]} for {extra_ms[g] / _MS_PER_S:g} s" for g in np.flatnonzero(extra_ms))
        logger.info("%s: %s: in each cycle the plan shows green where the program does not: %s (the plan keeps "
                       "a group green between two consecutive stages that both hold it, and starts and ends the "
                       "groups of a stage together)", Path(source).name, program.label, extra)
