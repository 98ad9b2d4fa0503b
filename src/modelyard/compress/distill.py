"""Knowledge distillation (`distill:N`, `distill:BACKBONE`): a trained run teaches a smaller
student on soft targets with a temperature plus the hard labels, optionally matching
hidden states, on the run's training data plus optional unlabelled texts.

`distill:3` keeps 3 evenly spaced layers of the teacher (every other one of 6);
`distill:minilm-l6` or `distill:/path/to/folder` starts from another backbone with a
fresh head and its own tokenizer.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

from modelyard.compress.base import (
    CompressContext,
    refuse_embedding_parent,
    register_compression_method,
)
from modelyard.compress.torch_variant import TorchCompressed, encoder_layers
from modelyard.data import read_table
from modelyard.errors import DataError, RecipeError
from modelyard.models import build_classifier, load_tokenizer, resolve_backbone
from modelyard.models.device import autocast, select_dtype
from modelyard.models.encoding import Encoded, collate, encode_texts, epoch_batches
from modelyard.models.predict import predict_logits
from modelyard.recipe import DistillConfig
from modelyard.registry.store import is_number
from modelyard.trainer.loop import param_groups

UNLABELLED = -1


def kept_layers(n_layers: int, n_keep: int) -> list[int]:
    """Return `n_keep` evenly spaced layer indices out of `n_layers`, starting at 0."""
    return [i * n_layers // n_keep for i in range(n_keep)]


def layer_student(teacher: Any, n_keep: int) -> tuple[Any, list[int]]:
    """Return a copy of `teacher` that keeps `n_keep` evenly spaced layers, and their indices.

    Raises RecipeError unless 1 <= n_keep <= the teacher's layer count.
    """
    n_layers = len(encoder_layers(teacher))
    if not 1 <= n_keep <= n_layers:
        raise RecipeError(
            f"distill:{n_keep}: the student keeps between 1 and {n_layers} of the teacher's "
            f"{n_layers} layers; e.g. distill:{max(1, n_layers // 2)}"
        )
    kept = kept_layers(n_layers, n_keep)
    student = copy.deepcopy(teacher)
    encoder = student.base_model.encoder
    encoder.layer = torch.nn.ModuleList([encoder.layer[i] for i in kept])
    student.config.num_hidden_layers = n_keep
    return student, kept


@dataclass
class DistillBatch:
    """One training batch: student inputs, teacher logits, hard labels (-1: none)."""

    inputs: dict[str, torch.Tensor]
    teacher: torch.Tensor
    labels: torch.Tensor


def distill_loss(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, cfg: DistillConfig
) -> torch.Tensor:
    """Return alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(labelled rows)."""
    t = cfg.temperature
    soft = torch.nn.functional.kl_div(
        torch.log_softmax(student / t, dim=-1),
        torch.softmax(teacher / t, dim=-1),
        reduction="batchmean",
    ) * (t * t)
    labelled = labels != UNLABELLED
    if cfg.alpha == 1.0 or not bool(labelled.any()):
        return cfg.alpha * soft
    hard = torch.nn.functional.cross_entropy(student[labelled], labels[labelled])
    return cfg.alpha * soft + (1 - cfg.alpha) * hard


def hidden_loss(
    student_states: Any, teacher_states: Any, kept: list[int], mask: torch.Tensor
) -> torch.Tensor:
    """Return the mean squared error between each student layer and the teacher layer it came from."""
    weight = mask.unsqueeze(-1).float()
    total = torch.zeros(())
    for s_index, t_index in enumerate(kept, start=1):  # index 0 holds the embeddings
        diff = (student_states[s_index] - teacher_states[t_index + 1]) ** 2 * weight
        total = total + diff.sum() / (weight.sum() * diff.shape[-1])
    return total / len(kept)


def kl_to_teacher(student: Any, data: Encoded, teacher_logits: np.ndarray, pad_id: int) -> float:
    """Return the mean KL divergence (T = 1) from the teacher's to the student's predictions."""
    logits = predict_logits(student, data, pad_id, torch.device("cpu"), None)
    p = torch.log_softmax(torch.from_numpy(teacher_logits), -1)
    q = torch.log_softmax(torch.from_numpy(logits), -1)
    return float((p.exp() * (p - q)).sum(-1).mean())


def _unlabelled_texts(ctx: CompressContext) -> list[str]:
    cfg = ctx.cfg.distill
    if cfg.unlabelled is None:
        return []
    column = ctx.run.recipe.data.text_column
    table = read_table(cfg.unlabelled)
    if column not in table.columns:
        raise DataError(
            f"{cfg.unlabelled}: no column '{column}' (the run's data.text_column); columns are: "
            f"{', '.join(map(str, table.columns))}"
        )
    texts = [t for t in table[column].tolist() if t.strip()]
    if cfg.max_unlabelled and len(texts) > cfg.max_unlabelled:
        keep = np.random.default_rng(ctx.seed).permutation(len(texts))[: cfg.max_unlabelled]
        texts = [texts[i] for i in sorted(keep)]
    return texts


def teacher_targets(ctx: CompressContext) -> tuple[list[str], list[int], np.ndarray]:
    """Return the distillation texts, their hard labels (-1 when unlabelled) and teacher logits."""
    train = ctx.train_split()
    extra = _unlabelled_texts(ctx)
    texts = list(train.texts) + extra
    labels = list(train.labels) + [UNLABELLED] * len(extra)
    ids, types, _ = encode_texts(ctx.run.tokenizer, texts, None, ctx.run.max_length)
    encoded = Encoded(ids, types, labels, 0)
    pad = ctx.run.tokenizer.pad_token_id or 0
    logits = predict_logits(ctx.run.model, encoded, pad, torch.device("cpu"), None)
    return texts, labels, logits


class Distiller:
    """Trains `student` on the teacher's logits; `fit` returns per-epoch mean losses."""

    def __init__(
        self, ctx: CompressContext, student: Any, tokenizer: Any, kept: list[int] | None
    ) -> None:
        self.ctx, self.student, self.tokenizer, self.kept = ctx, student, tokenizer, kept
        self.cfg = ctx.cfg.distill
        self.pad = tokenizer.pad_token_id or 0
        self.dtype = select_dtype(ctx.run.recipe.train.precision, torch.device("cpu"))

    def fit(self, texts: list[str], labels: list[int], teacher: np.ndarray) -> list[float]:
        """Train for compress.distill.epochs and return the mean loss of each epoch."""
        ids, types, _ = encode_texts(self.tokenizer, texts, None, self.ctx.run.max_length)
        data = Encoded(ids, types, labels, 0)
        per_epoch = math.ceil(len(data) / self.cfg.batch_size)
        total = max(1, math.ceil(self.cfg.epochs * per_epoch))
        optimizer = torch.optim.AdamW(param_groups(self.student, 0.01), lr=self.cfg.lr)
        schedule = get_linear_schedule_with_warmup(optimizer, int(0.06 * total), total)
        self.student.train()
        losses: list[float] = []
        step, epoch = 0, 0
        while step < total:
            batches = epoch_batches(data.lengths(), self.cfg.batch_size, self.ctx.seed, epoch, True)
            epoch_losses = []
            for index in batches[: total - step]:
                epoch_losses.append(
                    self._step(self._batch(data, teacher, index), optimizer, schedule)
                )
                step += 1
            losses.append(float(np.mean(epoch_losses)))
            epoch += 1
        self.student.eval()
        return losses

    def _batch(self, data: Encoded, teacher: np.ndarray, index: np.ndarray) -> DistillBatch:
        inputs = collate(data.input_ids, data.token_type_ids, index, self.pad)
        labels = torch.tensor([data.labels[i] for i in index])
        return DistillBatch(inputs, torch.from_numpy(teacher[index]), labels)

    def _step(self, batch: DistillBatch, optimizer: Any, schedule: Any) -> float:
        want_hidden = self.cfg.hidden_weight > 0 and self.kept is not None
        with autocast(torch.device("cpu"), self.dtype):
            out = self.student(**batch.inputs, output_hidden_states=want_hidden)
        loss = distill_loss(out.logits.float(), batch.teacher, batch.labels, self.cfg)
        if want_hidden and self.kept is not None:
            with torch.no_grad():
                reference = self.ctx.run.model(**batch.inputs, output_hidden_states=True)
            states = [s.float() for s in out.hidden_states]
            loss = loss + self.cfg.hidden_weight * hidden_loss(
                states,
                [s.float() for s in reference.hidden_states],
                self.kept,
                batch.inputs["attention_mask"],
            )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.student.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())


def _student(ctx: CompressContext, arg: str) -> tuple[Any, Any, list[int] | None, dict[str, Any]]:
    if is_number(arg):
        student, kept = layer_student(ctx.run.model, int(arg))
        return student, None, kept, {"student": f"{len(kept)} teacher layers", "layers_kept": kept}
    folder = resolve_backbone(arg)
    student = build_classifier(folder, ctx.run.labels)
    return student, load_tokenizer(folder), None, {"student": arg}


@register_compression_method(
    "distill", "student keeping N teacher layers (or another backbone)", "student", "distill:3"
)
def distill(ctx: CompressContext, arg: str | None) -> TorchCompressed:
    """Return a student distilled from the parent run: `distill:N` keeps N of its layers,
    `distill:BACKBONE` starts from another backbone.

    Raises RecipeError for a bad layer count and BackboneError for an unknown backbone.
    """
    if arg is None:
        raise RecipeError("distill needs a student: distill:N (keep N layers) or distill:BACKBONE")
    refuse_embedding_parent(ctx, "distill")
    student, tokenizer, kept, details = _student(ctx, arg)
    texts, labels, teacher = teacher_targets(ctx)
    losses = Distiller(ctx, student, tokenizer or ctx.run.tokenizer, kept).fit(
        texts, labels, teacher
    )
    details.update(
        texts=len(texts),
        unlabelled_texts=sum(1 for x in labels if x == UNLABELLED),
        epoch_losses=[round(x, 4) for x in losses],
        temperature=ctx.cfg.distill.temperature,
        alpha=ctx.cfg.distill.alpha,
    )
    return TorchCompressed(student, ctx.run, details, tokenizer=tokenizer)
