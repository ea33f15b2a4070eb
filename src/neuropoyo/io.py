"""Atomic writes of files and directories: readers see the old one or the complete new one, never
a partial one, also after a crash."""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Callable

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temp file beside ``path``, fsync it, then os.replace it onto ``path``.

    The temp file is removed on any failure, leaving an existing ``path`` untouched. The new
    file gets the usual permissions (0o666 less the umask), not a private temp-file mode.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, _FLAGS, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """:func:`write_bytes_atomic` for text."""
    return write_bytes_atomic(path, text.encode(encoding))


# --- directories --------------------------------------------------------------------------------


def write_dir_atomic(final: str | Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(folder)`` on a new empty folder beside ``final``, then rename it to ``final``.

    ``final`` stays a plain directory (safe to copy, zip or share). A reader never sees a partial
    one; replacing an existing ``final`` takes two renames, and a crash between them leaves the
    old one as ``.NAME.old-HEX`` beside it. For a directory rewritten again and again while a run
    depends on it (a training checkpoint), use :func:`publish_dir`, which has no such moment.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{secrets.token_hex(6)}")
    os.mkdir(tmp)
    try:
        write(tmp)
        _fsync_tree(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old-{secrets.token_hex(6)}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final

#
# A published directory NAME is a relative symlink NAME -> .NAME.vN to a hidden sibling, N counting
# publications. Siblings of NAME, by state:
#   .NAME.tmp-HEX    being written (incomplete)
#   .NAME.vN         complete: renamed from a tmp folder only after every file in it was fsynced
#   .NAME.link-HEX   a new symlink not yet moved onto NAME
#   .NAME.trash-HEX  a superseded version being deleted
# Anything but the link's target is left over from a crash and removed by the next publish.


def publish_dir(final: str | Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(folder)`` on a new empty folder, then make it the directory at ``final``.

    The switch is one ``os.replace`` of a symlink, so at every instant ``final`` is the complete
    old directory or the complete new one, also across a crash. The old version is deleted after
    the switch, and so are the leftovers of earlier crashes. A real directory at ``final`` (written
    before this layout) is moved to a version name and replaced by the link: a crash between those
    two renames leaves nothing at ``final`` but both versions complete, and :func:`published_dir`
    and the next publish use the newer one. One writer per ``final`` at a time.
    """
    final = Path(final)
    if final.name in ("", ".", ".."):
        raise ValueError(f"{final}: cannot publish a directory there; give a path ending in a name")
    if final.exists() and not final.is_dir():
        raise FileExistsError(f"{final}: exists and is not a directory; move it or pick another name")
    final.parent.mkdir(parents=True, exist_ok=True)
    legacy = final.is_dir() and not final.is_symlink()
    number = max(_versions(final), default=0) + 1
    if legacy:  # the old folder becomes version `number`, the new one `number + 1`
        number += 1
    version = _sibling(final, f"v{number}")
    tmp = _sibling(final, f"tmp-{secrets.token_hex(6)}")
    os.mkdir(tmp)
    try:
        write(tmp)
        _fsync_tree(tmp)
        os.replace(tmp, version)
        fsync_path(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    link = _sibling(final, f"link-{secrets.token_hex(6)}")
    os.symlink(version.name, link)
    if legacy:
        os.replace(final, _sibling(final, f"v{number - 1}"))
    os.replace(link, final)
    fsync_path(final.parent)
    for leftover in _leftovers(final, keep=version.name):  # the old version among them
        _discard(leftover, final)
    return final


def published_dir(final: str | Path) -> Path:
    """The folder a reader of ``final`` should open: the version ``final`` links to (one snapshot
    even if a new one is published meanwhile), ``final`` itself if it is a plain directory, or,
    after a crash while replacing a plain directory, the newest complete version."""
    final = Path(final)
    target = _target(final)
    if target is not None:
        return target
    if final.exists() or final.is_symlink():
        return final
    versions = _versions(final)
    return _sibling(final, f"v{max(versions)}") if versions else final


def _sibling(final: Path, suffix: str) -> Path:
    return final.with_name(f".{final.name}.{suffix}")


def _pattern(final: Path) -> re.Pattern:
    return re.compile(rf"\.{re.escape(final.name)}\.(?:v(\d+)|(?:tmp|link|trash)-[0-9a-f]+)")


def _versions(final: Path) -> list[int]:
    """Numbers N of the complete versions .NAME.vN beside ``final``."""
    pattern = _pattern(final)
    found = (pattern.fullmatch(p.name) for p in final.parent.iterdir()) if final.parent.is_dir() else ()
    return [int(m.group(1)) for m in found if m and m.group(1)]


def _target(final: Path) -> Path | None:
    """The version ``final`` links to, or None (no link, or a link this module did not make)."""
    if not final.is_symlink():
        return None
    name = os.readlink(final)
    match = _pattern(final).fullmatch(name)
    return final.with_name(name) if match and match.group(1) else None


def _leftovers(final: Path, *, keep: str) -> list[Path]:
    pattern = _pattern(final)
    return [p for p in final.parent.iterdir() if p.name != keep and pattern.fullmatch(p.name)]


def _discard(path: Path, final: Path) -> None:
    """Delete a leftover; a version is first renamed to trash, so a .vN folder is always complete."""
    if path.is_symlink():
        os.unlink(path)
        return
    if _pattern(final).fullmatch(path.name).group(1):
        trash = _sibling(final, f"trash-{secrets.token_hex(6)}")
        os.replace(path, trash)
        path = trash
    shutil.rmtree(path)


def _fsync_tree(folder: Path) -> None:
    """fsync every file and folder under ``folder`` (so a power cut cannot leave it half-written)."""
    for root, _, files in os.walk(folder):
        for name in files:
            fsync_path(Path(root) / name)
        fsync_path(Path(root))


def fsync_path(path: str | Path) -> None:
    """fsync the file or folder at ``path``: its bytes (or entries) are on disk when this returns."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
