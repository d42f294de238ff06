"""Rankers of suspicious training labels, and how well they find flips.

Each ranker returns a :class:`Ranking` of the training split of a trained
run (a noisy-label run of bench/noisy_data.py):

* :func:`dknn_ranker`: the DkNN audit (``toolkit.audit``), timed from a
  cold start: forward passes, index, leave-self-out search;
* :func:`loss_ranker`: the trained model's own cross-entropy on each
  training example's given label;
* :func:`logit_knn_ranker`: kNN in the logit space (Bahri, Jiang & Gupta
  2020, "Deep k-NN for noisy labels"): the share of an example's k nearest
  other training examples, by logits, whose label disagrees with its own;
* :func:`cleanlab_ranker`: cleanlab's ``find_label_issues`` and its
  self-confidence rank score on out-of-sample probabilities from K-fold
  cross-validation of the same classifier and recipe (the K trainings are
  timed).
"""
import os
import time
from dataclasses import dataclass

import numpy

from report import ROOT  # NOQA (sets sys.path)
import dknn  # NOQA
import nets  # NOQA
import nlp_utils  # NOQA
from toolkit import audit  # NOQA
from toolkit import metrics  # NOQA
from toolkit import runs  # NOQA


@dataclass
class Ranking:
    """A ranker's answer for N training examples.

    Attributes:
        suspicion: (N,) higher is more suspicious; equal values are ties.
        order: (N,) indices, most suspicious first (ties: lower index).
        seconds (float): wall time of the ranker.
        flagged: (N,) bool, the ranker's own verdict where it has one
            (cleanlab's issues; the audit's p < 0.05), else None.
    """
    suspicion: numpy.ndarray
    order: numpy.ndarray
    seconds: float
    flagged: numpy.ndarray = None


def order_of(suspicion):
    """(N,) most suspicious first, ties by lower index."""
    suspicion = numpy.asarray(suspicion)
    return numpy.lexsort((numpy.arange(len(suspicion)), -suspicion))


def dense_rank(order, *keys):
    """(N,) 0 for the first group of equal ``keys`` along ``order``, 1 for
    the next ...: a suspicion (negated) whose ties are the keys' ties."""
    k = numpy.stack([numpy.asarray(x)[order] for x in keys], axis=1)
    new = numpy.r_[True, (k[1:] != k[:-1]).any(axis=1)]
    rank = numpy.empty(len(order), numpy.int64)
    rank[order] = numpy.cumsum(new) - 1
    return rank


def dknn_ranker(setup_path, settings, run=None):
    """The DkNN audit with ``settings`` (a cold start unless ``run`` is
    given, whose forward passes are then reused)."""
    start = time.time()
    run = run or runs.load(setup_path, cached=False)
    found = audit.audit_run(run, settings)
    seconds = time.time() - start
    rank = dense_rank(found.order, found.p, found.share)
    return Ranking(-rank.astype(float), found.order, seconds,
                   found.p < audit.ALPHA)


def train_logits(run):
    """(N, C) logits and (N,) labels of the run's training split."""
    acts = run.forward('train')
    return numpy.asarray(acts.logits), numpy.asarray(acts.labels)


def loss_ranker(setup_path):
    """Cross-entropy of each training example's given label under the
    trained model."""
    start = time.time()
    logits, labels = train_logits(runs.load(setup_path, cached=False))
    probs = metrics.softmax(logits)
    loss = -numpy.log(numpy.maximum(probs[numpy.arange(len(labels)),
                                          labels], 1e-30))
    return Ranking(loss, order_of(loss), time.time() - start)


def logit_neighbours(run, k):
    """(N, k) nearest other training examples by logits (copies of the
    same text left out, as in the audit) and the (N,) labels."""
    logits, labels = train_logits(run)
    points = numpy.ascontiguousarray(logits, numpy.float32)
    head = dknn.DkNN(_Logits(), dknn.Settings(k=k, backend='brute'))
    n = len(points)
    head.fit(nets.Activations(points, {'logits': points},
                              numpy.zeros(n, numpy.int32)))
    found = head.search_excluding({'logits': points}, numpy.arange(n),
                                  audit.duplicate_groups(
                                      run.examples('train')))
    return found.neighbours['logits'].indices, labels


class _Logits:
    """The logits as the one layer of a DkNN of one label: its search,
    leaving each example and its copies out."""
    layer_names = ['logits']
    n_class = 1


def logit_knn_scores(idx, labels, k):
    """(N,) share of the first k neighbours disagreeing with the label."""
    return (labels[idx[:, :k]] != labels[:, None]).mean(axis=1)


def logit_knn_ranker(setup_path, k):
    """kNN on the logits (Bahri et al. 2020), timed from a cold start."""
    start = time.time()
    idx, labels = logit_neighbours(runs.load(setup_path, cached=False), k)
    score = logit_knn_scores(idx, labels, k)
    return Ranking(score, order_of(score), time.time() - start)


# --------------------------------------------------------------- cleanlab

def fold_parts(parts, held_out):
    """Training parts without the ``held_out`` positions and without a
    calibration set (a cross-validation fold)."""
    out = set(held_out.tolist())
    return dict(parts, calib=[], train=[e for i, e in enumerate(
        parts['train']) if i not in out])


def out_of_fold_probs(setup_path, examples):
    """(M, C) softmax probabilities of a fold's model on raw examples."""
    run = runs.load(setup_path)
    arrays = nlp_utils.transform_to_array(examples, run.vocab)
    acts = nets.predict_dataset(run.model, arrays, run.device)
    return metrics.softmax(numpy.asarray(acts.logits))


def cross_val_probs(parts, names, labels, train_fold, n_folds, seed):
    """Out-of-sample (N, C) probabilities by stratified K-fold.

    Args:
        train_fold: ``(fold number, parts) -> args.json path`` trains one
            fold's model with the recipe.
    """
    from sklearn.model_selection import StratifiedKFold
    probs = numpy.zeros((len(labels), len(names)))
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    for f, (_, held) in enumerate(folds.split(numpy.zeros(len(labels)),
                                              labels)):
        setup = train_fold(f, fold_parts(parts, held))
        probs[held] = out_of_fold_probs(
            setup, [parts['train'][i] for i in held])
    return probs


def cleanlab_ranker(parts, names, train_fold, n_folds=5, seed=0):
    """cleanlab on cross-validated probabilities: (Ranking of the
    self-confidence score, with find_label_issues as ``flagged``)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    start = time.time()
    labels = numpy.array([y for _, y in parts['train']])
    probs = cross_val_probs(parts, names, labels, train_fold, n_folds, seed)
    issues = find_label_issues(labels, probs, n_jobs=1)
    quality = get_label_quality_scores(labels, probs,
                                       method='self_confidence')
    suspicion = 1.0 - quality
    return Ranking(suspicion, order_of(suspicion), time.time() - start,
                   issues), probs


# ------------------------------------------------------------- measures

def detection(flipped, ranking):
    """AUROC, AUPRC and precision at n = number flipped (= recall at n) of
    a ranking; precision and recall of its own verdict where it has one.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score
    flipped = numpy.asarray(flipped, bool)
    n = int(flipped.sum())
    out = {'auroc': float(roc_auc_score(flipped, ranking.suspicion)),
           'auprc': float(average_precision_score(flipped,
                                                  ranking.suspicion)),
           'p_at_n': float(flipped[ranking.order[:n]].mean()),
           'seconds': ranking.seconds}
    if ranking.flagged is not None:
        hit = int((ranking.flagged & flipped).sum())
        out.update(own_count=int(ranking.flagged.sum()),
                   own_precision=hit / max(int(ranking.flagged.sum()), 1),
                   own_recall=hit / max(n, 1))
    return out


def save(path, ranking):
    """Keep a ranking beside the results (``.npz``)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arrays = {'suspicion': ranking.suspicion, 'order': ranking.order,
              'seconds': numpy.array(ranking.seconds)}
    if ranking.flagged is not None:
        arrays['flagged'] = ranking.flagged
    numpy.savez(path, **arrays)


def load(path):
    with numpy.load(path, allow_pickle=False) as a:
        return Ranking(a['suspicion'], a['order'], float(a['seconds']),
                       a['flagged'] if 'flagged' in a.files else None)
