"""The `generation` section: language-model data formats, packing, masking and evaluation.

Used by `task: language-modeling` (continued pre-training: causal LM on decoders, masked LM
on encoders) and `task: generation` (instruction fine-tuning of a decoder). The context
length of every training example and packed block is `model.max_length`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelyard.recipe.base import Section


class GenerationConfig(Section):
    """How language-model runs read, pack and score their data."""

    chat_format: Literal["auto", "messages", "instruction"] = Field(
        "auto",
        description="generation: messages (OpenAI-style list of {role, content} per row), "
        "instruction (instruction / input / output columns), or auto (whichever columns exist).",
    )
    messages_column: str = Field(
        "messages",
        min_length=1,
        description="Column holding a conversation (chat_format messages).",
    )
    instruction_column: str = Field(
        "instruction",
        min_length=1,
        description="Column of the instruction (chat_format instruction).",
    )
    input_column: str = Field(
        "input",
        min_length=1,
        description="Optional context column appended to the instruction (empty cells allowed).",
    )
    output_column: str = Field(
        "output", min_length=1, description="Column of the reference response."
    )
    system_prompt: str | None = Field(
        None,
        description="System message put before every instruction row (messages rows keep their own); "
        "null: none (the chat template may add its default).",
    )
    chat_template: str | None = Field(
        None,
        description="Jinja chat template to render conversations with, when the tokenizer has none "
        "or another is wanted; null: the tokenizer's own.",
    )
    eval_before: bool = Field(
        True,
        description="Also score the untrained model on the held-out split (loss, and for "
        "generation ROUGE-L), so the report shows before and after.",
    )
    packing: bool | None = Field(
        None,
        description="Pack several examples into each model.max_length block (attention and positions "
        "restart at every example, so none sees another); null: on for decoders, off for encoders "
        "(which batch by length instead).",
    )
    mlm_probability: float = Field(
        0.15,
        gt=0,
        lt=1,
        description="Masked LM: share of tokens masked (80% [MASK], 10% random, 10% kept).",
    )
    document_separator: Literal["blank-line", "line", "file"] = Field(
        "blank-line",
        description="Plain-text files (data.format text): documents are paragraphs between blank lines, "
        "single lines, or the whole file.",
    )
    eval_max_rows: int = Field(
        200, ge=1, description="Most held-out rows scored by generation (ROUGE-L, exact match)."
    )
    eval_samples: int = Field(
        5, ge=0, le=100, description="Generations shown in the report next to their reference."
    )
    max_new_tokens: int = Field(
        128, ge=1, le=4096, description="Most tokens generated per answer during evaluation."
    )
    temperature: float = Field(
        0.0, ge=0, le=10, description="Sampling temperature of evaluation; 0: greedy decoding."
    )
    top_p: float = Field(
        1.0, gt=0, le=1, description="Nucleus sampling mass (with temperature > 0)."
    )
