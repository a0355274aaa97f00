"""VoxCeleb1 file lists: utterances found below a root laid out as <spk>/<video>/<utt>.wav, and speaker tables."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

AUDIO_EXTENSIONS = ('.wav', '.flac')
OFFICIAL_COUNTS = {'dev': (1211, 148642), 'test': (40, 4874)}  # (speakers, utterances) of VoxCeleb1
LAYOUT = '<root>/<speaker>/<video>/<utt>.wav (e.g. id10001/1zcIwhmdeo4/00001.wav)'


@dataclass(frozen=True)
class Utterance:
    """One utterance: its path, its key (last three path components) and its speaker id (first of them)."""
    path: str
    key: str
    speaker: str


def find_audio(root: str, layout: str) -> list[str]:
    """All .wav/.flac files below `root` (recursive, symlinks followed), sorted; a missing or empty root is an error."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"audio directory not found: {root!r}; expected the layout {layout}")
    found = []
    for folder, _, files in os.walk(root, followlinks=True):
        found.extend(os.path.join(folder, f) for f in files if f.lower().endswith(AUDIO_EXTENSIONS))
    if not found:
        raise ValueError(f"no .wav or .flac files below {root!r}; expected the layout {layout}")
    return sorted(found)


def utterance_of(path: str, root: str) -> Utterance:
    """The Utterance of a file found below `root`; it must lie at least three levels down (<spk>/<video>/<utt>)."""
    parts = os.path.relpath(path, root).split(os.sep)
    if len(parts) < 3:
        raise ValueError(f"{path} is only {len(parts)} level(s) below {root!r}; expected the layout {LAYOUT}")
    return Utterance(path=path, key='/'.join(parts[-3:]), speaker=parts[-3])


def describe_counts(corpus: str, found: tuple[int, int], official: tuple[int, int]) -> str:
    """One line comparing the speakers/utterances found with the official counts."""
    return (f"{corpus}: found {found[0]:,} speakers, {found[1]:,} utterances "
            f"(official: {official[0]:,} / {official[1]:,})")


def scan_voxceleb(root: str, split: str) -> list[Utterance]:
    """Every utterance of a VoxCeleb1 `split` ('dev' or 'test') below `root`, sorted by key; prints the counts."""
    if split not in OFFICIAL_COUNTS:
        raise ValueError(f"split must be one of {sorted(OFFICIAL_COUNTS)}, got {split!r}")
    utts = sorted((utterance_of(p, root) for p in find_audio(root, LAYOUT)), key=lambda u: u.key)
    for a, b in zip(utts, utts[1:]):
        if a.key == b.key:
            raise ValueError(f"two files below {root!r} share the key {a.key!r}: {a.path} and {b.path}")
    speakers = {u.speaker for u in utts}
    print(describe_counts(f"VoxCeleb1 {split}", (len(speakers), len(utts)), OFFICIAL_COUNTS[split]))
    return utts


def speaker_table(utts: list[Utterance]) -> dict[str, int]:
    """Sorted speaker ids mapped to class indices 0..S-1."""
    return {speaker: index for index, speaker in enumerate(sorted({u.speaker for u in utts}))}


def class_counts(utts: list[Utterance], table: dict[str, int]) -> np.ndarray:
    """Utterances per class index, [S] int64 (for class weights N / n_c)."""
    unknown = sorted({u.speaker for u in utts} - table.keys())
    if unknown:
        raise ValueError(f"speakers missing from the speaker table: {unknown[:10]} ({len(unknown)} in all)")
    labels = np.array([table[u.speaker] for u in utts], dtype=np.int64)  # [U]
    return np.bincount(labels, minlength=len(table))  # [S]


def hold_out_speakers(utts: list[Utterance], num_speakers: int,
                      rng: np.random.Generator) -> tuple[list[Utterance], list[Utterance]]:
    """Split `utts` into (training, held-out) by drawing `num_speakers` whole speakers for validation."""
    speakers = sorted({u.speaker for u in utts})
    if not 0 < num_speakers < len(speakers):
        raise ValueError(f"argument 'val_speakers': cannot hold out {num_speakers} of {len(speakers)} speakers; "
                         f"expected 1 to {len(speakers) - 1} (validation='heldout' keeps at least one dev speaker for "
                         f"training)")
    held = set(rng.choice(speakers, size=num_speakers, replace=False).tolist())
    return [u for u in utts if u.speaker not in held], [u for u in utts if u.speaker in held]
