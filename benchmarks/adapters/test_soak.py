"""The soak (``soak.py``): `pilotage serve` under mixed traffic at 80 % of its measured maximum, for
``PILOTAGE_SOAK_S`` seconds (60 by default; 1800 for the figures of docs/operations.md).

Not timed: its figures (latency percentiles per type at the start and the end, memory, replies
lost, codes) are a quality table. It fails only on what must never happen: the server gone, or a
request left unanswered while the server was not overloaded.
"""

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

SOAK = Path(__file__).with_name("soak.py")


def test_mixed_traffic_at_80_percent_of_the_maximum(tmp_path: Path, quality_table: Callable[
        [str, str, Mapping[str, float | int | str | None]], None]) -> None:
    duration_s = float(os.environ.get("PILOTAGE_SOAK_S", "60"))
    out = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, str(SOAK), "--duration", str(duration_s), "--out", str(out)],
                         capture_output=True, text=True, timeout=duration_s + 900, check=False)
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    group = f"soak, {duration_s:.0f} s at {report['requests_per_s']:.0f} requests/s"
    for message_type, windows in report["latency_by_window"].items():
        first, last = windows[0], windows[-1]
        quality_table(group, message_type, {"p50 start ms": first.get("p50_ms"), "p99 start ms": first.get("p99_ms"),
                                            "p99 end ms": last.get("p99_ms"), "p99.9 end ms": last.get("p99.9_ms")})
    quality_table(group, "server", {"memory first MB": report["memory_mb"]["first"],
                                    "memory end MB": report["memory_mb"]["end"], "sent": report["sent"],
                                    "lost": report["lost"], "overloaded": report["codes"].get("OVERLOADED", 0)})
    assert report["server_alive"]
    if not report["codes"].get("OVERLOADED"):
        assert report["lost"] == 0
