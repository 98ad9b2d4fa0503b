"""Tagged sentences for token classification: JSONL (`tokens` + `tags`) and CoNLL files,
checked tag by tag, split into train/dev/test, and the tag set in a fixed order.

Every problem a user can cause (a missing key, a tag count that differs from the token count,
an empty or non-UTF-8 file, a tag outside BIO/BIOES) raises DataError naming the file and line.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.errors import DataError
from modelyard.recipe import Recipe

# a tag is O, or a BIO/BIOES prefix and an entity type (B-PER, I-LOC, E-ORG, S-MISC)
_TAG = re.compile(r"^(O|[BIES]-\S+)$")
_CONLL_SUFFIXES = (".conll", ".iob", ".bio", ".bioes")
_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
_DOCSTART = "-DOCSTART-"


@dataclass(frozen=True)
class Sentence:
    """One tagged sentence: its words and one tag per word."""

    tokens: list[str]
    tags: list[str]


@dataclass
class TagSplits:
    """The train, dev and test sentences of a run, the tag set and what was read."""

    train: list[Sentence]
    dev: list[Sentence]
    test: list[Sentence]
    tags: list[str]
    scheme: str
    report: dict[str, Any] = field(default_factory=dict)


def _text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}: not UTF-8 text (an invalid byte on line {line}); re-save the file as UTF-8"
        ) from None


def file_format(path: Path, fmt: str) -> str:
    """Return 'jsonl' or 'conll' for a tagged file: `fmt` when given, else by its extension.

    Raises DataError for a format token classification cannot read.
    """
    if fmt in ("jsonl", "conll"):
        return fmt
    if fmt != "auto":
        raise DataError(
            f"{path}: token classification reads jsonl or conll files, not {fmt}; "
            "set data.format jsonl or conll"
        )
    suffix = path.suffix.lower()
    if suffix in _JSONL_SUFFIXES:
        return "jsonl"
    if suffix in (*_CONLL_SUFFIXES, ".txt", ".tsv"):
        return "conll"
    raise DataError(
        f"{path}: cannot tell the format from the extension '{path.suffix}'; token "
        f"classification reads {', '.join(_JSONL_SUFFIXES)} (JSONL) and "
        f"{', '.join(_CONLL_SUFFIXES)}, .txt, .tsv (CoNLL), or set data.format"
    )


def read_tagged(
    path: Path, fmt: str = "auto", tokens: str = "tokens", tags: str = "tags"
) -> list[Sentence]:
    """Return the tagged sentences of a JSONL or CoNLL file, every tag checked.

    JSONL: one object a line with a list of words under `tokens` and as many tags under
    `tags`. CoNLL: one word a line, its tag in the last column, a blank line between
    sentences (`-DOCSTART-` lines are skipped). Raises DataError naming the line at fault.
    """
    path = Path(path)
    kind = file_format(path, fmt)
    text = _text(path)
    sentences = (
        _read_jsonl(path, text, tokens, tags) if kind == "jsonl" else _read_conll(path, text)
    )
    if not sentences:
        raise DataError(f"{path}: no tagged sentences in the file (it is empty)")
    return sentences


def _read_jsonl(path: Path, text: str, tokens_key: str, tags_key: str) -> list[Sentence]:
    sentences = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise DataError(
                f"{path}, line {number}: not valid JSON; expected one object a line, e.g. "
                f'{{"{tokens_key}": ["Paris", "is", "big"], "{tags_key}": ["B-LOC", "O", "O"]}}'
            ) from None
        if not isinstance(row, dict) or tokens_key not in row or tags_key not in row:
            found = ", ".join(sorted(row)) if isinstance(row, dict) else type(row).__name__
            raise DataError(
                f"{path}, line {number}: needs the keys '{tokens_key}' and '{tags_key}' "
                f"(found: {found or 'none'}); name other keys with data.text_column and "
                "data.label_column"
            )
        words, labels = row[tokens_key], row[tags_key]
        if not _strings(words) or not _strings(labels):
            raise DataError(
                f"{path}, line {number}: '{tokens_key}' and '{tags_key}' must be lists of strings"
            )
        sentences.append(_sentence(path, number, words, labels))
    return sentences


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _read_conll(path: Path, text: str) -> list[Sentence]:
    sentences: list[Sentence] = []
    words: list[str] = []
    labels: list[str] = []
    start = 0
    for number, line in enumerate([*text.splitlines(), ""], 1):
        columns = line.split()
        if columns and columns[0] == _DOCSTART:
            continue
        if not columns:
            if words:
                sentences.append(_sentence(path, start, words, labels))
            words, labels = [], []
            continue
        if len(columns) < 2:
            raise DataError(
                f"{path}, line {number}: expected a token and its tag separated by whitespace "
                f"(CoNLL: the tag in the last column), got {line.strip()!r}"
            )
        if not words:
            start = number
        words.append(columns[0])
        labels.append(columns[-1])
    return sentences


def _sentence(path: Path, line: int, words: list[str], labels: list[str]) -> Sentence:
    if len(words) != len(labels):
        raise DataError(
            f"{path}, line {line}: {len(words)} tokens but {len(labels)} tags; every token needs "
            "exactly one tag"
        )
    if not words:
        raise DataError(f"{path}, line {line}: a sentence without tokens")
    if any(not w.strip() for w in words):
        raise DataError(f"{path}, line {line}: an empty or blank token")
    bad = [t for t in labels if not _TAG.match(t)]
    if bad:
        raise DataError(
            f"{path}, line {line}: tag {bad[0]!r} is not BIO/BIOES; tags are O or a prefix "
            "B-, I-, E-, S- and an entity type (B-PER, I-PER, ...)"
        )
    return Sentence(list(words), list(labels))


def scheme_of(tags: list[str]) -> str:
    """Return 'BIOES' when any tag ends (E-) or is a single-token entity (S-), else 'BIO'."""
    return "BIOES" if any(t[:2] in ("E-", "S-") for t in tags) else "BIO"


def tag_order(seen: set[str], given: list[str] | None, source: str = "data.labels") -> list[str]:
    """Return the tag set: `given` in its order (it must hold every tag seen), else O first
    and then each entity type's tags, types in alphabetical order.

    Raises DataError naming the tags `given` lacks.
    """
    if given is not None:
        missing = sorted(seen - set(given))
        if missing:
            raise DataError(f"{source} lacks tags found in the data: {', '.join(missing)}")
        return list(given)
    prefix_order = {"B": 0, "I": 1, "E": 2, "S": 3}
    entities = sorted(
        (t for t in seen if t != "O"), key=lambda t: (t[2:], prefix_order.get(t[0], 9))
    )
    return ["O", *entities]


def load_tagged(recipe: Recipe) -> TagSplits:
    """Return the train, dev and test sentences the recipe's data section names.

    One file (`data.path`) is split by `data.split` with `run.seed`; `data.train` comes with
    its own dev and test files or has them split off. `data.max_rows` keeps a seeded sample
    of the training sentences. Raises DataError for unreadable data or empty splits.
    """
    data = recipe.data

    def read(path: Path) -> list[Sentence]:
        return read_tagged(path, data.format, data.text_column, data.label_column)

    source = data.path or data.train
    assert source is not None  # the recipe checks that data names a source
    rows = read(source)
    rng = random.Random(recipe.run.seed)
    rng.shuffle(rows)
    total = len(rows)
    dev = read(data.dev) if data.dev else _take(rows, data.split.dev, total)
    test = read(data.test) if data.test else _take(rows, data.split.test, total)
    train = rows
    if data.max_rows is not None:
        train = train[: data.max_rows]
    if not train:
        raise DataError(f"{source}: no training sentences are left after the dev/test split")
    seen = {t for split in (train, dev, test) for s in split for t in s.tags}
    tags = tag_order(seen, data.labels)
    report = {
        "sentences": {"train": len(train), "dev": len(dev), "test": len(test)},
        "train_tokens": sum(len(s.tokens) for s in train),
        "entities": _entity_counts(train),
        "tags": tags,
    }
    return TagSplits(train, dev, test, tags, scheme_of(tags), report)


def _take(rows: list[Sentence], fraction: float, total: int) -> list[Sentence]:
    """Remove and return `fraction` of `total` sentences from the end of `rows`."""
    n = round(fraction * total)
    n = min(n, max(len(rows) - 1, 0))
    taken = rows[len(rows) - n :] if n else []
    del rows[len(rows) - n :]
    return taken


def _entity_counts(sentences: list[Sentence]) -> dict[str, int]:
    from modelyard.tagging.metrics import entities_of

    counts: dict[str, int] = {}
    for sentence in sentences:
        for kind, _, _ in entities_of(sentence.tags):
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Return the words of raw `text` with their character offsets (start, end).

    Whitespace separates words; punctuation at a word's edges ("Paris," "(UN)") becomes a
    word of its own, punctuation inside a word ("U.S", "1996-08-22", "O'Neil") stays in it,
    as tokenised NER corpora such as CoNLL-2003 split text.
    """
    words = []
    for chunk in re.finditer(r"\S+", text):
        start, word = chunk.start(), chunk.group()
        lead = len(word) - len(word.lstrip(_PUNCT))
        trail = len(word) - len(word.rstrip(_PUNCT))
        if lead == len(word):  # punctuation alone
            words.append((word, start, start + len(word)))
            continue
        core_start, core_end = start + lead, start + len(word) - trail
        words += [(c, start + i, start + i + 1) for i, c in enumerate(word[:lead])]
        words.append((text[core_start:core_end], core_start, core_end))
        words += [
            (c, core_end + i, core_end + i + 1) for i, c in enumerate(word[len(word) - trail :])
        ]
    return words


_PUNCT = "\"'`.,;:!?()[]{}<>«»“”‘’…"
