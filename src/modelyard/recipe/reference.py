"""The recipe reference: markdown generated from the typed schema, so it cannot drift.

`render_reference()` walks `Recipe` and its sections and writes one table per section
(key path, type, default, allowed values, description). `python -m modelyard.recipe.reference
[--check] [OUTPUT]` writes it to docs/recipe.md; with `--check` it only compares and exits 1
when the file is stale. Only the schema is read: no section is built, so no validator runs.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic.fields import FieldInfo

from modelyard.recipe.base import Section
from modelyard.recipe.root import Recipe

DEFAULT_OUTPUT = Path("docs/recipe.md")
REGENERATE = "python -m modelyard.recipe.reference"

_SCALARS: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    Path: "path",
    type(None): "null",
}


@dataclass(frozen=True)
class SectionDoc:
    """One recipe section at a key path, with the field of its parent that holds it."""

    path: str
    model: type[Section]
    field: FieldInfo


def _section_of(annotation: Any) -> type[Section] | None:
    """Return the section class an annotation holds (`X` or `X | None`), else None."""
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation
    if _is_union(annotation):
        sections = [a for a in get_args(annotation) if _section_of(a) is not None]
        if len(sections) == 1:
            return _section_of(sections[0])
    return None


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def iter_sections(model: type[Section] = Recipe, prefix: str = "") -> Iterator[SectionDoc]:
    """Yield every section under `model`, depth first in field order (parents before children)."""
    for name, field in model.model_fields.items():
        section = _section_of(field.annotation)
        if section is None:
            continue
        path = f"{prefix}{name}"
        yield SectionDoc(path, section, field)
        yield from iter_sections(section, prefix=f"{path}.")


def _code(text: str) -> str:
    return f"`{text}`"


def _type_name(annotation: Any) -> str:
    """Return how a value of this annotation is written in YAML, in words."""
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if _section_of(annotation) is annotation:
        return "section"
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return " or ".join(sorted({_SCALARS.get(type(a), type(a).__name__) for a in args}))
    if _is_union(annotation):
        return _union_name(args)
    if origin in (list, tuple, set, frozenset):
        return f"list of {_type_name(args[0] if args else Any)}"
    if origin is dict:
        return f"mapping of {_type_name(args[0])} to {_type_name(args[1])}"
    return "any" if annotation is Any else getattr(annotation, "__name__", str(annotation))


def _union_name(args: tuple[Any, ...]) -> str:
    literals = [a for a in args if get_origin(a) is Literal]
    others = [a for a in args if get_origin(a) is not Literal and a is not type(None)]
    if literals and others:
        # a value or a keyword (`delta: auto`): the keywords are part of the type
        names = [_type_name(a) for a in others]
        names += [_code(str(v)) for lit in literals for v in get_args(lit)]
    else:
        names = [_type_name(a) for a in args if a is not type(None)]
    if type(None) in args:
        names.append("null")
    return " or ".join(names)


def _count(n: int, unit: str) -> str:
    return f"{n} {unit if n != 1 else unit[:-1]}"


def _bounds(metadata: list[Any], unit: str) -> list[str]:
    """Return the constraints in pydantic/annotated-types metadata as short phrases.

    `unit` names what a length counts (characters, items).
    """
    phrases: list[str] = []
    low = next((m.min_length for m in metadata if isinstance(m, annotated_types.MinLen)), None)
    high = next((m.max_length for m in metadata if isinstance(m, annotated_types.MaxLen)), None)
    if low is not None and low == high:
        phrases.append(f"exactly {_count(low, unit)}")
    else:
        if low is not None:
            phrases.append(f"at least {_count(low, unit)}")
        if high is not None:
            phrases.append(f"at most {_count(high, unit)}")
    for item in metadata:
        if isinstance(item, annotated_types.Gt):
            phrases.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Ge):
            phrases.append(f">= {item.ge}")
        elif isinstance(item, annotated_types.Lt):
            phrases.append(f"< {item.lt}")
        elif isinstance(item, annotated_types.Le):
            phrases.append(f"<= {item.le}")
        elif isinstance(item, annotated_types.MultipleOf):
            phrases.append(f"a multiple of {item.multiple_of}")
    return phrases


def _choices(annotation: Any) -> list[str]:
    """Return the allowed keywords of a Literal field (also inside `X | None`)."""
    if get_origin(annotation) is Literal:
        return [str(a) for a in get_args(annotation)]
    if _is_union(annotation):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if all(get_origin(a) is Literal for a in args):
            return [str(v) for a in args for v in get_args(a)]
    return []


def _item_constraints(annotation: Any) -> list[str]:
    """Return the constraints on each item of a list or tuple (`tuple[Annotated[float, ...], ...]`)."""
    if get_origin(annotation) not in (list, tuple, set, frozenset):
        return []
    phrases: list[str] = []
    for arg in get_args(annotation):
        if get_origin(arg) is Annotated:
            for meta in get_args(arg)[1:]:
                inner = meta.metadata if isinstance(meta, FieldInfo) else [meta]
                phrases += _bounds(inner, "characters")
        choices = _choices(arg)
        if choices:
            phrases.append("one of " + ", ".join(_code(c) for c in choices))
    return [f"each {p}" for p in phrases]


def _allowed(field: FieldInfo) -> str:
    annotation = field.annotation
    base = annotation
    if _is_union(annotation):
        non_null = [a for a in get_args(annotation) if a is not type(None)]
        base = non_null[0] if len(non_null) == 1 else annotation
    parts = _bounds(list(field.metadata), "characters" if base is str else "items")
    choices = _choices(annotation)
    if choices:
        parts.insert(0, "one of " + ", ".join(_code(c) for c in choices))
    parts += _item_constraints(base)
    return "; ".join(parts)


def _value(value: Any) -> str:
    """Return a default as it would be written in YAML (flow style)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _default(field: FieldInfo) -> str:
    factory = field.default_factory
    if factory is not None:
        if isinstance(factory, type) and issubclass(factory, Section):
            # building a section would run its validators; its own table lists the defaults
            return "see its table"
        return _code(_value(factory()))  # type: ignore[call-arg]
    if field.is_required():
        return "required"
    return _code(_value(field.default))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _anchor(heading: str) -> str:
    # GitHub's rule: lower case, drop punctuation other than - and _, spaces become -
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def _doc(model: type[Section]) -> str:
    return inspect.cleandoc(model.__doc__ or "")


def _presence(field: FieldInfo) -> str:
    if field.is_required():
        return "Required."
    if field.default is None:
        return "Optional: off (`null`) unless the recipe gives it."
    return "Always present; every key has a default."


def _row(path: str, field: FieldInfo) -> str:
    description = field.description or ""
    child = _section_of(field.annotation)
    if child is not None:
        description += f" See [{_code(path)}](#{_anchor(path)})."
    cells = [
        _code(path),
        _type_name(field.annotation),
        _default(field),
        _allowed(field),
        description,
    ]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _render_section(doc: SectionDoc) -> list[str]:
    level = "#" * min(2 + doc.path.count("."), 6)
    lines = [f"{level} {_code(doc.path)}", ""]
    # the class docstring says more than the one-line field description; either will do
    intro = _doc(doc.model) or doc.field.description or ""
    if intro:
        lines += [intro, ""]
    lines += [_presence(doc.field), ""]
    lines += [
        "| key | type | default | allowed | description |",
        "|---|---|---|---|---|",
    ]
    lines += [_row(f"{doc.path}.{name}", f) for name, f in doc.model.model_fields.items()]
    lines.append("")
    return lines


def render_reference() -> str:
    """Return the recipe reference as markdown: one table per section of `Recipe`, nested ones included."""
    sections = list(iter_sections())
    top = [s for s in sections if "." not in s.path]
    lines = [
        "# Recipe reference",
        "",
        f"<!-- Generated from src/modelyard/recipe by `{REGENERATE}`; do not edit by hand. -->",
        "",
        "A recipe is one YAML file; each top-level key below is a section, and nested keys are",
        "written as nested mappings (`train: {lora: {rank: 8}}`) or, on the command line, as",
        "dotted overrides (`modelyard train recipe.yaml train.lora.rank=8`). Unknown keys are",
        "errors, and every problem is reported at once with its key path, the value given and",
        "what is allowed. `modelyard init` writes a commented example, and each run saves the",
        "resolved recipe as `recipe.yaml`.",
        "",
        "Sections: " + " · ".join(f"[{_code(s.path)}](#{_anchor(s.path)})" for s in top),
        "",
    ]
    for doc in sections:
        lines += _render_section(doc)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the reference to OUTPUT (docs/recipe.md), or with --check compare; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m modelyard.recipe.reference", description=__doc__.splitlines()[0]
    )
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if OUTPUT differs from the schema"
    )
    args = parser.parse_args(argv)
    text = render_reference()
    out: Path = args.output
    if args.check:
        current = out.read_text(encoding="utf-8") if out.is_file() else None
        if current != text:
            print(f"{out} is stale; regenerate it with: {REGENERATE} {out}", file=sys.stderr)
            return 1
        print(f"{out} is up to date")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    # write beside, then rename: a reader never sees half a file
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
