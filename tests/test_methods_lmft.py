"""Large-margin fine-tuning (lmft_epochs > 0): the phase list it extends, the AAM margin, crop length and learning
rate its trainer uses, the head it starts from, and an os_kdft2 + LM-FT run that starts LM-FT from the joint phase's
best state, records it like any phase, and resumes inside LM-FT to the same result as the straight run."""
import json
import math
import os

import pytest
import torch
import torch.nn.functional as F

import main
import trainer.run
from arguments import get_args
from data.bundle import build_data
from data.curriculum import Batch
from helpers_trainer import comparable_results, phase_trainer, sigterm_after_steps, tiny_arguments
from trainer import checkpoint
from trainer.distributed import DistEnv
from trainer.methods import LMFT, METHODS, phases_of
from trainer.run import build_parts
from utils.seed import seed_everything

ENV = DistEnv(0, 1, torch.device('cpu'))
LMFT_ARGS = dict(lmft_epochs=2, lmft_margin=0.5, lmft_crop_size=12000, aam_scale=20.0)  # tiny crop_size: 8000


def _independent_aam(embedding: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, margin: float,
                     scale: float, class_weights: torch.Tensor | None) -> torch.Tensor:
    """ArcFace by its definition, in float64: logits s·cos θ_j, the target's s·cos(θ_y + m) with θ from acos;
    class-weighted mean cross-entropy Σ w_y·(−log p_y) / Σ w_y. Valid while θ_y + m < π (asserted)."""
    cosine = (F.normalize(embedding.double()) @ F.normalize(weight.double()).T).clamp(-1, 1)  # [B, C]
    theta = torch.acos(cosine.gather(1, labels[:, None]))[:, 0]  # [B]
    assert bool((theta + margin < math.pi).all())
    logits = scale * cosine.scatter(1, labels[:, None], torch.cos(theta + margin)[:, None])  # [B, C]
    nll = -torch.log_softmax(logits, dim=1).gather(1, labels[:, None])[:, 0]  # [B]
    w = torch.ones_like(nll) if class_weights is None else class_weights.double()[labels]  # [B]
    return (w * nll).sum() / w.sum()


def test_lmft_epochs_zero_leaves_every_method_as_it_is_and_a_positive_count_appends_lmft():
    for method, spec in METHODS.items():
        assert phases_of(get_args([f'method={method}'])) is spec.phases, method
        extended = phases_of(get_args([f'method={method}', 'lmft_epochs=3']))
        assert [p.name for p in extended] == [p.name for p in spec.phases] + ['lmft']
        assert extended[:-2] == spec.phases[:-1] and extended[-1] is LMFT
        # the method's own last phase, now an earlier one, is evaluated on its own: the figure LM-FT improves on
        own = extended[-2]
        assert own.evaluates and (own.name, own.epochs_key, own.validates) == (spec.phases[-1].name,
                                                                            spec.phases[-1].epochs_key, True)
    assert (LMFT.epochs_key, LMFT.crop_key, LMFT.validates, LMFT.kd_audio, LMFT.ft_audio) == \
        ('lmft_epochs', 'lmft_crop_size', True, False, True)


def _lmft_trainer(root: str, **extra):
    args = get_args(tiny_arguments(root, **{**LMFT_ARGS, **extra}))
    data = build_data(args)
    seed_everything(args['rand_seed'])
    parts = build_parts(args, ENV, data)
    lmft = phase_trainer(args, ENV, data, parts, phases_of(args)[-1], root)
    return args, parts, lmft


@pytest.mark.parametrize('ft_loss', ['softmax', 'aam'])
def test_lmft_head_is_a_copy_of_the_speaker_classifier_with_the_large_margin(root, ft_loss):
    """The head starts from parts.ft_loss's class directions (softmax: the classifier's weight rows) and class
    weights, with margin lmft_margin and scale aam_scale; it is a copy: a step on it leaves ft_loss unchanged."""
    args, parts, lmft = _lmft_trainer(root, ft_loss=ft_loss, aam_margin=0.2)
    head, source = lmft.core.ft_loss, parts.ft_loss
    directions = source.classifier.weight if ft_loss == 'softmax' else source.weight  # [C, E]
    before = directions.detach().clone()
    assert torch.equal(head.weight, directions) and head.weight.data_ptr() != directions.data_ptr()
    assert torch.equal(head.class_weights, source.class_weights)
    assert head.class_weights.data_ptr() != source.class_weights.data_ptr()
    assert (head.margin, head.scale) == (0.5, 20.0)
    assert lmft.core.student is parts.student and lmft.core.backend is parts.backend
    lmft.start_epoch(1)
    assert lmft.train_epoch(1) is not None
    assert not torch.equal(head.weight, before) and torch.equal(directions, before)


def test_postcomp_lmft_head_starts_from_the_fine_tuned_teachers_classifier(root):
    """postcomp's student has no classifier: LM-FT starts from the fine-tuned teacher's (parts.ft_loss, trained in
    teacher_ft), whose embeddings the student's were distilled to match."""
    args = get_args(tiny_arguments(root, method='postcomp', **LMFT_ARGS))
    parts = build_parts(args, ENV, build_data(args))
    with torch.no_grad():
        parts.ft_loss.classifier.weight.add_(1.0)  # as if teacher_ft had trained it
    core = LMFT.module(parts, args)
    assert core.student is parts.student and core.backend is parts.backend
    assert torch.equal(core.ft_loss.weight, parts.ft_loss.classifier.weight)


@pytest.mark.parametrize('lmft_lr, floor', [(1e-3, 1e-4), (5e-5, 5e-5)])
def test_lmft_loss_crop_and_learning_rate(root, lmft_lr, floor):
    """One batch of the LM-FT trainer: FT crops of lmft_crop_size samples and no KD audio; the phase's loss equals
    ArcFace with margin lmft_margin computed independently (float64) — not the method's aam_margin; Adam starts at
    lmft_lr and the cosine goes down to min(lr_min=1e-4, lmft_lr)."""
    args, parts, lmft = _lmft_trainer(root, ft_loss='aam', aam_margin=0.2, lmft_lr=lmft_lr)
    batch = next(iter(lmft.loader))
    assert batch.x_ft.shape == (8, 12000) and batch.x_kd.shape == (8, 0)
    core = lmft.core.double().eval()
    x = batch.x_ft.double()  # [B, S]
    loss = core(Batch(batch.x_kd, x, batch.y, batch.from_vox, []), None)['loss']
    with torch.no_grad():
        head = core.ft_loss
        embedding = core.embed(x)  # [B, E]
        # move each embedding towards its class row so that θ_y + m stays below π (ArcFace's plain branch)
        embedding = F.normalize(embedding) + 0.5 * F.normalize(head.weight[batch.y])  # [B, E]
    expected = _independent_aam(embedding, head.weight, batch.y, 0.5, 20.0, head.class_weights)
    assert head(embedding, batch.y).item() == pytest.approx(expected.item(), abs=1e-9)
    assert _independent_aam(embedding, head.weight, batch.y, 0.2, 20.0, head.class_weights).item() < \
        0.5 * expected.item()  # the method's own margin, 0.2, gives another, lower loss
    with torch.no_grad():
        direct = _independent_aam(core.embed(x), head.weight, batch.y, 0.5, 20.0, head.class_weights)
    assert loss.item() == pytest.approx(direct.item(), abs=1e-9)  # the phase's loss is that head on its embeddings
    assert lmft.scheduler.base_lrs == [lmft_lr] and lmft.scheduler.eta_min == floor
    lmft.start_epoch(1)  # epoch 1 of T_0 = lmft_epochs = 2: half-way down the cosine
    assert lmft.optimizer.param_groups[0]['lr'] == pytest.approx((lmft_lr + floor) / 2, rel=1e-12)


# ----- a whole run: os_kdft2 (1 joint epoch) + LM-FT (2 epochs) -----
SETTINGS = dict(epoch=1, lmft_lr=1e-3, **LMFT_ARGS)
STEPS_PER_EPOCH = 4  # 36 training utterances, batch 8, drop_last
STOP_AFTER = {STEPS_PER_EPOCH + 2}  # LM-FT epoch 1, step 2
FILES = (checkpoint.LAST, checkpoint.BEST, 'checkpoint_joint_best.pt', 'checkpoint_joint_last.pt')


def _run_dir(root, name):
    return os.path.join(root, 'runs', 'OS-KDFT2', name)


@pytest.fixture(scope='module')
def straight(root):
    """The uninterrupted run, with the LM-FT module's state when its trainer was built and what it printed."""
    seen = {}
    real = trainer.run.build_trainer

    def build(args, env, data, logger, parts, phase, config):
        built = real(args, env, data, logger, parts, phase, config)
        if phase.name == 'lmft':
            seen['start'] = {k: v.clone() for k, v in built.core.state_dict().items()}
        return built

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(trainer.run, 'build_trainer', build)
        main.main(tiny_arguments(root, name='lmft_straight', **SETTINGS))
    return seen['start'], _run_dir(root, 'lmft_straight')


@pytest.mark.slow  # a joint + LM-FT run
def test_lmft_starts_from_the_joint_best_state_and_is_recorded_like_any_phase(straight):
    start, run = straight
    joint = checkpoint.load(os.path.join(run, 'checkpoint_joint_best.pt'))
    assert joint['phase'] == 'joint'
    for key, value in start.items():  # student + back-end as the joint phase's best; the head its classifier's copy
        source = 'ft_loss.classifier.weight' if key == 'ft_loss.weight' else key
        assert torch.equal(value, joint['model'][source]), key
    best = checkpoint.load(os.path.join(run, checkpoint.BEST))
    assert best['phase'] == 'lmft' and best['model'].keys() == start.keys()
    assert not torch.equal(best['model']['ft_loss.weight'], start['ft_loss.weight'])  # LM-FT trained its head
    results = json.load(open(os.path.join(run, 'results.json')))
    phases = json.load(open(os.path.join(run, 'phases.json')))
    assert list(results['phases']) == list(phases) == ['joint', 'lmft']
    assert phases['lmft']['epochs'] == 2 and results['best_epoch'] == best['state']['epoch'] == \
        phases['lmft']['best_epoch']
    assert 'final' in phases['joint'] and 'final' in results  # the joint model's own figures, then LM-FT's
    history = checkpoint.load(os.path.join(run, checkpoint.LAST))['state']['history']
    assert [h['epoch'] for h in history] == [1, 2] and all('loss/ft' in h and 'loss/kd' not in h for h in history)
    assert os.path.isfile(os.path.join(run, 'export', 'export.json'))
    for det in (('joint', 'det_O.png'), ('det_O.png',)):  # each evaluated model's DET curve, neither overwritten
        assert os.path.isfile(os.path.join(run, 'figures', *det)), det


@pytest.mark.slow  # a joint + LM-FT run (and a signal)
def test_lmft_interrupted_resumes_inside_itself_and_equals_the_straight_run(root, straight, monkeypatch, capsys):
    _, straight_run = straight
    run = _run_dir(root, 'lmft_resumed')
    calls = sigterm_after_steps(monkeypatch, STOP_AFTER)
    main.main(tiny_arguments(root, name='lmft_resumed', **SETTINGS))
    assert '[os_kdft2 2/2: lmft] starts: 2 epochs (lmft_epochs)' in capsys.readouterr().out
    last = checkpoint.load(os.path.join(run, checkpoint.LAST))
    assert (last['phase'], last['state']['epoch'], last['state']['step']) == ('lmft', 0, 2)
    main.main(tiny_arguments(root, name='lmft_resumed', resume=True, **SETTINGS))
    assert '[os_kdft2 2/2: lmft] resumed from checkpoint_last.pt: 0 of 2 epochs done, 2 steps into the next' in \
        capsys.readouterr().out
    assert calls['n'] == 3 * STEPS_PER_EPOCH  # every step of both phases ran exactly once over the two sessions
    for name in FILES:
        a = checkpoint.load(os.path.join(straight_run, name))
        b = checkpoint.load(os.path.join(run, name))
        assert a['phase'] == b['phase'] and a['model'].keys() == b['model'].keys(), name
        for key in a['model']:
            assert torch.equal(a['model'][key], b['model'][key]), (name, key)
        assert a['state']['history'] == b['state']['history'], name
    assert comparable_results(straight_run) == comparable_results(run)
