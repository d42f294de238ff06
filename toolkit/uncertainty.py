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

import re
import tarfile

import numpy

import dknn
import nets
import nlp_utils
import search
import text_datasets

from errors import UserError

from toolkit import conformal
from toolkit import metrics
from toolkit import snli_standin
from toolkit import user_data

SCORES = ('softmax', 'scaled', 'max_logit', 'conformity', 'conformal',
          'graded', 'graded-conformal', 'knn_distance')
DKNN_SCORES = dknn.SCORINGS
COVERAGES = (0.5, 0.8, 0.9)   # selective risk reported at these coverages


def answers(head, acts):
    """Every scoring rule's DkNN outputs for activations, from one search.
    """
    found = head.search(getattr(acts, 'layers', acts))
    return {s: head.with_scoring(s).answer(found) for s in dknn.SCORINGS}


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
        offset, comm = head.shard
        unit = search.BACKENDS[search.DEFAULT](_unit(head.train_points[layer]))
        self.index = unit if comm is None else search.ShardedIndex(
            unit, offset, comm)
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
            **{rule: outs[rule].credibility.astype('d')
               for rule in dknn.SCORINGS},
            'knn_distance': distance(acts.layers).astype('d')}


# ------------------------------------------------------ prediction sets

def conformal_sets(run, head, epsilons=conformal.EPSILONS, mondrian=False):
    """Coverage and size of conformal prediction sets on the test set, from
    the DkNN's votes, from its graded rule's distance margins and, as
    baselines, from the softmax (LAC, APS), all calibrated on the run's
    calibration set.

    Returns:
        dict: ``table`` (score -> eps -> :func:`conformal.set_summary`),
        ``n_calib``, ``mondrian``, ``epsilons``.
    """
    calib, test = run.forward('calib'), run.forward('test')
    dknn.require_calibration(len(calib.labels))
    found = {name: head.search(a.layers)
             for name, a in (('test', test), ('calib', calib))}
    probs = {name: metrics.softmax(a.logits)
             for name, a in (('test', test), ('calib', calib))}
    scores = {'dknn': tuple(conformal.dknn_nonconformity(
        found[n].counts, head.n_votes) for n in ('test', 'calib')),
        'dknn_graded': tuple(dknn.margins(found[n].distances)
                             for n in ('test', 'calib'))}
    for name, f in (('softmax_lac', conformal.lac_nonconformity),
                    ('softmax_aps', conformal.aps_nonconformity)):
        scores[name] = (f(probs['test']), f(probs['calib']))
    table = conformal.coverage_table(scores, test.labels, calib.labels,
                                     epsilons, mondrian)
    return {'table': table, 'n_calib': len(calib.labels),
            'mondrian': mondrian, 'epsilons': list(epsilons)}


# --------------------------------------------------- out-of-distribution

OOD_EXTRA = ('imdb-sentences',)


def imdb_sentences(data_dir=None, char_based=False, min_words=4):
    """Sentences cut from the IMDB test reviews (HTML breaks removed), a
    near-domain shift for a sentence-level sentiment model."""
    path = text_datasets.locate(['aclImdb', 'aclImdb_v1.tar.gz',
                                 'aclImdb_v1_train_test.tar.gz'],
                                text_datasets.URL_IMDB, data_dir)
    out = []
    try:
        for _, text in sorted(text_datasets.imdb_members(path, 'test')):
            text = re.sub(r'<br\s*/?>', ' ', text)
            for sentence in re.split(r'(?<=[.!?])\s+', text):
                sentence = nlp_utils.normalize_text(sentence)
                if len(sentence.split()) >= min_words:
                    out.append((nlp_utils.split_text(sentence, char_based),))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise UserError('{}: cannot read the IMDB archive ({}).'.format(
            path, type(e).__name__)) from None
    return out


def ood_inputs(name, data_dir=None, char_based=False, pair=False,
               limit=2000, seed=0, max_tokens=None):
    """The test inputs of data set ``name``, labels dropped, to feed a model
    trained on another task as out-of-distribution inputs. A sentence model
    gets a pair data set's hypotheses; a pair model accepts pairs only.

    Args:
        name (str): a built-in name, ``imdb-sentences``, or the path of a
            user's data (its test split: the test file, or the held-out
            tenth).
        limit (int): at most this many, drawn with ``seed`` (0: all).
        max_tokens (int): the most tokens of one input (see
            :func:`get_dataset`).

    Returns:
        list of token-field tuples: ``(tokens,)`` or ``(premise,
        hypothesis)``.
    """
    raw = None
    if name in text_datasets.DATASETS or name in OOD_EXTRA:
        source_pair = name in text_datasets.DATASETS and \
            text_datasets.DATASETS[name].pair
    elif user_data.is_path(name):
        raw = user_data.load(name, char_based)
        source_pair = raw.pair
    else:
        raise UserError('unknown out-of-distribution data set; choose one of '
                        '{}, or give the path of your own data'.format(
                            ', '.join(list(text_datasets.DATASETS) +
                                      list(OOD_EXTRA))))
    if pair and not source_pair:
        raise UserError('{} holds single sentences, but this model reads '
                        'premise-hypothesis pairs; choose a pair data set '
                        '(snli)'.format(name))
    if name.startswith('snli'):
        snli_standin.prepare(data_dir)
    if name == 'imdb-sentences':
        inputs = imdb_sentences(data_dir, char_based)
    else:
        raw = raw or text_datasets.load_raw(name, data_dir, char_based)
        inputs = [fields for fields, _ in raw.test]
        if source_pair and not pair:
            inputs = [fields[1:] for fields in inputs]   # the hypothesis
    limit_tokens = nlp_utils.max_tokens(max_tokens)
    kept = [x for x in inputs if max(len(f) for f in x) <= limit_tokens]
    if len(kept) < len(inputs):
        print('note: {}: left out {} of {} inputs longer than the {}-token '
              'limit (raise it with ${})'.format(
                  name, len(inputs) - len(kept), len(inputs), limit_tokens,
                  nlp_utils.MAX_TOKENS_ENV))
    inputs = kept
    if limit and len(inputs) > limit:
        keep = numpy.sort(numpy.random.RandomState(seed).permutation(
            len(inputs))[:limit])
        inputs = [inputs[i] for i in keep]
    return inputs


def ood_activations(run, name, limit, batchsize=256):
    """The forward pass of up to ``limit`` test inputs of data set
    ``name``, read with the run's vocabulary (labels unused)."""
    s = run.setup
    inputs = ood_inputs(
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
