"""Late buses spread over the embedded city: the requests the decision benchmarks decide."""

import numpy as np

from pilotage.core.signals import SignalPlans
from pilotage.signal_priority import PriorityRequest

#: The clock's time in the decision benchmarks (s).
NOW_S = 3600.0


def city_requests(plans: SignalPlans, count: int, rng: np.random.Generator) -> list[PriorityRequest]:
    """``count`` late buses at random intersections, each for a group of its second stage."""
    chosen = rng.choice(len(plans), size=count, replace=count > len(plans))
    return [PriorityRequest(f"bus-{i}", plans.plans[k].id,
                            plans.plans[k].group_names[int(np.argmax(plans.plans[k].stage_groups[1]))],
                            float(rng.uniform(5.0, 60.0)), lateness_s=float(rng.uniform(60.0, 300.0)),
                            occupancy=float(rng.uniform(0.0, 80.0)))
            for i, k in enumerate(chosen)]
