"""The engine lost mid-run (SIGKILL) while bus priorities and an emergency corridor are active: the
lights, driven as a field adapter drives them, go back to their own programs when the last command
expires, and a new engine process takes over from what they show, with no state the safety monitor
refuses and no violation in the states shown."""

import contextlib
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pilotage.adapters.sumo.closed_loop import LoopOptions, simulate
from pilotage.adapters.sumo.scenario import Scenario
from pilotage.adapters.zeromq import Subscriber
from pilotage.core.errors import TimedOutError
from pilotage.core.protocol import COMMAND_TTL_S

from ..conftest import Served

# The engine is killed once a corridor is open and a plan-changing grant still runs, from this time
# on; a new one starts this long after (simulated seconds: the run waits for it).
KILL_FROM_S = 120.0
OUTAGE_S = 10.0


def free_endpoint() -> str:
    """A loopback endpoint on a port free now: both engine processes bind it, one after the other."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


class Activity:
    """The corridors open and the grants running, from a server's events."""

    def __init__(self, events: Subscriber) -> None:
        self.events = events
        self.open_corridors: set[str] = set()
        self.grants_until_s: dict[tuple[str, object], float] = {}

    def read(self) -> None:
        with contextlib.suppress(TimedOutError):
            while True:
                topic, event = self.events.receive(timeout_s=0.0)
                body: dict[str, Any] = event
                if topic == "corridor" and body["event"] == "opened":
                    self.open_corridors.add(str(body["incident"]))
                elif topic == "corridor" and body["event"] in ("closed", "expired"):
                    self.open_corridors.discard(str(body["incident"]))
                elif topic == "priority" and body["event"] == "granted":
                    self.grants_until_s[str(body["vehicle"]), body["intersection"]] = float(body["green_until"])

    def active(self, now_s: float) -> bool:
        return bool(self.open_corridors) and any(until > now_s for until in self.grants_until_s.values())


def test_lights_fall_back_on_engine_loss_and_a_new_engine_takes_over(
        scenario: Scenario, serving: Callable[..., contextlib.AbstractContextManager[Served]],
        tmp_path: Path) -> None:
    endpoint = free_endpoint()
    # Every bus gets priority, as in a run with an engine of its own and no lateness threshold.
    config = tmp_path / "serve.toml"
    config.write_text("[priority]\nbus_lateness_s = -inf\n")
    flags = ("--config", str(config), "--sumocfg", str(scenario.sumocfg), "--clock", "field", "--bind", endpoint)
    state = tmp_path / "state"
    seen: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(serving(state, tmp_path / "first.log", *flags))
        activity = Activity(stack.enter_context(Subscriber(first.events_endpoint)))

        def listener(now_s: float) -> None:
            if "killed" not in seen:
                activity.read()
                if now_s >= KILL_FROM_S and activity.active(now_s):
                    first.process.send_signal(signal.SIGKILL)
                    first.process.wait(timeout=30)
                    seen["killed"] = now_s
            elif "restarted" not in seen and now_s >= seen["killed"] + OUTAGE_S:
                # The run waits here for the new process: the outage lasts OUTAGE_S simulated seconds.
                seen["restarted"] = now_s
                stack.enter_context(serving(state, tmp_path / "second.log", *flags))

        run = simulate(scenario.sumocfg, LoopOptions(engine=endpoint, duration_s=300.0, emergency_every_s=45.0,
                                                    step_listener=listener))
        second_log = (tmp_path / "second.log").read_text()
    assert "killed" in seen and "restarted" in seen, "no moment with a corridor open and a grant running"
    field, safety = run["field"], run["safety"]
    assert field is not None
    # The last command expired; at the next step the lights were back on their own programs.
    assert field["fallbacks"] == 1
    assert field["fallback_delay_s"] <= run["step_s"] + 1e-9
    assert field["unanswered"] >= OUTAGE_S - COMMAND_TTL_S
    assert field["refused"] == 0
    # The new engine restored the first one's state (plans, grants, the corridor) on the field's
    # clock, then took over from what the lights showed.
    assert "restored from" in second_log
    assert field["taken_over"] >= 1
    # No state the monitor refused, no violation in everything shown, before, during and after.
    assert safety["refused_states"] == 0
    assert safety["violations"] == 0, safety["by_rule"]
    # A corridor opened within the last state kept before the kill is unknown to the new engine:
    # its vehicle's next update is answered so, once, and it opens the corridor again.
    corridors = run["corridor_requests"]
    assert corridors["errors"].get("UNKNOWN_ENTITY", 0) == corridors["reopened"]
