"""Speaker-embedding speed: student + back-end versus teacher + back-end, in PyTorch and in onnxruntime, and the CNN
front-end's share.

Systems (paper-size, eval mode, torch.inference_mode): the os_kdft2 student (CNN + 2 layers) with its tuner
back-end, called through JointKDFT.embed as evaluation does; and the teacher (HuBERT-base) with a back-end of the
same kind over all 13 of its hidden states. On a CPU both are also exported to ONNX as `python -m export onnx` does
(export.onnx_export.onnx_bytes: dynamic batch and length) and run by onnxruntime's CPU provider with as many threads
as torch. For each audio length (`--seconds`) and batch (1 = latency, `--batch` = throughput) the median wall time of
one embedding call is measured on random audio, together with the CNN feature encoder alone on the same input (its
share of the call). All calls of a configuration take turns in every round (bench/common.py).

    python bench/inference.py [--seconds 3 8] [--batch 8] [--repeats 3] [--teacher-backend tuner|weighted_sum]
                              [--threads 1] [--model base|tiny]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tempfile
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from arguments import MIN_SEGMENT
from bench.common import (Series, add_runtime_args, apply_runtime_args, at_least, discard, machine_line, ms, pct,
                          print_table, run_interleaved)
from bench.paper_model import SIZES, attention_in_use, build_paper, joint_model, save_random_teacher
from export.model import min_samples
from export.onnx_export import onnx_bytes
from export.onnx_runtime import INPUT_NAME, OUTPUT_NAME, onnx_session
from models import Models
from models.backend import AGGREGATIONS, SpeakerBackend
from models.summary import count
from utils.errors import ArgumentParser, exit_on_user_error

SAMPLE_RATE = 16000


def teacher_backend(parts: Models, aggregation: str, device: torch.device, seed: int = 1) -> SpeakerBackend:
    """A speaker back-end over every teacher hidden state (L+1), eval mode."""
    config = parts.teacher.model.config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backend = SpeakerBackend(config.hidden_size, config.num_hidden_layers + 1, parts.backend.embedding.out_features,
                                 aggregation)
    return backend.to(device).eval()


class StudentEmbedder(nn.Module):
    """The student + back-end as one module, computing JointKDFT.embed (what `python -m export onnx` exports):
    wav [B, S] → [B, E]."""

    def __init__(self, student: nn.Module, backend: nn.Module):
        super().__init__()
        self.student = student
        self.backend = backend

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.backend(self.student(wav))  # [B, E]


class TeacherEmbedder(nn.Module):
    """The teacher + its back-end as one module: Teacher.forward's stacking without its inference_mode, which
    torch.export cannot trace. wav [B, S] → [B, E]."""

    def __init__(self, model: nn.Module, backend: nn.Module):
        super().__init__()
        self.model = model
        self.backend = backend

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        states = self.model(wav, output_hidden_states=True).hidden_states  # L+1 × [B, T, H]
        return self.backend(torch.stack(states, dim=1))  # [B, E]


def onnx_calls(modules: dict[str, nn.Module], min_length: int, threads: int
               ) -> dict[str, Callable[[torch.Tensor], np.ndarray]]:
    """'<name> onnx' per module: exported to ONNX and run by onnxruntime (CPU) with `threads` threads."""
    calls = {}
    for name, module in modules.items():
        start = time.perf_counter()
        session = onnx_session(onnx_bytes(module, min_length), f'{name} ONNX graph', threads)
        print(f'{name}: ONNX export + session {time.perf_counter() - start:.1f} s')

        def call(wav: torch.Tensor, session=session) -> np.ndarray:
            return session.run([OUTPUT_NAME], {INPUT_NAME: wav.numpy()})[0]  # [B, E]
        calls[f'{name} onnx'] = call
    return calls


def onnx_parity(calls: dict[str, Callable[[torch.Tensor], torch.Tensor | np.ndarray]], wav: torch.Tensor
                ) -> dict[str, float]:
    """Per system: max abs difference of unit-normalised embeddings, onnxruntime vs PyTorch, on `wav`."""
    def unit(x: torch.Tensor | np.ndarray) -> np.ndarray:
        x = x.float().numpy() if isinstance(x, torch.Tensor) else x
        return x / np.linalg.norm(x, axis=-1, keepdims=True)
    return {system: float(np.abs(unit(calls[f'{system} onnx'](wav)) - unit(calls[system](wav))).max())
            for system in ('student', 'teacher')}


def embedding_calls(parts: Models, backend: nn.Module, device: torch.device, amp: bool
                    ) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """'student', 'student CNN', 'teacher', 'teacher CNN': wav [B, S] → embeddings [B, E] (or CNN features)."""
    core, _ = joint_model(parts, device)
    core.eval()
    teacher = parts.teacher.to(device)

    def wrap(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        def call(wav: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=amp):
                return fn(wav)
        return call

    return {'student': wrap(core.embed), 'student CNN': wrap(parts.student.feature_extractor),
            'teacher': wrap(lambda wav: backend(teacher(wav))), 'teacher CNN': wrap(teacher.model.feature_extractor)}


def measure_inference(calls: dict[str, Callable[[torch.Tensor], torch.Tensor]], device: torch.device,
                      seconds: list[float], batches: list[int], repeats: int, warmup: int
                      ) -> dict[tuple[float, int], dict[str, Series]]:
    """Per (audio seconds, batch): the median wall time of every call, interleaved."""
    results = {}
    for duration in seconds:
        for batch in batches:
            wav = 0.1 * torch.randn(batch, int(duration * SAMPLE_RATE), generator=torch.Generator().manual_seed(0))
            wav = wav.to(device)
            cases = {name: discard(fn, wav) for name, fn in calls.items()}
            results[(duration, batch)] = {k: v['total'] for k, v in
                                          run_interleaved(cases, repeats, warmup, device).items()}
    return results


def print_onnx(results: dict[tuple[float, int], dict[str, Series]], parity: dict[str, float]) -> None:
    """Per system and configuration: PyTorch and onnxruntime times and the speed-ups."""
    rows, ratios = [], []
    for (duration, batch), r in results.items():
        for system in ('student', 'teacher'):
            eager, onnx = r[system].median, r[f'{system} onnx'].median
            rows.append([system, f'{duration:g}', str(batch), ms(eager), ms(onnx), ms(r[f'{system} onnx'].best),
                         f'{r[f"{system} onnx"].spread:.0%}', f'{eager / onnx:.2f}x', f'{batch / onnx:.2f}',
                         f'{batch * duration / onnx:.1f}'])
        ratios.append([f'{duration:g}', str(batch), f"{r['teacher onnx'].median / r['student onnx'].median:.2f}x"])
    print_table('onnxruntime (CPU provider) vs PyTorch, fp32; parity (max abs, unit-normalised): ' +
                ', '.join(f'{k} {v:.1e}' for k, v in parity.items()),
                ['system', 'audio s', 'batch', 'PyTorch ms', 'ONNX ms', 'ONNX best ms', 'spread', 'ONNX speed-up',
                 'ONNX utt/s', 'x real time'], rows)
    print_table('student speed-up over the teacher in onnxruntime (ratio of medians)',
                ['audio s', 'batch', 'whole embedding'], ratios)


def print_inference(title: str, results: dict[tuple[float, int], dict[str, Series]]) -> None:
    """Per system and configuration: time, spread, throughput, CNN time and share; then the speed-ups."""
    rows, ratios = [], []
    for (duration, batch), r in results.items():
        for system in ('student', 'teacher'):
            total, cnn = r[system].median, r[f'{system} CNN'].median
            rows.append([system, f'{duration:g}', str(batch), ms(total), ms(r[system].best),
                         f'{r[system].spread:.0%}', f'{batch / total:.2f}', f'{batch * duration / total:.1f}',
                         ms(cnn), pct(cnn / total)])
        s, t = r['student'].median, r['teacher'].median
        s_rest, t_rest = s - r['student CNN'].median, t - r['teacher CNN'].median
        ratios.append([f'{duration:g}', str(batch), f'{t / s:.2f}x', f'{t_rest / s_rest:.2f}x' if s_rest > 0 else '-'])
    print_table(title, ['system', 'audio s', 'batch', 'ms / call', 'best ms', 'spread', 'utt/s', 'x real time',
                        'CNN ms', 'CNN share'], rows)
    print_table('student speed-up over the teacher (ratio of medians)',
                ['audio s', 'batch', 'whole embedding', 'after the CNN (layers + back-end)'], ratios)


def print_parameters(parts: Models, backend: nn.Module) -> None:
    """Parameter counts of both systems and of the shared CNN front-end."""
    teacher, student = parts.teacher.model, parts.student
    rows = [['student + back-end', count(student) + count(parts.backend)],
            [f'  student (CNN + {student.num_layers} layers)', count(student)],
            [f'  its back-end ({student.num_layers + 1} states)', count(parts.backend)],
            ['teacher + back-end', count(teacher) + count(backend)],
            ['  teacher', count(teacher)],
            [f'  its back-end ({teacher.config.num_hidden_layers + 1} states)', count(backend)],
            ['CNN feature encoder (in both)', count(student.feature_extractor)]]
    print_table('parameters', ['part', 'M'], [[name, f'{n / 1e6:.2f}'] for name, n in rows])


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=at_least(MIN_SEGMENT / SAMPLE_RATE, float, why="the CNN's receptive field"),
                        nargs='+', default=[3.0, 8.0], help='audio lengths')
    parser.add_argument('--batch', type=at_least(1), default=8, help='throughput batch (latency is batch 1)')
    parser.add_argument('--teacher-backend', choices=sorted(AGGREGATIONS), default='tuner')
    parser.add_argument('--model', choices=SIZES, default='base', help='base = HuBERT-base (paper), tiny = smoke')
    add_runtime_args(parser, repeats=3)
    args = parser.parse_args(argv)
    device = apply_runtime_args(args)
    with tempfile.TemporaryDirectory() as folder:
        parts = build_paper(save_random_teacher(os.path.join(folder, 'teacher'), args.model))
    backend = teacher_backend(parts, args.teacher_backend, device)
    print(f'attention in use: {attention_in_use(parts)}')
    print_parameters(parts, backend)
    calls = embedding_calls(parts, backend, device, amp=False)
    parity = {}
    if device.type == 'cpu':
        modules = {'student': StudentEmbedder(parts.student, parts.backend),
                   'teacher': TeacherEmbedder(parts.teacher.model, backend)}
        calls.update(onnx_calls(modules, min_samples(parts.student.config.to_dict()), torch.get_num_threads()))
        parity = onnx_parity(calls, 0.1 * torch.randn(2, int(args.seconds[0] * SAMPLE_RATE)))
    else:
        print('onnxruntime runs on the CPU provider here: ONNX rows only with --device cpu')
    results = measure_inference(calls, device, args.seconds, sorted({1, args.batch}), args.repeats, args.warmup)
    print_inference(f'speaker embedding, fp32, teacher back-end: {args.teacher_backend}, {args.repeats} rounds',
                    results)
    if parity:
        print_onnx(results, parity)
    print(f'\nafter: {machine_line(device)}')


if __name__ == '__main__':
    exit_on_user_error(main)
