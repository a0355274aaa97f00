"""Trial scoring: vectorised cosine scores equal an explicit loop over trials and segment pairs."""
import numpy as np
import pytest

from trainer.evaluate import score_trials


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_scores_equal_explicit_loops():
    rng = np.random.default_rng(3)
    n, k, e, t = 12, 4, 8, 40
    full = rng.normal(size=(n, e)).astype(np.float32)
    tta = rng.normal(size=(n, k, e)).astype(np.float32)
    enroll, test = rng.integers(0, n, t), rng.integers(0, n, t)
    scores = score_trials(full, tta, enroll, test)
    for j in range(t):
        a, b = enroll[j], test[j]
        expect_full = cosine(full[a], full[b])
        expect_tta = np.mean([cosine(tta[a, p], tta[b, q]) for p in range(k) for q in range(k)])
        assert scores['full'][j] == pytest.approx(expect_full, abs=1e-5)
        assert scores['tta'][j] == pytest.approx(expect_tta, abs=1e-5)
        assert scores['full_tta'][j] == pytest.approx((expect_full + expect_tta) / 2, abs=1e-5)


def test_tta_only_when_no_full_embeddings():
    tta = np.ones((3, 2, 4), dtype=np.float32)
    scores = score_trials(None, tta, np.array([0, 1]), np.array([2, 2]))
    assert set(scores) == {'tta'}
    np.testing.assert_allclose(scores['tta'], [1.0, 1.0], rtol=1e-6)
