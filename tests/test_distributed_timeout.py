"""Every process group waits the same, explicit time (process_group_timeout_min): nccl's default (10 minutes) is
shorter than rank 0's preparation of a VoxCeleb2-scale run, gloo's is 30. A source scan finds every
init_process_group call and requires its timeout; two real gloo ranks show the key's value is the limit a waiting
rank gets, and that the error names the key."""
import ast
import os
import time

import pytest
from torch.multiprocessing import ProcessRaisedException

from arguments import SYSTEM_ARGS, get_args, process_group_timeout
from trainer.distributed import DistEnv, launch, run_on_main_rank

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHORT_MIN = 0.02  # 1.2 s: rank 1 gives up long before rank 0's 5 s of preparation end
PREPARATION_S = 5.0


def _calls_without_timeout() -> tuple[int, list[str]]:
    """(init_process_group calls found in the project's code, those among them without a timeout= argument)."""
    found, missing = 0, []
    for folder, dirs, files in os.walk(REPOSITORY):
        dirs[:] = [d for d in dirs if not d.startswith('.') and d not in ('tests', 'runs', '__pycache__')]
        for name in files:
            if not name.endswith('.py'):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding='utf-8') as handle:
                tree = ast.parse(handle.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, 'attr', getattr(node.func, 'id', '')) == \
                        'init_process_group':
                    found += 1
                    if 'timeout' not in {keyword.arg for keyword in node.keywords}:
                        missing.append(f'{os.path.relpath(path, REPOSITORY)}:{node.lineno}')
    return found, missing


def test_every_init_process_group_call_passes_the_timeout():
    found, missing = _calls_without_timeout()
    assert found >= 1
    assert missing == [], f'init_process_group without timeout= at {missing}'


def _slow_preparation(env: DistEnv, out_dir: str) -> None:
    """Rank 0 prepares for PREPARATION_S while rank 1 waits in run_on_main_rank (as under torchrun)."""
    value = run_on_main_rank(lambda: time.sleep(PREPARATION_S) or 'prepared', env)
    with open(os.path.join(out_dir, f'rank{env.rank}.txt'), 'w') as handle:
        handle.write(value)


@pytest.mark.slow
def test_a_rank_waiting_longer_than_the_key_stops_with_an_error_naming_it(tmp_path):
    started = time.time()
    with pytest.raises(ProcessRaisedException) as raised:
        launch(_slow_preparation, str(tmp_path), usable_gpu='cpu', cpu_processes=2, timeout_min=SHORT_MIN)
    message = str(raised.value)
    assert 'ProcessGroupTimeout' in message and f'process_group_timeout_min={SHORT_MIN:g} minutes' in message
    assert not (tmp_path / 'rank1.txt').exists()  # the waiting rank did not go on
    assert time.time() - started < 60


@pytest.mark.slow
def test_a_rank_waiting_less_than_the_key_goes_on(tmp_path):
    launch(_slow_preparation, str(tmp_path), usable_gpu='cpu', cpu_processes=2, timeout_min=1.0)
    assert [(tmp_path / f'rank{r}.txt').read_text() for r in range(2)] == ['prepared', 'prepared']


def test_torchrun_ranks_join_with_the_timeout_given_before_arguments_are_checked():
    key = 'process_group_timeout_min'
    assert SYSTEM_ARGS[key] == 60.0 and get_args([])[key] == 60.0
    assert process_group_timeout(['epoch=3', f'{key}=120']) == 120.0
    assert process_group_timeout([f'{key}=5', f'{key}=7.5']) == 7.5  # the last one, as get_args takes it
    assert process_group_timeout(['epoch=3']) == 60.0
    for bad in ('0', '-1', 'soon', 'inf'):  # joined with the default; rank 0's check then names the key
        assert process_group_timeout([f'{key}={bad}']) == 60.0
        with pytest.raises(SystemExit, match=key):
            get_args([f'{key}={bad}'])
