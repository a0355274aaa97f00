"""What each subcommand of `python -m export` does, given its parsed arguments; cli.py maps names to these."""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from export.audio_inputs import check_audio_path, embed_paths, read_path_list
from export.model import SCORE_KIND, ExportError, SpeakerRuntime
from export.onnx_export import export_onnx
from export.onnx_runtime import ONNX_FILE, sidecar_path
from export.runtimes import load_runtime, resolve_device
from export.store import check_new_directory, export_from_checkpoint, model_from_checkpoint, save_export
from export.trial_scoring import has_both_classes, read_trial_pairs, trial_scores
from trainer.evaluate import NORMALISED, score_trials
from utils.metrics import verification_metrics


def load_model(args: argparse.Namespace) -> tuple[SpeakerRuntime, torch.device]:
    """The export of --model run by --runtime on --device, and that device."""
    device = resolve_device(args.device, args.runtime)
    return load_runtime(args.model, args.runtime, device), device


def check_output_file(path: str, suffix: str = '') -> str:
    """Return `path` when its folder exists and it ends with `suffix` (any name when empty); else an ExportError."""
    if not path.endswith(suffix):
        raise ExportError(f"--out {path}: expected a file name ending in {suffix}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ExportError(f"--out {path}: folder {folder} does not exist")
    return path


def run_embed(args: argparse.Namespace) -> None:
    """Embed audio files: keys, full-utterance and TTA-segment embeddings into one .npz."""
    paths = list(args.files) + (read_path_list(args.list) if args.list else [])
    if not paths:
        raise ExportError("embed: no audio files given; pass files, or --list LIST.txt with one path per line")
    for path in paths:
        check_audio_path(path)
    out = check_output_file(args.out, '.npz')
    model, device = load_model(args)
    full, tta = embed_paths(model, paths, paths, device)  # [N, E], [N, K, E]
    np.savez(out, keys=np.array(paths), full=full, tta=tta, seg_size=np.int64(model.seg_size),
             num_seg=np.int64(model.num_seg))
    print(f"wrote {len(paths)} embeddings ({full.shape[1]} dims, {tta.shape[1]} TTA segments of "
          f"{model.seg_size} samples each) to {out}")


def _print_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float, label: str = '') -> None:
    """EER, minDCF, and the error rates of the export's own decision threshold; `label` starts both lines."""
    metrics = verification_metrics(scores, labels)
    accepted = scores >= threshold  # [N]
    miss = 100.0 * float(np.mean(~accepted[labels == 1]))
    false_alarm = 100.0 * float(np.mean(accepted[labels == 0]))
    print(f"{label}EER {metrics['eer']:.4f} % | minDCF(0.01) {metrics['min_dcf_0.01']:.4f} | "
          f"minDCF(0.05) {metrics['min_dcf_0.05']:.4f} | EER threshold {metrics['threshold']:.6f}")
    print(f"{label}at the export's threshold {threshold:.6f}: miss {miss:.2f} %, false alarm {false_alarm:.2f} %")


def normalised_path(out: str) -> str:
    """The file of the AS-Norm scores beside the raw scores file: scores.txt → scores.asnorm.txt."""
    stem, extension = os.path.splitext(out)
    return f'{stem}.asnorm{extension}'


def _write_scores(path: str, scores: np.ndarray, pairs) -> None:
    with open(path, 'w', encoding='utf-8') as handle:
        handle.writelines(f"{s:.6f} {e} {t}\n" for s, e, t in zip(scores.tolist(), pairs.enroll, pairs.test))


def run_score(args: argparse.Namespace) -> None:
    """Score a trial list: `score enroll test` lines, and EER / minDCF when the list has labels; an export with an
    AS-Norm cohort also writes the normalised scores (normalised_path) and prints their figures after the raw."""
    out = check_output_file(args.out)
    pairs = read_trial_pairs(args.trials)
    model, device = load_model(args)
    scores = trial_scores(model, pairs, args.audio_root, device)  # kind → [N]
    _write_scores(out, scores[SCORE_KIND], pairs)
    print(f"wrote {len(pairs.enroll)} {SCORE_KIND} cosine scores to {out}")
    norm = model.score_norm
    if norm is not None:
        _write_scores(normalised_path(out), scores[SCORE_KIND + NORMALISED], pairs)
        print(f"wrote their AS-Norm (top-{norm.cohort.used_top_n} of {norm.cohort.speakers} cohort speakers) to "
              f"{normalised_path(out)}")
    if has_both_classes(pairs.labels):
        _print_metrics(scores[SCORE_KIND], pairs.labels, model.threshold)
        if norm is not None:
            _print_metrics(scores[SCORE_KIND + NORMALISED], pairs.labels, norm.threshold, 'AS-Norm: ')
    elif pairs.labels is not None:
        print(f"no EER / minDCF: {args.trials} needs both target (1) and non-target (0) trials")


def run_verify(args: argparse.Namespace) -> None:
    """Score one pair of files and decide same / different speaker at the export's threshold."""
    paths = [check_audio_path(args.enroll), check_audio_path(args.test)]
    model, device = load_model(args)
    full, tta = embed_paths(model, paths, paths, device)  # [2, E], [2, K, E]
    score = float(score_trials(full, tta, np.array([0]), np.array([1]))[SCORE_KIND][0])
    decision = 'same speaker' if score >= model.threshold else 'different speakers'
    print(f"score {score:.6f} | {decision} (threshold {model.threshold:.6f}, {SCORE_KIND} cosine)")


def run_export(args: argparse.Namespace) -> None:
    """Export a checkpoint, its threshold given or set at the EER of a labelled trial list."""
    check_new_directory(args.out)
    if args.threshold is not None:
        export_from_checkpoint(args.checkpoint, args.out, args.threshold)
        print(f"wrote export {args.out} (threshold {args.threshold:.6f}, given)")
        return
    if args.trials is None or not args.audio_root:
        raise ExportError("export: give --threshold T, or --trials LIST --audio-root ROOT to set the threshold at "
                          "that list's EER")
    pairs = read_trial_pairs(args.trials)
    if not has_both_classes(pairs.labels):
        raise ExportError(f"trial list {args.trials}: calibrating a threshold needs labels 1 and 0 "
                          f"('label enroll test' lines with both kinds)")
    device = resolve_device(args.device, 'torch')
    model = model_from_checkpoint(args.checkpoint).to(device)
    metrics = verification_metrics(trial_scores(model, pairs, args.audio_root, device)[SCORE_KIND], pairs.labels)
    model.threshold = metrics['threshold']
    model.metadata['calibration'] = {'trials': os.path.abspath(args.trials), 'score_kind': SCORE_KIND, **metrics}
    save_export(model, args.out)
    print(f"wrote export {args.out} (threshold {metrics['threshold']:.6f} at EER {metrics['eer']:.4f} % on "
          f"{args.trials})")


def run_onnx(args: argparse.Namespace) -> None:
    """Write the export of --model as ONNX (default DIR/model.onnx) with its JSON, after checking it with onnxruntime."""
    if args.out is not None:
        check_output_file(args.out, '.onnx')
    document = export_onnx(args.model, args.out)
    out = args.out or os.path.join(args.model, ONNX_FILE)
    print(f"wrote {out} and {sidecar_path(out)}: {document['input']['name']} [batch, samples] float32 "
          f"{document['sample_rate']} Hz (at least {document['input']['min_samples']} samples) → "
          f"{document['output']['name']} [batch, {document['embed_size']}], opset {document['exporter']['opset']}; "
          f"onnxruntime matches PyTorch to {document['exporter']['parity_max_abs']:.1e} (max abs, unit-normalised "
          f"embeddings)")
