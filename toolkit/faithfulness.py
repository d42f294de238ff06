"""Faithfulness: do a method's importances predict what the model does when
tokens are removed?

Every metric takes a yardstick ``score(inputs) -> (M, C) array`` (the
softmax probabilities, say, or the DkNN conformity of every label) and
measures the drop in the score of the label predicted on the full input.
Tokens are removed in the order of a method's importance (largest first).
Each metric scores all variants of all inputs in one call.
"""
import math

import numpy
from tqdm import tqdm

from nlp_utils import keep_only, remove


def ranking(att):
    """Explained-token indices by importance, largest first (stable)."""
    return [int(j) for j in numpy.argsort(-att.importance, kind='stable')]


def _drops(score, xs, variants_of):
    """Score every input and its variants in one call.

    Args:
        variants_of (callable): ``(x, order) -> list of edited inputs``.

    Returns:
        list: per input, an array of the drops ``s(x)[y] - s(v)[y]`` over
        its variants, with y the label predicted on x.
    """
    inputs, spans = [], []
    for x, order in xs:
        variants = variants_of(x, order)
        spans.append((len(inputs), len(variants)))
        inputs.append(x)
        inputs.extend(variants)
    scores = score(inputs)
    out = []
    for start, n in spans:
        pred = scores[start].argmax()
        out.append(scores[start, pred] - scores[start + 1:start + 1 + n, pred])
    return out


def _mean(values):
    return float(numpy.mean(values)) if len(values) else float('nan')


def deletion_curve(score, xs, atts, field='hypothesis', k_max=10):
    """Mean drop after removing the top k tokens, for k = 1..K, among inputs
    with at least k tokens (the "MoRF" curve of Samek et al. 2017,
    "Evaluating the visualization of what a deep neural network has
    learned", IEEE TNNLS).

    Returns:
        list of float: the curve, at most ``k_max`` points.
    """
    drops = _drops(score, [(x, ranking(a)) for x, a in zip(xs, atts)],
                   lambda x, order: [remove(x, order[:k], field) for k in
                                     range(1, min(k_max, len(order)) + 1)])
    return [_mean([d[k - 1] for d in drops if len(d) >= k])
            for k in range(1, k_max + 1) if any(len(d) >= k for d in drops)]


def aopc(curve):
    """Area over the perturbation curve: the mean of the deletion curve
    (Samek et al. 2017)."""
    return _mean(curve)


def _top(order, fraction):
    """The top ``ceil(fraction * n)`` tokens (at least one) of a ranking."""
    return order[:max(1, int(math.ceil(fraction * len(order))))]


def comprehensiveness(score, xs, atts, fraction, field='hypothesis'):
    """Mean drop when the top ``fraction`` of tokens is removed (ERASER,
    DeYoung et al. 2020, "ERASER: A benchmark to evaluate rationalized NLP
    models", ACL). Higher is better."""
    drops = _drops(score, [(x, ranking(a)) for x, a in zip(xs, atts)
                           if len(a.importance)],
                   lambda x, order: [remove(x, _top(order, fraction), field)])
    return _mean([d[0] for d in drops])


def sufficiency(score, xs, atts, fraction, field='hypothesis'):
    """Mean drop when only the top ``fraction`` of tokens is kept (ERASER,
    DeYoung et al. 2020). Lower is better."""
    drops = _drops(score, [(x, ranking(a)) for x, a in zip(xs, atts)
                           if len(a.importance)],
                   lambda x, order: [keep_only(x, _top(order, fraction),
                                               field)])
    return _mean([d[0] for d in drops])


def entropy(atts):
    """Mean entropy of the normalised |importance| of each input, divided by
    log n (0: one token carries everything; 1: uniform)."""
    values = []
    for att in atts:
        a = numpy.abs(att.importance.astype(numpy.float64))
        if len(a) > 1 and a.sum() > 0:
            p = a[a > 0] / a.sum()
            values.append(float(-(p * numpy.log(p)).sum() / math.log(len(a))))
    return _mean(values)


def zero_share(atts, tol=1e-7):
    """Share of tokens whose |importance| is at most ``tol`` (exactly 0 for
    the default: the saturation the authors' blog describes)."""
    flags = [v for att in atts for v in numpy.abs(att.importance) <= tol]
    return _mean(flags)


def kendall_tau(atts, reference):
    """Mean Kendall tau-b, over inputs of at least two tokens, between each
    input's importances and a reference ranking of the same tokens (with
    the confidence leave-one-out as reference: ferret's ``taucorr_loo``,
    Attanasio et al. 2023, "ferret: a framework for benchmarking
    explainers on transformers", EACL demos). An input where either ranking
    is constant gives no tau and is skipped."""
    from scipy.stats import kendalltau
    taus = []
    for a, r in zip(atts, reference):
        if len(a.importance) > 1:
            tau = kendalltau(a.importance, r.importance).statistic
            if numpy.isfinite(tau):
                taus.append(tau)
    return _mean(taus)


def summary(score, xs, atts, field='hypothesis', k_max=10,
            fractions=(0.1, 0.2, 0.5)):
    """Every metric above for one method, as a dict (see each function)."""
    curve = deletion_curve(score, xs, atts, field, k_max)
    return {'n_examples': len(xs), 'aopc': aopc(curve),
            'deletion_curve': curve,
            'comprehensiveness': {str(f): comprehensiveness(
                score, xs, atts, f, field) for f in fractions},
            'sufficiency': {str(f): sufficiency(score, xs, atts, f, field)
                            for f in fractions},
            'mean_length': _mean([len(a.importance) for a in atts]),
            'entropy': entropy(atts), 'zero_share': zero_share(atts),
            'below_0.01_share': zero_share(atts, 0.01)}


def by_method(score, xs, records, methods, field='hypothesis'):
    """:func:`summary` of each method, from records holding each input's
    attributions (``record['results'][method]``)."""
    return {m: summary(score, xs, [r['results'][m] for r in records], field)
            for m in tqdm(methods, desc='faithfulness', leave=False)}
