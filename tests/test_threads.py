"""Intra-op threads per process: num_threads=0 gives each rank its share of the cores, any other value is used as
given, the choice is printed, and the previous number comes back after the run."""
import torch

from utils.threads import auto_threads, intra_op_threads, usable_cores


def test_each_rank_gets_its_share_of_the_cores():
    assert auto_threads(cores=2, local_ranks=1, workers=2) == 1  # the 2-core machine of the issue: 1, not 2
    assert auto_threads(cores=16, local_ranks=1, workers=3) == 4
    assert auto_threads(cores=64, local_ranks=8, workers=3) == 2
    assert auto_threads(cores=4, local_ranks=2, workers=4) == 1  # never below one


def test_the_choice_is_printed_and_undone(capsys, monkeypatch):
    monkeypatch.delenv('LOCAL_WORLD_SIZE', raising=False)
    before = torch.get_num_threads()
    cores = usable_cores()
    with intra_op_threads(0, world_size=1, workers=0, announce=True) as threads:
        assert threads == torch.get_num_threads() == cores
    assert capsys.readouterr().out == (f'intra-op threads per process: {cores} (num_threads=0: {cores} cores / '
                                       f'(1 process(es) on the node x (1 + 0 loader workers)))\n')
    assert torch.get_num_threads() == before
    monkeypatch.setenv('LOCAL_WORLD_SIZE', str(cores))  # torchrun: as many ranks on the node as cores
    with intra_op_threads(0, world_size=1, workers=1, announce=False) as threads:
        assert threads == 1
    with intra_op_threads(3, world_size=1, workers=4, announce=True) as threads:
        assert threads == torch.get_num_threads() == 3
    assert capsys.readouterr().out == 'intra-op threads per process: 3 (num_threads)\n'
    assert torch.get_num_threads() == before
