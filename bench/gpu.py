"""GPU check and speed, in one short run (about 3 minutes on an H100) for when a GPU is lent.

1. A one-process NCCL process group on the GPU (joined as training joins it: trainer/distributed.py join_group, with
   process_group_timeout_min's default): init time, an all_reduce (value checked, median latency) and an
   all_gather_object, then teardown.
2. The os_kdft2 training step of the paper-size model (bench/train_step.py's measurement) at a per-GPU batch
   (`--batch`, paper: 50 global over 2 GPUs = 25) of 3 s crops, in fp32 (the project's default; TF32 as `tf32`
   sets it, on by default) and in bf16 autocast (the opt-in amp=True), each with eager and SDPA attention; speed-ups
   over eager fp32.
3. Speaker embedding, student + back-end versus teacher + back-end (bench/inference.py's measurement), 3 s and
   8 s audio, batch 1 and 8, in the same four settings.
Without a GPU it says so plainly and falls back to the CPU with small sizes and gloo, fp32 only (train_step uses
autocast on CUDA only), so the script is known to run before a GPU is lent; those figures are not GPU figures.

    python bench/gpu.py [--device auto|cuda|cuda:N] [--batch 25] [--repeats 5] [--model base|tiny]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import itertools
import tempfile
import time

import torch
import torch.distributed as dist

from bench.common import (Series, add_runtime_args, apply_runtime_args, at_least, machine_line, ms, pct, print_table,
                          synchronize)
from bench.inference import embedding_calls, measure_inference, print_parameters, teacher_backend
from bench.paper_model import SIZES, attention_in_use, build_paper, joint_model, random_batch, save_random_teacher
from bench.train_step import StepCase, measure_steps, print_steps
from arguments import SYSTEM_ARGS
from trainer.distributed import backend_of, free_port, join_group
from utils.errors import ArgumentParser, exit_on_user_error
from utils.hardware import apply_numerics, precision_text

GPU_SIZES = {'batch': 25, 'crop': 48000, 'seconds': [3.0, 8.0], 'embed_batch': 8, 'repeats': 5, 'warmup': 2}
CPU_SIZES = {'batch': 2, 'crop': 16000, 'seconds': [1.0], 'embed_batch': 2, 'repeats': 1, 'warmup': 1}


def process_group_check(device: torch.device, repeats: int = 10) -> list[list[str]]:
    """Init a one-process group (NCCL on GPU, gloo on CPU), all_reduce and all_gather_object, destroy; table rows."""
    backend = backend_of(device)
    if device.type == 'cuda':
        torch.cuda.set_device(device)  # as trainer/distributed.py does before joining a group
    start = time.perf_counter()
    join_group(backend, SYSTEM_ARGS['process_group_timeout_min'], init_method=f'tcp://127.0.0.1:{free_port()}',
               rank=0, world_size=1, device_id=device if device.type == 'cuda' else None)
    init = time.perf_counter() - start
    try:
        value = torch.full((1024,), 2.0, device=device)
        latency = Series()
        for _ in range(repeats):
            start = time.perf_counter()
            dist.all_reduce(value)
            synchronize(device)
            latency.values.append(time.perf_counter() - start)
        gathered = [None]
        dist.all_gather_object(gathered, {'rank': 0})
        ok = bool(torch.all(value == 2.0)) and gathered == [{'rank': 0}]
    finally:
        dist.destroy_process_group()
    return [[backend, f'{init:.2f}', f'{latency.median * 1e3:.3f}', 'ok' if ok else 'WRONG RESULT']]


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=at_least(0), default=0,
                        help='training items per step (0 = 25 on GPU, 2 on CPU; BatchNorm needs 2)')
    parser.add_argument('--model', choices=SIZES, default='base', help='base = HuBERT-base (paper), tiny = smoke')
    add_runtime_args(parser, repeats=0, warmup=0)
    args = parser.parse_args(argv)
    if args.batch == 1:
        parser.error('argument --batch: expected 0 (by device) or a value >= 2 (BatchNorm needs 2 items in a batch)')
    device = apply_runtime_args(args)
    apply_numerics(SYSTEM_ARGS['tf32'], deterministic=False)  # as a run with the default keys computes
    gpu = device.type == 'cuda'
    sizes = dict(GPU_SIZES if gpu else CPU_SIZES)
    sizes.update({k: v for k, v in (('batch', args.batch), ('repeats', args.repeats), ('warmup', args.warmup)) if v})
    if not gpu:
        print('NO GPU VISIBLE: CPU FALLBACK with small sizes, gloo instead of NCCL, fp32 only. '
              'These figures only show that the script runs; they are not GPU figures.')
    print_table('one-process group', ['backend', 'init s', 'all_reduce ms', 'check'], process_group_check(device))
    precisions = {'fp32': False, 'bf16': True} if gpu else {'fp32': False}
    shown = [f'{name} = {precision_text(device.type, SYSTEM_ARGS["tf32"], amp)}' for name, amp in precisions.items()]
    print(f"precisions: {'; '.join(shown)} (tf32={SYSTEM_ARGS['tf32']}, the default)")
    with tempfile.TemporaryDirectory() as folder:
        model_dir = save_random_teacher(os.path.join(folder, 'teacher'), args.model)
        built = {attention: build_paper(model_dir, attention) for attention in ('eager', 'sdpa')}
    steps = {}
    for attention, parts in built.items():
        print(f'{attention}: attention in use = {attention_in_use(parts)}')
        core, optimizer = joint_model(parts, device)
        for precision, amp in precisions.items():
            steps[f'{attention}, {precision}'] = StepCase(core, parts.teacher.to(device), optimizer, amp)
    batch = random_batch(sizes['batch'], sizes['crop'], device)
    results = measure_steps(steps, batch, device, sizes['repeats'], sizes['warmup'])
    print_steps(f"os_kdft2 training step on {device}, {args.model} teacher, batch {sizes['batch']} x (KD + FT) crops "
                f"of {sizes['crop'] / 16000:g} s, {sizes['repeats']} rounds", results, sizes['batch'], 'eager, fp32')
    backends = {attention: teacher_backend(parts, 'tuner', device) for attention, parts in built.items()}
    print_parameters(built['sdpa'], backends['sdpa'])
    rows = []
    for (attention, parts), (precision, amp) in itertools.product(built.items(), precisions.items()):
        variant = f'{attention}, {precision}'
        calls = embedding_calls(parts, backends[attention], device, amp)
        timed = measure_inference(calls, device, sizes['seconds'], [1, sizes['embed_batch']], sizes['repeats'],
                                  sizes['warmup'])
        for (duration, size), r in timed.items():
            s, t = r['student'].median, r['teacher'].median
            rows.append([variant, f'{duration:g}', str(size), ms(s), ms(t), f'{t / s:.2f}x',
                         f'{size * duration / s:.0f}', pct(r['student CNN'].median / s),
                         pct(r['teacher CNN'].median / t)])
    print_table(f"speaker embedding on {device}, {sizes['repeats']} rounds (medians)",
                ['variant', 'audio s', 'batch', 'student ms', 'teacher ms', 'student speed-up', 'student x real time',
                 'student CNN share', 'teacher CNN share'], rows)
    print(f'\nafter: {machine_line(device)}')


if __name__ == '__main__':
    exit_on_user_error(main)
