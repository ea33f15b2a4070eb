"""Growable vocabularies of string ids (units, sessions) mapped to embedding rows.

A :class:`Vocabulary` only ever appends: once an id has a row, that row never changes, so a trained
embedding table stays valid when new recordings (unit identification, fine-tuning) add ids at the end.

Ids are built by the key helpers: ``brainset/recording_id`` for a session and
``brainset/recording_id/unit_id`` for a unit (the brainset part is left out when empty).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from neuropoyo.data.recording import Recording
from neuropoyo.errors import MissingKeyError
from neuropoyo.io import write_text_atomic

FORMAT = "neuropoyo.vocabulary"
MAX_IDS_IN_ERROR = 5


def session_key(brainset: str, recording_id: str) -> str:
    """``"brainset/recording_id"``, or ``"recording_id"`` when brainset is empty."""
    return f"{brainset}/{recording_id}" if brainset else recording_id


def unit_key(brainset: str, recording_id: str, unit_id: str) -> str:
    """``"brainset/recording_id/unit_id"`` (brainset part left out when empty)."""
    return f"{session_key(brainset, recording_id)}/{unit_id}"


def session_key_of(recording: Recording) -> str:
    return session_key(recording.info.brainset, recording.info.recording_id)


def unit_keys(recording: Recording) -> list[str]:
    """(U,) unit keys in the order of the recording's unit table."""
    prefix = session_key_of(recording)
    return [f"{prefix}/{unit_id}" for unit_id in recording.units.ids]


def _as_ids(ids: Iterable[str]) -> list[str]:
    """``ids`` as a list of str; a bare str is refused (it would iterate its characters)."""
    if isinstance(ids, str):
        raise TypeError(f"vocabulary: expected an iterable of ids, got the single str {ids!r}")
    ids = list(ids)
    bad = [i for i in ids if not isinstance(i, str)]
    if bad:
        raise TypeError(f"vocabulary: ids must be str, got {type(bad[0]).__name__} {bad[0]!r}")
    return ids


def _unique(ids: Iterable[str]) -> list[str]:
    """Ids with repeats dropped, first occurrence order kept."""
    return list(dict.fromkeys(ids))


def _describe(ids: list[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:MAX_IDS_IN_ERROR])
    more = len(ids) - MAX_IDS_IN_ERROR
    return f"{shown} and {more} more" if more > 0 else shown


class Vocabulary:
    """An ordered, append-only map from string ids to rows 0..len-1."""

    def __init__(self, ids: Iterable[str] = ()):
        self._rows: dict[str, int] = {}
        self.extend(ids)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._rows

    def __repr__(self) -> str:
        return f"Vocabulary(n={len(self)})"

    def index(self, ids: Iterable[str]) -> np.ndarray:
        """(K,) int64 rows of ``ids``; KeyError naming the ids that have no row."""
        ids = _as_ids(ids)
        unknown = self.new_ids(ids)
        if unknown:
            raise MissingKeyError(
                f"vocabulary: {len(unknown)} unknown ids ({_describe(unknown)}); "
                "grow the vocabulary with Vocabulary.extend(ids) before indexing them"
            )
        return np.array([self._rows[i] for i in ids], dtype=np.int64)

    def new_ids(self, ids: Iterable[str]) -> list[str]:
        """Ids not in the vocabulary yet, repeats dropped, order kept."""
        return _unique(i for i in _as_ids(ids) if i not in self._rows)

    def extend(self, ids: Iterable[str]) -> list[str]:
        """Append the new ids at the end (existing rows unchanged); returns them."""
        added = self.new_ids(ids)
        for id_ in added:
            self._rows[id_] = len(self._rows)
        return added

    def to_list(self) -> list[str]:
        """All ids in row order."""
        return list(self._rows)

    @classmethod
    def from_list(cls, ids: Iterable[str]) -> "Vocabulary":
        return cls(ids)

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically: a temp file in the same folder, then os.replace."""
        path = Path(path)
        text = json.dumps({"format": FORMAT, "ids": self.to_list()}, indent=1)
        write_text_atomic(path, text)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        """Read a file written by :meth:`save`; ValueError when it is not one."""
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not a vocabulary file (invalid JSON: {error})") from None
        ids = data.get("ids") if isinstance(data, dict) and data.get("format") == FORMAT else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError(
                f"{path}: not a vocabulary file; expected a JSON object with "
                f'"format": "{FORMAT}" and "ids": a list of strings'
            )
        if len(set(ids)) != len(ids):
            raise ValueError(f"{path}: vocabulary file lists some ids more than once")
        return cls(ids)
