"""Reading language-model data: documents, instruction rows, conversations, and bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.errors import DataError
from modelyard.generation.data import load_lm_data, split_documents
from modelyard.recipe import build_recipe
from tests.generation.conftest import qa_rows, write_jsonl


def _recipe(path: Path, task: str = "generation", **extra) -> object:
    return build_recipe(
        {"task": task, "data": {"path": str(path), "split": {"dev": 0.0, "test": 0.0}}, **extra}
    )


def test_instruction_rows_become_conversations(tmp_path: Path) -> None:
    rows = [
        {"instruction": "add", "input": "2 and 3", "output": "5"},
        {"instruction": "hi", "input": "", "output": "hello"},
    ]
    splits = load_lm_data(
        _recipe(write_jsonl(tmp_path / "d.jsonl", rows), generation={"system_prompt": "be kind"})
    )
    assert splits.train[0] == [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "add\n\n2 and 3"},
        {"role": "assistant", "content": "5"},
    ]
    assert splits.train[1][1] == {"role": "user", "content": "hi"}


def test_messages_rows_and_dropped_rows_are_counted(tmp_path: Path) -> None:
    good = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    }
    no_answer = {"messages": [{"role": "user", "content": "hi"}]}
    empty = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]
    }
    path = write_jsonl(tmp_path / "m.jsonl", [good, no_answer, empty, good])
    splits = load_lm_data(_recipe(path))
    assert len(splits.train) == 2
    assert splits.report["dropped_no_assistant_turn"] == 1
    assert splits.report["dropped_empty_response"] == 1


def test_a_file_with_no_answer_at_all_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(
        DataError, match="no conversation with a non-empty assistant answer.*1 without"
    ):
        load_lm_data(_recipe(path))


def test_unknown_role_names_the_row(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    ] * 2
    rows.append({"messages": [{"role": "narrator", "content": "x"}]})
    with pytest.raises(DataError, match=r"m.jsonl row 3: message 0 has unknown role 'narrator'"):
        load_lm_data(_recipe(write_jsonl(tmp_path / "m.jsonl", rows)))


def test_missing_columns_say_what_chat_data_needs(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", [{"question": "a", "answer": "b"}])
    with pytest.raises(DataError, match="no column 'instruction', 'output'.*'messages' column"):
        load_lm_data(_recipe(path))


def test_messages_that_are_not_json_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text('messages\n"[{""role"": ""user"""\n', encoding="utf-8")
    with pytest.raises(DataError, match="row 1: messages is not valid JSON"):
        load_lm_data(_recipe(path))


def test_plain_text_documents_and_seeded_splits(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("\n\n".join(f"paragraph {i}\nline two" for i in range(40)), encoding="utf-8")
    recipe = build_recipe(
        {
            "task": "language-modeling",
            "data": {"path": str(path), "split": {"dev": 0.1, "test": 0.2}},
        }
    )
    one, two = load_lm_data(recipe), load_lm_data(recipe)
    assert one.sizes() == {"train": 28, "dev": 4, "test": 8} and one.test == two.test
    assert sorted(one.train + one.dev + one.test) == sorted(
        f"paragraph {i}\nline two" for i in range(40)
    )


def test_document_separators() -> None:
    text = "a\nb\n\n  \nc\n"
    assert split_documents(text, "blank-line") == ["a\nb", "c"]
    assert split_documents(text, "line") == ["a", "b", "c"]
    assert split_documents(text, "file") == ["a\nb\n\n  \nc"]


def test_table_text_column_drops_and_counts_empty_texts(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("body\nhello there\n\nthird\n", encoding="utf-8")
    recipe = build_recipe(
        {
            "task": "language-modeling",
            "data": {"path": str(path), "text_column": "body", "split": {"dev": 0, "test": 0}},
        }
    )
    splits = load_lm_data(recipe)
    assert splits.train == ["hello there", "third"]


def test_qa_rows_fixture_is_instruction_data(tmp_path: Path) -> None:
    rows = qa_rows(3)
    assert set(rows[0]) == {"instruction", "input", "output"}
    assert json.loads(json.dumps(rows)) == rows
