"""AS-Norm (utils/score_norm.py, trainer/evaluate.py, data/cohort.py): the vectorised normalisation equals a direct
per-trial computation of the formula, the top-N are the highest cohort scores, and the cohort is drawn reproducibly."""
import numpy as np
import pytest

from data.cohort import cohort_spec, draw_cohort
from data.utterance_index import UtteranceIndex
from trainer.evaluate import build_cohort, cohort_scoring, score_trials
from utils.score_norm import CohortStats, as_norm, top_cohort_stats


def direct_stats(vector: np.ndarray, cohort: np.ndarray, n: int) -> tuple[float, float]:
    """Mean and standard deviation (ddof 0) of the n highest of one vector's dot products with every cohort row."""
    scores = sorted((float(np.dot(vector, c)) for c in cohort), reverse=True)[:n]
    mean = sum(scores) / len(scores)
    return mean, (sum((x - mean) ** 2 for x in scores) / len(scores)) ** 0.5


def direct_as_norm(enroll: np.ndarray, test: np.ndarray, cohort: np.ndarray, n: int) -> list[float]:
    """The AS-Norm formula, trial by trial: s' = ((s - mu_e) / sigma_e + (s - mu_t) / sigma_t) / 2."""
    out = []
    for e, t in zip(enroll, test):
        s = float(np.dot(e, t))
        mu_e, sigma_e = direct_stats(e, cohort, n)
        mu_t, sigma_t = direct_stats(t, cohort, n)
        out.append(0.5 * ((s - mu_e) / sigma_e + (s - mu_t) / sigma_t))
    return out


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize('top_n', [2, 7, 30, 31, 500])
def test_vectorised_as_norm_equals_the_per_trial_formula(top_n):
    rng = np.random.default_rng(top_n)
    utts, cohort = unit(rng.normal(size=(25, 16))), unit(rng.normal(size=(31, 16)))  # float64
    enroll, test = rng.integers(0, 25, 60), rng.integers(0, 25, 60)
    stats = top_cohort_stats(utts, cohort, top_n, block_rows=4)  # several blocks, the last one short
    raw = np.einsum('ij,ij->i', utts[enroll], utts[test])
    got = as_norm(raw, stats.take(enroll), stats.take(test))
    expected = direct_as_norm(utts[enroll], utts[test], cohort, min(top_n, 31))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_top_n_keeps_the_highest_cohort_scores():
    """Cohort scores 1, 2, ..., 10 (shuffled) for the one utterance: the top 3 are 8, 9, 10."""
    vector = np.array([[1.0, 0.0]])
    cohort = np.array([[k, (-1) ** k * 5.0] for k in np.random.default_rng(0).permutation(np.arange(1.0, 11.0))])
    stats = top_cohort_stats(vector, cohort, 3)  # the second column meets the vector's 0: scores are the first
    assert stats.mean[0] == pytest.approx(9.0, abs=1e-12)
    assert stats.std[0] == pytest.approx(np.sqrt(2 / 3), abs=1e-12)


@pytest.mark.parametrize('top_n', [12, 13, 1000])
def test_top_n_of_the_whole_cohort_is_plain_s_norm(top_n):
    rng = np.random.default_rng(5)
    utts, cohort = rng.normal(size=(9, 6)), rng.normal(size=(12, 6))
    stats = top_cohort_stats(utts, cohort, top_n)
    all_scores = utts @ cohort.T  # [9, 12]
    np.testing.assert_allclose(stats.mean, all_scores.mean(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(stats.std, all_scores.std(axis=1), rtol=0, atol=1e-12)
    s = np.array([0.3, -0.2])
    enroll, test = CohortStats(stats.mean[:2], stats.std[:2]), CohortStats(stats.mean[2:4], stats.std[2:4])
    expected = 0.5 * ((s - all_scores[:2].mean(1)) / all_scores[:2].std(1) +
                      (s - all_scores[2:4].mean(1)) / all_scores[2:4].std(1))
    np.testing.assert_allclose(as_norm(s, enroll, test), expected, rtol=0, atol=1e-12)


def test_fewer_than_two_cohort_scores_is_an_error():
    with pytest.raises(ValueError, match='at least 2 cohort scores'):
        top_cohort_stats(np.ones((2, 3)), np.ones((1, 3)), 300)


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_score_kinds_against_the_cohort_follow_each_kinds_own_formula():
    """Every kind is normalised with scores against per-speaker cohort entries, computed here from their
    definition: 'full' the cosine with the speaker's mean unit full embedding, 'tta' the mean over the utterance's
    segments of the cosine with the speaker's mean TTA direction, 'full_tta' the mean of the two."""
    rng = np.random.default_rng(11)
    k, e = 3, 8
    pool_full, pool_tta = rng.normal(size=(14, e)).astype(np.float32), rng.normal(size=(14, k, e)).astype(np.float32)
    speakers = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4, 5, 5])
    cohort = build_cohort(pool_full, pool_tta, speakers, top_n=4)
    full, tta = rng.normal(size=(10, e)).astype(np.float32), rng.normal(size=(10, k, e)).astype(np.float32)
    enroll, test = rng.integers(0, 10, 30), rng.integers(0, 10, 30)
    raw = score_trials(full, tta, enroll, test)
    got = cohort_scoring(full, tta, cohort).scores(enroll, test)

    centroid_full, centroid_tta = [], []
    for s in range(6):
        rows = np.flatnonzero(speakers == s)
        centroid_full.append(np.mean([unit(pool_full[i].astype(np.float64)) for i in rows], axis=0))
        centroid_tta.append(np.mean([unit(pool_tta[i, j].astype(np.float64)) for i in rows for j in range(k)], axis=0))
    np.testing.assert_allclose(cohort.full, unit(np.array(centroid_full)), atol=1e-6)
    np.testing.assert_allclose(cohort.tta, unit(np.array(centroid_tta)), atol=1e-6)

    def against_cohort(i: int, kind: str) -> list[float]:
        scores = []
        for c_full, c_tta in zip(cohort.full.astype(np.float64), cohort.tta.astype(np.float64)):
            s_full = cosine(full[i].astype(np.float64), c_full)
            s_tta = np.mean([cosine(tta[i, j].astype(np.float64), c_tta) for j in range(k)])
            scores.append({'full': s_full, 'tta': s_tta, 'full_tta': (s_full + s_tta) / 2}[kind])
        return scores

    def trial_score(a: int, b: int, kind: str) -> float:  # score_trials' definition, in float64
        s_full = cosine(full[a].astype(np.float64), full[b].astype(np.float64))
        s_tta = np.mean([cosine(tta[a, p].astype(np.float64), tta[b, q].astype(np.float64))
                         for p in range(k) for q in range(k)])
        return {'full': s_full, 'tta': s_tta, 'full_tta': (s_full + s_tta) / 2}[kind]

    for kind in ('full', 'tta', 'full_tta'):
        for j in range(len(enroll)):
            ce = sorted(against_cohort(enroll[j], kind), reverse=True)[:4]
            ct = sorted(against_cohort(test[j], kind), reverse=True)[:4]
            s = trial_score(enroll[j], test[j], kind)
            assert s == pytest.approx(float(raw[kind][j]), abs=1e-5)  # the raw score the normalisation starts from
            expected = 0.5 * ((s - np.mean(ce)) / np.std(ce) + (s - np.mean(ct)) / np.std(ct))
            assert got[kind + '_asnorm'][j] == pytest.approx(expected, abs=1e-6)


def index_of(counts: list[int]) -> UtteranceIndex:
    """An index with counts[s] utterances of speaker id1000s, speakers interleaved."""
    relative = [f'id1000{s}/v/{u:05d}.wav' for u in range(max(counts)) for s, n in enumerate(counts) if u < n]
    return UtteranceIndex.from_relative('/data', relative)


def test_cohort_draw_is_reproducible_and_bounded_per_speaker():
    utts = index_of([5, 1, 3, 8])
    drawn = draw_cohort(utts, 2, seed=4)
    speakers = [utts.speaker_ids[label] for label in drawn.labels]
    assert sorted(speakers) == ['id10000'] * 2 + ['id10001'] + ['id10002'] * 2 + ['id10003'] * 2
    assert drawn.keys() == draw_cohort(utts, 2, seed=4).keys()
    assert len(set(drawn.keys())) == 7 and set(drawn.keys()) <= set(utts.keys())
    assert sorted(draw_cohort(utts, 0, seed=4).keys()) == sorted(utts.keys())
    draws = {tuple(draw_cohort(utts, 2, seed=s).keys()) for s in range(6)}
    assert len(draws) > 1  # the seed decides the draw
    spec = cohort_spec(utts, 2, 300, 4, seg_size=400, num_seg=2)
    assert sorted(set(spec.speakers.tolist())) == [0, 1, 2, 3] and spec.top_n == 300  # 4 cohort speakers
    assert [spec.eval_set.utts.speaker(i) for i in range(7)] == [f'id1000{s}' for s in spec.speakers.tolist()]
