"""A corpus of hostile artifacts: each is refused with a clear error, and loading reads and
creates nothing outside the artifact's root."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from modelyard.errors import ArtifactError
from modelyard.registry.manifest import write_manifest
from modelyard.registry.run import load_run
from modelyard.registry.safety import pickle_reason
from tests.registry.conftest import OpenRecorder


def _tree(base: Path) -> set[str]:
    return {str(p) for p in base.rglob("*")}


def refused(root: Path, opened: OpenRecorder, match: str) -> None:
    """Assert loading `root` fails with `match`, opening and creating nothing outside it."""
    base = root.parent
    before = _tree(base)
    with opened.watch(), pytest.raises(ArtifactError, match=match):
        load_run(root)
    real_root, real_base = os.path.realpath(root), os.path.realpath(base)
    outside = [
        p for p in opened.paths if p.startswith(real_base) and not p.startswith(real_root + os.sep)
    ]
    assert outside == [], f"read outside the root: {outside}"
    assert _tree(base) == before, "loading created or removed files"


def _outside(root: Path, name: str = "secret.json", text: str = '{"a": 1}') -> Path:
    folder = root.parent / "outside"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


class _Payload:
    def __reduce__(self) -> tuple:
        return (print, ("pwned",))


PICKLES: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "protocol-4 pickle named model.safetensors": (
        "model.safetensors",
        lambda: pickle.dumps(_Payload(), protocol=4),
        r"'model.safetensors' is a pickle \(protocol 4\)",
    ),
    "protocol-2 pickle named config.json": (
        "config.json",
        lambda: pickle.dumps({"a": 1}, protocol=2),
        r"'config.json' is a pickle \(protocol 2\)",
    ),
    "protocol-0 pickle named notes.txt": (
        "notes.txt",
        lambda: pickle.dumps(_Payload(), protocol=0),
        r"'notes.txt' is a pickle \(protocol 0 or 1\)",
    ),
    "torch.save zip file": ("weights.pt", lambda: _zip("archive/data.pkl"), r"holding the pickle"),
    "zip with a pickle under another name": (
        "weights.bin",
        lambda: _zip("archive/tensors"),
        r"member 'archive/tensors' is a pickle",
    ),
    "numpy object array": ("extra.npy", lambda: _npy(), r"NumPy object array"),
}


def _zip(member: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, pickle.dumps(_Payload(), protocol=2))
    return buffer.getvalue()


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


@pytest.mark.parametrize("case", list(PICKLES))
def test_pickles_are_refused_whatever_their_name(
    case: str, run_copy: Path, opened: OpenRecorder
) -> None:
    name, make, match = PICKLES[case]
    (run_copy / name).write_bytes(make())
    write_manifest(run_copy)  # the attacker forges a matching manifest too
    refused(run_copy, opened, match)


def test_pickle_sniffing_leaves_real_files_alone(saved_run: Path) -> None:
    for path in saved_run.iterdir():
        assert pickle_reason(path.read_bytes()[:65536], complete=True) is None, path.name


def _point(root: Path, name: str, target: str) -> None:
    (root / name).unlink(missing_ok=True)
    os.symlink(target, root / name)


def test_symlink_to_a_file_outside_is_refused(run_copy: Path, opened: OpenRecorder) -> None:
    secret = _outside(run_copy)
    _point(run_copy, "config.json", os.path.relpath(secret, run_copy))
    write_manifest(run_copy)
    refused(run_copy, opened, r"'config.json', whose real path is outside the artifact")


@pytest.mark.parametrize("style", ["absolute", "proc-self-root"])
def test_absolute_and_proc_links_are_refused(
    style: str, run_copy: Path, opened: OpenRecorder
) -> None:
    secret = _outside(run_copy)
    target = str(secret) if style == "absolute" else f"/proc/self/root{secret}"
    _point(run_copy, "labels.json", target)
    refused(run_copy, opened, r"'labels.json', whose real path is outside the artifact")


def test_link_loop_is_refused(run_copy: Path, opened: OpenRecorder) -> None:
    os.symlink("b", run_copy / "a")
    os.symlink("a", run_copy / "b")
    refused(run_copy, opened, r"'a' is a link to 'b', outside it")


def test_linked_folder_leading_outside_is_refused(run_copy: Path, opened: OpenRecorder) -> None:
    secret = _outside(run_copy)
    os.symlink(secret.parent, run_copy / "sub")
    refused(run_copy, opened, r"'sub' is a link to .*outside it")


@pytest.mark.parametrize(
    "name",
    [
        "../outside/secret.json",
        "/etc/hostname",
        "//proc/self/root/etc/hostname",
        "tokenizer/../../outside/secret.json",
        "./labels.json",
        "a//b",
        "..\\outside\\secret.json",
        "C:/Windows/win.ini",
        "",
    ],
)
def test_manifest_names_escaping_the_root_are_refused(
    name: str, run_copy: Path, opened: OpenRecorder
) -> None:
    _outside(run_copy)
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": "0" * 64, "size": 8}
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    refused(
        run_copy, opened, r"its manifest lists .*(outside the artifact|not a plain relative path)"
    )


def test_name_through_an_inner_link_to_outside_is_refused(
    run_copy: Path, opened: OpenRecorder
) -> None:
    secret = _outside(run_copy)
    manifest = json.loads((run_copy / "manifest.json").read_text())
    os.symlink(secret.parent, run_copy / "data")
    manifest["files"]["data/secret.json"] = {"sha256": "0" * 64, "size": 8}
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    refused(run_copy, opened, r"whose real path is outside the artifact|is a link to")


def test_fifo_is_refused_without_blocking(run_copy: Path, opened: OpenRecorder) -> None:
    os.mkfifo(run_copy / "tokenizer.json.fifo")
    refused(run_copy, opened, r"'tokenizer.json.fifo' is not a regular file \(a FIFO")


def test_manifest_that_is_a_link_is_refused(run_copy: Path, opened: OpenRecorder) -> None:
    secret = _outside(run_copy, "manifest.json", (run_copy / "manifest.json").read_text())
    _point(run_copy, "manifest.json", str(secret))
    refused(run_copy, opened, r"'manifest.json' is a link; it must be a plain file")


def test_oversized_manifest_is_refused_before_parsing(
    run_copy: Path, opened: OpenRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("modelyard.registry.manifest.MAX_MANIFEST_BYTES", 1024)
    refused(run_copy, opened, r"larger than 1024 bytes; refusing to parse it")


def test_unlisted_file_beside_the_model_is_refused(run_copy: Path, opened: OpenRecorder) -> None:
    # tokenizer loaders read added_tokens.json by name: unlisted, it could change every prediction
    (run_copy / "added_tokens.json").write_text('{"refund": 3}', encoding="utf-8")
    refused(
        run_copy, opened, r"files not in its manifest sit beside the model files: added_tokens.json"
    )


def test_corrupt_manifest_entry_is_refused(run_copy: Path, opened: OpenRecorder) -> None:
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["files"]["labels.json"] = {"size": "big"}
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    refused(run_copy, opened, r"corrupt entry: labels.json")


def _split(blob: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def _join(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _first_tensor(header: dict) -> str:
    return next(k for k in header if k != "__metadata__")


def _with_header(change: Callable[[dict, int], None]) -> Callable[[bytes], bytes]:
    def mutate(blob: bytes) -> bytes:
        header, data = _split(blob)
        change(header, len(data))
        return _join(header, data)

    return mutate


SAFETENSORS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "shorter than the length field": (lambda b: b[:5], r"5 bytes, shorter than the 8-byte"),
    "length beyond the file": (
        lambda b: struct.pack("<Q", len(b)) + b[8:],
        r"header claims \d+ bytes, but the file has \d+",
    ),
    "length of 2**63": (
        lambda b: struct.pack("<Q", 2**63) + b[8:],
        r"header claims 9223372036854775808",
    ),
    "header not JSON": (
        lambda b: (
            b[:8] + b"\xff" * struct.unpack("<Q", b[:8])[0] + b[8 + struct.unpack("<Q", b[:8])[0] :]
        ),
        r"header is not JSON",
    ),
    "header a JSON list": (
        lambda b: _join([], b""),  # type: ignore[arg-type]
        r"header is not a JSON object",
    ),
    "unknown dtype": (
        _with_header(lambda h, n: h[_first_tensor(h)].update(dtype="Q7")),
        r"unknown dtype 'Q7'",
    ),
    "offsets past the data": (
        _with_header(lambda h, n: h[_first_tensor(h)].update(data_offsets=[0, n + 64])),
        r"offsets \[0, \d+\] outside the \d+-byte data",
    ),
    "shape and size disagree": (
        _with_header(lambda h, n: h[_first_tensor(h)].update(shape=[1])),
        r"bytes for shape \[1\]",
    ),
    "tensors overlap": (
        _with_header(lambda h, n: h.update(copy=dict(h[_first_tensor(h)]))),
        r"overlap or leave gaps",
    ),
    "tensor missing from the header": (
        _with_header(lambda h, n: h.pop(sorted(k for k in h if k != "__metadata__")[-1])),
        r"(cover \d+ of \d+ data bytes|overlap or leave gaps)",
    ),
}


@pytest.mark.parametrize("case", list(SAFETENSORS))
def test_malformed_safetensors_headers_are_refused(
    case: str, run_copy: Path, opened: OpenRecorder
) -> None:
    mutate, match = SAFETENSORS[case]
    path = run_copy / "model.safetensors"
    path.write_bytes(mutate(path.read_bytes()))
    write_manifest(run_copy)
    refused(run_copy, opened, r"'model.safetensors' is not a valid safetensors file: .*" + match)


def test_header_above_the_cap_is_refused(
    run_copy: Path, opened: OpenRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("modelyard.registry.safety.MAX_SAFETENSORS_HEADER", 64)
    refused(run_copy, opened, r"the cap is 64")


def test_clean_run_loads_through_a_linked_root_and_inner_links(
    run_copy: Path, opened: OpenRecorder
) -> None:
    os.symlink("labels.json", run_copy / "labels-alias.json")
    write_manifest(run_copy)
    os.symlink(run_copy, run_copy.parent / "linked")
    with opened.watch():
        loaded = load_run(run_copy.parent / "linked")
    assert loaded.labels == ["account", "billing", "shipping"]
    base = os.path.realpath(run_copy.parent)
    assert all(not p.startswith(base) or p.startswith(str(run_copy)) for p in opened.paths)
