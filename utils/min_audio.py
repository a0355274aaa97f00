"""The shortest audio the model accepts, computed here once for training, evaluation and the export.

The student's front-end is the wav2vec 2.0 / HuBERT CNN feature encoder (conv_kernel, conv_stride of the teacher's
config); its back-end pools each utterance to mean ‖ unbiased std over frames, which needs two frames. So the
minimum is the CNN's receptive field plus one hop: 720 samples (45 ms at 16 kHz) for the usual encoder.
"""
from __future__ import annotations

from typing import Sequence

SAMPLE_RATE = 16_000  # Hz, the rate every input is read or resampled to
# the wav2vec 2.0 / HuBERT feature encoder's conv_kernel and conv_stride (every teacher family of models/families.py)
CNN_KERNELS, CNN_STRIDES = (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)
POOLING_FRAMES = 2  # statistics pooling's unbiased std needs two frames


def cnn_input_samples(frames: int, kernels: Sequence[int] = CNN_KERNELS, strides: Sequence[int] = CNN_STRIDES) -> int:
    """The shortest input from which a stack of 1-d convolutions gives `frames` output frames."""
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        field, jump = field + (kernel - 1) * jump, jump * stride
    return field + (frames - 1) * jump  # the receptive field, then one hop per further frame


def min_audio_samples(kernels: Sequence[int] = CNN_KERNELS, strides: Sequence[int] = CNN_STRIDES) -> int:
    """Samples (16 kHz) the model needs for one utterance: POOLING_FRAMES frames of the CNN front-end."""
    return cnn_input_samples(POOLING_FRAMES, kernels, strides)


MIN_AUDIO_SAMPLES = min_audio_samples()  # 720 for the usual encoder


def too_short(what: str, samples: int, minimum: int = MIN_AUDIO_SAMPLES) -> str:
    """The message for an input of `samples` (16 kHz) shorter than `minimum`: what, its length, the minimum."""
    return (f'{what}: {samples} samples at 16 kHz ({1000 * samples / SAMPLE_RATE:g} ms), shorter than the {minimum} '
            f'samples ({1000 * minimum / SAMPLE_RATE:g} ms) the model needs: two frames of its CNN front-end for '
            f'statistics pooling')
