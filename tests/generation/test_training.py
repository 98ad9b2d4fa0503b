"""Language-model runs end to end on tiny models: train, evaluate, save, load, generate, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import modelyard.api as api
from modelyard.errors import ArtifactError, DataError, RecipeError
from modelyard.recipe import build_recipe


def test_sft_run_saves_a_verified_adapter_and_learns(sft_recipe: dict) -> None:
    sft_recipe["train"].update({"method": "full", "lr": 1e-2, "epochs": 6})
    result = api.train(build_recipe(sft_recipe), progress=False)
    before, after = result.metrics["before"], result.metrics["after"]
    assert after["loss"] < before["loss"] - 0.5  # the answers are a function of the question
    assert {"rougeL", "exact_match", "samples", "generation_tokens_per_s"} <= set(after)
    assert len(after["samples"]) == 2
    t = result.training
    assert t["train_tokens"] > 0 and t["tokens_per_s"] > 0 and t["packing"] is True
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["kind"] == "causal-lm" and manifest["task"] == "generation"
    assert "Sample generations" in (result.run_dir / "report.md").read_text()


def test_lora_is_the_default_and_saves_only_the_adapter(sft_recipe: dict) -> None:
    result = api.train(build_recipe(sft_recipe), progress=False)
    files = json.loads((result.run_dir / "manifest.json").read_text())
    assert (
        files["kind"] == "adapter-causal-lm" and files["method"] == "lora" and files["base_sha256"]
    )
    assert (
        "adapter_model.safetensors" in files["files"] and "model.safetensors" not in files["files"]
    )
    assert result.training["trainable_parameters"] < result.training["parameters"] / 5
    out = api.predict(result.run_dir, "what colour is the cat?")
    assert out[0]["prompt"] == "what colour is the cat?" and isinstance(out[0]["text"], str)
    with pytest.raises(ArtifactError, match="language-model run: file prediction classifies"):
        api.predict_file(result.run_dir, "in.csv", "out.csv")


def test_sampling_is_seeded(sft_recipe: dict) -> None:
    run = api.train(build_recipe(sft_recipe), progress=False).run_dir
    one = api.generate(run, ["the cat"], max_tokens=6, temperature=1.5, top_p=0.9, seed=1)
    two = api.generate(run, ["the cat"], max_tokens=6, temperature=1.5, top_p=0.9, seed=1)
    assert one == two and one[0]["tokens"] <= 6


def test_evaluate_a_generation_run_on_a_file(sft_recipe: dict, tmp_path: Path) -> None:
    from tests.generation.conftest import qa_rows, write_jsonl

    run = api.train(build_recipe(sft_recipe), progress=False).run_dir
    held = write_jsonl(tmp_path / "held.jsonl", qa_rows(5, seed=9))
    metrics = api.evaluate(run, held)
    assert metrics["n"] == 5 and {"loss", "perplexity", "rougeL", "exact_match"} <= set(metrics)
    assert (Path(metrics["report_dir"]) / "metrics.json").is_file()


def test_resume_continues_an_interrupted_run(sft_recipe: dict) -> None:
    sft_recipe["train"].update({"keep_checkpoints": True, "method": "full"})
    first = api.train(build_recipe(sft_recipe), progress=False)
    (first.run_dir / "manifest.json").unlink()  # as if it had stopped before the end
    again = api.train(build_recipe(sft_recipe), resume=True, progress=False)
    assert again.training["resumed_from_step"] == first.training["steps"]


def test_clm_run_on_plain_text_lowers_perplexity(clm_recipe: dict) -> None:
    clm_recipe["train"].update({"epochs": 4})
    result = api.train(build_recipe(clm_recipe), progress=False)
    assert result.metrics["after"]["perplexity"] < result.metrics["before"]["perplexity"] * 0.7
    assert json.loads((result.run_dir / "manifest.json").read_text())["kind"] == "causal-lm"
    text = api.predict(result.run_dir, "the red")[0]["text"]
    assert isinstance(text, str)
    held = Path(clm_recipe["data"]["path"]).with_name("held.txt")
    held.write_text("the red cat sees the dog.\n\nthe blue cow sees the bird.\n", encoding="utf-8")
    metrics = api.evaluate(result.run_dir, held)
    assert metrics["n"] == 2 and metrics["perplexity"] > 1 and "rougeL" not in metrics


def test_mlm_on_an_encoder_then_a_classifier_on_top(
    tmp_path: Path, tiny_backbone: Path, labelled_csv: Path
) -> None:
    import pandas as pd

    texts = tmp_path / "texts.csv"
    pd.read_csv(labelled_csv)[["text"]].to_csv(texts, index=False)
    mlm = build_recipe(
        {
            "task": "language-modeling",
            "run": {"name": "mlm", "output_dir": str(tmp_path / "runs"), "seed": 1},
            "data": {"path": str(texts)},
            "model": {"backbone": str(tiny_backbone), "max_length": 32},
            "train": {
                "method": "full",
                "epochs": 10,
                "batch_size": 8,
                "lr": 2e-3,
                "precision": "fp32",
                "num_threads": 1,
            },
        }
    )
    result = api.train(mlm, progress=False)
    assert result.metrics["after"]["loss"] < result.metrics["before"]["loss"]
    assert result.training["packing"] is False
    with pytest.raises(Exception, match="masked-LM run"):
        api.predict(result.run_dir, "hello")
    clf = build_recipe(
        {
            "run": {"name": "clf", "output_dir": str(tmp_path / "runs"), "seed": 1},
            "data": {"path": str(labelled_csv)},
            "model": {"backbone": str(result.run_dir), "max_length": 32, "pooling": "mean"},
            "train": {
                "epochs": 1,
                "batch_size": 8,
                "precision": "fp32",
                "num_threads": 1,
                "checkpoint_every": None,
            },
            "evaluate": {"speed": False},
        }
    )
    assert api.train(clf, progress=False).metrics["n"] > 0


def test_packing_on_an_encoder_is_refused(tmp_path: Path, tiny_backbone: Path) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("a b\n\nc d\n", encoding="utf-8")
    recipe = build_recipe(
        {
            "task": "language-modeling",
            "data": {"path": str(texts)},
            "model": {"backbone": str(tiny_backbone)},
            "generation": {"packing": True},
        }
    )
    with pytest.raises(RecipeError, match="packing needs a decoder"):
        api.train(recipe, progress=False)


def test_truncation_is_counted_never_silent(sft_recipe: dict) -> None:
    sft_recipe["model"]["max_length"] = 30  # conversations are ~37 tokens, prompts ~26
    result = api.train(build_recipe(sft_recipe), progress=False)
    report = result.data_report
    assert report["train_truncated"] == result.data_report["split_sizes"]["train"]
    assert "train_dropped_truncated_answer" not in report  # each kept a few answer tokens
    assert result.metrics["after"]["eval_truncated"] == report["split_sizes"]["test"]


def test_nothing_left_after_truncation_is_an_error(sft_recipe: dict) -> None:
    sft_recipe["model"]["max_length"] = 8
    with pytest.raises(DataError, match="no training example is left"):
        api.train(build_recipe(sft_recipe), progress=False)
    assert not (Path(sft_recipe["run"]["output_dir"]) / "sft").exists()  # nothing written


def test_template_missing_is_an_error_and_a_recipe_template_fixes_it(
    sft_recipe: dict, tiny_llama_no_template: Path
) -> None:
    from tests.generation.conftest import CHATML

    sft_recipe["model"]["backbone"] = str(tiny_llama_no_template)
    with pytest.raises(DataError, match="no chat template"):
        api.train(build_recipe(sft_recipe), progress=False)
    sft_recipe["generation"]["chat_template"] = CHATML
    assert api.train(build_recipe(sft_recipe), progress=False).metrics["after"]["n"] > 0


def test_cli_predict_evaluate_and_export_a_generation_run(sft_recipe: dict, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from modelyard.cli import app
    from tests.generation.conftest import qa_rows, write_jsonl

    run = api.train(build_recipe(sft_recipe), progress=False).run_dir
    runner = CliRunner()
    out = runner.invoke(
        app,
        [
            "predict",
            str(run),
            "what colour is the cow?",
            "--max-tokens",
            "4",
            "--temperature",
            "0.8",
            "--seed",
            "2",
        ],
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["tokens"] <= 4
    held = write_jsonl(tmp_path / "held.jsonl", qa_rows(4, seed=5))
    out = runner.invoke(app, ["evaluate", str(run), "--data", str(held)])
    assert out.exit_code == 0 and "rougeL" in out.output, out.output
    out = runner.invoke(
        app,
        [
            "export",
            str(run),
            "--format",
            "gguf",
            "--quant",
            "q8_0",
            "--output",
            str(tmp_path / "g"),
        ],
    )
    assert out.exit_code == 0 and (tmp_path / "g" / "model-q8_0.gguf").is_file(), out.output
