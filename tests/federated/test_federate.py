"""End to end: a Flower simulation over the tiny backbone saves a run that predicts."""

from __future__ import annotations

import json

import pytest

from modelyard.federated.run import federate
from modelyard.recipe import Recipe

pytest.importorskip("flwr")


def test_federation_saves_a_run_that_predicts(fed_recipe: Recipe) -> None:
    result = federate(fed_recipe, drop={2: 1})
    rounds = result.rounds
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(r["completed"] for r in rounds)
    # client 1 left round 2: the round completed with the other two
    assert rounds[1]["clients_failed"] == 1 and rounds[1]["clients_replied"] == 2
    assert rounds[0]["clients_replied"] == 3
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["kind"] == "adapter-classifier" and manifest["federated"] is True
    card = (result.run_dir / "MODEL_CARD.md").read_text()
    assert "## Federated training" in card
    assert (result.run_dir / "federation.png").stat().st_size > 0
    from modelyard.api import predict

    out = predict(result.run_dir, ["hello world"])
    assert len(out) == 1


@pytest.mark.slow
def test_resume_continues_after_the_last_completed_round(fed_recipe: Recipe) -> None:
    first = federate(fed_recipe)
    state_file = first.run_dir / "federation" / "state.json"
    state = json.loads(state_file.read_text())
    # as a server killed after round 1 leaves it: round 1 saved, no manifest yet
    state["completed_rounds"] = 1
    state["rounds"] = [r for r in state["rounds"] if r["round"] == 1]
    state_file.write_text(json.dumps(state))
    (first.run_dir / "manifest.json").unlink()
    again = federate(fed_recipe, resume=True)
    assert again.resumed_from == 1
    assert [r["round"] for r in again.rounds] == [1, 2]
