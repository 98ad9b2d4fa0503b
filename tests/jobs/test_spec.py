"""Job specs: memory sizes, resource fit, limits, and the cost line."""

from __future__ import annotations

import pytest

from modelyard.jobs.errors import JobsError
from modelyard.jobs.spec import Job, JobSpec, Resources, format_memory, parse_memory
from modelyard.jobs.transitions import RetryPolicy


@pytest.mark.parametrize(
    ("text", "size"),
    [("4G", 4 * 1024**3), ("512M", 512 * 1024**2), ("1.5GiB", int(1.5 * 1024**3)),
     ("2048", 2048), ("64kb", 64 * 1024), (0, 0)],
)  # fmt: skip
def test_memory_sizes_parse(text: str | int, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize("bad", ["lots", "4X", "-1G", "", -5])
def test_bad_memory_sizes_say_what_is_expected(bad: str | int) -> None:
    with pytest.raises(JobsError, match="memory"):
        parse_memory(bad)


def test_format_memory_round_trips_roughly() -> None:
    assert format_memory(parse_memory("4G")) == "4.0G"
    assert format_memory(512) == "512B"


def test_resources_fit_in_every_dimension() -> None:
    free = Resources(2, 4 * 1024**3, 0)
    assert Resources(2, 1024**3, 0).fits_in(free)
    assert not Resources(3, 1024, 0).fits_in(free)
    assert not Resources(1, 5 * 1024**3, 0).fits_in(free)
    assert not Resources(1, 1024, 1).fits_in(free)
    assert (free - Resources(1, 1024**3, 0)) + Resources(1, 1024**3, 0) == free


def test_spec_check_lists_every_bad_limit() -> None:
    spec = JobSpec("command", "true", resources=Resources(0, 0, -1), max_retries=-1)
    with pytest.raises(JobsError) as err:
        spec.check()
    assert "cpus" in str(err.value) and "gpus" in str(err.value) and "max_retries" in str(err.value)


def test_cost_line_prices_held_hours() -> None:
    prices = RetryPolicy(price_per_cpu_hour=0.10, price_per_gpu_hour=2.0)
    spec = JobSpec("command", "true", resources=Resources(2, 0, 1))
    cost = prices.cost(spec.resources, 1800)  # half an hour of 2 CPUs and 1 GPU
    assert cost == pytest.approx(0.5 * (2 * 0.10 + 2.0))
    job = Job("1", spec, "succeeded", 0.0, wall_seconds=1800, cpu_seconds=42.0, cost=cost)
    line = job.cost_line()
    assert "1.0000 CPU-h" in line and "0.5000 GPU-h" in line and "42.0 s CPU" in line
    assert f"${cost:.4f}" in line
    flat = job.to_dict()
    assert flat["cpus"] == 2 and flat["cost_line"] == line and flat["cpu_hours"] == 1.0
