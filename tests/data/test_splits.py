"""load_data: seeded stratified splits, user splits, label rules and max_rows."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from modelyard.data import DataBundle, Split, load_data
from modelyard.data.splits import held_out_count
from modelyard.errors import DataError
from modelyard.recipe import DataConfig, SplitConfig


def write_csv(
    path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...] = ("text", "label")
) -> Path:
    """Write `rows` under `header` as a CSV; return the path."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def skewed(a: int = 180, b: int = 90, c: int = 30) -> list[tuple[str, str]]:
    """Return distinct rows: `a` of label a, `b` of label b, `c` of label c."""
    counts = {"a": a, "b": b, "c": c}
    return [(f"{label} text {i}", label) for label, n in counts.items() for i in range(n)]


def names(bundle: DataBundle, split: Split) -> Counter[str]:
    """Return the label-name counts of `split`."""
    return Counter(bundle.labels[i] for i in split.labels)


@pytest.fixture()
def skewed_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "data.csv", skewed())


# --- one file, three splits -----------------------------------------------------------------


def test_split_sizes_and_stratified_proportions(skewed_csv: Path) -> None:
    bundle = load_data(DataConfig(path=skewed_csv), seed=0)
    assert (len(bundle.train), len(bundle.dev), len(bundle.test)) == (240, 30, 30)
    assert names(bundle, bundle.test) == {"a": 18, "b": 9, "c": 3}
    assert names(bundle, bundle.dev) == {"a": 18, "b": 9, "c": 3}
    assert names(bundle, bundle.train) == {"a": 144, "b": 72, "c": 24}
    assert bundle.report.class_counts["test"] == {"a": 18, "b": 9, "c": 3}
    assert bundle.report.rows == {"train": 240, "dev": 30, "test": 30}


def test_splits_are_disjoint_and_cover_the_file(skewed_csv: Path) -> None:
    bundle = load_data(DataConfig(path=skewed_csv), seed=0)
    train, dev, test = (set(s.texts) for s in (bundle.train, bundle.dev, bundle.test))
    assert not (train & dev or train & test or dev & test)
    assert train | dev | test == {text for text, _ in skewed()}
    assert bundle.report.overlap == {"train_dev": 0, "train_test": 0}


def test_same_seed_same_splits_other_seed_other_splits(skewed_csv: Path) -> None:
    cfg = DataConfig(path=skewed_csv)
    first, again, other = (load_data(cfg, seed=s) for s in (7, 7, 8))
    for name in ("train", "dev", "test"):
        assert getattr(first, name) == getattr(again, name)
    assert first.test.texts != other.test.texts
    assert first.dev.texts != other.dev.texts


def test_labels_are_indices_into_bundle_labels(skewed_csv: Path) -> None:
    bundle = load_data(DataConfig(path=skewed_csv), seed=0)
    assert bundle.labels == ["a", "b", "c"]
    pairs = zip(bundle.train.texts, bundle.train.labels, strict=True)
    assert all(text.startswith(bundle.labels[i]) for text, i in pairs)
    assert bundle.train.pairs is None
    assert bundle.train.source == bundle.test.source == str(skewed_csv)


def test_zero_fraction_gives_empty_split(skewed_csv: Path) -> None:
    bundle = load_data(DataConfig(path=skewed_csv, split=SplitConfig(dev=0.0, test=0.2)), seed=0)
    assert len(bundle.dev) == 0
    assert bundle.dev.texts == [] and bundle.dev.labels == []
    assert (len(bundle.train), len(bundle.test)) == (240, 60)
    assert bundle.report.class_counts["dev"] == {"a": 0, "b": 0, "c": 0}


def test_held_out_count_does_not_round_float_noise_up() -> None:
    assert held_out_count(0.1, 30) == 3
    assert held_out_count(0.1, 5) == 1
    assert held_out_count(0.0, 100) == 0


def test_text_is_stripped_but_inner_text_kept(tmp_path: Path) -> None:
    rows = [(f"  hello\n  world {i}  ", "ab"[i % 2]) for i in range(10)]
    path = write_csv(tmp_path / "d.csv", rows)
    bundle = load_data(DataConfig(path=path, split=SplitConfig(dev=0, test=0)), seed=0)
    assert bundle.train.texts[0] == "hello\n  world 0"


def test_single_row_label_stays_in_train_with_a_warning(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", [*skewed(40, 40, 0), ("lonely", "z")])
    bundle = load_data(DataConfig(path=path), seed=0)
    assert "lonely" in bundle.train.texts
    assert any("z have one row only" in w for w in bundle.report.warnings)


def test_unstratifiable_split_falls_back_to_random_with_warning(tmp_path: Path) -> None:
    rows = [(f"text {i}", f"label{i % 8}") for i in range(24)]  # test of 3 rows, 8 classes
    path = write_csv(tmp_path / "d.csv", rows)
    bundle = load_data(DataConfig(path=path, split=SplitConfig(dev=0, test=0.1)), seed=0)
    assert len(bundle.test) == 3
    assert any("cannot stratify" in w for w in bundle.report.warnings)
    assert "cannot stratify" in bundle.report.to_markdown()


def test_too_few_rows_to_split_is_a_data_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", [("x", "a"), ("y", "b")])
    with pytest.raises(DataError, match="too few rows for the test split"):
        load_data(DataConfig(path=path), seed=0)


# --- the user's own files ------------------------------------------------------------------


def test_user_train_dev_test_files_are_used_as_given(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", skewed(10, 10, 10))
    dev = write_csv(tmp_path / "dev.csv", [("d1", "a"), ("d2", "c")])
    test = write_csv(tmp_path / "test.csv", [("t1", "b")])
    bundle = load_data(DataConfig(train=train, dev=dev, test=test), seed=0)
    assert (len(bundle.train), bundle.dev.texts, bundle.test.texts) == (30, ["d1", "d2"], ["t1"])
    assert (bundle.dev.source, bundle.test.source) == (str(dev), str(test))
    assert bundle.report.sources == {"train": str(train), "dev": str(dev), "test": str(test)}


def test_missing_test_is_split_off_train(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", skewed(50, 50, 0))
    dev = write_csv(tmp_path / "dev.csv", [("d1", "a"), ("d2", "b")])
    cfg = DataConfig(train=train, dev=dev, split=SplitConfig(test=0.2))
    bundle = load_data(cfg, seed=0)
    assert (len(bundle.train), len(bundle.dev), len(bundle.test)) == (80, 2, 20)
    assert names(bundle, bundle.test) == {"a": 10, "b": 10}
    assert bundle.test.source == str(train)
    assert bundle.report.sources["test"] == f"20% of {train}"


def test_missing_dev_and_test_are_split_off_train(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", skewed())
    bundle = load_data(DataConfig(train=train), seed=0)
    assert (len(bundle.train), len(bundle.dev), len(bundle.test)) == (240, 30, 30)


def test_sentence_pairs(tmp_path: Path) -> None:
    rows = [(f"premise {i}", f"hypothesis {i}", "ab"[i % 2]) for i in range(20)]
    path = write_csv(tmp_path / "d.csv", rows, header=("premise", "hypothesis", "label"))
    cfg = DataConfig(path=path, text_column="premise", text_pair_column="hypothesis")
    bundle = load_data(cfg, seed=0, count_tokens=lambda texts: [len(t.split()) for t in texts])
    assert bundle.train.pairs is not None
    assert [p.replace("hypothesis", "premise") for p in bundle.train.pairs] == bundle.train.texts
    assert bundle.report.token_lengths["train"]["max"] == 4.0  # 2 words + 2 words


# --- labels --------------------------------------------------------------------------------


def test_label_order_from_cfg_labels(skewed_csv: Path) -> None:
    bundle = load_data(DataConfig(path=skewed_csv, labels=["c", "a", "b", "unused"]), seed=0)
    assert bundle.labels == ["c", "a", "b", "unused"]
    assert names(bundle, bundle.test) == {"a": 18, "b": 9, "c": 3}
    assert bundle.report.class_counts["train"]["unused"] == 0
    assert bundle.report.labels == ["c", "a", "b", "unused"]


def test_integer_labels_work_and_sort_as_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    lines = [json.dumps({"text": f"t{i}", "label": i % 11}) for i in range(110)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    bundle = load_data(DataConfig(path=path, split=SplitConfig(dev=0, test=0)), seed=0)
    assert bundle.labels == [str(i) for i in range(11)]
    assert names(bundle, bundle.train)["10"] == 10


def test_integer_labels_agree_across_formats(tmp_path: Path) -> None:
    train = tmp_path / "train.parquet"
    pd.DataFrame({"text": [f"t{i}" for i in range(10)], "label": [0, 1] * 5}).to_parquet(train)
    test = write_csv(tmp_path / "test.csv", [("x", "1"), ("y", "0")])
    cfg = DataConfig(train=train, test=test, labels=["0", "1"], split=SplitConfig(dev=0))
    bundle = load_data(cfg, seed=0)
    assert bundle.labels == ["0", "1"]
    assert bundle.test.labels == [1, 0]


def test_label_not_in_cfg_labels_names_file_row_and_allowed(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", skewed(10, 10, 0))
    dev = write_csv(tmp_path / "dev.csv", [("d1", "a"), ("d2", "b"), ("d3", "maybe")])
    with pytest.raises(DataError) as err:
        load_data(DataConfig(train=train, dev=dev, labels=["a", "b"]), seed=0)
    message = str(err.value)
    assert message.startswith(f"{dev}, data row 3: label 'maybe' is not in data.labels")
    assert "allowed: a, b" in message


def test_dev_label_never_seen_in_training_names_file_row_and_label(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", skewed(10, 10, 0))
    test = write_csv(tmp_path / "test.csv", [("t1", "a"), ("t2", "c"), ("t3", "c")])
    with pytest.raises(DataError) as err:
        load_data(DataConfig(train=train, test=test), seed=0)
    message = str(err.value)
    assert message.startswith(f"{test}, data row 2: label 'c' never occurs in the training data")
    assert str(train) in message
    assert "2 test row(s)" in message


def test_unseen_label_is_an_error_even_when_listed_in_cfg_labels(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", skewed(10, 10, 0))
    dev = write_csv(tmp_path / "dev.csv", [("d1", "c")])
    with pytest.raises(DataError, match=r"data row 1: label 'c' never occurs"):
        load_data(DataConfig(train=train, dev=dev, labels=["a", "b", "c"]), seed=0)


def test_empty_label_names_file_and_row(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", [*skewed(10, 10, 0), ("no label here", " ")])
    with pytest.raises(DataError) as err:
        load_data(DataConfig(path=path), seed=0)
    assert str(err.value).startswith(f"{path}, data row 21: the label")


def test_one_class_in_train_is_a_data_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", skewed(30, 0, 0))
    with pytest.raises(DataError, match=r"1 class.*at least 2") as err:
        load_data(DataConfig(path=path), seed=0)
    assert str(path) in str(err.value)


def test_repeated_cfg_label_is_a_data_error(skewed_csv: Path) -> None:
    with pytest.raises(DataError, match=r"data\.labels lists a more than once"):
        load_data(DataConfig(path=skewed_csv, labels=["a", "b", "c", "a"]), seed=0)


def test_missing_column_via_load_data(skewed_csv: Path) -> None:
    with pytest.raises(DataError) as err:
        load_data(DataConfig(path=skewed_csv, label_column="category"), seed=0)
    message = str(err.value)
    assert str(skewed_csv) in message
    assert "no column 'category' (set by data.label_column)" in message
    assert "'text', 'label'" in message


def test_unreadable_file_via_load_data(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_data(DataConfig(path=tmp_path / "missing.csv"), seed=0)


# --- max_rows --------------------------------------------------------------------------------


def test_max_rows_takes_a_stratified_seeded_sample(skewed_csv: Path) -> None:
    cfg = DataConfig(path=skewed_csv, max_rows=100)
    bundle = load_data(cfg, seed=0)
    assert len(bundle.train) == 100
    assert names(bundle, bundle.train) == {"a": 60, "b": 30, "c": 10}
    assert (len(bundle.dev), len(bundle.test)) == (30, 30)  # held-out splits keep their size
    unused = [r for r in bundle.report.removed if r.step == "max_rows"]
    assert len(unused) == 1 and unused[0].rows == 140
    assert "data.max_rows=100" in unused[0].reason
    assert load_data(cfg, seed=0).train == bundle.train
    assert load_data(cfg, seed=1).train != bundle.train


def test_max_rows_above_row_count_changes_nothing(skewed_csv: Path) -> None:
    bundle = load_data(DataConfig(path=skewed_csv, max_rows=10_000), seed=0)
    assert len(bundle.train) == 240
    assert bundle.report.removed == []


def test_conflicts_are_counted_before_max_rows(tmp_path: Path) -> None:
    rows = [*skewed(50, 50, 0), ("same", "a"), ("same", "b")]
    path = write_csv(tmp_path / "d.csv", rows)
    cfg = DataConfig(path=path, max_rows=10, split=SplitConfig(dev=0, test=0))
    assert load_data(cfg, seed=0).report.conflicts == 1


def test_random_fallback_never_leaves_a_held_out_label_missing_from_train(tmp_path: Path) -> None:
    # 6 rows, 3 classes, 4 held out: 2 training rows cannot cover 3 classes
    path = write_csv(tmp_path / "d.csv", [(f"{c}{i}", c) for c in "abc" for i in range(2)])
    bundle = load_data(DataConfig(path=path, split=SplitConfig(dev=0, test=0.6)), seed=0)
    assert set(bundle.test.labels) <= set(bundle.train.labels)
    assert len(bundle.train) + len(bundle.test) == 6
    assert any("moved to train" in w for w in bundle.report.warnings)


def test_conflict_examples_show_the_pair(tmp_path: Path) -> None:
    rows = [(f"p{i}", "h", "ab"[i % 2]) for i in range(10)] + [("p0", "h", "b")]
    path = write_csv(tmp_path / "d.csv", rows, header=("text", "pair", "label"))
    cfg = DataConfig(path=path, text_pair_column="pair", split=SplitConfig(dev=0, test=0))
    report = load_data(cfg, seed=0).report
    assert report.conflict_examples == [{"text": "p0", "labels": ["a", "b"], "pair": "h"}]
