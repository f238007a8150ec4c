"""Reading and writing a release directory safely: the file-level half of :class:`clio_lite.release.Release`.

Reading treats a release directory as untrusted input (it may come from anyone): only ``tree.json`` and
``manifest.json`` are read, each must be a regular file inside the directory (never a symbolic link, a FIFO or a
device), at most ``max_file_bytes`` long, strict JSON (no ``NaN``), and every node field is checked for type and
range; the nesting of the tree must agree with every node's ``parent_id`` and ``depth``, and ids must be unique.
Nothing is ever unpickled, and nothing outside the directory is read or written.

Writing goes to a temporary directory beside the target, each file flushed to disk, then renamed into place, so
an interrupted or failed save never leaves a half-written release; an ``OSError`` (a full disk, a read-only or
forbidden directory) comes back naming the release path and what was being done.

Like ``release.py``, this module imports nothing from the private stages of the pipeline.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: The largest ``tree.json`` or ``manifest.json`` read by default (a tree of 100,000 clusters is about 60 MB).
MAX_FILE_BYTES = 256 * 2**20
#: The most levels a released tree may have.
MAX_TREE_DEPTH = 64
#: The longest node id, name or description read.
MAX_ID_CHARS = 256
MAX_TEXT_CHARS = 100_000

_NODE_FIELDS = (
    "id", "parent_id", "depth", "name", "description", "keywords", "conversations", "users", "share_of_parent",
    "x", "y",
)


class ReleaseFormatError(ValueError):
    """A release directory that cannot be read safely: a missing, linked, oversized or malformed file."""


class FileWriteError(OSError):
    """A file or directory that could not be written; the message names the path, the cause and what to do.

    ``errno`` is the system's (``errno.ENOSPC``, ``errno.EACCES``, ...) and ``filename`` the path meant.
    """

    def __str__(self) -> str:
        return str(self.strerror)


# ----------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------


def check_release_dir(root: Path, names: tuple[str, ...]) -> None:
    """Each of ``names`` must be a regular file directly inside ``root``: not missing, not a link, not a FIFO."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a clio_lite release: no such directory.")
    missing = []
    for name in names:
        try:
            info = os.lstat(root / name)
        except FileNotFoundError:
            missing.append(name)
            continue
        if stat.S_ISLNK(info.st_mode):
            raise ReleaseFormatError(
                f"{root / name} is a symbolic link; a release's files must be regular files inside its directory "
                "(a link could make the loader read a file elsewhere). Copy the release with its files, not links."
            )
        if not stat.S_ISREG(info.st_mode):
            raise ReleaseFormatError(f"{root / name} is not a regular file.")
    if missing:
        raise FileNotFoundError(f"{root} is not a clio_lite release: missing {', '.join(missing)}.")


def read_json(path: Path, max_file_bytes: int) -> Any:
    """Strict JSON from a regular file of at most ``max_file_bytes``, opened without following links."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ReleaseFormatError(f"{path} is a symbolic link; a release's files must be regular files.") from error
        raise
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ReleaseFormatError(f"{path} is not a regular file.")
        if info.st_size > max_file_bytes:
            raise ReleaseFormatError(
                f"{path} is {info.st_size:,} bytes, over the limit of {max_file_bytes:,} for a release file; pass "
                "a larger max_file_bytes to Release.load if you trust it."
            )
        data = handle.read(max_file_bytes + 1)
    if len(data) > max_file_bytes:  # it grew while being read
        raise ReleaseFormatError(f"{path} is over the limit of {max_file_bytes:,} bytes for a release file.")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as error:
        raise ReleaseFormatError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}).") from error
    except json.JSONDecodeError as error:
        raise ReleaseFormatError(
            f"{path} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
        ) from error
    except RecursionError as error:
        raise ReleaseFormatError(f"{path} is not readable JSON: nested too deeply.") from error
    except ValueError as error:  # NaN / Infinity, or a number of more than 4300 digits
        raise ReleaseFormatError(f"{path} is not strict JSON: {error}.") from error


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def check_manifest(manifest: Any, where: Path) -> dict[str, Any]:
    """The manifest must be an object; the fields clio_lite reads back must have their types."""
    if not isinstance(manifest, dict):
        raise ReleaseFormatError(f"{where}: the manifest must be a JSON object, got {_kind(manifest)}.")
    counts = manifest.get("counts", {})
    if not isinstance(counts, dict) or not all(_is_count(value) for value in counts.values()):
        raise ReleaseFormatError(f"{where}: 'counts' must map names to non-negative integers.")
    for key in ("audit", "config", "versions", "models", "thresholds"):
        if key in manifest and manifest[key] is not None and not isinstance(manifest[key], dict):
            raise ReleaseFormatError(f"{where}: '{key}' must be a JSON object, got {_kind(manifest[key])}.")
    return manifest


def flatten_nodes(entries: Any, where: Path, with_facets: bool) -> list[dict[str, Any]]:
    """The nested ``nodes`` of ``tree.json`` as flat, validated node fields in walk order.

    Iterative, so that no file can exhaust the stack; each node's ``parent_id`` must name the node it is nested
    in (``None`` at the top), its ``depth`` must be one more than its parent's (1 at the top), and ids are unique.
    """
    if not isinstance(entries, list):
        raise ReleaseFormatError(f"{where}: 'nodes' must be a list, got {_kind(entries)}.")
    allowed = {*_NODE_FIELDS, "children", "facets"}
    nodes: list[dict[str, Any]] = []
    seen: set[str] = set()
    stack: list[tuple[Any, str | None, int]] = [(entry, None, 1) for entry in reversed(entries)]
    while stack:
        entry, parent_id, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            raise ReleaseFormatError(f"{where}: the tree is more than {MAX_TREE_DEPTH} levels deep.")
        label = f"node #{len(nodes)}"
        if not isinstance(entry, dict):
            raise ReleaseFormatError(f"{where}: {label} must be a JSON object, got {_kind(entry)}.")
        missing = [key for key in _NODE_FIELDS if key not in entry]
        unknown = sorted(set(entry) - allowed, key=str)
        if missing or unknown:
            detail = (f"missing {', '.join(missing)}" if missing else "") + (
                f"{'; ' if missing else ''}unknown fields {', '.join(map(repr, unknown[:5]))}" if unknown else ""
            )
            raise ReleaseFormatError(f"{where}: {label}: {detail}.")
        fields = {key: entry[key] for key in _NODE_FIELDS}
        node_id = fields["id"]
        if not isinstance(node_id, str) or not node_id or len(node_id) > MAX_ID_CHARS:
            raise ReleaseFormatError(f"{where}: {label}: 'id' must be a non-empty string of at most {MAX_ID_CHARS} "
                                     f"characters, got {_kind(node_id)}.")
        label = f"node {node_id!r}"
        if node_id in seen:
            raise ReleaseFormatError(f"{where}: {label} appears twice; node ids must be unique.")
        seen.add(node_id)
        if fields["parent_id"] != parent_id:
            raise ReleaseFormatError(
                f"{where}: {label} has parent_id {_short(fields['parent_id'])} but is nested under "
                f"{_short(parent_id)}; the tree's structure and its parent ids disagree."
            )
        if fields["depth"] != depth or isinstance(fields["depth"], bool):
            raise ReleaseFormatError(f"{where}: {label} has depth {_short(fields['depth'])}, expected {depth}.")
        _check(fields, "name", _is_text, "a string", where, label)
        _check(fields, "description", _is_text, "a string", where, label)
        _check(fields, "keywords", _is_text_list, "a list of strings", where, label)
        _check(fields, "conversations", _is_count, "a non-negative integer", where, label)
        _check(fields, "users", _is_count, "a non-negative integer", where, label)
        _check(fields, "share_of_parent", _is_share, "a finite number >= 0", where, label)
        _check(fields, "x", _is_finite, "a finite number", where, label)
        _check(fields, "y", _is_finite, "a finite number", where, label)
        facets = entry.get("facets", {})
        if not _is_facets(facets) or (not with_facets and facets):
            raise ReleaseFormatError(
                f"{where}: {label}: 'facets' must map facet names to {{value: non-negative integer}} objects"
                + ("" if with_facets else " (and be absent in schema version 1)") + "."
            )
        fields["keywords"] = tuple(fields["keywords"])
        fields["share_of_parent"] = float(fields["share_of_parent"])
        fields["x"], fields["y"] = float(fields["x"]), float(fields["y"])
        fields["facets"] = {facet: dict(cells) for facet, cells in facets.items()}
        nodes.append(fields)
        children = entry.get("children", [])
        if not isinstance(children, list):
            raise ReleaseFormatError(f"{where}: {label}: 'children' must be a list, got {_kind(children)}.")
        stack.extend((child, node_id, depth + 1) for child in reversed(children))
    return nodes


def _check(fields: dict[str, Any], key: str, test: Callable[[Any], bool], expected: str, where: Path,
           label: str) -> None:
    if not test(fields[key]):
        raise ReleaseFormatError(f"{where}: {label}: '{key}' must be {expected}, got {_short(fields[key])}.")


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT_CHARS


def _is_text_list(value: Any) -> bool:
    return isinstance(value, list) and all(_is_text(item) for item in value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_share(value: Any) -> bool:
    return _is_finite(value) and value >= 0


def _is_facets(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(cells, dict) and all(_is_count(count) for count in cells.values()) for cells in value.values()
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return kinds.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    """A value for an error message, cut short: a release file is untrusted and may hold anything."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------


def write_release_dir(target: Path, files: Mapping[str, bytes]) -> Path:
    """Write ``files`` (name -> bytes) as the directory ``target``, atomically, replacing a previous one.

    The files go to a temporary directory beside ``target`` and are flushed to disk; then a previous release at
    ``target`` is moved aside, the new one renamed into place, and the old one deleted. If anything fails, the
    temporary directory is removed and ``target`` is left as it was; the :class:`FileWriteError` (an ``OSError``)
    raised names ``target``.
    """
    action = f"creating {target.parent}"
    staging: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        action = f"creating a temporary directory in {target.parent}"
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        # mkdtemp makes the directory private (0700); a release is meant to be shared, so use the usual mode.
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)
        for name, data in files.items():
            action = f"writing {name}"
            with open(staging / name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        action = f"moving the release into place at {target}"
        _replace_dir(staging, target)
        staging = None
        _fsync_dir(target.parent)
    except OSError as error:
        reason = error.strerror or str(error)
        raise FileWriteError(
            error.errno,
            f"cannot save the release to {target}: {reason} (while {action}); nothing was changed at {target}."
            + _advice(error.errno),
            str(target),
        ) from error
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _replace_dir(staging: Path, target: Path) -> None:
    if not target.exists():
        staging.rename(target)
        return
    backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    backup.rmdir()
    target.rename(backup)
    try:
        staging.rename(target)
    except OSError:
        backup.rename(target)  # put the previous release back
        raise
    shutil.rmtree(backup, ignore_errors=True)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _advice(code: int | None) -> str:
    if code == errno.ENOSPC:
        return " Free some disk space, or save to another disk."
    if code in (errno.EACCES, errno.EPERM):
        return " You lack permission to write there: save to a directory you own."
    if code == errno.EROFS:
        return " That file system is read-only: save somewhere writable."
    return ""
