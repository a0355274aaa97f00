"""Evaluation reads its audio with the run's DataLoader workers (num_workers), as training does: on a GPU the E/H lists
(145 k utterances) would otherwise wait on one process's reads. Same embeddings, same EER, read elsewhere."""
import dataclasses
import os

import pytest
import torch
from torch.utils.data import Dataset

from arguments import get_args
from data.bundle import build_data
from helpers_trainer import phase_trainer, tiny_arguments
from trainer.distributed import DistEnv
from trainer.methods import JOINT
from trainer.run import build_parts
from utils.seed import seed_everything

ENV = DistEnv(0, 1, torch.device('cpu'))


class ReadBy(Dataset):
    """An evaluation set that leaves a file named after the process reading each item in `folder`."""

    def __init__(self, inner: Dataset, folder: str):
        self.inner, self.folder = inner, folder

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int):
        open(os.path.join(self.folder, str(os.getpid())), 'a').close()
        return self.inner[index]


@pytest.mark.slow
def test_validation_reads_with_the_workers_and_scores_the_same(root, tmp_path):
    results = {}
    for workers in (0, 2):
        args = get_args(tiny_arguments(root, num_workers=workers))
        data = build_data(args)
        seed_everything(args['rand_seed'])
        parts = build_parts(args, ENV, data)
        trainer = phase_trainer(args, ENV, data, parts, JOINT, root)
        folder = tmp_path / f'workers{workers}'
        folder.mkdir()
        trainer.validation = dataclasses.replace(trainer.validation,
                                                 eval_set=ReadBy(trainer.validation.eval_set, str(folder)))
        results[workers] = trainer.validate(1)
        readers = {int(name) for name in os.listdir(folder)}
        if workers == 0:
            assert readers == {os.getpid()}
        else:  # two worker processes read, the main process none
            assert len(readers) == 2 and os.getpid() not in readers, readers
    assert results[0] == results[2] and 0.0 <= results[0] <= 100.0
