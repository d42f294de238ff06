"""Find likely label errors in a run's training set with its DkNN.

Each training example is scored as the DkNN scores a test input, with
itself left out: its k nearest *other* training examples in each chosen
layer vote, an exact copy of its text (the same token ids) counts as itself
and never votes, and

* its nonconformity for its given label is the number of votes against
  that label (k x layers minus the votes for it), as in
  :meth:`dknn.DkNN.calibrate`;
* its score is the conformal p-value of that nonconformity against the
  calibration set (:func:`dknn.p_values`, unsmoothed, as the DkNN answers a
  test input): the share of calibration examples that look at least as
  strange under their own true label;
* the suggested label is the DkNN's prediction from the same votes.

The most suspicious come first: p-value ascending, then the share of votes
for the given label ascending, then the index. A low p-value says the
neighbours disagree with the label more than they disagree with almost any
calibration example's label: a mislabel, an ambiguous text, or a region the
model has not learnt.

**The flagged list** does not rest on the calibration set, which is drawn
from the same file and is as noisy as the rest: how many examples to flag is
estimated from the leave-self-out votes themselves, as cleanlab's confident
joint estimates it from predicted probabilities (Northcutt, Jiang & Chuang,
2021, "Confident learning"): per label j, a threshold t_j, the mean share
of votes for j among the examples labelled j; an example labelled i counts
as confidently j when its share for j reaches t_j (the largest such j);
the counts, each row rescaled to its label's size, off the diagonal, are
the estimated label issues of each label, and that many of each label's
most suspicious examples are flagged (:func:`confident_issues`).

Usage::

    found = audit.audit_run(run, dknn.Settings(k=75, layers='last'))
    record = audit.payload(run, found)     # train_audit.json, without files
"""
import time
from dataclasses import dataclass

import numpy
import dknn
import nlp_utils

ALPHA = 0.05       # the p-value below which an example is counted as flagged
N_SHOWN = 5        # neighbours shown per example (last chosen layer)


@dataclass
class Audit:
    """The audit of N training examples (C classes).

    Attributes:
        order: (N,) training indices, most suspicious first.
        p: (N,) p-value of each example's given label.
        share: (N,) share of the votes that went to the given label.
        labels: (N,) given labels.
        out: :class:`dknn.DkNNOutput` of the leave-self-out votes: (N, C)
            ``counts``, (N,) ``pred`` (the suggested labels); its
            ``neighbours`` hold each chosen layer's (N, k) indices and
            distances, nearest first.
        copies: (N,) training examples with the same token ids, itself
            included.
        layers (list): the chosen layers; k (int): neighbours per layer.
        seconds (dict): build, calibrate, audit.
        flagged: (N,) the flagged list (:func:`confident_issues`).
        joint: (C, C) the calibrated confident joint.
    """
    order: numpy.ndarray
    p: numpy.ndarray
    share: numpy.ndarray
    labels: numpy.ndarray
    out: dknn.DkNNOutput
    copies: numpy.ndarray
    layers: list
    k: int
    seconds: dict
    flagged: numpy.ndarray = None
    joint: numpy.ndarray = None


def duplicate_groups(examples):
    """(N,) int64 group of each array example: equal token ids in every
    part (the sentence, or premise and hypothesis) give equal groups."""
    seen, group = {}, numpy.empty(len(examples), numpy.int64)
    for i, (x, _) in enumerate(examples):
        key = tuple(numpy.asarray(part, numpy.int32).tobytes()
                    for part in nlp_utils.parts(x))
        group[i] = seen.setdefault(key, len(seen))
    return group


def confident_issues(shares, labels, order):
    """The flagged examples: the confident joint's estimate of each label's
    issues (see the module docstring), that many of its most suspicious.

    Args:
        shares: (N, C) share of the votes for each label.
        labels: (N,) given labels.
        order: (N,) suspicion order (:func:`suspicion_order`).

    Returns:
        tuple: (N,) bool flagged, and the (C, C) calibrated confident joint
        (given label x confident label).
    """
    shares = numpy.asarray(shares, numpy.float64)
    n, c = shares.shape
    thresholds = numpy.array([shares[labels == j, j].mean()
                              if (labels == j).any() else 1.0
                              for j in range(c)])                     # (C,)
    above = shares >= thresholds - 1e-12                             # (N, C)
    masked = numpy.where(above, shares, -1.0)
    confident = masked.argmax(axis=1)
    has = above.any(axis=1)
    joint = numpy.zeros((c, c))
    numpy.add.at(joint, (labels[has], confident[has]), 1)
    sizes = numpy.bincount(labels, minlength=c)
    rows = joint.sum(axis=1, keepdims=True)
    joint = numpy.where(rows > 0, joint / numpy.maximum(rows, 1) *
                        sizes[:, None], 0)                          # (C, C)
    flagged = numpy.zeros(n, bool)
    rank = numpy.empty(n, numpy.int64)
    rank[order] = numpy.arange(n)
    for i in range(c):
        n_issues = int(round(joint[i].sum() - joint[i, i]))
        members = numpy.flatnonzero(labels == i)
        worst = members[numpy.argsort(rank[members], kind='stable')]
        flagged[worst[:n_issues]] = True
    return flagged, joint


def suspicion_order(p, share):
    """(N,) indices: p-value ascending, then share of votes for the given
    label ascending, then index."""
    return numpy.lexsort((numpy.arange(len(p)), share, p))


def audit_activations(head, train, group):
    """Audit a training set with a fitted, calibrated DkNN whose index
    holds exactly these examples (:meth:`dknn.DkNN.search_excluding`).

    Args:
        head (dknn.DkNN): fitted on ``train``, calibrated.
        train (nets.Activations): the training set's forward pass.
        group: (N,) from :func:`duplicate_groups`.

    Returns:
        Audit (``seconds`` holds ``audit`` only).
    """
    start = time.time()
    labels = numpy.asarray(train.labels, numpy.int64)
    found = head.search_excluding(train.layers, numpy.arange(len(labels)),
                                  group)
    out = head.answer(found)
    p = head.label_p_values(out, labels)
    shares = found.counts / float(head.n_votes)                      # (N, C)
    share = shares[numpy.arange(len(labels)), labels]
    order = suspicion_order(p, share)
    flagged, joint = confident_issues(shares, labels, order)
    return Audit(order, p, share, labels, out, numpy.bincount(group)[group],
                 list(head.layers), head.k, {'audit': time.time() - start},
                 flagged, joint)


def audit_run(run, settings=dknn.Settings(), out=None):
    """Audit a run's training split (the pool without the calibration
    examples) with the DkNN ``settings`` name.

    Args:
        run (toolkit.runs.Run): a trained run with a calibration set.
        out (fileio.Outputs): where to save the forward passes (None: read
            the cache if there is one, else keep them in memory).

    Returns:
        Audit: ``seconds`` holds build, calibrate and audit.
    """
    dknn.require_calibration(len(run.examples('calib')))
    head, seconds = dknn.for_run(run, settings, out=out)
    found = audit_activations(head, run.forward('train', settings.batchsize,
                                                out),
                              duplicate_groups(run.examples('train')))
    found.seconds = dict(seconds, **found.seconds)
    return found


# ---------------------------------------------------------------- records

def example_text(fields, char_based):
    """An example's text fields: tokens joined by spaces (characters joined
    as they are for a character-level run)."""
    glue = '' if char_based else ' '
    return [glue.join(tokens) for tokens in fields]


def text_fields(fields, char_based):
    """``{'text': ...}`` or ``{'premise': ..., 'hypothesis': ...}``."""
    texts = example_text(fields, char_based)
    keys = ('premise', 'hypothesis') if len(texts) == 2 else ('text',)
    return dict(zip(keys, texts))


def entry(run, found, i):
    """The ``train_audit.json`` record of training example ``i``."""
    names = run.label_names
    fields, label = run.splits.raw['train'][i]
    origin = run.splits.origins.get('train')
    source, line = origin[i] if origin else (None, None)
    last = found.out.neighbours[found.layers[-1]]
    return dict({'index': int(i), 'source': source, 'line': line},
                **text_fields(fields, run.setup['char_based']),
                label=names[label], suggested=names[found.out.pred[i]],
                flagged=bool(found.flagged[i]),
                score=float(found.p[i]), share=float(found.share[i]),
                counts={n: int(c) for n, c in zip(names, found.out.counts[i])},
                copies=int(found.copies[i]),
                neighbours=[int(j) for j in last.indices[i, :N_SHOWN]])


def neighbour_records(run, found, i, n=N_SHOWN):
    """Up to ``n`` nearest training examples of example ``i`` in the last
    chosen layer: index, text fields, label name, distance."""
    nb = found.out.neighbours[found.layers[-1]]
    raw = run.splits.raw['train']
    return [dict({'index': int(j), 'label': run.label_names[raw[j][1]],
                  'distance': float(d)},
                 **text_fields(raw[j][0], run.setup['char_based']))
            for j, d in zip(nb.indices[i, :n], nb.distances[i, :n])]


def summary(found, label_names):
    """Counts for the completion record and the printed line."""
    differs = found.out.pred != found.labels
    return {'n_train': int(len(found.p)),
            'alpha': ALPHA, 'below_alpha': int((found.p < ALPHA).sum()),
            'flagged': int(found.flagged.sum()),
            'confident_joint': found.joint.round(1).tolist(),
            'suggested_differs': int(differs.sum()),
            'mean_score': float(found.p.mean()),
            'layers': found.layers, 'k_per_layer': found.k,
            'n_votes': found.k * len(found.layers),
            'duplicates': int((found.copies > 1).sum()),
            'flagged_by_label': {
                n: int((found.flagged & (found.labels == y)).sum())
                for y, n in enumerate(label_names)},
            'seconds': found.seconds}


def payload(run, found):
    """The ``train_audit.json`` content (without settings): ``entries``,
    every training example most suspicious first, and ``summary``."""
    return {'label_names': run.label_names,
            'summary': summary(found, run.label_names),
            'entries': [entry(run, found, i) for i in found.order]}


def page_records(run, found, top, metric='l2'):
    """The ``top`` most suspicious entries, each with its neighbours (the
    DkNN's votes, ``l2``) or its most relevant other training examples by
    ``metric``, for :func:`toolkit.render.audit_page`."""
    rows = found.order[:top]
    if metric == 'l2':
        return [dict(entry(run, found, i),
                     nearest=neighbour_records(run, found, i)) for i in rows]
    from toolkit import relevance
    train = run.forward('train')
    rel = relevance.Relevance(metric, relevance.train_inputs(train),
                              run.model.layer_names[-1], run.setup['seed'])
    group = duplicate_groups(run.examples('train'))
    queries = relevance.Inputs(
        {k: numpy.asarray(v)[rows] for k, v in train.layers.items()},
        numpy.asarray(train.logits)[rows], found.labels[rows])
    most = int(numpy.bincount(group).max())
    idx, score = rel.top(queries, min(N_SHOWN + most, len(group)))
    raw, out = run.splits.raw['train'], []
    for r, i in enumerate(rows):
        keep = [(j, v) for j, v in zip(idx[r], score[r])
                if group[j] != group[i]][:N_SHOWN]
        out.append(dict(entry(run, found, i), nearest=[dict(
            {'index': int(j), 'label': run.label_names[raw[j][1]],
             'relevance': float(v)},
            **text_fields(raw[j][0], run.setup['char_based']))
            for j, v in keep]))
    return out
