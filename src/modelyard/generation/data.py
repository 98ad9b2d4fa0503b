"""Read language-model data: documents for pre-training, conversations for fine-tuning.

Documents come from plain-text files (split into paragraphs, lines, or whole files) or a
text column of CSV/TSV/JSONL/Parquet. Conversations come from a `messages` column
(OpenAI-style lists of {role, content}) or instruction / input / output columns. Files
are split into train/dev/test as `data.split` says, seeded; rows dropped on the way
(empty texts, conversations without an answer) are counted in the report, never silent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.data.load import read_table
from modelyard.errors import DataError
from modelyard.generation.chat import check_messages, has_assistant_turn, has_empty_response
from modelyard.recipe import Recipe

SPLITS = ("train", "dev", "test")


@dataclass
class LMSplits:
    """Train/dev/test items (documents or conversations) and what reading them counted."""

    train: list[Any]
    dev: list[Any]
    test: list[Any]
    report: dict[str, Any] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        """Return the number of items of each split."""
        return {name: len(getattr(self, name)) for name in SPLITS}


def _files(recipe: Recipe) -> dict[str, Path]:
    cfg = recipe.data
    found = {"train": cfg.path or cfg.train, "dev": cfg.dev, "test": cfg.test}
    return {name: path for name, path in found.items() if path is not None}


def _is_plain_text(path: Path, fmt: str) -> bool:
    return fmt == "text" or (fmt == "auto" and path.suffix.lower() in {".txt", ".text", ".md"})


def split_documents(text: str, separator: str) -> list[str]:
    """Return the non-blank documents of a plain text: paragraphs, lines, or the whole text."""
    if separator == "file":
        parts = [text]
    elif separator == "line":
        parts = text.split("\n")
    else:
        parts = re.split(r"\n(?:[ \t]*\n)+", text)
    return [p.strip("\n") for p in parts if p.strip()]


def read_documents(path: Path, recipe: Recipe, report: dict[str, Any]) -> list[str]:
    """Return the documents of one file (plain text, or the text column of a table).

    Raises DataError for a missing file or column, or a file with no text.
    """
    if _is_plain_text(path, recipe.data.format):
        if not path.is_file():
            raise DataError(f"data file not found: {path} (check data.path / data.train)")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not valid UTF-8 ({exc}); re-save it as UTF-8") from None
        docs = split_documents(text, recipe.generation.document_separator)
    else:
        table = read_table(path, recipe.data.format)
        column = recipe.data.text_column
        if column not in table.columns:
            raise DataError(
                f"{path}: no column '{column}' (columns: {', '.join(map(str, table.columns))}); "
                "set data.text_column"
            )
        texts = table[column].tolist()
        docs = [t for t in texts if t.strip()]
        report["empty_texts_dropped"] = (
            report.get("empty_texts_dropped", 0) + len(texts) - len(docs)
        )
    if not docs:
        raise DataError(f"{path}: no text to train on")
    return docs


def instruction_messages(row: dict[str, str], recipe: Recipe) -> list[dict[str, str]]:
    """Return the conversation of an instruction row: [system], user (instruction + input), assistant."""
    gen = recipe.generation
    prompt = row[gen.instruction_column].strip()
    context = row.get(gen.input_column, "").strip()
    user = f"{prompt}\n\n{context}" if context else prompt
    messages = [{"role": "system", "content": gen.system_prompt}] if gen.system_prompt else []
    return [
        *messages,
        {"role": "user", "content": user},
        {"role": "assistant", "content": row[gen.output_column]},
    ]


def _chat_format(columns: list[str], recipe: Recipe, path: Path) -> str:
    gen = recipe.generation
    if gen.chat_format != "auto":
        needed = (
            [gen.messages_column]
            if gen.chat_format == "messages"
            else [gen.instruction_column, gen.output_column]
        )
    elif gen.messages_column in columns:
        return "messages"
    else:
        needed = [gen.instruction_column, gen.output_column]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DataError(
            f"{path}: no column {', '.join(repr(m) for m in missing)} (columns: {', '.join(columns)}); "
            f"chat data needs a '{gen.messages_column}' column of conversations, or "
            f"'{gen.instruction_column}' and '{gen.output_column}' columns "
            "(see generation.chat_format and its column names)"
        )
    return gen.chat_format if gen.chat_format != "auto" else "instruction"


def _row_messages(
    row: dict[str, str], fmt: str, recipe: Recipe, where: str
) -> list[dict[str, str]]:
    if fmt == "instruction":
        if not row[recipe.generation.instruction_column].strip():
            raise DataError(f"{where}: the instruction is empty")
        return instruction_messages(row, recipe)
    raw = row[recipe.generation.messages_column]
    try:
        value = json.loads(raw) if raw.strip() else None
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: messages is not valid JSON ({exc.msg})") from None
    messages = check_messages(value, where)
    if fmt == "messages" and recipe.generation.system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": recipe.generation.system_prompt}, *messages]
    return messages


def read_conversations(
    path: Path, recipe: Recipe, report: dict[str, Any]
) -> list[list[dict[str, str]]]:
    """Return the conversations of one chat file; drop and count those without an answer.

    Raises DataError for a missing column, malformed messages, an unknown role, an empty
    instruction, or a file left with no usable conversation.
    """
    table = read_table(path, recipe.data.format)
    columns = [str(c) for c in table.columns]
    fmt = _chat_format(columns, recipe, path)
    out = []
    for number, record in enumerate(table.to_dict("records"), start=1):
        row = {str(k): str(v) for k, v in record.items()}
        messages = _row_messages(row, fmt, recipe, f"{path} row {number}")
        if not has_assistant_turn(messages):
            report["dropped_no_assistant_turn"] = report.get("dropped_no_assistant_turn", 0) + 1
            continue
        if has_empty_response(messages):
            report["dropped_empty_response"] = report.get("dropped_empty_response", 0) + 1
            continue
        out.append(messages)
    if not out:
        raise DataError(
            f"{path}: no conversation with a non-empty assistant answer to learn from "
            f"({report.get('dropped_no_assistant_turn', 0)} without an assistant turn, "
            f"{report.get('dropped_empty_response', 0)} with an empty one)"
        )
    return out


def _split_off(items: list[Any], n: int, seed: int, salt: int) -> tuple[list[Any], list[Any]]:
    if n <= 0 or len(items) < 2:
        return items, []
    order = np.random.default_rng([seed, salt]).permutation(len(items))
    taken = set(order[: min(n, len(items) - 1)].tolist())
    return [x for i, x in enumerate(items) if i not in taken], [items[i] for i in sorted(taken)]


def _share(total: int, fraction: float) -> int:
    return max(1, round(total * fraction)) if fraction > 0 else 0


def load_lm_data(recipe: Recipe) -> LMSplits:
    """Return the recipe's documents (language-modeling) or conversations (generation), split.

    A split without its own file is taken from train (seeded, `data.split` fractions).
    Raises DataError as the readers do, or when no training item is left.
    """
    report: dict[str, Any] = {"files": {}}
    reader = read_conversations if recipe.task == "generation" else read_documents
    parts: dict[str, list[Any]] = {}
    for name, path in _files(recipe).items():
        parts[name] = reader(path, recipe, report)
        report["files"][str(path)] = len(parts[name])
    train = parts["train"]
    seed, total, fractions = recipe.run.seed, len(train), recipe.data.split
    # fractions are of the whole training file, as for classification data
    if "test" not in parts:
        train, parts["test"] = _split_off(train, _share(total, fractions.test), seed, 1)
    if "dev" not in parts:
        train, parts["dev"] = _split_off(train, _share(total, fractions.dev), seed, 2)
    if not train:
        raise DataError("no training rows left after splitting off dev and test")
    if recipe.data.max_rows is not None and len(train) > recipe.data.max_rows:
        keep = np.random.default_rng([seed, 3]).permutation(len(train))[: recipe.data.max_rows]
        train = [train[i] for i in sorted(keep.tolist())]
        report["train_rows_sampled"] = recipe.data.max_rows
    splits = LMSplits(train, parts["dev"], parts["test"], report)
    report["split_sizes"] = splits.sizes()
    return splits
