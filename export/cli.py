"""`python -m export <subcommand>`: embed, score, verify with an exported model (PyTorch or onnxruntime), export a
checkpoint, or write an export as ONNX.

Subcommands are chosen through the COMMANDS registry; a user error (missing file, wrong format, not an export,
existing output directory) stops with one line naming it, never a traceback.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

from data.audio import AudioError
from export.commands import run_embed, run_export, run_onnx, run_score, run_verify
from export.onnx_runtime import ONNX_FILE
from export.runtimes import RUNTIMES
from models.description import DescriptionError
from utils.errors import ArgumentParser, user_errors

DEVICE_HELP = 'torch device (default: cuda when available, else cpu)'


@dataclass(frozen=True)
class Command:
    """One subcommand: its help line, its arguments and what it runs."""
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], None]


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', required=True, metavar='DIR',
                        help=f'export directory (export.json + weights; {ONNX_FILE} + its JSON for --runtime onnx)')
    parser.add_argument('--runtime', choices=sorted(RUNTIMES), default='torch',
                        help=f'torch: PyTorch on --device; onnx: onnxruntime on the CPU, running DIR/{ONNX_FILE} '
                             f'(or --model FILE.onnx)')
    parser.add_argument('--device', help=DEVICE_HELP + '; the onnx runtime runs on cpu only')


def _embed_arguments(parser: argparse.ArgumentParser) -> None:
    _model_arguments(parser)
    parser.add_argument('--out', required=True, metavar='FILE.npz', help='embeddings file to write')
    parser.add_argument('--list', metavar='LIST.txt', help='text file with one audio path per line')
    parser.add_argument('files', nargs='*', metavar='AUDIO', help='.wav / .flac files')


def _score_arguments(parser: argparse.ArgumentParser) -> None:
    _model_arguments(parser)
    parser.add_argument('--trials', required=True, metavar='TRIALS.txt',
                        help="VoxCeleb-format list: 'label enroll test' or 'enroll test' lines")
    parser.add_argument('--audio-root', required=True, nargs='+', metavar='ROOT',
                        help='folder(s) holding the trial keys (<speaker>/<video>/<utt>.wav); first match wins')
    parser.add_argument('--out', required=True, metavar='SCORES.txt',
                        help="scores file: 'score enroll test' lines (raw full_tta cosine). An export that carries an "
                             "AS-Norm cohort (cohort.safetensors) also writes the AS-Norm scores, same format, to "
                             "SCORES.asnorm.txt, and prints their EER / minDCF after the raw ones")


def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    _model_arguments(parser)
    parser.add_argument('enroll', metavar='A', help='first audio file')
    parser.add_argument('test', metavar='B', help='second audio file')


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', required=True, metavar='CKPT',
                        help='training checkpoint holding an export entry (e.g. RUN_DIR/checkpoint_best.pt)')
    parser.add_argument('--out', required=True, metavar='DIR', help='new export directory (never overwritten)')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--threshold', type=float,
                        help='decision threshold on full_tta scores (mean of full and TTA cosine)')
    source.add_argument('--trials', metavar='TRIALS.txt', help='labelled list: threshold set at its EER')
    parser.add_argument('--audio-root', nargs='+', metavar='ROOT', help='folder(s) holding the keys of --trials')
    parser.add_argument('--device', help=DEVICE_HELP + ' (scoring --trials)')


def _onnx_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', required=True, metavar='DIR', help='export directory (export.json + weights)')
    parser.add_argument('--out', metavar='FILE.onnx',
                        help=f'ONNX file to write, its JSON description beside it as FILE.onnx.json (default: '
                             f'DIR/{ONNX_FILE}; never overwritten)')


COMMANDS = {
    'embed': Command('embeddings (full + TTA segments) of audio files into a .npz', _embed_arguments, run_embed),
    'score': Command('score a trial list; EER and minDCF when it has labels', _score_arguments, run_score),
    'verify': Command('same or different speaker for two audio files', _verify_arguments, run_verify),
    'export': Command('export a training checkpoint into a model directory', _export_arguments, run_export),
    'onnx': Command('write an export as ONNX (raw 16 kHz audio [batch, samples] in, speaker embedding out), checked '
                    'against onnxruntime', _onnx_arguments, run_onnx),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-parser per registered command."""
    parser = ArgumentParser(prog='python -m export', description=' '.join(__doc__.split('\n\n')[0].split()))
    subparsers = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse `argv` (sys.argv[1:] when None) and run the chosen command; a user error (a wrong option, a missing,
    unreadable or too short file, not an export) raises UserError, which `python -m export` prints as one line."""
    args = build_parser().parse_args(argv)
    with user_errors(DescriptionError, AudioError):
        COMMANDS[args.command].run(args)
