"""Every attribution method on a tiny model whose decision hangs on one known word."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.errors import MissingExtraError, RecipeError, UnknownPluginError
from modelyard.explainability import EXPLAINERS, ExplainError, Subject, as_subject, gradient
from modelyard.explainability.api import explain
from modelyard.explainability.core import resolve_config
from modelyard.explainability.gradient import (
    FIRST_STEPS,
    IntegralPath,
    encode,
    explained_output,
    integrated_gradients,
    next_steps,
    pad_baseline,
    path_dtype,
)
from modelyard.explainability.methods import MethodSpec, logit_score, proba_score
from modelyard.explainability.words import split_words
from modelyard.registry import LoadedRun
from tests.explainability.conftest import KEY, key_rows

TEXT = f"my card {KEY} is late please"


class ForwardOnly:
    """The key model seen only through predict_proba, as an ONNX artifact would be."""

    name = "onnx-like"

    def __init__(self, run: LoadedRun) -> None:
        self._inner = as_subject(run).backend
        self.labels, self.max_length, self.path = run.labels, run.max_length, run.path

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        return self._inner.predict_proba(texts)


def test_the_tiny_model_decides_by_the_key_word(key_run: LoadedRun) -> None:
    rows = key_rows(60, seed=99)
    probs = as_subject(key_run).proba([t for t, _ in rows])
    predicted = [key_run.labels[i] for i in probs.argmax(axis=1)]
    assert np.mean([p == y for p, (_, y) in zip(predicted, rows, strict=True)]) >= 0.95


# gradient x input is local: on a saturated, confident model its scores all fall to about 0
# (seen on one CPU's training of this model), so it is promised no ranking
@pytest.mark.parametrize("name", [n for n in EXPLAINERS.names() if n != "gxi"])
def test_every_method_ranks_the_key_word_first(key_run: LoadedRun, name: str) -> None:
    [exp] = explain(key_run, TEXT, method=name)
    assert exp.label == "yes" and exp.method == name
    assert [w.word for w in exp.words] == TEXT.split()
    assert exp.top_words(1)[0].word == KEY
    runner_up = exp.top_words(2)[1].score
    assert exp.top_words(1)[0].score > 5 * max(abs(runner_up), 1e-6)


@pytest.mark.parametrize("name", EXPLAINERS.names())
def test_every_method_is_deterministic(key_run: LoadedRun, name: str) -> None:
    first, second = (explain(key_run, TEXT, method=name)[0] for _ in range(2))
    np.testing.assert_allclose(
        [w.score for w in first.words], [w.score for w in second.words], atol=1e-6
    )


def test_ig_is_complete_within_its_reported_delta(key_run: LoadedRun) -> None:
    subject = as_subject(key_run)
    for steps in (5, 20, 80):
        [exp] = explain(subject, TEXT, method="ig", steps=steps)
        enc = encode(subject, split_words(TEXT))
        f = explained_output(key_run.model, 1, "log-odds")
        with torch.no_grad():
            diff = float(f(enc.input_ids, *enc.extra) - f(pad_baseline(enc, 0), *enc.extra))
        total = sum(t.score for t in exp.tokens)
        assert exp.delta is not None
        assert abs(total - diff) <= abs(exp.delta) + 1e-4
        assert sum(w.score for w in exp.words) == pytest.approx(total, abs=1e-6)
    assert abs(exp.delta) < 0.01 * abs(diff)  # at 80 steps the integral has converged


def test_ig_without_steps_adds_them_until_the_completeness_error_is_met(
    key_run: LoadedRun,
) -> None:
    for error in (0.05, 0.01, 0.001):
        [exp] = explain(key_run, TEXT, method="ig", completeness_error=error)
        assert exp.steps is not None and exp.steps >= FIRST_STEPS
        # the error asked for is met, or the cap was reached
        assert exp.relative_delta() <= error or exp.steps == 128  # type: ignore[operator]
    tight = explain(key_run, TEXT, method="ig", completeness_error=1e-12)[0]
    loose = explain(key_run, TEXT, method="ig", completeness_error=0.5)[0]
    assert loose.steps < tight.steps == 128  # type: ignore[operator]


def test_the_next_try_grows_with_the_miss_within_bounds() -> None:
    assert next_steps(8, 0.0101, 0.01) == 12  # a near miss still grows 1.5x
    assert next_steps(8, 0.08, 0.01) == 20  # 1.25 x (8)^(1/3) = 2.5x
    assert next_steps(8, 10.0, 0.01) == 32  # at most 4x


def _ig(run: LoadedRun, **options: object) -> tuple[np.ndarray, float]:
    subject = as_subject(run)
    words = split_words(TEXT)
    target = run.labels.index("yes")
    raw = integrated_gradients(subject, words, target, resolve_config(subject, **options))
    assert raw.piece_scores is not None and raw.delta is not None
    return raw.piece_scores, raw.delta


def test_batched_ig_computes_what_captum_computes(key_run: LoadedRun) -> None:
    captum_attr = pytest.importorskip("captum.attr")
    scores, delta = _ig(key_run, steps=16, precision="fp32")
    subject = as_subject(key_run)
    enc = encode(subject, split_words(TEXT))
    model = key_run.model
    lig = captum_attr.LayerIntegratedGradients(
        explained_output(model, key_run.labels.index("yes"), "log-odds"),
        model.get_input_embeddings(),
    )
    with torch.enable_grad():
        per_dim, reference_delta = lig.attribute(
            enc.input_ids,
            baselines=pad_baseline(enc, key_run.tokenizer.pad_token_id or 0),
            additional_forward_args=enc.extra,
            n_steps=16,
            return_convergence_delta=True,
        )
    reference = per_dim.sum(dim=-1)[0].detach().double().numpy()
    np.testing.assert_allclose(scores, reference, rtol=1e-4, atol=1e-5)
    assert delta == pytest.approx(float(reference_delta[0]), abs=1e-4)


def test_ig_in_chunks_equals_ig_in_one_batch(
    key_run: LoadedRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole, whole_delta = _ig(key_run, steps=12, precision="fp32")
    monkeypatch.setattr(gradient, "_IG_TOKEN_BUDGET", 1)  # one step per forward pass
    chunked, chunked_delta = _ig(key_run, steps=12, precision="fp32")
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
    assert chunked_delta == pytest.approx(whole_delta, abs=1e-5)


def test_a_bf16_path_reports_its_error_against_fp32_ends(key_run: LoadedRun) -> None:
    with torch.enable_grad():
        scores, delta = _ig(key_run, steps=24, precision="bf16")
    subject = as_subject(key_run)
    enc = encode(subject, split_words(TEXT))
    f = explained_output(key_run.model, key_run.labels.index("yes"), "log-odds")
    with torch.no_grad():
        ends = f(enc.input_ids, *enc.extra) - f(
            pad_baseline(enc, key_run.tokenizer.pad_token_id or 0), *enc.extra
        )
    # delta is measured against the fp32 difference of the ends, not a bf16 one
    assert delta == pytest.approx(float(scores.sum()) - float(ends[0]), abs=1e-6)
    fp32, _ = _ig(key_run, steps=24, precision="fp32")
    assert np.argmax(scores) == np.argmax(fp32)  # bf16 rounding keeps the ranking's top


def test_a_bf16_path_runs_on_a_kept_bf16_copy_of_the_model(key_run: LoadedRun) -> None:
    model = key_run.model
    gradient._PATH_MODELS.pop(model, None)
    with torch.enable_grad():
        _ig(key_run, steps=8, precision="bf16")
    low = gradient._PATH_MODELS[model][torch.bfloat16]
    assert next(low.parameters()).dtype == torch.bfloat16
    assert not any(p.requires_grad for p in low.parameters())
    # the run's own model is untouched, and the copy is reused by the next text
    assert next(model.parameters()).dtype == torch.float32
    assert gradient.path_model(model, torch.bfloat16) is low
    fp32_only = _ig(key_run, steps=8, precision="fp32")
    assert fp32_only[1] is not None


def test_a_missed_bf16_try_is_redone_in_fp32(
    key_run: LoadedRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried: list[tuple[int, torch.dtype | None]] = []
    original = IntegralPath.integrate

    def spy(
        self: IntegralPath, steps: int, dtype: torch.dtype | None
    ) -> tuple[torch.Tensor, float]:
        tried.append((steps, dtype))
        return original(self, steps, dtype)

    monkeypatch.setattr(IntegralPath, "integrate", spy)
    _ig(key_run, precision="bf16", completeness_error=1e-9, max_steps=60)
    assert tried[0] == (FIRST_STEPS, torch.bfloat16)
    assert len(tried) >= 2 and all(dtype is None for _, dtype in tried[1:])
    assert tried[-1][0] == 60


def test_auto_precision_is_bf16_only_where_the_cpu_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cpu = torch.device("cpu")
    assert path_dtype("fp32", cpu) is None and path_dtype("bf16", cpu) is torch.bfloat16
    monkeypatch.setattr(gradient, "cpu_supports_fast_bf16", lambda: True)
    assert path_dtype("auto", cpu) is torch.bfloat16
    assert path_dtype("auto", torch.device("cuda")) is None
    monkeypatch.setattr(gradient, "cpu_supports_fast_bf16", lambda: False)
    assert path_dtype("auto", cpu) is None


def test_ig_with_steps_set_takes_exactly_those(key_run: LoadedRun) -> None:
    [exp] = explain(key_run, TEXT, method="ig", steps=12)
    assert exp.steps == 12
    assert explain(key_run, TEXT, method="occlusion")[0].steps is None


def test_a_bad_completeness_error_is_a_recipe_error(key_run: LoadedRun) -> None:
    with pytest.raises(RecipeError, match="completeness_error"):
        resolve_config(as_subject(key_run), completeness_error=0)


def test_ig_explains_probabilities_when_asked(key_run: LoadedRun) -> None:
    [exp] = explain(key_run, TEXT, method="ig", steps=80, score="probability")
    assert exp.units == "probability" and exp.top_words(1)[0].word == KEY
    # in probability units the key word accounts for at most the whole 0..1 range
    assert 0 < exp.top_words(1)[0].score <= 1


def test_gradient_methods_score_word_pieces_and_sum_them_into_words(key_run: LoadedRun) -> None:
    [exp] = explain(key_run, f"{KEY} 123 late", method="gxi")
    pieces = [(t.token, t.word) for t in exp.tokens]
    assert pieces == [
        ("[CLS]", None),
        (KEY, 0),
        ("1", 1),
        ("##2", 1),
        ("##3", 1),
        ("late", 2),
        ("[SEP]", None),
    ]
    multi = sum(t.score for t in exp.tokens if t.word == 1)
    assert exp.words[1].word == "123" and exp.words[1].score == pytest.approx(multi)


def test_forward_only_artifacts_get_occlusion_and_shapley(key_run: LoadedRun) -> None:
    subject = as_subject(ForwardOnly(key_run))
    assert subject.run is None
    [exp] = explain(subject, TEXT)  # the gradient default falls back to occlusion
    assert exp.method == "occlusion" and exp.top_words(1)[0].word == KEY
    assert explain(subject, TEXT, method="shapley")[0].top_words(1)[0].word == KEY
    with pytest.raises(
        ExplainError, match=r"'ig' needs gradients.*'onnx-like'.*occlusion, shapley"
    ):
        explain(subject, TEXT, method="ig")


def test_unknown_method_lists_the_known_ones(key_run: LoadedRun) -> None:
    with pytest.raises(
        UnknownPluginError, match="unknown explanation method 'lime'; available: gxi, ig"
    ):
        explain(key_run, TEXT, method="lime")


def test_bad_options_are_reported_together(key_run: LoadedRun) -> None:
    with pytest.raises(RecipeError, match=r"steps: .*greater than or equal to 2.*samples: "):
        resolve_config(as_subject(key_run), steps=1, samples=0)


def test_unknown_target_label_is_refused(key_run: LoadedRun) -> None:
    with pytest.raises(ExplainError, match="'maybe' is not one of the model's labels: no, yes"):
        explain(key_run, TEXT, target="maybe")
    [exp] = explain(key_run, TEXT, method="occlusion", target="no")
    assert exp.label == "no" and exp.words[2].score < 0  # the key word argues against "no"


def test_registering_a_method_twice_fails(key_run: LoadedRun) -> None:
    spec = EXPLAINERS.get("ig")
    with pytest.raises(ValueError, match="already registered"):
        EXPLAINERS.add("ig", MethodSpec("ig", spec.fn, True, "again"))


def test_log_odds_from_logits_and_from_probabilities_agree() -> None:
    logits = torch.tensor([[0.3, 2.0, -1.0], [1.0, 1.0, 1.0]])
    probs = torch.softmax(logits, dim=-1).numpy()
    for target in range(3):
        np.testing.assert_allclose(
            logit_score(logits, target, "log-odds").numpy(),
            proba_score(probs, target, "log-odds"),
            rtol=1e-5,
        )
    np.testing.assert_allclose(proba_score(probs, 1, "probability"), probs[:, 1])


def test_subject_from_a_run_directory_has_gradients(key_run_dir: Path) -> None:
    subject: Subject = as_subject(key_run_dir)
    assert subject.run is not None and subject.labels == ["no", "yes"]


def test_a_missing_captum_names_the_extra(
    key_run: LoadedRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "captum.attr", None)  # an import of it now fails
    with pytest.raises(MissingExtraError, match=r"pip install 'modelyard\[explain\]'"):
        explain(key_run, TEXT, method="occlusion")
