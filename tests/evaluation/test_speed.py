"""measure_speed with a fake predictor; peak memory and cost arithmetic."""

from __future__ import annotations

import sys

import psutil
import pytest

from modelyard.evaluation import cost_per_million, measure_speed, peak_rss_mb, speed


class FakePredictor:
    """Records every batch it is called with instead of predicting."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[int]:
        self.batches.append(list(texts))
        return [0] * len(texts)


def test_structure_and_positivity() -> None:
    result = measure_speed(FakePredictor(), ["a", "b", "c"], batch_size=8, latency_runs=5)
    assert set(result) == {"latency_p50_ms", "latency_p95_ms", "throughput_b8_per_s", "batch_size"}
    assert result["batch_size"] == 8
    assert all(value > 0 for value in result.values())
    assert result["latency_p95_ms"] >= result["latency_p50_ms"]


def test_batch_sizes_and_call_counts() -> None:
    fake = FakePredictor()
    measure_speed(fake, ["t0", "t1", "t2", "t3", "t4"], batch_size=4, latency_runs=7, warmup=2)
    sizes = [len(batch) for batch in fake.batches]
    # 2 warm-up + 7 timed singles, then 2 warm-up + 2 timed full batches of 4.
    assert sizes == [1] * 9 + [4] * 4


def test_latency_cycles_through_texts() -> None:
    fake = FakePredictor()
    texts = ["t0", "t1", "t2"]
    measure_speed(fake, texts, batch_size=2, latency_runs=5, warmup=0)
    singles = [batch[0] for batch in fake.batches if len(batch) == 1]
    assert singles == ["t0", "t1", "t2", "t0", "t1"]


def test_throughput_batches_cover_every_text() -> None:
    fake = FakePredictor()
    texts = [f"t{i}" for i in range(70)]
    measure_speed(fake, texts, batch_size=32, latency_runs=1, warmup=0)
    batches = [batch for batch in fake.batches if len(batch) != 1]
    assert len(batches) == 3  # ceil(70 / 32) full batches, the last one wrapping around
    assert all(len(batch) == 32 for batch in batches)
    assert {text for batch in batches for text in batch} == set(texts)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"texts": []}, "at least one text"),
        ({"batch_size": 0}, "batch_size"),
        ({"latency_runs": 0}, "latency_runs"),
        ({"warmup": -1}, "warmup"),
    ],
)
def test_invalid_arguments_raise(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"texts": ["a"], **kwargs}
    with pytest.raises(ValueError, match=message):
        measure_speed(FakePredictor(), **args)  # type: ignore[arg-type]


def test_predictor_errors_propagate() -> None:
    def broken(texts: list[str]) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        measure_speed(broken, ["a"])


def test_peak_rss_is_about_at_least_current_rss() -> None:
    current_mb = psutil.Process().memory_info().rss / 2**20
    # The kernel's high-water mark can trail live RSS by a few pages, so allow slack.
    assert peak_rss_mb() >= 0.95 * current_mb


def test_peak_rss_falls_back_to_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "resource", None)  # makes `import resource` fail
    monkeypatch.setattr(speed, "_vm_hwm_mb", lambda: None)  # as where /proc is missing
    assert peak_rss_mb() > 0


def test_cost_per_million_golden_values() -> None:
    # 1e6 / 1000 per s = 1000 s = 1/3.6 h, times $3.60 per CPU-hour = $1.
    assert cost_per_million(1000.0, 3.6, 1) == pytest.approx(1.0)
    # Twice the CPUs cost twice as much at the same throughput.
    assert cost_per_million(100.0, 0.05, 2) == pytest.approx(1e4 / 3600 * 0.05 * 2)


@pytest.mark.parametrize(
    ("throughput", "price", "cpus"), [(0.0, 1.0, 1), (1.0, -1.0, 1), (1.0, 1.0, 0)]
)
def test_cost_per_million_rejects_bad_input(throughput: float, price: float, cpus: int) -> None:
    with pytest.raises(ValueError):
        cost_per_million(throughput, price, cpus)


def test_a_child_reports_its_own_peak_not_its_parents() -> None:
    # ru_maxrss starts a spawned process at its parent's size; the peak must be the child's
    import subprocess

    ballast = bytearray(600 * 2**20)
    ballast[::4096] = b"\x01" * len(ballast[::4096])  # 600 MiB resident in this process
    # the child loads speed.py alone (numpy, no torch) so its own peak is small
    code = (
        "import importlib.util as u, sys; s = u.spec_from_file_location('s', sys.argv[1]); "
        "m = u.module_from_spec(s); s.loader.exec_module(m); print(m.peak_rss_mb())"
    )
    args = [sys.executable, "-c", code, speed.__file__]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    del ballast
    assert float(out.stdout.strip()) < 200
