"""Conformal prediction sets, and how well they cover (Vovk et al. 2005,
"Algorithmic learning in a random world"; Papadopoulos et al. 2002,
split conformal; Angelopoulos & Bates 2021, "A gentle introduction").

A nonconformity score says how unusual label j is for input x. On a
calibration set the score of each example's true label is recorded; the
p-value of label j for a test input is::

    p_j = (1 + #{i : a_i >= a_j}) / (n + 1)

and the prediction set at significance eps is ``{j : p_j > eps}``. When
calibration and test examples are exchangeable, the set holds the true
label with probability at least ``1 - eps`` (marginal coverage). With
``mondrian=True`` the calibration examples of class j alone score label j,
which gives the same guarantee within every class (Vovk et al. 2005,
section 4.5).

The p-value above is the textbook one; the DkNN's credibility keeps the
paper's ``#{a_i >= a_j} / n`` (see :mod:`dknn`), which can fall below it by
``1 / (n + 1)`` and so carries no guarantee at ``eps`` exactly.

Nonconformity scores (each (B, C), larger = stranger):

* DkNN (Papernot & McDaniel 2018): neighbours, over the chosen layers,
  whose label is not j: :func:`dknn_nonconformity`.
* LAC (Sadinle, Lei & Wasserman 2019): ``1 - softmax_j``.
* APS (Romano, Sesia & Candes 2020), without randomisation: the softmax
  mass of every label ranked at or above j.
"""
import numpy

import dknn

from errors import UserError

EPSILONS = (0.01, 0.05, 0.1, 0.2)


def check_epsilons(epsilons):
    """Significance levels, each strictly between 0 and 1."""
    eps = [float(e) for e in epsilons]
    bad = [e for e in eps if not 0 < e < 1]
    if bad or not eps:
        raise UserError('significance levels must lie strictly between 0 '
                        'and 1, got {}'.format(bad or 'none'))
    return eps


def dknn_nonconformity(counts, n_votes):
    """(B, C) neighbour label counts -> (B, C) votes against each label."""
    return n_votes - numpy.asarray(counts)


def lac_nonconformity(probs):
    """(B, C) probabilities -> (B, C) ``1 - p_j``."""
    return 1.0 - numpy.asarray(probs, numpy.float64)


def aps_nonconformity(probs):
    """(B, C) probabilities -> (B, C) total probability of the labels whose
    probability is at least p_j (j and its ties included), taken as 1 minus
    the mass strictly below p_j: the least likely label scores exactly 1,
    not 1 up to the rounding of a float32 softmax (on two classes, half
    the calibration scores sit there, and rounding would decide the
    quantile)."""
    probs = numpy.asarray(probs, numpy.float64)
    below = probs[:, None, :] < probs[:, :, None]              # (B, C, C)
    return 1.0 - (below * probs[:, None, :]).sum(axis=2)


def true_label_scores(nonconformity, labels):
    """(M, C) scores and (M,) labels -> (M,) score of each true label."""
    labels = numpy.asarray(labels, numpy.int64)
    return numpy.asarray(nonconformity)[numpy.arange(len(labels)), labels]


def p_values(nonconformity, calib_scores, calib_labels=None):
    """Split-conformal p-values.

    Args:
        nonconformity: (B, C) score of every label of every test input.
        calib_scores: (M,) score of each calibration example's true label.
        calib_labels: (M,) labels; given, label j is judged against the
            calibration examples of class j only (Mondrian).

    Returns:
        (B, C) float64 p-values in (0, 1].
    """
    a = numpy.asarray(nonconformity, numpy.float64)
    calib = numpy.asarray(calib_scores, numpy.float64)
    if calib_labels is None:
        return dknn.p_values(a, calib, smoothed=True)
    calib_labels = numpy.asarray(calib_labels)
    return numpy.stack([dknn.p_values(a[:, j], calib[calib_labels == j],
                                      smoothed=True)
                        for j in range(a.shape[1])], axis=1)


def prediction_sets(p, epsilon):
    """(B, C) p-values -> (B, C) bool: the labels with ``p_j > epsilon``."""
    return numpy.asarray(p) > epsilon


def set_summary(sets, labels):
    """Coverage and size of (B, C) bool prediction sets.

    Returns:
        dict: ``coverage`` (share holding the true label), ``mean_size``,
        ``singleton`` and ``empty`` (shares), and ``class_coverage`` (one
        value per class, None where the class has no example).
    """
    sets = numpy.asarray(sets, bool)
    labels = numpy.asarray(labels, numpy.int64)
    hit = sets[numpy.arange(len(labels)), labels]
    size = sets.sum(axis=1)
    return {'coverage': float(hit.mean()),
            'mean_size': float(size.mean()),
            'singleton': float((size == 1).mean()),
            'empty': float((size == 0).mean()),
            'class_coverage': [float(hit[labels == c].mean())
                               if (labels == c).any() else None
                               for c in range(sets.shape[1])]}


def coverage_table(scores, test_labels, calib_labels, epsilons=EPSILONS,
                   mondrian=False):
    """The coverage report of every nonconformity score.

    Args:
        scores: name -> ((B, C) test scores, (M, C) calibration scores).
        test_labels, calib_labels: (B,) and (M,) int labels.
        epsilons: significance levels.
        mondrian (bool): class-conditional calibration.

    Returns:
        dict: name -> {str(eps): :func:`set_summary`}.
    """
    out = {}
    for name, (test, calib) in scores.items():
        p = p_values(test, true_label_scores(calib, calib_labels),
                     calib_labels if mondrian else None)
        out[name] = {'{:g}'.format(e): set_summary(prediction_sets(p, e),
                                                   test_labels)
                     for e in epsilons}
    return out
