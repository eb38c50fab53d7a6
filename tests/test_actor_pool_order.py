"""``RayActorPool`` takes finished rollouts in the order it requested them (a real local Ray)."""

from __future__ import annotations

import time

import pytest
import ray

from actors.pool import _first_ready


@ray.remote(num_cpus=0)
def _value(i: int) -> int:
    return i


@ray.remote(num_cpus=0)
def _never_done() -> None:
    time.sleep(600)


@pytest.mark.ray
def test_first_ready_is_the_earliest_done_ref_in_list_order():
    # ray.wait(refs, num_returns=1) picks among done refs in the order of a hash table of their
    # IDs: on a cluster it passed over a replacement actor's finished rollouts for minutes.
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        done = [_value.remote(i) for i in range(8)]
        ray.wait(done, num_returns=len(done))
        assert [ray.get(_first_ready(done[k:])) for k in range(len(done))] == list(range(len(done)))
        never = _never_done.remote()
        assert _first_ready([never, *done[3:]]) == done[3]
        late = _value.remote(8)  # not done yet, most likely: _first_ready blocks until it is
        assert _first_ready([never, late]) == late
        ray.cancel(never, force=True)
    finally:
        ray.shutdown()
