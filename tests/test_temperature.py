"""Temperature scaling: the fit recovers a known T, is the NLL minimum,
refuses sets without one; the wrapper divides the logits."""
import numpy
import pytest

from toolkit import metrics
from toolkit import temperature
from errors import UserError


def sample_labels(probs, rng):
    """One class per row of an (N, C) probability array."""
    return (rng.rand(len(probs), 1) > probs.cumsum(axis=1)).sum(axis=1)


@pytest.mark.parametrize('T', [0.5, 2., 3.])
def test_fit_recovers_the_temperature_that_generated_the_labels(T):
    rng = numpy.random.RandomState(int(T * 10))
    true_logits = rng.randn(100000, 3) * 2
    labels = sample_labels(metrics.softmax(true_logits), rng)
    # the model's logits are T times too large or small: dividing by T
    # gives back the distribution the labels were drawn from
    fitted = temperature.fit_temperature(true_logits * T, labels)
    assert fitted == pytest.approx(T, rel=0.02)


def test_fit_is_the_minimum_of_nll():
    rng = numpy.random.RandomState(1)
    logits = rng.randn(500, 4) * 3
    labels = rng.randint(0, 4, 500)
    labels[:250] = logits[:250].argmax(axis=1)
    T = temperature.fit_temperature(logits.astype(numpy.float32), labels)
    best = metrics.nll(logits, labels, T)
    for factor in (0.999, 1.001, 0.9, 1.1):
        assert metrics.nll(logits, labels, T * factor) > best
    # scaling never changes the predictions
    assert (metrics.softmax(logits / T).argmax(1) == logits.argmax(1)).all()


LOGITS = numpy.array([[2., 1., 0.], [0., 1., 3.], [1., 2., 0.], [0., 0., 1.]])


@pytest.mark.parametrize('logits, labels, match', [
    (numpy.zeros((0, 3)), numpy.zeros(0, int), 'no logits'),
    (LOGITS, numpy.array([1, 1, 1, 1]), 'every calibration label is 1'),
    (numpy.ones((4, 3)), numpy.array([0, 1, 2, 0]), 'all logits.*equal'),
    (numpy.where(numpy.eye(4, 3), numpy.nan, LOGITS), numpy.array(
        [0, 2, 2, 0]), '3 of the 12 logits are NaN or infinite'),
    (numpy.where(numpy.eye(4, 3), numpy.inf, LOGITS), numpy.array(
        [0, 2, 2, 0]), 'NaN or infinite'),
    (LOGITS, numpy.array([0, 2, 1, 3]), r'labels must be ints in \[0, 3\)'),
    (LOGITS, numpy.array([0, 2]), 'shapes'),
    # every example right: NLL falls as T -> 0
    (LOGITS, numpy.array([0, 2, 1, 2]), 'all 4 calibration examples'),
    # worse than uniform: the optimum would be T = infinity or T < 0
    (LOGITS, numpy.array([2, 0, 2, 0]), 'no better than the uniform'),
])
def test_fit_refuses_bad_calibration_sets(logits, labels, match):
    with pytest.raises(UserError, match=match):
        temperature.fit_temperature(logits, labels)


def test_temperature_scaling_divides_the_logits():
    logits = numpy.random.RandomState(0).randn(5, 3)
    scaled = temperature.TemperatureScaling(2.5)
    numpy.testing.assert_allclose(scaled.probs(logits),
                                  metrics.softmax(logits / 2.5), rtol=1e-6)
    for bad in (0., -1., float('nan'), float('inf')):
        with pytest.raises(UserError, match='positive and finite'):
            temperature.TemperatureScaling(bad)


def test_fit_sets_the_wrappers_temperature():
    rng = numpy.random.RandomState(5)
    true_logits = rng.randn(20000, 3) * 2
    labels = sample_labels(metrics.softmax(true_logits), rng)

    scaled = temperature.TemperatureScaling().fit(true_logits * 2.0, labels)
    assert scaled.temperature == pytest.approx(
        temperature.fit_temperature(true_logits * 2.0, labels), rel=1e-6)
    numpy.testing.assert_allclose(
        scaled.probs(true_logits * 2.0),
        metrics.softmax(true_logits * 2.0 / scaled.temperature), rtol=1e-6)
