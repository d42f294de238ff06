"""Temperature scaling (Guo, Pleiss, Sun and Weinberger, 2017, "On
calibration of modern neural networks", ICML, section 4.2).

One scalar T divides the logits of a trained classifier; it is fitted on
held-out data to minimise the negative log-likelihood, changes confidences
and never the arg-max. :class:`TemperatureScaling` holds T (as
gpleiss/temperature_scaling's ``ModelWithTemperature`` does) and is what
every caller uses: ``scaling.py`` to fit and report, ``interpretations.py``
for the calibrated leave-one-out. A run's T is looked up in one place,
:meth:`toolkit.runs.Run.temperature_or_fit`. scipy's optimiser is imported
only when fitting.
"""
import numpy

from errors import UserError

from toolkit.metrics import nll, softmax

# Search range of T, relative to the largest spread of a logit row.
_T_RANGE = (1e-4, 1e4)
_LOG_T_TOL = 1e-7


class TemperatureScaling:
    """A classifier's logits divided by one temperature T.

    :meth:`fit` sets T from logits collected once on held-out data
    (:func:`fit_temperature`); :meth:`probs` applies it to logits.

    Args:
        temperature (float): T, positive and finite.
    """

    def __init__(self, temperature=1.0):
        _check_temperature(temperature)
        self.temperature = float(temperature)

    def fit(self, logits, labels):
        """Set T to the NLL minimum on held-out ``logits`` and ``labels``
        (see :func:`fit_temperature`); returns self."""
        self.temperature = fit_temperature(logits, labels)
        return self

    def probs(self, logits):
        """(N, C) probabilities ``softmax(logits / T)`` of (N, C) logits."""
        return softmax(numpy.asarray(logits, numpy.float64) /
                       self.temperature)


def _check_temperature(T):
    if not (numpy.isfinite(T) and T > 0):
        raise UserError('the temperature must be positive and finite, got '
                        '{!r}'.format(T))


def _check_logits(logits, labels):
    """Validate a calibration set: float64 (N, C) logits, int64 labels."""
    logits = numpy.asarray(logits, numpy.float64)
    labels = numpy.asarray(labels)
    if logits.ndim != 2 or labels.ndim != 1 or \
            len(logits) != len(labels):
        raise UserError(
            'temperature fit: expected (N, C) logits and (N,) labels, got '
            'shapes {} and {}'.format(logits.shape, labels.shape))
    if not len(labels):
        raise UserError(
            'temperature fit: no logits to fit on (N = 0)')
    if not numpy.issubdtype(labels.dtype, numpy.integer) or \
            labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise UserError(
            'temperature fit: labels must be ints in [0, {})'.format(
                logits.shape[1]))
    if not numpy.isfinite(logits).all():
        raise UserError(
            'temperature fit: {} of the {} logits are NaN or infinite'.format(
                int((~numpy.isfinite(logits)).sum()), logits.size))
    if len(numpy.unique(labels)) < 2:
        raise UserError(
            'temperature fit: every calibration label is {}; a single class '
            'says nothing about confidence. Use a larger --n-calib'.format(
                labels[0]))
    return logits, labels.astype(numpy.int64)


def _check_minimum_exists(z, labels):
    """Refuse logits whose NLL has no finite positive minimiser T."""
    if numpy.ptp(z, axis=1).max() == 0:
        raise UserError(
            'temperature fit: all logits of every example are equal, so no '
            'temperature changes the probabilities')
    true = z[numpy.arange(len(labels)), labels]
    # d NLL / d(1/T) at 1/T = 0 is mean(mean_c z - z_y): not negative means
    # NLL is lowest at T = infinity (or a negative T)
    if (z.mean(axis=1) - true).mean() >= 0:
        raise UserError(
            'temperature fit: the logits do no better than the uniform '
            'distribution on the calibration set (NLL falls as T grows '
            'without bound); is the model trained?')
    # ... and as 1/T grows it tends to mean(max_c z - z_y) >= 0, zero when
    # every label is an arg-max: then NLL keeps falling as T -> 0
    if (z.max(axis=1) == true).all():
        raise UserError(
            'temperature fit: the model classifies all {} calibration '
            'examples correctly, so NLL keeps falling as T -> 0 and no '
            'temperature minimises it. Use a larger --n-calib'.format(
                len(labels)))


def fit_temperature(logits, labels):
    """The temperature T that minimises the NLL of ``softmax(logits / T)``.

    NLL is convex in 1/T, so it has one minimum; it is found with bounded
    Brent search over log T (``scipy.optimize.minimize_scalar``). A finite
    positive minimum exists exactly when some example is misclassified and
    the logits beat the uniform distribution; otherwise, and if the search
    ends at its bound, a :class:`UserError` says why.

    Args:
        logits: an (N, C) float array, collected once from the
            calibration set (test mode).
        labels: an (N,) int array.

    Returns:
        float: T > 0.
    """
    z, labels = _check_logits(logits, labels)
    _check_minimum_exists(z, labels)
    spread = numpy.ptp(z, axis=1).max()
    import scipy.optimize  # only here: importing this module stays light
    lo, hi = numpy.log(spread * _T_RANGE[0]), numpy.log(spread * _T_RANGE[1])
    res = scipy.optimize.minimize_scalar(
        lambda log_t: nll(z, labels, numpy.exp(log_t)), bounds=(lo, hi),
        method='bounded', options={'xatol': _LOG_T_TOL, 'maxiter': 500})
    T = float(numpy.exp(res.x))
    if not res.success or not (numpy.isfinite(T) and T > 0):
        raise UserError(
            'temperature fit failed ({}); got T = {!r}'.format(res.message, T))
    if min(res.x - lo, hi - res.x) < 1e3 * _LOG_T_TOL:
        raise UserError(
            'temperature fit: the minimum lies at the edge of the search '
            'range (T = {:.3g}); the calibration set is too small or too '
            'easy to fix a temperature'.format(T))
    return T
