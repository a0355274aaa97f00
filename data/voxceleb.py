"""VoxCeleb file lists: the utterances below one or more roots laid out as <spk>/<video>/<utt>.wav (VoxCeleb1,
VoxCeleb2 converted to .wav, or both), as a compact cached UtteranceIndex; speaker tables and held-out speakers."""
from __future__ import annotations

import os
import re
import time
from typing import Sequence

import numpy as np

from data.index_cache import RootScan, load_scan, save_scan
from data.utterance_index import UtteranceIndex, concatenate, key_of

AUDIO_EXTENSIONS = ('.wav', '.flac')
LAYOUT = '<root>/<speaker>/<video>/<utt>.wav (e.g. id10001/1zcIwhmdeo4/00001.wav)'
# (speakers, utterances) of the official releases
OFFICIAL_COUNTS = {'VoxCeleb1 dev': (1211, 148642), 'VoxCeleb1 test': (40, 4874), 'VoxCeleb1 dev+test': (1251, 153516),
                   'VoxCeleb2 dev': (5994, 1092009), 'VoxCeleb2 test': (118, 36237)}
VOX1_TEST_SPEAKERS = range(10270, 10310)  # VoxCeleb1 test speakers id10270..id10309; its dev speakers are the rest
_VOX1_ID = re.compile(r'id1\d{4}')
_VOX2_ID = re.compile(r'id0\d{4}')


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


def describe_counts(corpus: str, found: tuple[int, int], official: tuple[int, int]) -> str:
    """One line comparing the speakers/utterances found with the official counts."""
    return (f"{corpus}: found {found[0]:,} speakers, {found[1]:,} utterances "
            f"(official: {official[0]:,} / {official[1]:,})")


def recognise(speakers: Sequence[str], utterances: int) -> str:
    """The found counts next to the official ones of the corpus the speaker ids belong to: VoxCeleb1 (id1xxxx; dev
    and test told apart by id), VoxCeleb2 (id0xxxx; both splits shown, ids do not tell them apart) or neither."""
    found = (len(speakers), utterances)
    if speakers and all(_VOX1_ID.fullmatch(s) for s in speakers):
        in_test = sum(int(s[2:]) in VOX1_TEST_SPEAKERS for s in speakers)
        split = 'test' if in_test == len(speakers) else 'dev' if in_test == 0 else 'dev+test'
        return describe_counts(f"VoxCeleb1 {split}", found, OFFICIAL_COUNTS[f"VoxCeleb1 {split}"])
    if speakers and all(_VOX2_ID.fullmatch(s) for s in speakers):
        dev, test = OFFICIAL_COUNTS['VoxCeleb2 dev'], OFFICIAL_COUNTS['VoxCeleb2 test']
        return (f"VoxCeleb2: found {found[0]:,} speakers, {found[1]:,} utterances (official dev: {dev[0]:,} / "
                f"{dev[1]:,}; test: {test[0]:,} / {test[1]:,})")
    return (f"found {found[0]:,} speakers, {found[1]:,} utterances (speaker ids are neither VoxCeleb1's id1xxxx nor "
            f"VoxCeleb2's id0xxxx: no official counts to compare)")


def _walk(root: str) -> tuple[list[str], list[str], list[int], list[str]]:
    """(audio files, folders, folder mtimes in ns, .m4a files) below `root`, paths relative to it, symlinks
    followed; each folder's mtime is read before it is listed, so a change during the walk shows up later."""
    files, folders, mtimes, m4a = [], [], [], []
    pending = ['']
    while pending:
        relative = pending.pop()
        folder = os.path.join(root, relative)
        mtimes.append(os.stat(folder).st_mtime_ns)
        folders.append(relative)
        with os.scandir(folder) as entries:
            for entry in entries:
                child = os.path.join(relative, entry.name)
                if entry.is_dir():
                    pending.append(child)
                    continue
                lower = entry.name.lower()
                if lower.endswith(AUDIO_EXTENSIONS):
                    files.append(child)
                elif lower.endswith('.m4a'):
                    m4a.append(child)
    return files, folders, mtimes, m4a


def _scan_root(root: str) -> RootScan:
    """List the audio below one root, sorted by key; refuse .m4a, files less than three levels down, and keys
    that two files share."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"audio directory not found: {root!r}; expected the layout {LAYOUT}")
    started_ns = time.time_ns()
    files, folders, mtimes, m4a = _walk(root)
    if m4a:
        raise ValueError(f"{len(m4a):,} .m4a file(s) below {root!r} (e.g. {os.path.join(root, m4a[0])}): AAC audio "
                         f"(as VoxCeleb2 is distributed) is not read here; convert it once to 16 kHz .wav with "
                         f"`python -m data.prepare convert {root} <new wav root> --workers N` and use the new root")
    if not files:
        raise ValueError(f"no .wav or .flac files below {root!r}; expected the layout {LAYOUT}")
    shallow = next((f for f in files if f.count(os.sep) < 2), None)
    if shallow is not None:
        raise ValueError(f"{os.path.join(root, shallow)} is only {shallow.count(os.sep) + 1} level(s) below "
                         f"{root!r}; expected the layout {LAYOUT}")
    keys = [f if os.sep == '/' and f.count('/') == 2 else key_of(f) for f in files]
    order = sorted(range(len(files)), key=keys.__getitem__)
    for a, b in zip(order, order[1:]):
        if keys[a] == keys[b]:
            raise ValueError(f"two files below {root!r} share the key {keys[a]!r}: {os.path.join(root, files[a])} "
                             f"and {os.path.join(root, files[b])}")
    index = UtteranceIndex.from_relative(root, [files[i] for i in order])
    return RootScan(index=index, folders=folders, mtimes=np.array(mtimes, dtype=np.int64), started_ns=started_ns)


def as_roots(value: str | Sequence[str], key: str = 'path_train') -> list[str]:
    """One root or a list of roots as a list; an empty value is an error naming `key`."""
    roots = [value] if isinstance(value, str) else list(value)
    if not roots or not all(isinstance(r, str) and r for r in roots):
        raise ValueError(f"{key}: expected a folder or a non-empty list of folders, got {value!r}")
    return roots


def scan_voxceleb(roots: str | Sequence[str], *, cache_dir: str = '') -> UtteranceIndex:
    """Every utterance below `roots` (one root or several, e.g. VoxCeleb1 dev and VoxCeleb2 dev), ordered by key;
    prints per root the counts next to the official ones. With `cache_dir`, each root's index is cached there and
    reused while no folder below the root changed."""
    indexes = []
    for root in as_roots(roots):
        started = time.perf_counter()
        index = load_scan(cache_dir, root) if cache_dir else None
        how = 'cached index'
        if index is None:
            scan = _scan_root(root)
            index = scan.index
            how = 'listed, cached' if cache_dir and save_scan(cache_dir, root, scan) else 'listed'
        print(f"{recognise(index.speakers(), len(index))} below {root} ({how}, {time.perf_counter() - started:.1f} s)",
              flush=True)
        indexes.append(index)
    if len(indexes) == 1:
        return indexes[0]
    joined = concatenate(indexes)
    print(f"{len(indexes)} roots together: {len(joined.speakers()):,} speakers, {len(joined):,} utterances", flush=True)
    return joined


def speaker_table(utts: UtteranceIndex) -> dict[str, int]:
    """Sorted speaker ids mapped to class indices 0..S-1."""
    return {speaker: index for index, speaker in enumerate(utts.speakers())}


def class_counts(utts: UtteranceIndex, table: dict[str, int]) -> np.ndarray:
    """Utterances per class index, [S] int64 (for class weights N / n_c)."""
    return np.bincount(utts.labels_in(table), minlength=len(table))  # [S]


def hold_out_speakers(utts: UtteranceIndex, num_speakers: int,
                      rng: np.random.Generator) -> tuple[UtteranceIndex, UtteranceIndex]:
    """Split `utts` into (training, held-out) by drawing `num_speakers` whole speakers for validation."""
    speakers = utts.speakers()
    if not 0 < num_speakers < len(speakers):
        raise ValueError(f"argument 'val_speakers': cannot hold out {num_speakers} of {len(speakers)} speakers; "
                         f"expected 1 to {len(speakers) - 1} (validation='heldout' keeps at least one dev speaker for "
                         f"training)")
    held = rng.choice(speakers, size=num_speakers, replace=False)  # [H]
    held_labels = np.flatnonzero(np.isin(utts.speaker_ids, held))  # [H]
    mask = np.isin(utts.labels, held_labels)  # [U]
    return utts.subset(~mask), utts.subset(mask)
