"""The configuration file of `pilotage serve`: every key read and checked before anything starts, each
error naming its key, flags over the file, the documented example, and a `pilotage serve` process
running its engines with what the file says."""

import contextlib
import json
import math
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pilotage.adapters.config import ServeConfig, read_serve_config
from pilotage.adapters.zeromq import Client
from pilotage.core import InvalidInputError, RoadNetwork
from pilotage.core.errors import DataFileError
from pilotage.core.protocol import MAX_MESSAGE_BYTES
from pilotage.signal_priority import CorridorConfig, PriorityConfig

from .command_line import pilotage
from .conftest import Served

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def write(folder: Path, text: str) -> Path:
    """A configuration file ``serve.toml`` in ``folder``, holding ``text``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "serve.toml"
    path.write_text(text)
    return path


def test_the_documented_example_names_every_key_with_its_default(tmp_path: Path) -> None:
    section = OPERATIONS.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    (example,) = re.findall(r"```toml\n(.*?)```", section, re.DOTALL)
    config = read_serve_config(write(tmp_path / "etc", example), {})
    assert config.priority == PriorityConfig()
    assert config.corridors == CorridorConfig()
    assert (config.max_message_bytes, config.queue_limit, config.insecure) == (MAX_MESSAGE_BYTES, 1024, False)
    for key in ServeConfig.__struct_fields__:
        # A key that excludes another (osm, sumocfg) is shown in a comment.
        assert re.search(rf"^(# )?\[?{key}\b", example, re.MULTILINE), f"{key} is not in the example"
    # Relative paths are relative to the file's folder; absolute ones stay.
    assert config.keys == str(tmp_path / "etc" / "keys")
    assert config.counts == [str(tmp_path / "etc" / "counts-2024.csv"), str(tmp_path / "etc" / "counts-2025.csv")]
    assert config.audit == "/var/log/pilotage/audit.jsonl"


def test_flags_given_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'bind = "tcp://0.0.0.0:6000"\nqueue_limit = 10\nkeys = "keys"\n'
                           '[priority]\nmax_extension_s = 8\n')
    config = read_serve_config(path, {"queue_limit": 5, "keys": "elsewhere", "bind": None, "insecure": None})
    assert (config.bind, config.queue_limit, config.keys) == ("tcp://0.0.0.0:6000", 5, "elsewhere")
    assert config.insecure is False
    assert config.priority == PriorityConfig(max_extension_s=8.0)
    assert read_serve_config(None, {"queue_limit": 7}) == ServeConfig(queue_limit=7)


@pytest.mark.parametrize(("text", "message"), [
    ('[priority]\nmax_extension_s = "x"', 'priority.max_extension_s: expected a number, got "x"'),
    ("[priority]\nmax_extension_s = -1",
     "priority.max_extension_s: expected max_extension_s to be a finite number >= 0, got -1.0"),
    ("[priority]\ncycle_share = 1.5", "priority.cycle_share: expected cycle_share to be a number from 0 to 1, got 1.5"),
    ("[priority]\nmax_cut_cycles = 2.5", "priority.max_cut_cycles: expected a whole number, got 2.5"),
    ("[priority]\nmax_extention_s = 10",
     "priority.max_extention_s: unknown key; did you mean priority.max_extension_s? expected one of bus_lateness_s"),
    ("queue_limit = 0", "queue_limit: expected a whole number >= 1, got 0"),
    ("queue_limt = 3", "queue_limt: unknown key; did you mean queue_limit? expected one of bind, pub, keys"),
    ('insecure = "yes"', 'insecure: expected true or false, got "yes"'),
    ('counts = "a.csv"', 'counts: expected a list, each a string, got "a.csv"'),
    ("priority = 3", "priority: expected a table ([priority]), got 3"),
    ('[corridors]\nexit_transition = "fast"',
     "corridors.exit_transition: expected exit_transition 'best_way' or 'dwell', got 'fast'"),
    ("[corridors.emergency_speed_kph]\nprimary = -5",
     "corridors.emergency_speed_kph: expected a speed > 0 km/h for road class 'primary', got -5.0"),
    ('[corridors.emergency_speed_kph]\nprimary = "fast"',
     'corridors.emergency_speed_kph: expected a table, each value a number, got {"primary": "fast"}'),
])
def test_a_wrong_key_or_value_is_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as error:
        read_serve_config(write(tmp_path, text), {})
    assert str(error.value).startswith(message)
    assert error.value.field == message.split(":", 1)[0]


def test_a_file_not_there_or_not_toml_is_a_data_file_error(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="cannot read the configuration file"):
        read_serve_config(tmp_path / "missing.toml", {})
    with pytest.raises(DataFileError, match="as TOML"):
        read_serve_config(write(tmp_path, "queue_limit = "), {})


@pytest.mark.parametrize(("field", "value"), [
    ("bus_lateness_s", math.nan), ("bus_lateness_s", "60"), ("eta_window_s", -1.0), ("min_gain_s", math.inf),
    ("max_extension_s", "x"), ("max_early_green_s", None), ("cycle_share", 1.01), ("cycle_share", -0.1),
    ("max_cut_cycles", -1), ("max_cut_cycles", 2.0), ("max_cut_cycles", True), ("saturation_headway_s", 0.0),
    ("start_up_loss_s", -0.5), ("queue_max_age_s", math.nan), ("horizon_s", 0.0), ("max_eta_s", -240.0),
    ("plan_entries", 1), ("plan_entries", 96.0), ("eta_window_s", 300.0),
])
def test_priority_config_refuses_a_parameter_out_of_range_naming_it(field: str, value: object) -> None:
    with pytest.raises(InvalidInputError) as error:
        PriorityConfig(**{field: value})  # type: ignore[arg-type]  # deliberately invalid
    assert error.value.field == field
    assert field in str(error.value)


def test_priority_config_takes_the_ends_of_each_range() -> None:
    PriorityConfig(bus_lateness_s=-math.inf, tram_lateness_s=math.inf, eta_window_s=0, min_gain_s=0.0,
                   max_extension_s=0.0, max_early_green_s=0.0, cycle_share=1.0, max_cut_cycles=np.int64(0),
                   saturation_headway_s=np.float64(0.5), start_up_loss_s=0.0, queue_max_age_s=0.0, horizon_s=1.0,
                   max_eta_s=1.0, plan_entries=2)


def test_a_bad_file_stops_pilotage_serve_before_anything_starts(tmp_path: Path, cache_dir: Path) -> None:
    path = write(tmp_path, 'state_db = "state/signals.sqlite"\naudit = "state/audit.jsonl"\n'
                           '[priority]\nmax_extension_s = "x"\n')
    run = pilotage("serve", "--config", str(path), "--bind", "tcp://127.0.0.1:*", "--pub", "tcp://127.0.0.1:*",
                   cache_dir=cache_dir)
    assert run.returncode == 1
    assert run.stderr.splitlines() == ['pilotage: error: priority.max_extension_s: expected a number, got "x"']
    assert not (tmp_path / "state").exists()


def test_pilotage_serve_runs_its_engines_with_the_file(
        city: RoadNetwork, serving: Callable[..., contextlib.AbstractContextManager[Served]], tmp_path: Path,
        late_bus: Callable[..., dict]) -> None:
    # Buses are never late enough, and every road is driven at 36 km/h (10 m/s).
    path = write(tmp_path / "etc", 'audit = "from-file.jsonl"\nstate_db = "signals.sqlite"\n'
                                   "[priority]\nbus_lateness_s = 1e9\n"
                                   "[corridors]\ndefault_speed_kph = 36.0\nemergency_speed_kph = {}\n")
    flag_audit = tmp_path / "audit.jsonl"
    flags = ("--config", str(path), "--audit", str(flag_audit))
    with serving(tmp_path / "state", tmp_path / "serve.log", *flags) as served:
        with Client(served.endpoint, timeout_s=30.0) as client:
            # Not at -30248, the intersection the server's warm-up pre-empts for its first seconds.
            decision = client.request("priority.request", late_bus(intersection=-30182, group="from--17636"))
            corridor: dict[str, Any] = client.request("corridor.open", {"incident": "fire-1", "origin": -30124,
                                                                        "destination": -16808})
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=30) == 0
    assert (decision["decision"], decision["reason"]) == ("denied", "not late enough for priority")
    assert corridor["travel_time_s"] == pytest.approx(corridor["length_m"] / 10.0, rel=1e-9)
    # The flag's audit log, not the file's; the file's relative path from its folder.
    assert [json.loads(line)["type"] for line in flag_audit.read_text().splitlines()] == [
        "priority.request", "corridor.open"]
    assert not (tmp_path / "etc" / "from-file.jsonl").exists()
    assert (tmp_path / "etc" / "signals.sqlite").exists()
