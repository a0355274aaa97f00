"""EER and minDCF against hand-computed values and an independent brute-force sweep."""
import numpy as np
import pytest

from utils.metrics import compute_eer, compute_min_dcf, verification_metrics


def brute_force(scores, labels, p_target=None):
    """Sweep every score (and +inf) as threshold; accept when score >= t."""
    tar, non = scores[labels == 1], scores[labels == 0]
    best_gap, eer, best_dcf = np.inf, None, np.inf
    for t in np.concatenate([[np.inf], np.sort(scores)[::-1]]):
        p_miss = np.mean(tar < t)
        p_fa = np.mean(non >= t)
        if abs(p_miss - p_fa) < best_gap:
            best_gap, eer = abs(p_miss - p_fa), (p_miss + p_fa) / 2 * 100
        if p_target is not None:
            best_dcf = min(best_dcf, (p_miss * p_target + p_fa * (1 - p_target)) / min(p_target, 1 - p_target))
    return eer, best_dcf


def test_hand_made_list():
    # targets 0.9 0.8 0.4, non-targets 0.5 0.3 0.1: at t=0.5 one target is missed and one
    # non-target accepted -> EER 1/3; at t=0.8 P_miss=1/3, P_fa=0 -> minDCF = 1/3 for small p_target.
    scores = np.array([0.9, 0.8, 0.4, 0.5, 0.3, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0])
    eer, threshold = compute_eer(scores, labels)
    assert eer == pytest.approx(100 / 3)
    assert threshold == pytest.approx(0.5)
    assert compute_min_dcf(scores, labels, 0.01) == pytest.approx(1 / 3)
    assert compute_min_dcf(scores, labels, 0.05) == pytest.approx(1 / 3)
    # p_target 0.5 normalises to P_miss + P_fa, minimal (1/3) at t=0.8 or t=0.4
    assert compute_min_dcf(scores, labels, 0.5) == pytest.approx(1 / 3)


def test_perfect_and_inverted_lists():
    scores = np.array([3.0, 2.0, 1.0, 0.0])
    labels = np.array([1, 1, 0, 0])
    m = verification_metrics(scores, labels)
    assert m['eer'] == 0.0 and m['min_dcf_0.01'] == 0.0 and m['min_dcf_0.05'] == 0.0
    eer, _ = compute_eer(-scores, labels)
    assert eer == 100.0
    # fully inverted: rejecting everything costs p_target -> normalised minDCF = 1
    assert compute_min_dcf(-scores, labels, 0.01) == pytest.approx(1.0)


def test_equals_brute_force_on_random_scores():
    rng = np.random.default_rng(0)
    for n in (50, 333):
        labels = rng.integers(0, 2, n)
        scores = rng.normal(size=n) + labels * 0.8
        eer, dcf = brute_force(scores, labels, 0.05)
        assert compute_eer(scores, labels)[0] == pytest.approx(eer)
        assert compute_min_dcf(scores, labels, 0.05) == pytest.approx(dcf)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match='both target'):
        compute_eer(np.array([0.1, 0.2]), np.array([1, 1]))
    with pytest.raises(ValueError, match='equal length'):
        compute_eer(np.array([0.1, 0.2]), np.array([1, 0, 1]))
