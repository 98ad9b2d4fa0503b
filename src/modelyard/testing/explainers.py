"""The contract of attribution methods (`modelyard.explainability.EXPLAINERS`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.backends import Backend

# importing core registers the built-in methods
from modelyard.explainability.core import target_index
from modelyard.explainability.methods import EXPLAINERS, Attribution, MethodSpec
from modelyard.explainability.subject import Subject, as_subject
from modelyard.explainability.words import Words, split_words
from modelyard.recipe import ExplainConfig
from modelyard.registry.run import LoadedRun
from modelyard.testing.contract import Contract

TEXT = "the parcel arrived late , please refund my card"


def check_explainer(
    explainer: MethodSpec | str,
    subject: Subject | LoadedRun | Backend | str | Path,
    text: str = TEXT,
    *,
    cfg: ExplainConfig | None = None,
    atol: float = 1e-6,
) -> None:
    """Check an attribution method on one text, explaining the predicted class.

    It returns an Attribution with one finite score per word; word-piece scores, when
    given, come one per piece with an owner that is None or a word index; its delta is
    finite or None; it leaves the model's weights, train/eval mode, requires_grad flags,
    gradients and the grad mode alone; it is deterministic (within `atol`); and a method
    that needs no gradients gives the same scores from the backend alone.
    Returns None; raises AssertionError naming the broken clause, ValueError when the
    method needs gradients and `subject` has no PyTorch model.
    """
    spec = EXPLAINERS.get(explainer) if isinstance(explainer, str) else explainer
    c = Contract("explainer", spec.name)
    who = as_subject(subject)
    if spec.needs_gradients and who.run is None:
        raise ValueError(f"explainer '{spec.name}' needs gradients: give a PyTorch run")
    cfg = cfg or ExplainConfig()
    words = split_words(text)
    target = target_index(who, who.proba([text])[0], None)
    before = _state(who)
    raw = _attribute(spec, who, words, target, cfg)
    _check_attribution(c, raw, words)
    _check_unchanged(c, before, _state(who))
    again = _attribute(spec, who, words, target, cfg)
    c.require(
        np.allclose(again.word_scores, raw.word_scores, atol=atol),
        "is deterministic",
        f"scores {raw.word_scores.tolist()} then {again.word_scores.tolist()}",
    )
    if not spec.needs_gradients:
        alone = _attribute(spec, Subject(who.backend, None), words, target, cfg)
        c.require(
            np.allclose(alone.word_scores, raw.word_scores, atol=atol),
            "a method without gradients gives the same scores from the backend alone",
        )


def _attribute(
    spec: MethodSpec, subject: Subject, words: Words, target: int, cfg: ExplainConfig
) -> Attribution:
    # the same grad mode modelyard.explainability.core.attribute runs a method in
    mode = torch.enable_grad() if spec.needs_gradients else torch.no_grad()
    with mode:
        return spec.fn(subject, words, target, cfg)


def _check_attribution(c: Contract, raw: Any, words: Words) -> None:
    c.require(isinstance(raw, Attribution), "returns an Attribution", type(raw).__name__)
    scores = np.asarray(raw.word_scores)
    c.require(
        scores.shape == (len(words),),
        "one score per word",
        f"{scores.shape} scores for {len(words)} words",
    )
    c.require(np.isfinite(scores).all(), "word scores are finite", f"got {scores.tolist()}")
    if raw.piece_scores is not None:
        pieces = np.asarray(raw.piece_scores)
        c.require(
            len(pieces) == len(raw.pieces) == len(raw.owners),
            "one score and one owner per word piece",
            f"{len(pieces)} scores, {len(raw.pieces)} pieces, {len(raw.owners)} owners",
        )
        c.require(np.isfinite(pieces).all(), "word-piece scores are finite")
        c.require(
            all(o is None or 0 <= o < len(words) for o in raw.owners),
            "a word piece's owner is None or a word index",
            f"owners {raw.owners} for {len(words)} words",
        )
    c.require(raw.delta is None or bool(np.isfinite(raw.delta)), "delta is finite or None")


def _state(subject: Subject) -> dict[str, Any]:
    state: dict[str, Any] = {"grad_enabled": torch.is_grad_enabled()}
    model = subject.run.model if subject.run is not None else None
    if isinstance(model, torch.nn.Module):
        state["weights"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        state["training"] = [m.training for m in model.modules()]
        state["requires_grad"] = [p.requires_grad for p in model.parameters()]
        state["grads"] = [p.grad is not None for p in model.parameters()]
    return state


def _check_unchanged(c: Contract, before: dict[str, Any], after: dict[str, Any]) -> None:
    c.require(after["grad_enabled"] == before["grad_enabled"], "leaves the grad mode as it was")
    if "weights" not in before:
        return
    for key, value in before["weights"].items():
        c.require(
            torch.equal(after["weights"][key], value), "leaves the model's weights alone", key
        )
    c.require(after["training"] == before["training"], "leaves the model's train/eval mode")
    c.require(
        after["requires_grad"] == before["requires_grad"],
        "leaves the model's requires_grad flags alone",
    )
    c.require(after["grads"] == before["grads"], "leaves no gradients on the model's parameters")
