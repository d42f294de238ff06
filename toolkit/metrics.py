"""Calibration and accuracy metrics over arrays of scores.

Softmax, negative log-likelihood, reliability bins, expected and maximum
calibration error. Pure NumPy; every caller (DkNN, temperature scaling,
interpretations, the bench) takes them from here.
"""
import collections

import numpy

from errors import UserError

N_BINS = 15  # Guo et al. (2017)


def softmax(logits):
    """Row-wise softmax (Bridle, 1990, "Probabilistic interpretation of
    feedforward classification network outputs"), shifted by the row
    maximum so large logits do not overflow.

    Args:
        logits: an (N, C) float array.

    Returns:
        numpy.ndarray: (N, C) float64 probabilities.
    """
    z = numpy.asarray(logits, numpy.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = numpy.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))


def nll(logits, labels, T=1.0):
    """Mean negative log-likelihood of ``softmax(logits / T)``: the proper
    scoring rule temperature scaling minimises (Guo et al., 2017, section 3;
    Quinonero-Candela et al., 2006, "Evaluating predictive uncertainty
    challenge").

    Args:
        logits: an (N, C) float array.
        labels: an (N,) int array of classes in ``[0, C)``.
        T (float): temperature, positive.

    Returns:
        float: the mean NLL in nats.
    """
    z = numpy.asarray(logits, numpy.float64) / T
    labels = numpy.asarray(labels, numpy.int64)
    return float(-_log_softmax(z)[numpy.arange(len(labels)), labels].mean())


ReliabilityBins = collections.namedtuple(
    'ReliabilityBins', ['lower', 'upper', 'count', 'confidence', 'accuracy'])
ReliabilityBins.__doc__ = """Per-bin statistics, each an (n_bins,) array.

``lower`` and ``upper`` are a bin's edges (the bin is ``(lower, upper]``),
``count`` its number of examples, ``confidence`` and ``accuracy`` their mean
confidence and share correct (NaN in an empty bin)."""


def _check_scores(confidences, correct, n_bins):
    confidences = numpy.asarray(confidences, numpy.float64).ravel()
    correct = numpy.asarray(correct).ravel()
    if len(confidences) != len(correct):
        raise UserError(
            'calibration error: {} confidences but {} correctness values'
            .format(len(confidences), len(correct)))
    if not len(confidences):
        raise UserError('calibration error of an empty set')
    if not numpy.isfinite(confidences).all() or \
            confidences.min() < 0 or confidences.max() > 1:
        raise UserError(
            'calibration error: confidences must be finite and in [0, 1]')
    if int(n_bins) < 1:
        raise UserError('the number of bins must be at least 1')
    return confidences, correct.astype(numpy.float64), int(n_bins)


def reliability_bins(confidences, correct, n_bins=N_BINS):
    """Bin predictions by confidence into ``n_bins`` equal-width bins: the
    reliability diagram (DeGroot and Fienberg, 1983, "The comparison and
    evaluation of forecasters"; Niculescu-Mizil and Caruana, 2005).

    Bin m is ``((m - 1) / M, m / M]`` as in Guo et al. (2017); a confidence
    of exactly 0 goes into the first bin.

    Args:
        confidences: an (N,) float array in [0, 1], e.g. max softmax.
        correct: an (N,) bool or 0/1 array, 1 where the prediction is right.
        n_bins (int): M.

    Returns:
        ReliabilityBins: (M,)-shaped ``lower``, ``upper``, ``count``,
        ``confidence``, ``accuracy``.
    """
    confidences, correct, n_bins = _check_scores(confidences, correct,
                                                 n_bins)
    edges = numpy.linspace(0., 1., n_bins + 1)
    # searchsorted 'left': edges[i - 1] < c <= edges[i] gives i
    index = numpy.clip(numpy.searchsorted(edges, confidences, 'left') - 1,
                       0, n_bins - 1)
    count = numpy.bincount(index, minlength=n_bins)
    with numpy.errstate(invalid='ignore', divide='ignore'):
        conf = numpy.bincount(index, confidences, n_bins) / count
        acc = numpy.bincount(index, correct, n_bins) / count
    return ReliabilityBins(edges[:-1], edges[1:], count, conf, acc)


def expected_calibration_error(confidences, correct, n_bins=N_BINS):
    """Expected calibration error (ECE) over equal-width confidence bins.

    ``ECE = sum_m |B_m| / N * |acc(B_m) - conf(B_m)|`` over M bins of width
    1/M on (0, 1] (Naeini, Cooper and Hauskrecht, 2015, "Obtaining well
    calibrated probabilities using Bayesian binning", AAAI; with M = 15 as
    in Guo, Pleiss, Sun and Weinberger, 2017, "On calibration of modern
    neural networks", ICML).

    Args:
        confidences: an (N,) float array in [0, 1].
        correct: an (N,) bool or 0/1 array.
        n_bins (int): M.

    Returns:
        float: ECE in [0, 1].
    """
    bins = reliability_bins(confidences, correct, n_bins)
    full = bins.count > 0
    gaps = numpy.abs(bins.accuracy[full] - bins.confidence[full])
    return float((bins.count[full] * gaps).sum() / bins.count.sum())


def max_calibration_error(confidences, correct, n_bins=N_BINS):
    """Maximum calibration error (MCE): the largest ``|acc - conf|`` of a
    non-empty bin (Naeini et al., 2015; Guo et al., 2017).

    Args and bins as in :func:`expected_calibration_error`.

    Returns:
        float: MCE in [0, 1].
    """
    bins = reliability_bins(confidences, correct, n_bins)
    full = bins.count > 0
    return float(numpy.abs(bins.accuracy[full] - bins.confidence[full]).max())


# ------------------------------------------ ranking: OOD and abstention

def _check_ranking(*arrays):
    out = [numpy.asarray(a, numpy.float64).ravel() for a in arrays]
    if any(not len(a) for a in out):
        raise UserError('a ranking metric needs examples on both sides')
    if any(not numpy.isfinite(a).all() for a in out):
        raise UserError('ranking scores must be finite')
    return out


def auroc(scores_in, scores_out):
    """Area under the ROC curve of telling in-distribution inputs (higher
    scores) from out-of-distribution ones: P(s_in > s_out) + P(=) / 2, the
    Mann-Whitney statistic (Hendrycks & Gimpel 2017, "A baseline for
    detecting misclassified and out-of-distribution examples").

    Args:
        scores_in: (N,) scores of in-distribution inputs.
        scores_out: (M,) scores of out-of-distribution inputs.

    Returns:
        float in [0, 1]; 0.5 is chance.
    """
    s_in, s_out = _check_ranking(scores_in, scores_out)
    both = numpy.concatenate([s_in, s_out])
    values, inverse, counts = numpy.unique(both, return_inverse=True,
                                           return_counts=True)
    start = numpy.cumsum(counts) - counts          # rank (0-based) of a tie
    ranks = start[inverse] + (counts[inverse] + 1) / 2.0     # mid-ranks
    n, m = len(s_in), len(s_out)
    return float((ranks[:n].sum() - n * (n + 1) / 2.0) / (n * m))


def fpr_at_tpr(scores_in, scores_out, tpr=0.95):
    """Share of out-of-distribution inputs accepted at the threshold that
    accepts ``tpr`` of the in-distribution ones (accept: score >= t).

    Returns:
        float in [0, 1]; lower is better.
    """
    s_in, s_out = _check_ranking(scores_in, scores_out)
    ranked = numpy.sort(s_in)[::-1]
    t = ranked[int(numpy.ceil(tpr * len(ranked))) - 1]
    return float((s_out >= t).mean())


def risk_coverage(confidence, correct):
    """Selective prediction: the error rate among the ``c`` most confident
    inputs, for c = 1 .. N (Geifman & El-Yaniv 2017, "Selective
    classification for deep neural networks"). Inputs of equal confidence
    are taken in a random order, in expectation: a cut through a tie counts
    the tie's mean error.

    Args:
        confidence: (N,) scores, higher = more trusted.
        correct: (N,) bool.

    Returns:
        tuple: (N,) coverage c / N and (N,) risk.
    """
    conf, = _check_ranking(confidence)
    wrong = 1.0 - numpy.asarray(correct, numpy.float64).ravel()
    if len(wrong) != len(conf):
        raise UserError('risk-coverage: {} scores but {} correctness values'
                        .format(len(conf), len(wrong)))
    values, inverse = numpy.unique(-conf, return_inverse=True)  # best first
    group_n = numpy.bincount(inverse)
    group_err = numpy.bincount(inverse, wrong) / group_n
    err = group_err[numpy.sort(inverse)]        # each position's tie mean
    c = numpy.arange(1, len(conf) + 1)
    return c / len(conf), numpy.cumsum(err) / c


def aurc(confidence, correct):
    """Area under the risk-coverage curve: the mean of the risk over
    coverages 1/N .. 1. Lower is better."""
    return float(risk_coverage(confidence, correct)[1].mean())
