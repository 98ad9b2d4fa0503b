"""The search space: `--param` specs parsed and checked against the recipe schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.recipe import Recipe, build_recipe
from modelyard.tuning import TuningError, parse_param, parse_space
from modelyard.tuning.space import apply


@pytest.fixture()
def recipe(tmp_path: Path) -> Recipe:
    csv = tmp_path / "data.csv"
    csv.write_text("text,label\na,x\nb,y\n", encoding="utf-8")
    return build_recipe({"data": {"path": str(csv)}, "run": {"output_dir": str(tmp_path)}})


def test_each_distribution_parses() -> None:
    lr = parse_param("train.lr=loguniform:1e-5:1e-3")
    assert (lr.key, lr.kind, lr.low, lr.high) == ("train.lr", "loguniform", 1e-5, 1e-3)
    warm = parse_param("train.warmup_ratio=uniform:0:0.2")
    assert (warm.kind, warm.low, warm.high) == ("uniform", 0.0, 0.2)
    epochs = parse_param("train.epochs=int:2:8:2")
    assert (epochs.kind, epochs.low, epochs.high, epochs.step) == ("int", 2, 8, 2)
    assert epochs.probes() == [2, 8]
    method = parse_param("train.method=choice:full,lora")
    assert method.choices == ("full", "lora")
    assert parse_param("train.batch_size=choice:16,32").choices == (16, 32)  # YAML scalars


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train.lr", "expected KEY=DISTRIBUTION:ARGS"),
        ("=loguniform:1:2", "expected KEY=DISTRIBUTION:ARGS"),
        ("train.lr=normal:0:1", "unknown distribution 'normal'"),
        ("train.lr=loguniform:1e-3", "loguniform takes"),
        ("train.lr=loguniform:0:1e-3", "LO above 0"),
        ("train.lr=uniform:1e-3:1e-5", "the range is empty"),
        ("train.epochs=int:2.5:6", "'2.5' is not an integer"),
        ("train.epochs=int:2:6:0", "STEP must be 1 or more"),
        ("train.lr=uniform:a:1", "'a' is not a number"),
        ("train.method=choice:full", "two or more different values"),
        ("train.method=choice:full,full", "two or more different values"),
        ("train.method=choice:full,[1]", "plain scalars"),
    ],
)
def test_a_bad_spec_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(TuningError, match="--param") as caught:
        parse_param(text)
    assert message in str(caught.value)


def test_the_key_must_be_a_recipe_value(recipe: Recipe) -> None:
    with pytest.raises(
        TuningError, match=r"unknown recipe key 'lrr' in 'train'; allowed: .*\blr\b"
    ):
        parse_space(["train.lrr=loguniform:1e-5:1e-3"], recipe)
    with pytest.raises(TuningError, match="unknown recipe key 'trian' in the recipe"):
        parse_space(["trian.lr=loguniform:1e-5:1e-3"], recipe)
    with pytest.raises(TuningError, match="'train.lora' is a section; tune one of its keys"):
        parse_space(["train.lora=choice:1,2"], recipe)
    with pytest.raises(TuningError, match="'train.lr' has no keys to tune"):
        parse_space(["train.lr.x=uniform:0:1"], recipe)


def test_every_value_must_make_a_valid_recipe(recipe: Recipe) -> None:
    with pytest.raises(TuningError, match="the recipe refuses train.lr=0.0"):
        parse_space(["train.lr=uniform:0:0.1"], recipe)  # lr must be above 0
    with pytest.raises(TuningError, match="the recipe refuses train.optimizer=rmsprop"):
        parse_space(["train.optimizer=choice:adamw,rmsprop"], recipe)


def test_a_space_is_a_list_of_distinct_keys(recipe: Recipe) -> None:
    with pytest.raises(TuningError, match="nothing to search"):
        parse_space([], recipe)
    with pytest.raises(TuningError, match="names train.lr more than once"):
        parse_space(["train.lr=uniform:0.1:0.2", "train.lr=uniform:0.1:0.3"], recipe)


def test_a_key_inside_an_optional_section_is_tuned(recipe: Recipe) -> None:
    lora = apply(recipe.model_dump(mode="json"), {"train.method": "lora"})
    space = parse_space(["train.lora.rank=int:2:8", "train.lr=loguniform:1e-5:1e-3"], lora)
    assert [s.key for s in space] == ["train.lora.rank", "train.lr"]
    tuned = apply(lora.model_dump(mode="json"), {"train.lora.rank": 4})
    assert tuned.train.lora is not None and tuned.train.lora.rank == 4
    # the options of a method the recipe does not train are refused before any trial runs
    with pytest.raises(TuningError, match="train.lora holds options of method 'lora'"):
        parse_space(["train.lora.rank=int:2:8"], recipe)
