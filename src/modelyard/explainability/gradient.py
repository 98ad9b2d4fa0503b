"""Gradient methods on the word-embedding layer: integrated gradients and gradient x input.

Both attribute the explained class's score (log-odds or probability, `explain.score`) to
the output of the model's input-embedding layer, sum over the hidden dimension per word
piece, then sum pieces into words. Gradient x input uses captum's layer attribution;
integrated gradients runs its own batched Gauss-Legendre rule (`IntegralPath`), which
computes what captum's LayerIntegratedGradients does in one forward and backward pass per
chunk of steps, with the ends in fp32 and the path optionally in bf16 (on a bf16 copy of
the model, kept while the model lives).
"""

from __future__ import annotations

import contextlib
import copy
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from modelyard.explainability.cancel import check_cancelled
from modelyard.explainability.methods import Attribution, logit_score, method
from modelyard.explainability.results import relative_error
from modelyard.explainability.subject import Subject
from modelyard.explainability.words import Words, aggregate, piece_to_word
from modelyard.models.device import autocast, cpu_supports_fast_bf16
from modelyard.plugins import require
from modelyard.recipe import ExplainConfig

# steps x tokens per internal batch: bounds IG's memory on long texts at many steps
_IG_TOKEN_BUDGET = 8192
# the automatic choice's first try: on an SST-2 model 20 steps met a 1% completeness error
# for 55% of sentences, so most texts stop here; a miss's error sets the next try
FIRST_STEPS = 24
# a model's low-precision copies for IG paths, made once and freed with the model
_PATH_MODELS: weakref.WeakKeyDictionary[torch.nn.Module, dict[torch.dtype, torch.nn.Module]] = (
    weakref.WeakKeyDictionary()
)


@dataclass
class Encoding:
    """One text tokenised as the run's model sees it."""

    input_ids: torch.Tensor
    extra: tuple[torch.Tensor | None, ...]
    pieces: list[str]
    owners: list[int | None]
    special: torch.Tensor


def encode(subject: Subject, words: Words) -> Encoding:
    """Return the text of `words` tokenised (truncated to the run's max length) for gradients."""
    assert subject.run is not None  # get_method() refused gradient methods without a run
    tokenizer, run = subject.run.tokenizer, subject.run
    enc = tokenizer(
        words.text,
        truncation=True,
        max_length=run.max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_tensors="pt",
    )
    device = next(run.model.parameters()).device
    ids = enc["input_ids"].to(device)
    types = enc.get("token_type_ids")
    return Encoding(
        input_ids=ids,
        extra=(enc["attention_mask"].to(device), None if types is None else types.to(device)),
        pieces=list(tokenizer.convert_ids_to_tokens(ids[0].tolist())),
        owners=piece_to_word([tuple(o) for o in enc["offset_mapping"][0].tolist()], words.spans),
        special=enc["special_tokens_mask"][0].bool().to(device),
    )


def explained_output(
    model: Any, target: int, score: str, temperature: float = 1.0
) -> Callable[..., torch.Tensor]:
    """Return f(input_ids, attention_mask, token_type_ids) -> the explained score per row, of
    the logits divided by the run's calibration `temperature` (the probabilities it reports)."""

    def forward(
        input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None
    ) -> torch.Tensor:
        check_cancelled()
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        return logit_score(model(**kwargs).logits.float() / temperature, target, score)

    return forward


def pad_baseline(enc: Encoding, pad_id: int) -> torch.Tensor:
    """Return the IG baseline: every non-special piece replaced by the pad token."""
    base = enc.input_ids.clone()
    base[0, ~enc.special] = pad_id
    return base


def _attribution(
    enc: Encoding,
    words: Words,
    per_dim: torch.Tensor,
    delta: float | None,
    steps: int | None = None,
) -> Attribution:
    scores = per_dim.sum(dim=-1)[0].detach().cpu().double().numpy()
    return Attribution(
        word_scores=aggregate(scores, enc.owners, len(words)),
        pieces=enc.pieces,
        piece_scores=scores,
        owners=enc.owners,
        delta=delta,
        steps=steps,
    )


@method("ig", needs_gradients=True, summary="integrated gradients on the word embeddings")
def integrated_gradients(
    subject: Subject, words: Words, target: int, cfg: ExplainConfig
) -> Attribution:
    """Return integrated-gradients scores from a pad-token baseline, with the convergence delta
    and the steps taken.

    Completeness: the piece scores sum to f(text) - f(baseline) minus the returned delta,
    where both ends are computed in fp32 whatever the path's precision. With `cfg.steps`
    unset, the steps start at FIRST_STEPS and grow (`next_steps`) until the relative error
    |delta| / |f(text) - f(baseline)| is at most `cfg.completeness_error` (or `cfg.max_steps`
    is reached). A bf16 path (`path_dtype`) that misses the error is redone in fp32 from the
    next step count, so the reported error is always an fp32 one.
    """
    assert subject.run is not None
    model, tokenizer = subject.run.model, subject.run.tokenizer
    enc = encode(subject, words)
    path = IntegralPath(
        explained_output(model, target, cfg.score, subject.run.temperature),
        model.get_input_embeddings(),
        enc,
        pad_baseline(enc, tokenizer.pad_token_id or 0),
    )
    dtype = path_dtype(cfg.precision, enc.input_ids.device)
    if dtype is not None:
        low = path_model(model, dtype)
        path.low = (
            explained_output(low, target, cfg.score, subject.run.temperature),
            low.get_input_embeddings(),
        )
    steps = cfg.steps or min(FIRST_STEPS, cfg.max_steps)
    per_dim, delta = path.integrate(steps, dtype)
    while cfg.steps is None and steps < cfg.max_steps:
        error = relative_error(float(per_dim.sum()), delta)
        if error <= cfg.completeness_error:
            break
        steps = min(next_steps(steps, error, cfg.completeness_error), cfg.max_steps)
        dtype = None  # bf16 rounding may be what missed: later tries are fp32
        per_dim, delta = path.integrate(steps, dtype)
    return _attribution(enc, words, per_dim, delta, steps)


def path_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Return the autocast dtype of IG's path gradients for `precision`, or None for fp32.

    auto is bf16 on a CPU that multiplies bf16 natively (AMX or AVX-512-BF16), where it is
    several times faster, and fp32 elsewhere (emulated bf16 is slower than fp32).
    """
    if precision == "bf16" or (
        precision == "auto" and device.type == "cpu" and cpu_supports_fast_bf16()
    ):
        return torch.bfloat16
    return None


def path_model(model: Any, dtype: torch.dtype) -> Any:
    """Return a copy of `model` with its weights in `dtype`, for IG's path gradients.

    Whole low-precision weights, not autocast: autocast casts every weight at every forward
    and backward pass, which made a bf16 path slower than fp32 (MiniLM, 24 steps: 678
    against 626 ms per sentence), while bf16 weights halved the fp32 time. The copy is made
    on first use and kept as long as `model` lives; a model changed in place afterwards
    (further training) needs `_PATH_MODELS.pop(model)`.
    """
    copies = _PATH_MODELS.setdefault(model, {})
    if dtype not in copies:
        low = copy.deepcopy(model).to(dtype).eval()
        for parameter in low.parameters():
            parameter.requires_grad_(False)  # only the path points' gradients are wanted
        copies[dtype] = low
    return copies[dtype]


def gauss_legendre(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the Gauss-Legendre nodes and weights of `steps` points on [0, 1] (float64)."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return torch.from_numpy((nodes + 1) / 2), torch.from_numpy(weights / 2)


class IntegralPath:
    """The straight path from a baseline's word embeddings to a text's, for one explained score.

    The embedding layer's output is replaced (a forward hook) by a batch of points on the
    path, so every step of a chunk runs in one forward and one backward pass; the ends
    f(text) and f(baseline) are computed once, in fp32. `low`, when set, is the explained
    score and embedding layer of a low-precision copy of the model (`path_model`): a path in
    a low dtype runs on it, else under autocast.
    """

    def __init__(
        self,
        forward: Callable[..., torch.Tensor],
        layer: torch.nn.Module,
        enc: Encoding,
        baseline_ids: torch.Tensor,
    ) -> None:
        self.forward, self.layer, self.enc = forward, layer, enc
        with torch.no_grad():
            ids = torch.cat([enc.input_ids, baseline_ids])
            ends = self.forward(ids, *(_rows(t, 2) for t in enc.extra))
            # the layer's own outputs at both ends: the hook-free pass above computed them
            self.start = layer(baseline_ids).detach().float()
            self.end = layer(enc.input_ids).detach().float()
        self.difference = float(ends[0] - ends[1])
        self.low: tuple[Callable[..., torch.Tensor], torch.nn.Module] | None = None

    def integrate(self, steps: int, dtype: torch.dtype | None) -> tuple[torch.Tensor, float]:
        """Return the per-dimension attributions (1, pieces, hidden) of a `steps`-point
        Gauss-Legendre rule, and the convergence delta: their sum minus f(text) - f(baseline).
        """
        alphas, weights = gauss_legendre(steps)
        chunk = max(1, min(steps, _IG_TOKEN_BUDGET // self.enc.input_ids.shape[1]))
        total = torch.zeros_like(self.end[0], dtype=torch.float64)
        for i in range(0, steps, chunk):
            grads = self._gradients(alphas[i : i + chunk], dtype)
            total += torch.einsum("k,kph->ph", weights[i : i + chunk], grads.double())
        per_dim = ((self.end - self.start)[0].double() * total).unsqueeze(0)
        return per_dim, float(per_dim.sum()) - self.difference

    def _gradients(self, alphas: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
        """Return the explained score's gradient at each point `alphas` of the path (fp32)."""
        n = len(alphas)
        scale = alphas.to(self.end).view(-1, 1, 1)
        points = self.start + scale * (self.end - self.start)
        forward, layer = self.forward, self.layer
        if dtype is not None and self.low is not None:
            forward, layer = self.low
            points = points.to(dtype)
        points.requires_grad_(True)
        handle = layer.register_forward_hook(lambda _m, _i, _o: points)
        try:
            # autocast stays on over bf16 weights: casting them is then free, and it covers
            # heads that compute in fp32 (a pooled LoRA head, say)
            with autocast(self.end.device, dtype), _attention_for(dtype):
                scores = forward(
                    _rows(self.enc.input_ids, n), *(_rows(t, n) for t in self.enc.extra)
                )
            (grads,) = torch.autograd.grad(scores.float().sum(), points)
        finally:
            handle.remove()
        return grads.float()


def _attention_for(dtype: torch.dtype | None) -> contextlib.AbstractContextManager[None]:
    """Return the attention kernel choice for a path in `dtype`.

    PyTorch's CPU flash-attention backward is about 10x slower in bf16 than in fp32 (MiniLM,
    24 steps: 430 against 38 ms, more than all the bf16 matrix products), while the plain
    (math) kernel's bf16 products run on AMX; so a bf16 path uses the math kernel. The
    choice is process-wide while it lasts, and only changes speed, never results.
    """
    if dtype is None:
        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.MATH])


def _rows(tensor: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """Return the one-row `tensor` repeated to `n` rows (None stays None)."""
    return None if tensor is None else tensor[:1].expand(n, -1)


def next_steps(steps: int, error: float, goal: float) -> int:
    """Return the steps to try after `steps` left a completeness `error` above `goal`.

    The error of captum's Gauss-Legendre rule fell about as steps^-3 on fine-tuned encoders
    (SST-2: 20 -> 32 steps cut the median error 5.7x), so the next try aims a quarter past
    that estimate; it grows at least 1.5x (a near miss still moves) and at most 4x.
    """
    grow = min(4.0, max(1.5, 1.25 * (error / goal) ** (1 / 3)))
    return math.ceil(steps * grow)


@method("gxi", needs_gradients=True, summary="gradient x input on the word embeddings")
def gradient_x_input(
    subject: Subject, words: Words, target: int, cfg: ExplainConfig
) -> Attribution:
    """Return gradient x input scores: each piece's embedding times the score's gradient at it."""
    attr_mod: Any = require("captum.attr", extra="explain")
    assert subject.run is not None
    model = subject.run.model
    enc = encode(subject, words)
    gxa = attr_mod.LayerGradientXActivation(
        explained_output(model, target, cfg.score, subject.run.temperature),
        model.get_input_embeddings(),
    )
    per_dim = gxa.attribute(enc.input_ids, additional_forward_args=enc.extra)
    return _attribution(enc, words, per_dim, None)
