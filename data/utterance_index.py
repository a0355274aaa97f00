"""A compact utterance list: paths and speaker labels in a few flat numpy arrays instead of one Python object per
utterance, so that DataLoader workers forked from the main process share its pages for good (reading an array
element does not write to the page holding it, whereas touching a Python object updates its reference count)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np


@dataclass(frozen=True)
class Utterance:
    """One utterance: its path, its key (last three path components) and its speaker id (first of them)."""
    path: str
    key: str
    speaker: str


def key_of(relative: str) -> str:
    """The key of a file from its path: its last three components joined by '/' (<speaker>/<video>/<utt>)."""
    return '/'.join(relative.split(os.sep)[-3:])


class UtteranceIndex:
    """Utterance i lives below roots[root_of[i]] at the relative path blob[starts[i]:ends[i]] (file-system bytes);
    its speaker is speaker_ids[labels[i]]; its key is the last three components of that relative path.
    Indexing gives an Utterance, built on demand; path(i), key(i) and speaker(i) give one field."""

    def __init__(self, roots: Sequence[str], root_of: np.ndarray, blob: np.ndarray, starts: np.ndarray,
                 ends: np.ndarray, labels: np.ndarray, speaker_ids: np.ndarray) -> None:
        count = len(starts)
        if not (len(root_of) == len(ends) == len(labels) == count):
            raise ValueError(f"index arrays differ in length: root_of {len(root_of)}, starts {count}, "
                             f"ends {len(ends)}, labels {len(labels)}")
        self.roots = tuple(roots)
        self.root_of = np.asarray(root_of, dtype=np.int16)  # [U]
        self.blob = np.asarray(blob, dtype=np.uint8)  # [B] relative paths, concatenated
        self.starts = np.asarray(starts, dtype=np.int64)  # [U]
        self.ends = np.asarray(ends, dtype=np.int64)  # [U]
        self.labels = np.asarray(labels, dtype=np.int32)  # [U] into speaker_ids
        self.speaker_ids = np.asarray(speaker_ids, dtype=str)  # [S] sorted

    @classmethod
    def from_relative(cls, root: str, relative: list[str]) -> UtteranceIndex:
        """The index of files given by their paths relative to one `root`, in the given order."""
        encoded = [os.fsencode(r) for r in relative]
        lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))  # [U]
        ends = np.cumsum(lengths)  # [U]
        speakers = [key_of(r).split('/')[0] for r in relative]
        speaker_ids, labels = np.unique(np.array(speakers, dtype=str), return_inverse=True)  # [S], [U]
        blob = np.frombuffer(b''.join(encoded), dtype=np.uint8).copy()  # [B]
        return cls((root,), np.zeros(len(relative), np.int16), blob, ends - lengths, ends, labels, speaker_ids)

    @classmethod
    def from_utterances(cls, utts: Sequence[Utterance]) -> UtteranceIndex:
        """The index of Utterance objects (whose key and speaker must follow from the path), in the given order."""
        for u in utts:
            if key_of(u.path) != u.key or u.key.split('/')[0] != u.speaker:
                raise ValueError(f"utterance {u.path}: key {u.key!r} / speaker {u.speaker!r} do not follow from the "
                                 f"path (expected the last three components <speaker>/<video>/<utt>)")
        return cls.from_relative('', [u.path for u in utts])

    def __len__(self) -> int:
        return len(self.starts)

    def _index(self, i: int) -> int:
        if not -len(self) <= i < len(self):
            raise IndexError(f"utterance {i} out of range for an index of {len(self)}")
        return i % len(self)

    def relative(self, i: int) -> str:
        """Path of utterance i relative to its root."""
        i = self._index(i)
        return os.fsdecode(self.blob[self.starts[i]:self.ends[i]].tobytes())

    def path(self, i: int) -> str:
        """Path of utterance i (its root joined with its relative path)."""
        i = self._index(i)
        return os.path.join(self.roots[self.root_of[i]], self.relative(i))

    def key(self, i: int) -> str:
        """Key of utterance i: <speaker>/<video>/<utt>."""
        return key_of(self.relative(i))

    def speaker(self, i: int) -> str:
        """Speaker id of utterance i."""
        return str(self.speaker_ids[self.labels[self._index(i)]])

    def __getitem__(self, i: int) -> Utterance:
        return Utterance(path=self.path(i), key=self.key(i), speaker=self.speaker(i))

    def __iter__(self) -> Iterator[Utterance]:
        return (self[i] for i in range(len(self)))

    def keys(self) -> list[str]:
        """Every key, in index order."""
        return [self.key(i) for i in range(len(self))]

    def speakers(self) -> list[str]:
        """The speaker ids that have at least one utterance here, sorted."""
        return self.speaker_ids[np.unique(self.labels)].tolist()

    def subset(self, select: np.ndarray) -> UtteranceIndex:
        """The utterances picked by `select` (indices [K] or a mask [U]), sharing this index's path bytes."""
        return UtteranceIndex(self.roots, self.root_of[select], self.blob, self.starts[select], self.ends[select],
                              self.labels[select], self.speaker_ids)

    def labels_in(self, table: dict[str, int]) -> np.ndarray:
        """Class index of every utterance under a speaker table, [U] int64; a speaker missing from it is an error."""
        mapped = np.array([table.get(s, -1) for s in self.speaker_ids.tolist()], dtype=np.int64)  # [S]
        unknown = sorted(set(self.speaker_ids[mapped < 0].tolist()) & set(self.speakers()))
        if unknown:
            raise ValueError(f"speakers missing from the speaker table: {unknown[:10]} ({len(unknown)} in all)")
        return mapped[self.labels]  # [U]


def concatenate(indexes: Sequence[UtteranceIndex]) -> UtteranceIndex:
    """One index holding every utterance of `indexes`, ordered by speaker id (stable: within one speaker, in the
    given order), so that indexes of roots with disjoint speakers, each sorted by key, join sorted by key; two
    utterances with the same key are an error naming both paths."""
    roots, root_of, blobs, starts, ends, speakers = [], [], [], [], [], []
    shift = 0
    for index in indexes:
        root_of.append(index.root_of + len(roots))
        roots.extend(index.roots)
        blobs.append(index.blob)
        starts.append(index.starts + shift)
        ends.append(index.ends + shift)
        speakers.append(index.speaker_ids[index.labels])
        shift += len(index.blob)
    speaker_ids, labels = np.unique(np.concatenate(speakers), return_inverse=True)  # [S], [U]
    order = np.argsort(labels, kind='stable')  # [U]
    joined = UtteranceIndex(roots, np.concatenate(root_of)[order], np.concatenate(blobs),
                            np.concatenate(starts)[order], np.concatenate(ends)[order], labels[order], speaker_ids)
    _refuse_shared_keys(indexes, joined)
    return joined


def _refuse_shared_keys(indexes: Sequence[UtteranceIndex], joined: UtteranceIndex) -> None:
    """Keys can only collide between indexes that share a speaker; compare the keys of those speakers only."""
    seen: dict[str, int] = {}
    for index in indexes:
        for speaker in index.speakers():
            seen[speaker] = seen.get(speaker, 0) + 1
    shared = [s for s, n in seen.items() if n > 1]
    if not shared:
        return
    rows = np.flatnonzero(np.isin(joined.speaker_ids[joined.labels], shared))  # [K]
    first: dict[str, int] = {}
    for i in rows.tolist():
        key = joined.key(i)
        if key in first:
            raise ValueError(f"two files share the key {key!r}: {joined.path(first[key])} and {joined.path(i)} "
                             f"(are two training roots overlapping?)")
        first[key] = i
