"""DDP with gloo and 2 CPU processes: identical ranks equal to one process on the same global batches, and
distributed evaluation that embeds every test utterance exactly once with the single-process EER.

The training comparison runs in float64: two processes sum gradients (and BatchNorm statistics) in another order than
one process, which in float32 moves single elements by a few 1e-5 after Adam; in float64 that rounding is ~1e-16
relative, so a 1e-9 tolerance is both tight and never reached by chance."""
import os

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from arguments import SYSTEM_ARGS, get_args
from helpers_trainer import phase_trainer, tiny_arguments
from models.noise import TrainingNoise
from data.bundle import build_data
from data.curriculum import Batch
from trainer.distributed import DistEnv, launch
from trainer.evaluate import evaluate_trials, extract_embeddings
from trainer.loop import train_step
from trainer.methods import JOINT
from trainer.run import build_parts
from utils.seed import seed_everything

pytestmark = pytest.mark.slow  # two gloo ranks

STEPS = 3
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
    parts = build_parts(args, env, data).double()  # before DDP wraps it: DDP's buckets follow the dtype
    trainer = phase_trainer(args, env, data, parts, JOINT, os.path.join(root, f'unused-{env.world_size}'))
    for module in trainer.core.modules():  # training noise off: its draws differ between processes
        if isinstance(module, TrainingNoise):
            module.low = module.high = 0.0
    return data, trainer


def _double(batch: Batch) -> Batch:
    return Batch(batch.x_kd.double(), batch.x_ft.double(), batch.y, batch.from_vox, batch.skipped)


def _worker(env: DistEnv, payload):
    root, out = payload
    data, trainer = _build(root, env)
    trainer.train_set.set_epoch(1)
    trainer.sampler.set_epoch(1)
    batches = []
    for _, batch in zip(range(STEPS), trainer.loader):
        batches.append(batch)
        assert train_step(trainer.model, trainer.targets_of, _double(batch), trainer.optimizer, env, False) is not None
    params = {k: v.clone() for k, v in trainer.core.state_dict().items()}  # float64
    recording = Recording(data.test.eval_set)
    trainer.core.float().eval()  # evaluation reads float32 audio; each utterance is embedded by one process
    embeddings = extract_embeddings(trainer.core.embed, recording, env)
    torch.save({'params': params, 'batches': batches, 'seen': recording.seen,
                'embeddings': embeddings}, os.path.join(out, f'rank{env.rank}.pt'))


def test_two_gloo_ranks_equal_one_process(tmp_path):
    root, out = str(tmp_path / 'root'), str(tmp_path / 'out')
    os.makedirs(out)
    tiny_arguments(root)  # make the corpus and teacher once, before the processes start
    launch(_worker, (root, out), usable_gpu='cpu', cpu_processes=2,
           timeout_min=SYSTEM_ARGS['process_group_timeout_min'])
    ranks = [torch.load(os.path.join(out, f'rank{r}.pt'), weights_only=False) for r in range(2)]

    for key, value in ranks[0]['params'].items():  # both ranks hold identical parameters
        assert torch.equal(value, ranks[1]['params'][key]), key

    env = DistEnv(0, 1, torch.device('cpu'))
    data, single = _build(root, env)
    for step in range(STEPS):  # one process, each global batch = rank 0's rows then rank 1's rows
        b0, b1 = ranks[0]['batches'][step], ranks[1]['batches'][step]
        batch = Batch(torch.cat([b0.x_kd, b1.x_kd]), torch.cat([b0.x_ft, b1.x_ft]), torch.cat([b0.y, b1.y]),
                      torch.cat([b0.from_vox, b1.from_vox]), [])
        train_step(single.model, single.targets_of, _double(batch), single.optimizer, env, amp=False)
    compared = 0
    for key, value in single.core.state_dict().items():
        torch.testing.assert_close(ranks[0]['params'][key], value, atol=1e-9, rtol=1e-7, msg=lambda m: key + ': ' + m)
        compared += 1
    assert compared > 50

    # evaluation: disjoint shards covering every utterance once; same embeddings and EER as one process
    seen = [ranks[r]['seen'] for r in range(2)]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(len(data.test.eval_set)))
    assert ranks[1]['embeddings'] is None
    single.core.float().load_state_dict(ranks[0]['params'])
    single.core.eval()
    full, tta = extract_embeddings(single.core.embed, data.test.eval_set, env)
    dist_full, dist_tta = ranks[0]['embeddings']
    np.testing.assert_allclose(dist_full, full, atol=1e-5)
    np.testing.assert_allclose(dist_tta, tta, atol=1e-5)
    trials = data.test.trials[0]
    eer_single = evaluate_trials(full, tta, data.test.keys, trials)[0]['full_tta']['eer']
    eer_dist = evaluate_trials(dist_full, dist_tta, data.test.keys, trials)[0]['full_tta']['eer']
    assert eer_dist == eer_single
