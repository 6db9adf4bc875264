"""Temperature, ECE and the doubt threshold on synthetic outputs whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest
from classifier.core import softmax

from release import calibration as cal


def sampled(
    temperature: float, n: int = 20000, seed: int = 0, spread: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """Logits, and labels drawn from softmax(logits / temperature): that temperature is right."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, spread, (n, 10))
    probs = softmax(logits, temperature)
    labels = (probs.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return logits, labels


@pytest.mark.parametrize("true_t", [0.5, 2.0])
def test_the_fitted_temperature_recovers_the_true_one(true_t: float) -> None:
    logits, labels = sampled(true_t)
    assert cal.fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.05)


def test_ece_is_near_zero_when_calibrated_and_large_when_under_confident() -> None:
    logits, labels = sampled(1.0)
    assert cal.reliability(softmax(logits), labels)["ece"] < 0.015
    under = cal.reliability(softmax(logits, 3.0), labels)
    assert under["ece"] > 0.1 and len(under["bins"]) == cal.ECE_BINS
    assert sum(b["count"] for b in under["bins"]) == len(labels)


def test_the_doubt_threshold_keeps_the_target_accuracy_at_the_most_coverage() -> None:
    """The answers kept are right more often than the target by the margin of their count; a
    little lower and the bound on what is kept falls under the target."""
    logits, labels = sampled(1.0)
    probs = softmax(logits)
    threshold = cal.doubt_threshold(probs, labels, 0.975)
    kept = cal.coverage(probs, labels, threshold)
    confidence, right = probs.max(1), probs.argmax(1) == labels
    n = int((confidence >= threshold).sum())
    lower, _ = cal.wilson(right[confidence >= threshold].sum(), n)
    assert lower >= 0.975 and kept["confident_accuracy"] > 0.975
    below = confidence[confidence < threshold].max()
    lower, _ = cal.wilson(right[confidence >= below].sum(), int((confidence >= below).sum()))
    assert lower < 0.975
    assert 0 < kept["coverage"] < 1


def test_the_doubt_threshold_keeps_its_promise_on_answers_it_was_not_fitted_on() -> None:
    """Fitted on 5,000 calibrated answers (84% right, like the model's), the confident answers
    among a fresh 100,000 are right at least 97.5% of the time in nearly all of 20 trials
    (without the margin, 5 of these 20 fail)."""
    under = 0
    for trial in range(20):
        logits, labels = sampled(1.0, n=5000, seed=2 * trial + 1, spread=6.0)
        threshold = cal.doubt_threshold(softmax(logits), labels, 0.975)
        fresh_logits, fresh_labels = sampled(1.0, n=100_000, seed=2 * trial + 2, spread=6.0)
        kept = cal.coverage(softmax(fresh_logits), fresh_labels, threshold)
        assert kept["confident_accuracy"] > 0.965 and kept["coverage"] > 0.3
        under += kept["confident_accuracy"] < 0.975
    assert under <= 3


def test_fewer_validation_answers_leave_fewer_answers_confident() -> None:
    """The margin grows as the fitting set shrinks (own labels, a few hundred images)."""
    logits, labels = sampled(1.0, n=20000)
    probs = softmax(logits)
    many = cal.doubt_threshold(probs, labels, 0.975)
    few = cal.doubt_threshold(probs[:500], labels[:500], 0.975)
    assert few > many


def test_an_unreachable_target_flags_every_answer() -> None:
    probs = np.full((10, 2), 0.5)
    assert cal.doubt_threshold(probs, np.ones(10, int), 0.975) == 1.0


def test_the_risk_coverage_curve_runs_from_the_surest_answers_to_all() -> None:
    logits, labels = sampled(1.0, n=2000)
    curve = np.asarray(cal.risk_coverage(softmax(logits), labels))
    assert curve[0, 0] < 0.05 and curve[-1, 0] == 1.0
    assert curve[-1, 1] == pytest.approx((softmax(logits).argmax(1) == labels).mean(), abs=1e-4)
    assert curve[0, 1] > curve[-1, 1]


def test_too_few_validation_errors_leave_the_temperature_alone() -> None:
    logits, _ = sampled(1.0, n=200)
    right = logits.argmax(axis=1)  # every answer right: the likelihood only grows as T -> 0
    assert cal.fit_temperature(logits, right) == 1.0


def test_the_novelty_threshold_keeps_its_promise_on_images_it_was_not_fitted_on() -> None:
    """At most 5% of in-distribution images flagged, for new images as well as the validation
    ones: fitted on 5,000 draws, a fresh 100,000 exceed 5% in few of 40 trials (exactly 5% of
    the validation draws would exceed it in about half)."""
    rng = np.random.default_rng(0)
    over = 0
    for _ in range(40):
        threshold = cal.novelty_threshold(rng.normal(size=5000))
        fresh = float((rng.normal(size=100_000) > threshold).mean())
        assert 0.035 < fresh < 0.06
        over += fresh > cal.NOVELTY_FLAGGED
    assert over <= 6


def test_fewer_validation_images_flag_a_smaller_share() -> None:
    shares = [cal.flagged_share(n) for n in (100, 1000, 5000, 100_000)]
    assert shares == sorted(shares) and shares[0] <= 0.02 and 0.044 < shares[2] < 0.05
    assert cal.flagged_share(10) == 0.0  # too few to promise anything: nothing is flagged
    scores = np.arange(1000, dtype=float)
    assert (scores > cal.novelty_threshold(scores, flagged=0.05)).mean() == 0.05


def test_the_answer_mix_counts_doubt_novelty_and_categories_as_served() -> None:
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8], [0.3, 0.7]])
    scores = np.array([0.0, 5.0, 0.0, 0.0])
    mix = cal.answer_mix(probs, scores, unsure_below=0.6, novel_above=1.0, class_names=["a", "b"])
    assert mix == {
        "images": 4,
        "unsure": 0.25,
        "none_of_these": 0.25,
        "categories": {"a": 0.5, "b": 0.5},
    }
