"""Distillation: the student learns the teacher (lower KL), keeps the layers it should,
and its losses behave as their definitions say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.compress import CompressContext
from modelyard.compress.distill import (
    UNLABELLED,
    Distiller,
    distill_loss,
    kept_layers,
    kl_to_teacher,
    layer_student,
    teacher_targets,
)
from modelyard.compress.torch_variant import encoder_layers
from modelyard.errors import RecipeError
from modelyard.models.encoding import Encoded, encode_texts
from modelyard.recipe import DistillConfig
from tests.compress.conftest import texts


def test_kept_layers_are_evenly_spaced() -> None:
    assert kept_layers(6, 3) == [0, 2, 4]
    assert kept_layers(6, 6) == list(range(6))
    assert kept_layers(12, 4) == [0, 3, 6, 9]


def test_layer_student_copies_the_kept_layers(ctx: CompressContext) -> None:
    student, kept = layer_student(ctx.run.model, 1)
    assert kept == [0] and student.config.num_hidden_layers == 1
    assert ctx.run.model.config.num_hidden_layers == 2
    teacher_layer = encoder_layers(ctx.run.model)[0]
    student_layer = encoder_layers(student)[0]
    assert torch.equal(student_layer.output.dense.weight, teacher_layer.output.dense.weight)
    assert (
        student_layer.output.dense.weight.data_ptr() != teacher_layer.output.dense.weight.data_ptr()
    )
    with pytest.raises(RecipeError, match="between 1 and 2"):
        layer_student(ctx.run.model, 3)


def test_distillation_lowers_kl_to_the_teacher(ctx: CompressContext) -> None:
    toy = texts(60, seed=21)
    ids, types, _ = encode_texts(ctx.run.tokenizer, toy, None, ctx.run.max_length)
    data = Encoded(ids, types, [UNLABELLED] * len(toy), 0)
    teacher = torch_logits_of(ctx, data)
    student, kept = layer_student(ctx.run.model, 1)
    torch.manual_seed(0)
    student.classifier.reset_parameters()  # start far from the teacher
    pad = ctx.run.tokenizer.pad_token_id or 0
    before = kl_to_teacher(student, data, teacher, pad)
    soft_only = ctx.cfg.model_copy(
        update={"distill": DistillConfig(alpha=1.0, epochs=4, batch_size=8, lr=3e-3)}
    )
    ctx_soft = CompressContext(ctx.run, soft_only, ctx.work_dir, ctx.seed, ctx.threads)
    losses = Distiller(ctx_soft, student, ctx.run.tokenizer, kept).fit(
        toy, [UNLABELLED] * len(toy), teacher
    )
    after = kl_to_teacher(student, data, teacher, pad)
    assert after < 0.5 * before, (before, after)
    assert len(losses) == 4


def torch_logits_of(ctx: CompressContext, data: Encoded) -> np.ndarray:
    from modelyard.models.predict import predict_logits

    return predict_logits(
        ctx.run.model, data, ctx.run.tokenizer.pad_token_id or 0, torch.device("cpu"), None
    )


def test_soft_loss_is_zero_when_the_student_matches() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]])
    labels = torch.tensor([UNLABELLED, UNLABELLED])
    assert distill_loss(logits, logits, labels, DistillConfig(alpha=0.5)).item() == pytest.approx(
        0, abs=1e-6
    )
    other = torch.tensor([[0.0, 3.0, 0.0], [1.0, 0.0, 0.0]])
    assert distill_loss(other, logits, labels, DistillConfig(alpha=0.5)).item() > 0


def test_hard_labels_count_only_where_given() -> None:
    student = torch.tensor([[3.0, 0.0], [0.0, 3.0]])
    teacher = student.clone()
    cfg = DistillConfig(alpha=0.0)
    right = distill_loss(student, teacher, torch.tensor([0, UNLABELLED]), cfg)
    wrong = distill_loss(student, teacher, torch.tensor([1, UNLABELLED]), cfg)
    assert right.item() < 0.1 < wrong.item()


def test_teacher_targets_cover_train_and_unlabelled_texts(
    ctx: CompressContext, tmp_path: Path
) -> None:
    extra = tmp_path / "extra.csv"
    extra.write_text("text\nrefund my card\nparcel late\n\n", encoding="utf-8")
    cfg = ctx.cfg.model_copy(update={"distill": DistillConfig(unlabelled=extra)})
    with_extra = CompressContext(ctx.run, cfg, ctx.work_dir, ctx.seed, ctx.threads)
    all_texts, labels, logits = teacher_targets(with_extra)
    assert len(all_texts) == len(ctx.train_split()) + 2 == len(logits)
    assert labels[-2:] == [UNLABELLED, UNLABELLED]


def test_unlabelled_file_without_the_text_column_is_refused(
    ctx: CompressContext, tmp_path: Path
) -> None:
    from modelyard.errors import DataError

    extra = tmp_path / "extra.csv"
    extra.write_text("sentence\nrefund my card\n", encoding="utf-8")
    cfg = ctx.cfg.model_copy(update={"distill": DistillConfig(unlabelled=extra)})
    with pytest.raises(DataError, match="no column 'text'"):
        teacher_targets(CompressContext(ctx.run, cfg, ctx.work_dir, ctx.seed, ctx.threads))


def test_student_on_another_backbone_round_trips(
    ctx: CompressContext, tiny_backbone: Path, tmp_path: Path
) -> None:
    from modelyard.backends import load_backend
    from modelyard.compress import COMPRESSION_METHODS
    from modelyard.compress.base import MethodSpec, save_variant

    variant = COMPRESSION_METHODS.get("distill")(ctx, str(tiny_backbone))
    assert variant.details["student"] == str(tiny_backbone) and variant.tokenizer is not None
    path = save_variant(variant, ctx, MethodSpec("distill", str(tiny_backbone)), tmp_path / "s")
    sample = texts(10)
    before, _ = variant.predict_proba(sample)
    after, _ = load_backend(path).predict_proba(sample)
    assert np.allclose(before, after, atol=1e-5)
