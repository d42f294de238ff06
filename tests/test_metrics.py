"""Softmax, NLL, reliability bins, ECE and MCE against hand computations."""
import numpy
import pytest

from toolkit import metrics
from errors import UserError


def test_softmax_and_nll_agree_with_a_direct_computation():
    logits = numpy.array([[1., 2., 3.], [1000., 0., -1000.]])
    p = metrics.softmax(logits)
    numpy.testing.assert_allclose(p.sum(axis=1), 1)
    numpy.testing.assert_allclose(p[0], numpy.exp([1, 2, 3]) /
                                  numpy.exp([1, 2, 3]).sum())
    assert p[1, 0] == 1  # no overflow on large logits
    labels = numpy.array([2, 0])
    expected = -(numpy.log(p[0, 2]) + 0.) / 2
    assert metrics.nll(logits, labels) == pytest.approx(expected)
    assert metrics.nll(logits, labels, T=2.) == pytest.approx(
        -numpy.log(metrics.softmax(logits / 2.)[[0, 1], labels]).mean())


def test_ece_by_hand_on_six_points():
    conf = [1.0, 0.95, 0.70, 0.72, 0.45, 0.10]
    correct = [1, 0, 1, 1, 0, 0]
    # 15 bins of width 1/15, each (lower, upper]:
    #   bin 15 (14/15, 1]:        1.0, 0.95  mean conf .975, acc 1/2, gap .475
    #   bin 11 (10/15, 11/15]:    .70, .72   mean conf .71,  acc 1,   gap .29
    #   bin 7  (6/15, 7/15]:      .45        conf .45,       acc 0,   gap .45
    #   bin 2  (1/15, 2/15]:      .10        conf .10,       acc 0,   gap .10
    by_hand = (2 * .475 + 2 * .29 + 1 * .45 + 1 * .10) / 6
    assert metrics.expected_calibration_error(conf, correct) == \
        pytest.approx(by_hand)
    assert metrics.max_calibration_error(conf, correct) == pytest.approx(.475)
    bins = metrics.reliability_bins(conf, correct)
    full = numpy.flatnonzero(bins.count)
    assert full.tolist() == [1, 6, 10, 14]
    assert bins.count[full].tolist() == [1, 1, 2, 2]
    numpy.testing.assert_allclose(bins.confidence[full],
                                  [.10, .45, .71, .975])
    numpy.testing.assert_allclose(bins.accuracy[full], [0, 0, 1, .5])
    assert numpy.isnan(bins.accuracy[0])  # empty bins are NaN, not 0


def test_bins_include_their_upper_edge():
    upper = numpy.arange(1, 16) / 15.
    bins = metrics.reliability_bins(upper, numpy.ones(15))
    assert bins.count.tolist() == [1] * 15
    numpy.testing.assert_array_equal(bins.upper, upper)
    # a confidence of exactly 0 is counted, in the first bin
    assert metrics.reliability_bins([0.], [0]).count[0] == 1


def test_ece_near_zero_when_calibrated_and_large_when_not():
    rng = numpy.random.RandomState(0)
    conf = rng.uniform(0, 1, 100000)
    calibrated = rng.rand(len(conf)) < conf
    assert metrics.expected_calibration_error(conf, calibrated) < 0.01
    overconfident = rng.rand(len(conf)) < conf ** 2
    # E|c - c^2| = 1/2 - 1/3
    assert metrics.expected_calibration_error(conf, overconfident) == \
        pytest.approx(1 / 6, abs=0.01)


@pytest.mark.parametrize('conf, correct', [
    ([], []), ([0.5, 1.2], [1, 0]), ([numpy.nan], [1]), ([0.5], [1, 0])])
def test_ece_rejects_bad_scores(conf, correct):
    with pytest.raises(UserError):
        metrics.expected_calibration_error(conf, correct)
