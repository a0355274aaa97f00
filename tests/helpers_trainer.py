"""A tiny corpus and teacher shared by the trainer tests, and the `key=value` arguments that point at them."""
import json
import os
import signal

import trainer.loop
from trainer.run import build_trainer, loop_config, phase_config

from data.demo import make_demo_corpus
from models.teacher import make_tiny_teacher

TINY_SIZES = dict(dev_speakers=6, utts_per_speaker=6, test_speakers=4, test_utts_per_speaker=4,
                  libri_speakers=2, libri_utts_per_speaker=4, num_trials=40)


def tiny_arguments(root: str, **extra) -> list[str]:
    """Arguments for a few-second run: small corpus, 48-wide 3-layer random HuBERT, 0.5 s crops."""
    paths = make_demo_corpus(os.path.join(root, 'corpus'), seed=1, **TINY_SIZES)
    teacher = os.path.join(root, 'teacher')
    if not os.path.isdir(teacher):
        make_tiny_teacher(teacher, 'hubert', hidden_size=48, num_layers=3, intermediate_size=96, conv_dim=16)
    settings = dict(path_train=paths.path_train, path_test=paths.path_test, path_trials=paths.path_trials,
                    path_libri=paths.path_libri, huggingface_url=teacher, student_hidden_layer_size=48,
                    target_layer_idx=[1, 2, 3], embed_size=16, adapter_size=8, batch_size=8, crop_size=8000,
                    seg_size=8000, num_seg=2, epoch=2, lr=2e-3, lr_min=1e-4, num_workers=0, usable_gpu='cpu',
                    path_log=os.path.join(root, 'runs'), path_cache=os.path.join(root, 'index_cache'),
                    num_threads=2)  # fixed: runs compared across loader workers or processes sum floats alike
    settings.update(extra)
    return [f'{k}={v}' for k, v in settings.items()]


def comparable_results(run_dir: str) -> dict:
    """results.json without its wall-clock training seconds (the one entry that differs between identical runs),
    after checking that those seconds are there and positive."""
    with open(os.path.join(run_dir, 'results.json')) as f:
        results = json.load(f)
    seconds = results.pop('train_seconds')
    assert seconds['total'] > 0 and seconds['total'] == sum(v for k, v in seconds.items() if k != 'total')
    return results


def sigterm_after_steps(monkeypatch, stop_after: set[int]) -> dict:
    """Count training steps (trainer.loop.train_step calls) and send this process a real SIGTERM right after each
    step whose 1-based number is in `stop_after`; the trainer's handler catches it. Returns the live counter
    {'n': steps so far}."""
    real, calls = trainer.loop.train_step, {'n': 0}

    def step_then_maybe_sigterm(*args, **kwargs):
        out = real(*args, **kwargs)
        calls['n'] += 1
        if calls['n'] in stop_after:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(trainer.loop, 'train_step', step_then_maybe_sigterm)
    return calls


def phase_trainer(args: dict, env, data, parts, phase, run_dir: str):
    """The Trainer run_phases would build for `phase` as the method's last phase (trainer/run.py build_trainer), its
    files in `run_dir`."""
    config = phase_config(loop_config(args, env, run_dir), args, phase, final=True, label='')
    return build_trainer(args, env, data, None, parts, phase, config)
