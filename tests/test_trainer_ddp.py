"""DDP with gloo and 2 CPU processes: identical ranks equal to one process on the same global batches, and
distributed evaluation that embeds every test utterance exactly once with the single-process EER."""
import os

import numpy as np
import torch
from torch.utils.data import Dataset

from arguments import get_args
from helpers_trainer import tiny_arguments
from models.noise import TrainingNoise
from data.bundle import build_data
from trainer.build import build_parts, build_trainer
from trainer.distributed import DistEnv, launch
from trainer.evaluate import evaluate_trials, extract_embeddings
from trainer.methods import JOINT
from trainer.steps import Batch, train_step
from utils.seed import seed_everything

STEPS = 3
NOISE_ONLY = ('k_proj.bias', 'backend.embedding.bias')
DETERMINISTIC = dict(student_dropout=0.0, student_layerdrop=0.0, student_mask_time_prob=0.0, class_weight=False,
                     batch_size=8)


class Recording(Dataset):
    """Wraps an evaluation set and records which items this process read."""

    def __init__(self, inner):
        self.inner, self.seen = inner, []

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        self.seen.append(i)
        return self.inner[i]


def _build(root: str, env: DistEnv):
    args = get_args(tiny_arguments(root, **DETERMINISTIC))
    data = build_data(args)
    seed_everything(args['rand_seed'])
    parts = build_parts(args, env, data)
    trainer = build_trainer(args, env, data, None, os.path.join(root, f'unused-{env.world_size}'), parts, JOINT,
                            best_name='unused', log_prefix='', label='')
    for module in trainer.core.modules():  # training noise off: its draws differ between processes
        if isinstance(module, TrainingNoise):
            module.low = module.high = 0.0
    # Parameters whose gradient is zero in exact arithmetic (attention key biases: softmax is shift-invariant;
    # the embedding bias before BatchNorm) receive rounding noise only, which Adam normalises into lr-sized
    # steps that differ with any change of summation order: they are frozen here.
    for name, parameter in trainer.core.named_parameters():
        if name.endswith(NOISE_ONLY):
            parameter.requires_grad_(False)
    return data, trainer


def _worker(env: DistEnv, payload):
    root, out = payload
    data, trainer = _build(root, env)
    trainer.train_set.set_epoch(1)
    trainer.sampler.set_epoch(1)
    batches = []
    for _, items in zip(range(STEPS), trainer.loader):
        batch = Batch.from_loader(items, env.device)
        batches.append(batch)
        assert train_step(trainer.model, trainer.teacher, batch, trainer.optimizer, env, amp=False) is not None
    recording = Recording(data.test.eval_set)
    trainer.core.eval()
    embeddings = extract_embeddings(trainer.core.embed, recording, env)
    torch.save({'params': trainer.core.state_dict(), 'batches': batches, 'seen': recording.seen,
                'embeddings': embeddings}, os.path.join(out, f'rank{env.rank}.pt'))


def test_two_gloo_ranks_equal_one_process(tmp_path):
    root, out = str(tmp_path / 'root'), str(tmp_path / 'out')
    os.makedirs(out)
    tiny_arguments(root)  # make the corpus and teacher once, before the processes start
    launch(_worker, (root, out), usable_gpu='cpu', cpu_processes=2)
    ranks = [torch.load(os.path.join(out, f'rank{r}.pt'), weights_only=False) for r in range(2)]

    for key, value in ranks[0]['params'].items():  # both ranks hold identical parameters
        assert torch.equal(value, ranks[1]['params'][key]), key

    env = DistEnv(0, 1, torch.device('cpu'))
    data, single = _build(root, env)
    for step in range(STEPS):  # one process, each global batch = rank 0's rows then rank 1's rows
        b0, b1 = ranks[0]['batches'][step], ranks[1]['batches'][step]
        batch = Batch(torch.cat([b0.x_kd, b1.x_kd]), torch.cat([b0.x_ft, b1.x_ft]), torch.cat([b0.y, b1.y]))
        train_step(single.model, single.teacher, batch, single.optimizer, env, amp=False)
    compared = 0
    for key, value in single.core.state_dict().items():
        torch.testing.assert_close(ranks[0]['params'][key], value, atol=1e-5, rtol=1e-4, msg=lambda m: key + ': ' + m)
        compared += 1
    assert compared > 50

    # evaluation: disjoint shards covering every utterance once; same embeddings and EER as one process
    seen = [ranks[r]['seen'] for r in range(2)]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(len(data.test.eval_set)))
    assert ranks[1]['embeddings'] is None
    single.core.load_state_dict(ranks[0]['params'])
    single.core.eval()
    full, tta = extract_embeddings(single.core.embed, data.test.eval_set, env)
    dist_full, dist_tta = ranks[0]['embeddings']
    np.testing.assert_allclose(dist_full, full, atol=1e-5)
    np.testing.assert_allclose(dist_tta, tta, atol=1e-5)
    trials = data.test.trials[0]
    eer_single = evaluate_trials(full, tta, data.test.keys, trials)[0]['full_tta']['eer']
    eer_dist = evaluate_trials(dist_full, dist_tta, data.test.keys, trials)[0]['full_tta']['eer']
    assert eer_dist == eer_single
