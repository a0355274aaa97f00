"""torchrun for real (CPU, gloo; every run a real `python -m torch.distributed.run` process, which is what the
`torchrun` command runs): a fresh two-process start trains and equals the spawn launcher bit for bit, two "nodes" on
localhost with one c10d rendezvous train and evaluate to the same parameters, a rank that dies mid-epoch under
--max-restarts=1 is restarted and the run resumes from its checkpoint to the same parameters, and a first start still
refuses an existing run, with one message from rank 0.

Both launchers run the same two processes with the same gloo reductions in the same order, so their parameters are
compared for exact equality. OMP_NUM_THREADS=1 in every run (torchrun sets it itself for --nproc_per_node>1): the
thread count may change the summation order of CPU kernels.
"""
import os
import socket
import subprocess
import sys
import uuid

import pytest
import torch

import main
from helpers_trainer import comparable_results, tiny_arguments
from trainer import checkpoint
from trainer.distributed import free_port
from utils.launcher import elastic_job, restart_store_note

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = dict(epoch=2, crop_size=4000, seg_size=4000)  # 4 steps per epoch: 36 utterances, global batch 8

# The README's torchrun lines, as (environment, torchrun flags); the tests run exactly these, with the data keys of
# the tiny corpus instead of `path_train=...`, JOB_ID a fresh id and HOST0:29400 a free port on 127.0.0.1.
ONE_NODE = ({}, ['--standalone', '--nproc_per_node=2'])
ELASTIC = ({'TORCH_DISABLE_SHARE_RDZV_TCP_STORE': '1'}, ['--standalone', '--nproc_per_node=2', '--max-restarts=1'])
TWO_NODES = ({}, ['--nnodes=2', '--nproc_per_node=1', '--rdzv_backend=c10d', '--rdzv_id=JOB_ID',
                  '--rdzv_endpoint=HOST0:29400'])


def readme_line(command: tuple[dict, list[str]]) -> str:
    env, flags = command
    return ' '.join([*(f'{k}={v}' for k, v in env.items()), 'torchrun', *flags, 'main.py', 'path_train=...'])


def _start(command: tuple[dict, list[str]], argv: list[str], log: str, extra_env: dict | None = None,
           endpoint: str = '', job_id: str = '', script: str = 'main.py') -> tuple[subprocess.Popen, str]:
    """Start torchrun with `command`'s flags (endpoint and job id filled in) on `script` (main.py, or a test's
    wrapper of it) with `argv`; output into `log`."""
    env, flags = command
    flags = [f.replace('HOST0:29400', endpoint).replace('JOB_ID', job_id) for f in flags]
    environment = {**os.environ, 'OMP_NUM_THREADS': '1', **env, **(extra_env or {})}
    with open(log, 'w') as out:
        process = subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', *flags, script, *argv],
                                   cwd=REPO, env=environment, stdout=out, stderr=subprocess.STDOUT)
    return process, log


def _finish(started: list[tuple[subprocess.Popen, str]]) -> list[tuple[int, str]]:
    """(exit status, output) of each started torchrun; all are stopped if one does not end in time."""
    try:
        statuses = [process.wait(timeout=900) for process, _ in started]
    finally:
        for process, _ in started:
            if process.poll() is None:
                process.kill()
                process.wait()
    return [(status, open(log).read()) for status, (_, log) in zip(statuses, started)]


def _run_dir(root: str, name: str) -> str:
    return os.path.join(root, 'runs', 'OS-KDFT2', name)


def _assert_same_parameters(run_a: str, run_b: str) -> None:
    a = checkpoint.load(os.path.join(run_a, checkpoint.LAST))
    b = checkpoint.load(os.path.join(run_b, checkpoint.LAST))
    assert a['model'].keys() == b['model'].keys() and len(a['model']) > 50
    for key in a['model']:
        assert torch.equal(a['model'][key], b['model'][key]), key
    assert a['state']['history'] == b['state']['history']
    assert [h['epoch'] for h in a['state']['history']] == [1, 2]



@pytest.fixture(scope='module')
def straight(root):
    """`torchrun --standalone --nproc_per_node=2 main.py ...`, a fresh start: rank 0 alone checks and prepares the run
    directory, both ranks train 2 epochs."""
    log = os.path.join(root, 'torchrun.log')
    [(status, out)] = _finish([_start(ONE_NODE, tiny_arguments(root, name='torchrun', **SETTINGS), log)])
    assert status == 0, out
    assert out.count('run directory: ') == 1 and out.count('VoxCeleb1 dev: found') == 1, out
    return _run_dir(root, 'torchrun')


def test_readme_shows_the_commands_these_tests_run():
    with open(os.path.join(REPO, 'README.md')) as f:
        lines = {line.strip() for line in f}
    for command in (ONE_NODE, ELASTIC, TWO_NODES):
        assert readme_line(command) in lines, readme_line(command)


@pytest.mark.slow
def test_a_fresh_torchrun_start_equals_the_spawn_launcher(root, straight, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # read by the spawned processes
    main.main(tiny_arguments(root, name='spawned', cpu_processes=2, **SETTINGS))
    _assert_same_parameters(straight, _run_dir(root, 'spawned'))
    assert comparable_results(straight) == comparable_results(_run_dir(root, 'spawned'))


@pytest.mark.slow
def test_two_nodes_with_a_c10d_rendezvous_train_and_evaluate(root, straight):
    """Two torchrun agents on localhost, one process each, one rendezvous endpoint: the same command on both."""
    endpoint, job_id = f'127.0.0.1:{free_port()}', uuid.uuid4().hex
    argv = tiny_arguments(root, name='two_nodes', **SETTINGS)
    outputs = _finish([_start(TWO_NODES, argv, os.path.join(root, f'node{n}.log'), endpoint=endpoint, job_id=job_id)
                       for n in range(2)])
    assert [status for status, _ in outputs] == [0, 0], outputs
    text = ''.join(out for _, out in outputs)
    assert text.count('run directory: ') == 1 and text.count('final Vox1-O') == 1  # global rank 0 only
    run = _run_dir(root, 'two_nodes')
    _assert_same_parameters(straight, run)
    assert comparable_results(run) == comparable_results(straight)


@pytest.mark.slow
def test_an_elastic_restart_resumes_from_the_checkpoint(root, straight):
    """Rank 1 dies (exit status 1) after step 2 of epoch 2 (its 6th step: 4 per epoch), as injected by
    tests/torchrun_fault_main.py; torchrun restarts both ranks once, the run resumes from the end of epoch 1 and ends
    with the uninterrupted run's parameters."""
    argv = tiny_arguments(root, name='elastic', **SETTINGS)
    log = os.path.join(root, 'elastic.log')
    [(status, out)] = _finish([_start(ELASTIC, argv, log, extra_env={'FAULT_RANK': '1', 'FAULT_AFTER_STEPS': '6'},
                                      script=os.path.join('tests', 'torchrun_fault_main.py'))])
    assert status == 0, out
    run = _run_dir(root, 'elastic')
    assert 'test fault: rank 1 exits after training step 6' in out
    assert f'note: torchrun restarted the workers of the job that trains {run} (restart 1 on this node): resuming ' \
           f'from its last checkpoint' in out
    assert 'resumed from checkpoint_last.pt: 1 of 2 epochs done, 0 steps into the next' in out
    _assert_same_parameters(straight, run)
    with open(os.path.join(run, 'eer', 'val.txt')) as f:
        assert [line.split(']')[0] for line in f] == ['[1', '[2']  # each epoch logged once


@pytest.mark.slow
def test_a_first_start_refuses_an_existing_run_with_one_message(root, straight):
    before = sorted(os.listdir(straight))
    log = os.path.join(root, 'refused.log')
    [(status, out)] = _finish([_start(ONE_NODE, tiny_arguments(root, name='torchrun', **SETTINGS), log)])
    assert status == 1  # torchrun's own status when its workers failed
    errors = [line for line in out.splitlines() if line.startswith('error:')]
    assert errors == [f'error: run directory {straight} already exists and is never overwritten: continue it with '
                      f'resume=True, or start a new run with name=<new name>']
    assert 'exitcode  : 2' in out  # rank 0 stopped with the user-error status (rank 1 too, unless torchrun was faster)
    assert 'main.py", line' not in out  # no traceback from the project's code (torchrun prints its own summary)
    assert sorted(os.listdir(straight)) == before


def test_the_job_id_and_the_shared_store_note(monkeypatch):
    """The job id is torchrun's run id with the launching agent (this process's parent); a run that torchrun may
    restart while it shares its rendezvous store with the workers gets a note naming the way out."""
    monkeypatch.delenv('TORCHELASTIC_RESTART_COUNT', raising=False)
    assert elastic_job() is None
    monkeypatch.setenv('TORCHELASTIC_RESTART_COUNT', '1')
    monkeypatch.setenv('TORCHELASTIC_RUN_ID', 'job7')
    job = elastic_job()
    assert job.restart == 1 and job.job_id == f'job7@{socket.gethostname()}:{os.getppid()}'
    monkeypatch.setenv('TORCHELASTIC_MAX_RESTARTS', '1')
    monkeypatch.setenv('TORCHELASTIC_USE_AGENT_STORE', 'True')
    assert 'TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 torchrun' in restart_store_note()
    monkeypatch.setenv('TORCHELASTIC_USE_AGENT_STORE', 'False')
    assert restart_store_note() == ''
