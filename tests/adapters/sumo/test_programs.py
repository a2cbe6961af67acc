"""The SUMO adapter on the city of Bologna's own traffic-light programs (Acosta scenario).

Behaviour is checked on the real files against the programs read here independently, second by
second; small hand-written files only exercise the errors.
"""

import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pilotage.adapters.sumo import read_signal_plans
from pilotage.core import DataFileError
from pilotage.core.signals import VEHICLE, IntersectionPlan

#: The scenario's folder in the shared data, its traffic-light programs and its network.
BOLOGNA = ("sumo", "bologna-acosta")
TLS_NAME = "acosta_tls.add.xml"
NET_NAME = "acosta_buslanes.net.xml"
BOLOGNA_IDS = ["209", "210", "219", "220", "221", "235", "273"]
NAN = math.nan


def programs_in(path: Path) -> dict[str, ET.Element]:
    return {element.attrib["id"]: element for element in ET.parse(path).getroot().iter("tlLogic")}


def phase_durations_s(program: ET.Element) -> list[float]:
    return [float(phase.attrib["duration"]) for phase in program.iter("phase")]


def program_green(program: ET.Element, plan: IntersectionPlan) -> np.ndarray:
    """(cycle in whole seconds, G): where each group of the plan is green in the SUMO program."""
    first_links = [int(name.split("+")[0]) for name in plan.group_names]
    phases = list(program.iter("phase"))
    green = np.array([[phase.attrib["state"][link] in "Gg" for link in first_links] for phase in phases])
    return np.repeat(green, [round(float(phase.attrib["duration"])) for phase in phases], axis=0)


def plan_green(plan: IntersectionPlan, program_offset_s: float = 0.0) -> np.ndarray:
    """(cycle in whole seconds, G): where each group is green in the plan, from the program's phase 0."""
    rows, lengths_s = [], []
    for k in range(plan.n_stages):
        following = (k + 1) % plan.n_stages
        rows += [plan.stage_groups[k], plan.stage_groups[k] & plan.stage_groups[following]]
        lengths_s += [plan.green_s[k], plan.interstage_s(k, following)]
    timeline = np.repeat(np.array(rows), np.round(lengths_s).astype(int), axis=0)
    return np.roll(timeline, round(plan.offset_s - program_offset_s), axis=0)


@pytest.fixture(scope="module")
def tls_file(shared_data: Callable[..., Path]) -> Path:
    """Bologna's traffic-light programs, an additional file."""
    return shared_data(*BOLOGNA, TLS_NAME)


@pytest.fixture(scope="module")
def net_file(shared_data: Callable[..., Path]) -> Path:
    """Bologna's network, with netconvert's programs."""
    return shared_data(*BOLOGNA, NET_NAME)


@pytest.fixture(scope="module")
def bologna(tls_file: Path) -> dict[str, IntersectionPlan]:
    return {str(plan.id): plan for plan in read_signal_plans(tls_file)}


def test_every_program_of_the_additional_file_is_a_valid_plan(tls_file: Path,
                                                               bologna: dict[str, IntersectionPlan]) -> None:
    plans = read_signal_plans(str(tls_file))
    assert [plan.id for plan in plans] == BOLOGNA_IDS
    for plan in plans:
        assert isinstance(plan, IntersectionPlan)  # built, so the model's validation passed
        assert plan.n_stages >= 2
        assert (plan.group_kind == VEHICLE).all()
        assert (plan.walk_s == 0).all()
        assert (plan.clearance_s == 0).all()
        assert (plan.group_edges == -1).all()


def test_tl_209_by_hand(tls_file: Path, bologna: dict[str, IntersectionPlan]) -> None:
    # Phases (duration, state, minDur, maxDur), links 0..6:
    #   69 GrGGGGg 45 117 | 3 yrGGGyy | 7 rrGGGrr | 3 rryyyrr | 3 rrrrrrr | 26 rGrrrrr | 3 ryrrrrr | 3 rrrrrrr
    # Links 0, 5, 6 always show the same signal, so do 2, 3, 4.
    plan = bologna["209"]
    assert plan.group_names == ("0+5+6", "1", "2+3+4")
    main, side, through = 0, 1, 2
    assert plan.stage_groups.tolist() == [[True, False, True], [False, False, True], [False, True, False]]
    # The amber of 0+5+6 (3 s) runs while 2+3+4 stay green: it is green of the stage {2+3+4}.
    np.testing.assert_array_equal(plan.green_s, [69.0, 7.0 + 3.0, 26.0])
    np.testing.assert_array_equal(plan.stage_min_s, [45.0, 10.0, 26.0])
    np.testing.assert_array_equal(plan.stage_max_s, [117.0, 10.0, 26.0])
    # 2+3+4 ends at 79 s and 1 starts at 85 s: a clearance of 6 s; 1 ends at 111 s, all start at 117 s.
    # 0+5+6 ends at 69 s and 1 starts 16 s later, but with the stage {2+3+4} between them: the program
    # never shows their clearance, so it is its longest one, 6 s (no more than the 16 s it leaves).
    np.testing.assert_array_equal(plan.intergreen_s, [[NAN, 6.0, NAN], [6.0, NAN, 6.0], [NAN, 6.0, NAN]])
    assert [plan.interstage_s(0, 1), plan.interstage_s(1, 2), plan.interstage_s(2, 0)] == [0.0, 6.0, 6.0]
    assert plan.cycle_s == 117.0 == sum(phase_durations_s(programs_in(tls_file)["209"]))
    assert plan.max_cycle_s == 117 + 3 + 7 + 3 + 3 + 26 + 3 + 3
    np.testing.assert_array_equal(plan.min_green_s[[main, side, through]], [45.0, 26.0, 45.0 + 3.0 + 7.0])
    assert plan.offset_s == 0.0


def test_tl_221_starts_at_its_first_stage_and_its_all_red_is_a_transition(
        bologna: dict[str, IntersectionPlan]) -> None:
    # Links 3+4+14+19+20+21 are never stopped. Phase 8 (2 s, no amber) shows only them: the all-red
    # between the stage of 5+6+15+16+17+18 and that of 0+1+2 with 7..13, not a stage.
    plan = bologna["221"]
    assert plan.group_names == ("0+1+2", "3+4+14+19+20+21", "5+6+15+16+17+18", "7+8+9+10+11+12+13")
    # The last phase (12 s) and the first two (21 + 12 s) are one stage; it began in the previous
    # cycle, so the plan starts at phase 4 (41 s after phase 0) with the other stage.
    assert plan.stage_groups.tolist() == [[False, True, True, False], [True, True, False, True]]
    np.testing.assert_array_equal(plan.green_s, [2.0 + 41.0 + 18.0, 12.0 + 21.0 + 12.0])
    np.testing.assert_array_equal(plan.stage_min_s, [2.0 + 14.0 + 18.0, 12.0 + 3.0 + 12.0])
    np.testing.assert_array_equal(plan.stage_max_s, [2.0 + 41.0 + 18.0, 12.0 + 84.0 + 12.0])
    assert plan.offset_s == 41.0
    always, crossing, main = 1, 2, 3
    assert not plan.conflicts[always].any()
    assert plan.intergreen_s[main, crossing] == 8.0  # 7..13 end at 33 s, 5+6+... start at 41 s
    assert plan.intergreen_s[0, crossing] == 4.0  # 0+1+2 keep their green 4 s longer
    assert plan.intergreen_s[crossing, main] == 6.0
    assert plan.cycle_s == 120.0


@pytest.mark.parametrize("name", [TLS_NAME, NET_NAME], ids=["additional", "network"])
def test_the_plan_cycle_is_the_program_cycle(shared_data: Callable[..., Path], name: str) -> None:
    path = shared_data(*BOLOGNA, name)
    programs = programs_in(path)
    for plan in read_signal_plans(path):
        program = programs[str(plan.id)]
        assert plan.cycle_s == pytest.approx(sum(phase_durations_s(program)), abs=1e-9)
        longest_s = sum(float(phase.get("maxDur", phase.attrib["duration"])) for phase in program.iter("phase"))
        assert plan.max_cycle_s == pytest.approx(max(longest_s, plan.cycle_s))


def test_the_plan_replays_the_program(tls_file: Path, bologna: dict[str, IntersectionPlan]) -> None:
    # Second by second over a cycle, the plan never shows green where the program does not; it is the
    # program exactly, except where a group keeps its green into a transition after its stage ended.
    programs = programs_in(tls_file)
    shorter_in_plan_s = {"210": {"8+9+10+14+15": 5}, "220": {"3+4+5+6": 3}, "221": {"0+1+2": 4}}
    for tl_id, plan in bologna.items():
        shown, planned = program_green(programs[tl_id], plan), plan_green(plan)
        assert shown.shape == planned.shape
        assert not (planned & ~shown).any(), tl_id
        missing_s = (shown & ~planned).sum(axis=0)
        expected_s = shorter_in_plan_s.get(tl_id, {})
        assert {plan.group_names[g]: int(missing_s[g]) for g in np.flatnonzero(missing_s)} == expected_s


def test_groups_stages_and_conflicts_follow_the_states(tls_file: Path, bologna: dict[str, IntersectionPlan]) -> None:
    programs = programs_in(tls_file)
    for tl_id, plan in bologna.items():
        states = [phase.attrib["state"] for phase in programs[tl_id].iter("phase")]

        def column(link: int, states: list[str] = states) -> str:
            return "".join("G" if s[link] in "Gg" else "y" if s[link] in "yYu" else "r" for s in states)

        links = [[int(link) for link in name.split("+")] for name in plan.group_names]
        assert sorted(link for group in links for link in group) == list(range(len(states[0])))
        assert [group[0] for group in links] == sorted(group[0] for group in links)
        assert all(len({column(link) for link in group}) == 1 for group in links)
        assert len({column(group[0]) for group in links}) == len(links)
        for i, group_i in enumerate(links):
            for j, group_j in enumerate(links):
                together = any(a == b == "G" for a, b in zip(column(group_i[0]), column(group_j[0]), strict=True))
                assert plan.conflicts[i, j] == (not together), (tl_id, i, j)
        assert (plan.intergreen_s[plan.conflicts] >= 0).all()
        for groups in plan.stage_groups:
            assert not plan.conflicts[np.ix_(groups, groups)].any()
        assert plan.stage_groups.any(axis=0).all()
        # Stage minima come from minDur, maxima from maxDur: a fixed stage stays fixed.
        assert (plan.stage_min_s <= plan.green_s).all()
        assert (plan.green_s <= plan.stage_max_s).all()


def test_the_network_file_holds_netconvert_programs(net_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pilotage.adapters.sumo.programs"):
        plans = read_signal_plans(net_file)
    assert [plan.id for plan in plans] == BOLOGNA_IDS
    assert all(plan.cycle_s == 90.0 for plan in plans)
    # In two of them a group stops and restarts between two stages that both hold it: the plan
    # keeps it green, and says so.
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2
    assert "'210'" in warnings[0] and "16+17+18+19 for 4 s" in warnings[0]
    assert "'220'" in warnings[1] and "8+9+10 for 8 s" in warnings[1]
    plan_209 = plans[0]
    assert plan_209.group_names == ("0+3+4", "1", "2+5+6")
    assert plan_209.stage_groups.tolist() == [[True, False, True], [True, True, False]]
    np.testing.assert_array_equal(plan_209.green_s, [42.0, 42.0])
    assert not plan_209.conflicts[0].any()


def test_program_id_chooses_among_the_programs_of_a_traffic_light(tls_file: Path, net_file: Path,
                                                                   tmp_path: Path) -> None:
    assert [plan.id for plan in read_signal_plans(tls_file, program_id="utopia")] == BOLOGNA_IDS
    assert [plan.id for plan in read_signal_plans(net_file, program_id="0")] == BOLOGNA_IDS
    both = ET.Element("additional")
    both.append(programs_in(net_file)["209"])
    both.append(programs_in(tls_file)["209"])
    path = tmp_path / "both.add.xml"
    ET.ElementTree(both).write(path)
    [first] = read_signal_plans(path)
    assert first.cycle_s == 90.0  # the netconvert program, first in the file
    [utopia] = read_signal_plans(path, program_id="utopia")
    assert utopia.cycle_s == 117.0
    with pytest.raises(DataFileError, match=r"no <tlLogic> with programID 'night'.*'0', 'utopia'"):
        read_signal_plans(path, program_id="night")


def test_the_offset_is_where_the_first_stage_starts(tls_file: Path, tmp_path: Path) -> None:
    program = programs_in(tls_file)["221"]
    program.set("offset", "-50")
    root = ET.Element("additional")
    root.append(program)
    path = tmp_path / "shifted.add.xml"
    ET.ElementTree(root).write(path)
    [plan] = read_signal_plans(path)
    assert plan.offset_s == (-50 + 41) % 120
    assert not (plan_green(plan, program_offset_s=-50) & ~program_green(program, plan)).any()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tls.add.xml"
    path.write_text(text)
    return path


def tl_logic(*phases: str, offset: str = "0") -> str:
    return (f'<additional><tlLogic id="x" type="static" programID="p" offset="{offset}">{"".join(phases)}'
            "</tlLogic></additional>")


TWO_STAGES = ('<phase duration="30" state="GGrr"/>', '<phase duration="3" state="yyrr"/>',
              '<phase duration="30" state="rrGG"/>', '<phase duration="3" state="rryy"/>')


def test_a_small_valid_program_is_read(tmp_path: Path) -> None:
    # The error cases below change one thing in this program.
    [plan] = read_signal_plans(write(tmp_path, tl_logic(*TWO_STAGES)))
    assert plan.id == "x"
    assert plan.group_names == ("0+1", "2+3")
    assert plan.cycle_s == 66.0


@pytest.mark.parametrize(("text", "message"), [
    ("this is not XML <", "cannot read .* as XML"),
    ("<additional><vType id='bus'/></additional>", r"expected <tlLogic> elements .* found none .*<additional>"),
    ("", "cannot read .* as XML"),
    (tl_logic('<phase state="GGrr"/>', *TWO_STAGES[1:]), "phase 0 of traffic light 'x' .* has no duration"),
    (tl_logic('<phase duration="soon" state="GGrr"/>', *TWO_STAGES[1:]), "duration='soon'; expected a non-negative"),
    (tl_logic('<phase duration="-3" state="GGrr"/>', *TWO_STAGES[1:]), "duration='-3'"),
    (tl_logic(*TWO_STAGES, offset="later"), "offset='later'"),
    (tl_logic('<phase duration="0" state="GGrr"/>', '<phase duration="0" state="rrGG"/>'), "last 0 s in all"),
    (tl_logic('<phase duration="30"/>', *TWO_STAGES[1:]), "phase 0 .* has no state"),
    (tl_logic(*TWO_STAGES[:2], '<phase duration="30" state="rrGGG"/>', TWO_STAGES[3]),
     "phase 2 .* state of 5 characters, phase 0 one of 4"),
    (tl_logic('<phase duration="30" state="GGGG"/>', '<phase duration="3" state="yyyy"/>',
              '<phase duration="3" state="rrrr"/>'), "'x' .* has 1 stage.*expected at least two"),
    (tl_logic('<phase duration="30" state="GGrr"/>', '<phase duration="5" state="yyGG"/>'), "has 1 stage"),
    (tl_logic('<phase duration="30" state="GGrr"/>', '<phase duration="3" state="yyrr"/>',
              '<phase duration="30" state="rGrr"/>'), "links 2, 3 are never green"),
    (tl_logic('<phase duration="30" state="GGrr" next="2"/>', *TWO_STAGES[1:]), "goes next to phase 2"),
    (tl_logic('<phase duration="30" minDur="40" state="GGrr"/>', *TWO_STAGES[1:]),
     "'x' .* does not make a valid signal plan: .*stage_min_s <= green_s"),
    ("<additional><tlLogic programID='p'><phase duration='3' state='G'/></tlLogic></additional>", "has no id"),
    ("<additional><tlLogic id='x'/></additional>", "'x' .* has no <phase>"),
])
def test_bad_files_are_refused_with_what_was_expected(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataFileError, match=message):
        read_signal_plans(write(tmp_path, text))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"no SUMO file at .*missing\.add\.xml; give the path"):
        read_signal_plans(tmp_path / "missing.add.xml")
    with pytest.raises(DataFileError, match="no SUMO file"):
        read_signal_plans(tmp_path)


def test_intergreens_are_clearances_not_the_time_between_stages(tls_file: Path) -> None:
    plans = {plan.id: plan for plan in read_signal_plans(tls_file)}
    for plan in plans.values():
        longest = np.nanmax(plan.intergreen_s)
        # Every intergreen is one the program shows between two groups in one transition.
        assert longest <= 10.0, plan.id
    # 1+2 and 6 of program 219 are 72 s apart in the program, with stages between them.
    plan = plans["219"]
    ending, starting = plan.group_names.index("1+2"), plan.group_names.index("6")
    assert plan.intergreen_s[ending, starting] == np.nanmax(plan.intergreen_s) < 72.0
