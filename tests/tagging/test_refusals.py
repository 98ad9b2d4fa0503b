"""Stages that work on classifiers only refuse a token-classification run or recipe clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelyard import api
from modelyard.errors import ArtifactError, RecipeError
from modelyard.recipe import build_recipe

TASK_REFUSAL = "it is a token-classification run .* works on classification runs only"


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        (lambda run, data: api.explain(run, "password parcel"), TASK_REFUSAL),
        (lambda run, data: api.audit_membership(run, data, data), TASK_REFUSAL),
        (lambda run, data: api.merge(run), "'token-classifier' artifact; merge needs an adapter"),
        (lambda run, data: api.export(run), "not a language-model run"),
        (lambda run, data: api.load_run(run), TASK_REFUSAL),
    ],
    ids=["explain", "audit_membership", "merge", "export", "load_run"],
)
def test_classifier_stages_refuse_a_token_run(
    full_run: Path, tagged_jsonl: Path, stage: Any, message: str
) -> None:
    with pytest.raises(ArtifactError, match=message):
        stage(full_run, tagged_jsonl)


def test_the_data_audit_refuses_a_token_recipe(tagging_recipe: dict[str, Any]) -> None:
    with pytest.raises(RecipeError, match="data tools .* task is 'token-classification'"):
        api.audit(build_recipe(tagging_recipe, "recipe", []))


def test_a_token_run_is_pushed_to_the_registry(full_run: Path, tmp_path: Path) -> None:
    stored = api.push(full_run, "ner", registry=tmp_path / "registry")
    assert stored.version == 1
