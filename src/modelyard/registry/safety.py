"""Hostile-artifact defences: what loading refuses before it trusts a byte of an artifact.

An artifact directory may come from anyone. Before hashes are compared, the tree is walked
without following links (a link whose real target leaves the artifact, a FIFO or a device is
refused); manifest names must be plain relative paths whose real path stays inside; files
not in the manifest may not sit beside the model files; every file is sniffed for pickle
data whatever its name; and safetensors headers are checked against the file size and a cap
before anything parses them. Checks read at most a small head of each file.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickletools
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any

from modelyard.errors import ArtifactError

# the safetensors library refuses headers above 100 MB; so does modelyard, before parsing
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
ENCRYPTED_MAGIC = b"MYENC1\x00"
_HEAD = 64 * 1024
_ZIP_MEMBERS_CHECKED = 4096
_PICKLE_OPCODE_STARTS = set(b"(.012FIJKLMNPQRSTUVXabcdeghijloprstu})]GBC\x80\x8c\x95")
_DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
}


def _refuse(root: Path, detail: str) -> ArtifactError:
    return ArtifactError(f"{root}: {detail}; refusing to load this artifact")


def real_root(root: Path) -> Path:
    """Return the resolved real path of an artifact directory; raise ArtifactError if it is none."""
    try:
        real = root.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ArtifactError(
            f"{root} is not a directory; give a run directory written by `modelyard train`"
        ) from None
    if not real.is_dir():
        raise ArtifactError(
            f"{root} is not a directory; give a run directory written by `modelyard train`"
        )
    return real


def _link_inside(path: Path, real: Path) -> bool:
    try:
        return path.resolve(strict=False).is_relative_to(real)
    except (OSError, RuntimeError):  # a link loop
        return False


def walk_files(root: Path) -> Iterator[Path]:
    """Yield the regular files under `root` (relative), never following links.

    Raises ArtifactError for a link whose real target is outside the artifact (or loops) and
    for anything that is neither a file, a directory nor such a link (FIFO, device, socket).
    """
    real = real_root(root)
    for dirpath, dirnames, filenames in os.walk(real, followlinks=False):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(real)
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                if not _link_inside(path, real):
                    raise _refuse(root, f"'{rel}' is a link to '{os.readlink(path)}', outside it")
            elif stat.S_ISREG(mode):
                yield rel
            elif not stat.S_ISDIR(mode):
                raise _refuse(root, f"'{rel}' is not a regular file (a FIFO, device or socket)")


def open_regular(root: Path, path: Path) -> IO[bytes]:
    """Open `path` for reading only if it is (still) a regular file and not a link.

    Opening never blocks (a FIFO swapped in after the walk is refused, not waited on).
    Raises ArtifactError otherwise.
    """
    if path.is_symlink():
        raise _refuse(root, f"'{path.name}' is a link; it must be a plain file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise _refuse(
            root, f"'{path.name}' cannot be opened as a plain file ({exc.strerror})"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _refuse(root, f"'{path.name}' is not a regular file")
    return os.fdopen(fd, "rb")


def check_member_name(root: Path, name: object) -> Path:
    """Return the real path of manifest entry `name`, which must stay inside the artifact.

    Raises ArtifactError for a name that is not a plain relative POSIX path (absolute,
    drive-lettered, with `..`, `.`, empty parts, backslashes or NUL) or whose resolved real
    path leaves the artifact (through a link).
    """
    real = real_root(root)
    if not isinstance(name, str) or not name or "\x00" in name or "\\" in name:
        raise _refuse(root, f"its manifest lists {name!r}, which is not a plain relative path")
    parts = name.split("/")
    if (
        PurePosixPath(name).is_absolute()
        or PureWindowsPath(name).drive
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise _refuse(root, f"its manifest lists '{name}', which points outside the artifact")
    if not _link_inside(real / name, real):
        raise _refuse(root, f"its manifest lists '{name}', whose real path is outside the artifact")
    return real / name


def _old_protocol_pickle(head: bytes, complete: bool) -> bool:
    last = 0
    try:
        for op, _, pos in pickletools.genops(head):
            last = pos or 0
            if op.name == "STOP":
                return last > 0
    except (ValueError, KeyError, UnicodeDecodeError, IndexError):
        # a valid opcode stream cut by the end of the head is still a pickle
        return not complete and last > len(head) - 4096
    return False


def _zip_pickle(handle: IO[bytes]) -> str | None:
    try:
        with zipfile.ZipFile(handle) as archive:
            for info in archive.infolist()[:_ZIP_MEMBERS_CHECKED]:
                if info.filename.endswith((".pkl", ".pickle")):
                    return f"a zip archive holding the pickle '{info.filename}' (a torch.save file)"
                with archive.open(info) as member:
                    if pickle_reason(member.read(2)) is not None:
                        return f"a zip archive whose member '{info.filename}' is a pickle"
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError):
        return None
    return None


def pickle_reason(
    head: bytes, complete: bool = True, handle: IO[bytes] | None = None
) -> str | None:
    """Return why the data starting with `head` is pickled, or None when it is not.

    Recognises protocol 2+ headers, protocol 0/1 opcode streams, zip files holding a pickle
    (torch.save's format; needs `handle`) and NumPy object arrays (pickled inside).
    """
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return f"a pickle (protocol {head[1]})"
    if head.startswith(b"PK\x03\x04") and handle is not None:
        return _zip_pickle(handle)
    if head.startswith(b"\x93NUMPY") and b"'descr': '|O'" in head[:4096]:
        return "a NumPy object array (stored as a pickle)"
    if head and head[0] in _PICKLE_OPCODE_STARTS and _old_protocol_pickle(head, complete):
        return "a pickle (protocol 0 or 1)"
    return None


def _check_entry(key: str, entry: Any, data_len: int) -> tuple[int, int]:
    if not isinstance(entry, dict) or set(entry) - {"dtype", "shape", "data_offsets"}:
        raise ValueError(f"tensor '{key}' is not a {{dtype, shape, data_offsets}} record")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in _DTYPE_BITS:
        raise ValueError(f"tensor '{key}' has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(f"tensor '{key}' has a malformed shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= data_len
    ):
        raise ValueError(f"tensor '{key}' has offsets {offsets!r} outside the {data_len}-byte data")
    if offsets[1] - offsets[0] != math.prod(shape) * _DTYPE_BITS[dtype] // 8:
        raise ValueError(f"tensor '{key}' has {offsets[1] - offsets[0]} bytes for shape {shape}")
    return offsets[0], offsets[1]


def check_safetensors(handle: IO[bytes], size: int) -> None:
    """Check a safetensors file's header before any parser trusts it.

    The 8-byte length must fit the file and a 100 MB cap; the header must be a JSON object of
    tensors with known dtypes, sizes matching their shapes, and offsets that tile the data
    exactly. Raises ValueError saying what is wrong.
    """
    if size < 8:
        raise ValueError(f"{size} bytes, shorter than the 8-byte header length")
    length = int.from_bytes(handle.read(8), "little")
    if length > min(size - 8, MAX_SAFETENSORS_HEADER) or length < 2:
        raise ValueError(
            f"its header claims {length} bytes, but the file has {size - 8} after the length "
            f"field and the cap is {MAX_SAFETENSORS_HEADER}"
        )
    try:
        header = json.loads(handle.read(length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"its header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    data_len = size - 8 - length
    spans = sorted(_check_entry(k, v, data_len) for k, v in header.items() if k != "__metadata__")
    end = 0
    for start, stop in spans:
        if start != end:
            raise ValueError("its tensors overlap or leave gaps in the data")
        end = stop
    if end != data_len:
        raise ValueError(f"its tensors cover {end} of {data_len} data bytes")


def _sound_safetensors(handle: IO[bytes], size: int) -> bool:
    handle.seek(0)
    try:
        check_safetensors(handle, size)
    except ValueError:
        return False
    return True


def check_content(
    root: Path, rel: Path, handle: IO[bytes], size: int, weights: bool = False
) -> None:
    """Refuse a pickled file and, with `weights`, a `.safetensors` file with a bad header.

    Encrypted blobs pass (they are checked again after decryption, in memory). `handle` is
    positioned at the start and seekable. Raises ArtifactError naming the file.
    """
    head = handle.read(_HEAD)
    if head.startswith(ENCRYPTED_MAGIC):
        return
    if rel.suffix == ".safetensors" and _sound_safetensors(handle, size):
        # an 8-byte length then the JSON header it announces: the length's bytes can read as
        # a complete old-protocol pickle (0x2e28 is "(." MARK STOP), which this file is not
        return
    handle.seek(0)
    reason = pickle_reason(head, complete=size <= len(head), handle=handle)
    if reason is not None:
        raise _refuse(root, f"'{rel}' is {reason}; modelyard never loads pickled data")
    if weights and rel.suffix == ".safetensors":
        handle.seek(0)
        try:
            check_safetensors(handle, size)
        except ValueError as exc:
            raise _refuse(root, f"'{rel}' is not a valid safetensors file: {exc}") from None


def check_bytes(root: Path, rel: str, data: bytes) -> None:
    """Check a file held in memory (a decrypted artifact file): no pickle, sound safetensors."""
    check_content(root, Path(rel), io.BytesIO(data), len(data), weights=True)


def check_weights(root: Path, names: list[str]) -> None:
    """Check the safetensors headers of the listed files before a loader parses them.

    Raises ArtifactError naming a file whose header length does not fit the file or the cap,
    or whose header is malformed.
    """
    for name in names:
        if name.endswith(".safetensors"):
            with open_regular(root, check_member_name(root, name)) as handle:
                size = os.fstat(handle.fileno()).st_size
                check_content(root, Path(name), handle, size, weights=True)


def scan_tree(root: Path, listed: set[str], allowed_extra: set[str]) -> None:
    """Walk the artifact and check every file's content; refuse unlisted top-level files.

    Loaders read files by name from the top level, so a file there that the manifest does not
    cover could change what loads without changing a hash. Sub-folders (evaluations, audits,
    checkpoints) and hidden temporary files may hold extras. Raises ArtifactError.
    """
    real = real_root(root)
    extras = []
    for rel in walk_files(root):
        name = rel.as_posix()
        if len(rel.parts) == 1 and name not in listed | allowed_extra and not name.startswith("."):
            extras.append(name)
        with open_regular(root, real / rel) as handle:
            check_content(root, rel, handle, os.fstat(handle.fileno()).st_size)
    if extras:
        raise _refuse(
            root,
            f"files not in its manifest sit beside the model files: {', '.join(extras)} "
            "(remove them, or rebuild the artifact so its manifest covers them)",
        )
