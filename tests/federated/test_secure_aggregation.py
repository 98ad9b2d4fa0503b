"""SecAgg+: the server aggregates masked updates and still gets FedAvg's weights."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load_file

from modelyard.federated.run import federate
from modelyard.recipe import Recipe

pytest.importorskip("flwr")


@pytest.mark.slow
def test_secure_aggregation_matches_plain_fedavg(fed_recipe: Recipe) -> None:
    def run(name: str, secure: bool) -> tuple[dict[str, np.ndarray], list[dict]]:
        spec = fed_recipe.model_dump(mode="json")
        spec["run"]["name"] = name
        spec["federated"].update(rounds=1, secure_aggregation=secure)
        result = federate(Recipe.model_validate(spec))
        return load_file(str(result.run_dir / "federation" / "global.safetensors")), result.rounds

    plain, _ = run("plain", secure=False)
    masked, rounds = run("secagg", secure=True)
    assert rounds[0]["completed"] and rounds[0]["secure_aggregation"]
    assert rounds[0]["bytes_sent"] > 0
    assert set(masked) == set(plain)
    # the same clients trained the same way: only SecAgg+'s quantization (clipping range 8
    # over 2**22 levels) separates the two averages
    # LoRA's B matrices start at zero: nonzero ones mean the clients' updates arrived
    trained = [k for k in masked if "lora_B" in k]
    assert trained and max(float(np.abs(masked[k]).max()) for k in trained) > 1e-3
    for name in plain:
        np.testing.assert_allclose(masked[name], plain[name], atol=1e-4)
