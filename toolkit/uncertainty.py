"""What DkNN credibility is for (Papernot & McDaniel 2018): prediction sets
with guaranteed coverage, flagging out-of-distribution inputs, and
abstaining on the inputs least to be trusted.

Each function takes a trained :class:`runs.Run` and its fitted, calibrated
:class:`dknn.DkNN` and returns a JSON-ready dict, plus the arrays a figure
needs. Trust scores, higher = more trusted (:data:`SCORES`):

* ``softmax``: the largest softmax probability (Hendrycks & Gimpel 2017);
* ``scaled``: the same after temperature scaling (``temperature.json`` if
  scaling.py saved one, else T fitted here on the calibration set);
* ``max_logit``: the largest logit (Hendrycks et al. 2022);
* ``conformity`` and ``conformal``: the DkNN's credibility by each rule;
* ``knn_distance``: minus the distance from the L2-normalised input to its
  k-th nearest L2-normalised training example in the DkNN's last chosen
  layer (Sun et al. 2022, "Out-of-distribution detection with deep nearest
  neighbors"); exact search over a normalised copy of that layer.

For selective prediction each score ranks its own classifier's answers:
the DkNN's for the two credibilities, the softmax's for the others.
"""

import numpy

import dknn
import nets
import nlp_utils
import search
import text_datasets

from errors import UserError

from toolkit import conformal
from toolkit import metrics

SCORES = ('softmax', 'scaled', 'max_logit', 'conformity', 'conformal',
          'knn_distance')
DKNN_SCORES = ('conformity', 'conformal')
COVERAGES = (0.5, 0.8, 0.9)   # selective risk reported at these coverages


def answers(head, acts):
    """Both scoring rules' DkNN outputs for activations."""
    return {s: head.with_scoring(s).predict_activations(acts)
            for s in dknn.SCORINGS}


def _unit(x):
    """(N, D) rows scaled to length 1 (float32; a zero row stays 0)."""
    x = numpy.asarray(x, numpy.float32)
    return x / numpy.maximum(numpy.linalg.norm(x, axis=1, keepdims=True),
                             1e-12)


class KthDistance:
    """The kNN-OOD score of Sun et al. (2022) in one layer of a fitted
    DkNN: an exact index over its training points (this rank's shard under
    MPI), L2-normalised."""

    def __init__(self, head, layer):
        index = head.indices[layer]
        local = getattr(index, 'local', index)
        unit = search.BACKENDS[search.DEFAULT](_unit(local.points))
        self.index = unit if local is index else search.ShardedIndex(
            unit, index.offset, index.comm)
        self.layer, self.k = layer, head.k

    def __call__(self, layers):
        """(B,) minus the k-th neighbour distance of each input."""
        _, dist = self.index.query(_unit(layers[self.layer]), self.k)
        return -dist[:, -1]


def trust_scores(acts, outs, T, distance):
    """Every score of :data:`SCORES` for B inputs.

    Args:
        acts: :class:`nets.Activations` (logits (B, C)).
        outs: scoring rule -> :class:`dknn.DkNNOutput`.
        T (float): temperature.
        distance (KthDistance): the kNN-OOD score.

    Returns:
        dict: name -> (B,) float64 array.
    """
    logits = numpy.asarray(acts.logits, numpy.float64)
    return {'softmax': metrics.softmax(logits).max(axis=1),
            'scaled': metrics.softmax(logits / T).max(axis=1),
            'max_logit': logits.max(axis=1),
            'conformity': outs['conformity'].credibility.astype('d'),
            'conformal': outs['conformal'].credibility.astype('d'),
            'knn_distance': distance(acts.layers).astype('d')}


# ------------------------------------------------------ prediction sets

def conformal_sets(run, head, epsilons=conformal.EPSILONS, mondrian=False):
    """Coverage and size of conformal prediction sets on the test set, from
    the DkNN's votes and, as baselines, from the softmax (LAC, APS), all
    calibrated on the run's calibration set.

    Returns:
        dict: ``table`` (score -> eps -> :func:`conformal.set_summary`),
        ``n_calib``, ``mondrian``, ``epsilons``.
    """
    calib, test = run.forward('calib'), run.forward('test')
    dknn.require_calibration(len(calib.labels))
    vote = head.with_scoring('conformity')
    votes = {name: conformal.dknn_nonconformity(
        vote.predict_activations(a).counts, head.n_votes)
        for name, a in (('test', test), ('calib', calib))}
    probs = {name: metrics.softmax(a.logits)
             for name, a in (('test', test), ('calib', calib))}
    scores = {'dknn': (votes['test'], votes['calib'])}
    for name, f in (('softmax_lac', conformal.lac_nonconformity),
                    ('softmax_aps', conformal.aps_nonconformity)):
        scores[name] = (f(probs['test']), f(probs['calib']))
    table = conformal.coverage_table(scores, test.labels, calib.labels,
                                     epsilons, mondrian)
    return {'table': table, 'n_calib': len(calib.labels),
            'mondrian': mondrian, 'epsilons': list(epsilons)}


# --------------------------------------------------- out-of-distribution

def ood_activations(run, name, limit, batchsize=256):
    """The forward pass of up to ``limit`` test inputs of data set
    ``name``, read with the run's vocabulary (labels unused)."""
    s = run.setup
    inputs = text_datasets.ood_inputs(
        name, text_datasets.data_dir_from(run.data_dir), s['char_based'],
        run.pair, limit, s['seed'], run.max_tokens)
    if not inputs:
        raise UserError('{}: no inputs to score'.format(name))
    examples = [nlp_utils.to_example(fields, 0, run.vocab)
                for fields in inputs]
    return nets.predict_dataset(run.model, examples, run.device, batchsize,
                                '{}: forward pass'.format(name))


def ood(run, head, datasets, limit=2000, batchsize=256):
    """AUROC and FPR at 95% TPR of every trust score, telling the run's
    test set (in) from each data set of ``datasets`` (out).

    Returns:
        tuple: the dict (data set -> ``n`` and score -> ``auroc``,
        ``fpr_at_95_tpr``; plus ``temperature``), and the score arrays
        (``'in'`` and each data set -> score name -> (N,)) for the figure.
    """
    T, source = run.temperature_or_fit()
    distance = KthDistance(head, head.layers[-1])
    test = run.forward('test')
    arrays = {'in': trust_scores(test, answers(head, test), T, distance)}
    table = {'temperature': T, 'temperature_source': source,
             'distance_layer': distance.layer, 'n_in': len(test.labels)}
    for name in datasets:
        acts = ood_activations(run, name, limit, batchsize)
        arrays[name] = trust_scores(acts, answers(head, acts), T, distance)
        table[name] = {'n': len(acts.logits)}
        for score in SCORES:
            s_in, s_out = arrays['in'][score], arrays[name][score]
            table[name][score] = {'auroc': metrics.auroc(s_in, s_out),
                                  'fpr_at_95_tpr': metrics.fpr_at_tpr(
                                      s_in, s_out)}
    return table, arrays


# ------------------------------------------------- selective prediction

def selective(run, head, scores=None):
    """Risk-coverage of every trust score on the test set: the AURC and
    the risk at :data:`COVERAGES`.

    Args:
        scores: the test set's trust scores (name -> (N,)), when
            :func:`ood` has computed them already.

    Returns:
        tuple: the dict (score -> ``aurc``, ``risk_at``, ``accuracy``),
        and score -> (coverage, risk) arrays for the figure.
    """
    test = run.forward('test')
    outs = answers(head, test)
    if scores is None:
        T, _ = run.temperature_or_fit()
        scores = trust_scores(test, outs, T,
                              KthDistance(head, head.layers[-1]))
    softmax_pred = numpy.asarray(test.logits).argmax(axis=1)
    table, curves = {}, {}
    for name in SCORES:
        pred = outs[name].pred if name in DKNN_SCORES else softmax_pred
        correct = pred == test.labels
        cov, risk = metrics.risk_coverage(scores[name], correct)
        curves[name] = (cov, risk)
        at = numpy.searchsorted(cov, COVERAGES, side='left')
        table[name] = {'aurc': float(risk.mean()),
                       'accuracy': float(correct.mean()),
                       'risk_at': {'{:g}'.format(c): float(risk[i])
                                   for c, i in zip(COVERAGES, at)}}
    return table, curves
