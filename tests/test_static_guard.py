"""A static guard over src/: no unpickling, no unsafe YAML, no remote code, anywhere.

The checker parses each module (so comments and strings do not count, and aliases such as
`from pickle import loads as l` are caught) and fails naming the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


class Guard(ast.NodeVisitor):
    """Collects (line, problem) for every unsafe load in one module."""

    def __init__(self) -> None:
        self.problems: list[tuple[int, str]] = []
        self.aliases: dict[str, str] = {}

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def _name(self, func: ast.expr) -> str:
        dotted = _dotted(func)
        head, _, rest = dotted.partition(".")
        full = self.aliases.get(head, head)
        return f"{full}.{rest}" if rest else full

    def visit_Call(self, node: ast.Call) -> None:
        name = self._name(node.func)
        module, _, attr = name.rpartition(".")
        if module.split(".")[0] in PICKLE_MODULES and attr in {
            "load",
            "loads",
            "Unpickler",
            "open",
        }:
            self.problems.append((node.lineno, f"{name}(...) unpickles"))
        elif name == "torch.load" and not _is_true(_keyword(node, "weights_only")):
            self.problems.append((node.lineno, "torch.load without weights_only=True"))
        elif name in {"yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all"}:
            self.problems.append((node.lineno, f"{name}(...) builds arbitrary objects"))
        elif name in {"yaml.load", "yaml.load_all"}:
            loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or _dotted(loader).rpartition(".")[2] not in SAFE_YAML_LOADERS:
                self.problems.append((node.lineno, f"{name} without a safe Loader"))
        elif name in {"numpy.load", "np.load"} and _is_true(_keyword(node, "allow_pickle")):
            self.problems.append((node.lineno, "numpy.load(allow_pickle=True)"))
        elif name in {"pandas.read_pickle", "pd.read_pickle"}:
            self.problems.append((node.lineno, f"{name} unpickles"))
        if _is_true(_keyword(node, "trust_remote_code")):
            self.problems.append((node.lineno, "trust_remote_code=True"))
        self.generic_visit(node)


def check_source(source: str) -> list[tuple[int, str]]:
    """Return (line, problem) for every unsafe call in a module's source."""
    guard = Guard()
    guard.visit(ast.parse(source))
    return guard.problems


@pytest.mark.parametrize(
    ("snippet", "problem"),
    [
        ("import pickle\npickle.load(f)", "pickle.load"),
        ("from pickle import loads as l\nl(b)", "pickle.loads"),
        ("import joblib\njoblib.load('m.joblib')", "joblib.load"),
        ("import torch\ntorch.load('w.pt')", "torch.load without weights_only=True"),
        ("import torch as t\nt.load('w.pt', weights_only=False)", "torch.load without"),
        ("import yaml\nyaml.load(text)", "yaml.load without a safe Loader"),
        ("import yaml\nyaml.load(text, Loader=yaml.Loader)", "yaml.load without a safe Loader"),
        ("import yaml\nyaml.unsafe_load(text)", "yaml.unsafe_load"),
        ("import numpy as np\nnp.load('a.npy', allow_pickle=True)", "allow_pickle=True"),
        ("import pandas as pd\npd.read_pickle('x')", "read_pickle"),
        (
            "from transformers import AutoModel\nAutoModel.from_pretrained(p, trust_remote_code=True)",
            "trust_remote_code=True",
        ),
    ],
)
def test_guard_catches_each_unsafe_form(snippet: str, problem: str) -> None:
    found = check_source(snippet)
    assert found and problem in found[0][1]


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\ntorch.load('w.pt', weights_only=True)",
        "import yaml\nyaml.safe_load(text)",
        "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)",
        "x = 'pickle.load(f) in a string is fine'  # so is torch.load( in a comment",
        "from transformers import AutoModel\nAutoModel.from_pretrained(p, trust_remote_code=False)",
        "from safetensors.torch import load\nload(blob)",
    ],
)
def test_guard_allows_safe_forms(snippet: str) -> None:
    assert check_source(snippet) == []


def test_src_has_no_unsafe_loads() -> None:
    modules = sorted(SRC.rglob("*.py"))
    assert len(modules) > 20
    problems = [
        f"{path.relative_to(SRC)}:{line}: {what}"
        for path in modules
        for line, what in check_source(path.read_text(encoding="utf-8"))
    ]
    assert problems == [], "unsafe loads in src/:\n" + "\n".join(problems)
