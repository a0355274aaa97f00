"""The curriculum training set: per dev utterance an FT crop plus a KD crop drawn from VoxCeleb1 with
probability p(epoch), otherwise from LibriSpeech, optionally augmented; every draw is reproducible from
(seed, epoch, rank, index)."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from data.audio import AudioError, read_crop
from utils.min_audio import MIN_AUDIO_SAMPLES
from data.augment import Augmenter
from data.utterance_index import UtteranceIndex

_MAX_TRIES = 10  # replacement files tried for one item before giving up (only when bad files are tolerated)
_AUG_STREAM = 1  # the augmentation draws' child stream of an item: [seed, epoch, rank, i, _AUG_STREAM, row number]
_ROW_NUMBER = {'kd': 0, 'ft': 1}
AUG_ROWS = {'ft': ('ft',), 'both': ('kd', 'ft')}  # aug_rows -> the crops of an item that may be augmented


def _linear(epoch: int, total: int, p_const: float) -> float:
    """OS-KDFT2: e / E, from mostly LibriSpeech to only VoxCeleb1."""
    return epoch / total


def _constant(epoch: int, total: int, p_const: float) -> float:
    """A fixed share p_const in every epoch."""
    return p_const


def _step(epoch: int, total: int, p_const: float) -> float:
    """LibriSpeech only for the first half of the epochs, VoxCeleb1 only after."""
    return 0.0 if epoch <= total / 2 else 1.0


def _cosine(epoch: int, total: int, p_const: float) -> float:
    """(1 - cos(pi e / E)) / 2: a slow start and a slow finish."""
    return (1.0 - math.cos(math.pi * epoch / total)) / 2.0


def _none(epoch: int, total: int, p_const: float) -> float:
    """OS-KDFT: LibriSpeech only."""
    return 0.0


def _switch(epoch: int, total: int, p_const: float) -> float:
    """The released PostComp KD phase: LibriSpeech, then VoxCeleb1 only from epoch int(0.9 E) on."""
    return 1.0 if epoch >= int(0.9 * total) else 0.0


# p(epoch, total, p_const): probability that a KD item comes from VoxCeleb1 at epoch 1..total.
SCHEDULES: dict[str, Callable[[int, int, float], float]] = {
    'linear': _linear, 'constant': _constant, 'step': _step, 'cosine': _cosine, 'none': _none, 'switch': _switch,
}


def kd_probability(schedule: str, epoch: int, total: int, p_const: float) -> float:
    """p(epoch) of the named schedule (names and curriculum_p are checked by arguments.check_values)."""
    assert 1 <= epoch <= total, (epoch, total)  # epochs are numbered from 1
    return SCHEDULES[schedule](epoch, total, p_const)


class CurriculumTrainSet(Dataset):
    """Item i = (KD crop, FT crop of dev utterance i, its speaker label, whether the KD crop is VoxCeleb1, the
    unreadable files skipped while drawing it — so the training loop can count and name them).

    A phase reads only what it uses: `kd_audio=False` (speaker labels only) opens no KD file and `ft_audio=False` (KD
    only) no FT file; the crop not read is empty.

    With an `augmenter`, each crop of the rows `aug_rows` names ('ft', or 'both': the KD crop too, which teacher and
    student then hear alike) is augmented with probability `aug_prob`. Those draws come from a child stream of the
    item, per row, so the crops themselves are the same with or without augmentation.
    """

    def __init__(self, ft_utts: UtteranceIndex, speakers: dict[str, int], kd_paths: list[str], crop_size: int, *,
                 schedule: str, total_epochs: int, seed: int, rank: int = 0, p_const: float = 0.5,
                 max_bad_fraction: float = 0.0, kd_audio: bool = True, ft_audio: bool = True,
                 augmenter: Augmenter | None = None, aug_prob: float = 0.0, aug_rows: str = 'ft') -> None:
        if not ft_utts:
            raise ValueError("the training list is empty (no VoxCeleb1 dev utterances; check path_train)")
        lowest = min(kd_probability(schedule, e, total_epochs, p_const) for e in range(1, total_epochs + 1))
        if kd_audio and not kd_paths and lowest < 1.0:
            raise ValueError(f"curriculum {schedule!r} draws LibriSpeech KD items (p(VoxCeleb) = {lowest:.3f} < 1 "
                             f"in some epoch) but no LibriSpeech files were given: set path_libri")
        assert aug_prob == 0.0 or augmenter is not None, aug_prob  # arguments.check_args: aug_prob needs the files
        self.augmenter, self.aug_prob, self.aug_rows = augmenter, aug_prob, AUG_ROWS[aug_rows]
        self.ft_utts = ft_utts
        self.labels = ft_utts.labels_in(speakers)  # [U]
        self.kd_paths = kd_paths
        self.kd_audio, self.ft_audio = kd_audio, ft_audio
        self.crop_size = crop_size
        self.schedule = schedule
        self.total_epochs = total_epochs
        self.seed = seed
        self.rank = rank
        self.p_const = p_const
        self.max_bad_fraction = max_bad_fraction
        self.bad_files: set[str] = set()
        self._item_bad: list[str] = []
        self.set_epoch(1)

    def set_epoch(self, epoch: int) -> None:
        """Select epoch `epoch` (1-based): its VoxCeleb probability and its LibriSpeech order."""
        self.p_vox = kd_probability(self.schedule, epoch, self.total_epochs, self.p_const)
        self.epoch = epoch
        self.kd_order = np.random.default_rng([self.seed, epoch]).permutation(len(self.kd_paths))  # [K]

    def __len__(self) -> int:
        return len(self.ft_utts)

    def _rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, self.rank, i])

    def _augmented(self, wav: np.ndarray, i: int, row: str) -> np.ndarray:
        """`wav` augmented with probability aug_prob when `row` ('kd' or 'ft') is one of aug_rows; draws from the
        item's child stream for that row, so they neither move nor depend on the crop draws."""
        if self.aug_prob <= 0.0 or row not in self.aug_rows or wav.shape[0] == 0:
            return wav
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, i, _AUG_STREAM, _ROW_NUMBER[row]])
        if rng.random() >= self.aug_prob:
            return wav
        return self.augmenter.augment(wav, rng)[0]  # [crop]

    def _draw_kd(self, i: int, rng: np.random.Generator) -> tuple[bool, str]:
        """Source and file of the KD item: VoxCeleb1 with probability p_vox, else the epoch's LibriSpeech order."""
        if rng.random() < self.p_vox:
            return True, self.ft_utts.path(int(rng.integers(len(self.ft_utts))))
        return False, self.kd_paths[int(self.kd_order[i % len(self.kd_paths)])]

    def kd_source(self, i: int) -> tuple[bool, str]:
        """(from VoxCeleb1, path) of item i's KD crop at the current epoch, without reading audio."""
        return self._draw_kd(i, self._rng(i))

    def _tolerate(self, path: str, err: AudioError) -> None:
        """Record an unreadable or too short file; re-raise unless bad files stay within max_bad_fraction of all files."""
        if self.max_bad_fraction <= 0.0:
            raise err
        self.bad_files.add(path)
        self._item_bad.append(path)
        allowed = self.max_bad_fraction * (len(self.ft_utts) + len(self.kd_paths))
        if len(self.bad_files) > allowed:
            raise AudioError(f"{len(self.bad_files)} unreadable training files (more than max_bad_audio_fraction="
                             f"{self.max_bad_fraction} of {len(self.ft_utts) + len(self.kd_paths)}); last: {err}")
        warnings.warn(f"skipping unreadable training file ({err}); a replacement is drawn", stacklevel=3)

    def _crop(self, path: str, label: int, rng: np.random.Generator,
              redraw: Callable[[np.random.Generator], tuple[str, int]]) -> tuple[np.ndarray, int]:
        """A crop of `path`, or (bad files tolerated) of a replacement file from `redraw`, with its label."""
        for _ in range(_MAX_TRIES):
            try:
                return read_crop(path, self.crop_size, rng, MIN_AUDIO_SAMPLES), label
            except AudioError as err:
                self._tolerate(path, err)
                path, label = redraw(rng)
        raise AudioError(f"{_MAX_TRIES} unreadable files in a row while drawing a training item (last: {path})")

    def _redraw_ft(self, rng: np.random.Generator) -> tuple[str, int]:
        j = int(rng.integers(len(self.ft_utts)))
        return self.ft_utts.path(j), int(self.labels[j])

    def _redraw_vox_kd(self, rng: np.random.Generator) -> tuple[str, int]:
        return self.ft_utts.path(int(rng.integers(len(self.ft_utts)))), -1

    def _redraw_libri_kd(self, rng: np.random.Generator) -> tuple[str, int]:
        return self.kd_paths[int(rng.integers(len(self.kd_paths)))], -1

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, int, bool, tuple[str, ...]]:
        rng = self._rng(i)
        self._item_bad = []
        from_vox, wav_kd = False, np.zeros(0, dtype=np.float32)  # [0] when the phase uses no KD audio
        if self.kd_audio:
            from_vox, kd_path = self._draw_kd(i, rng)
            kd_redraw = self._redraw_vox_kd if from_vox else self._redraw_libri_kd
            wav_kd, _ = self._crop(kd_path, -1, rng, kd_redraw)  # [crop]
        wav_ft, label = np.zeros(0, dtype=np.float32), int(self.labels[i])  # [0] when the phase uses no FT audio
        if self.ft_audio:
            wav_ft, label = self._crop(self.ft_utts.path(i), label, rng, self._redraw_ft)  # [crop]
        wav_kd, wav_ft = self._augmented(wav_kd, i, 'kd'), self._augmented(wav_ft, i, 'ft')  # [crop] each
        return wav_kd, wav_ft, label, from_vox, tuple(self._item_bad)


@dataclass
class Batch:
    """One training batch: KD audio, FT audio, speaker labels, which KD items came from VoxCeleb, and the unreadable
    files that were skipped while reading it."""
    x_kd: torch.Tensor  # [B, S] float32
    x_ft: torch.Tensor  # [B, S] float32
    y: torch.Tensor  # [B] int64
    from_vox: torch.Tensor  # [B] bool: the KD item is a VoxCeleb crop (the curriculum's draw)
    skipped: list[str]

    def to(self, device: torch.device) -> Batch:
        """The batch with its tensors on `device`."""
        return Batch(self.x_kd.to(device, non_blocking=True), self.x_ft.to(device, non_blocking=True),
                     self.y.to(device, non_blocking=True), self.from_vox.to(device, non_blocking=True), self.skipped)

    def pin_memory(self) -> Batch:
        """Page-locked copies, for the DataLoader's pin_memory on GPU runs."""
        return Batch(self.x_kd.pin_memory(), self.x_ft.pin_memory(), self.y.pin_memory(), self.from_vox.pin_memory(),
                     self.skipped)


def collate_train(batch: list[tuple[np.ndarray, np.ndarray, int, bool, tuple[str, ...]]]) -> Batch:
    """Stack (wav_kd, wav_ft, label, from_vox, skipped files) items into a Batch."""
    x_kd = torch.from_numpy(np.stack([item[0] for item in batch]))  # [B, S]
    x_ft = torch.from_numpy(np.stack([item[1] for item in batch]))  # [B, S]
    y = torch.tensor([item[2] for item in batch], dtype=torch.int64)  # [B]
    from_vox = torch.tensor([item[3] for item in batch], dtype=torch.bool)  # [B]
    return Batch(x_kd, x_ft, y, from_vox, [path for item in batch for path in item[4]])
