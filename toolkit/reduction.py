"""Input reduction (Feng, Wallace, Grissom, Iyyer, Rodriguez and
Boyd-Graber, 2018, "Pathologies of neural models make interpretations
difficult", EMNLP), and the confidence measures it is read with.

Reduction removes the least important token, re-ranks the rest and goes on
while the model's prediction holds and one token is left (an empty input
is not an input: with no token at all the model answers from its biases
alone); a beam keeps several partial reductions
(the candidates of a step are the ``beam`` least important tokens of each
beam, the ``beam`` least important of those survive). Importance comes from
any registered interpretation method: ``grad``, as the authors' rawr.py,
or a leave-one-out. Every beam of every input is scored in one importance
call and one forward pass per step. Only the explained tokens are removed
(for SNLI the hypothesis; the premise is kept), never ``<eos>``.

The paper's argument: a reduced input is nonsense to a human, yet the
softmax stays confident, while DkNN credibility falls. :func:`measures`
gives every confidence the argument needs, on any inputs.
"""
import time
from dataclasses import dataclass, field

import numpy
from tqdm import tqdm

import dknn
import nlp_utils
from nlp_utils import remove, slots

from toolkit import metrics


@dataclass
class Reduced:
    """One input's reduction.

    Attributes:
        original, reduced: model inputs (``reduced`` keeps the prediction).
        removed (list of int): explained-token positions of ``original``
            that were removed, ascending.
        prediction (int): the model's prediction on both.
    """
    original: object
    reduced: object
    removed: list = field(default_factory=list)
    prediction: int = -1


@dataclass
class _Beam:
    x: object          # the partially reduced input
    kept: list         # positions (in the original) of its explained tokens


def _candidates(beams, atts, width, field_name):
    """The ``width`` least important single removals over all beams of one
    input, without duplicates: (input, kept positions)."""
    pool = []
    for b, att in zip(beams, atts):
        for j in numpy.argsort(att.importance, kind='stable')[:width]:
            pool.append((float(att.importance[j]), b, int(j)))
    pool.sort(key=lambda c: c[0])   # least important first; stable
    out, seen = [], set()
    for _, b, j in pool:
        kept = b.kept[:j] + b.kept[j + 1:]
        if tuple(kept) not in seen:
            seen.add(tuple(kept))
            out.append(_Beam(remove(b.x, [j], field_name), kept))
        if len(out) == width:
            break
    return out


def reduce(explainer, xs, method='grad', beam=5, log=None, desc=None,
           check=None):
    """Reduce every input of ``xs``, all at once.

    Args:
        explainer (interpretations.Explainer): the model (and run); its
            ``attributions(inputs, method)`` ranks the tokens and its
            ``predictions(inputs)`` gives the model's labels.
        method (str): the registered method that ranks the tokens.
        beam (int): partial reductions kept per input.
        log (list): if given, gets one dict per step: ``beams`` scored and
            ``candidates`` tried.
        check (callable): called before every step; it may raise to stop
            (the explorer's time limit).

    Returns:
        list of :class:`Reduced`, one per input.
    """
    fld = explainer.field
    nlp_utils.check_explainable(xs, explainer.max_tokens)
    preds = explainer.predictions(xs)
    out = [Reduced(x, x, [], int(p)) for x, p in zip(xs, preds)]
    state = {i: [_Beam(x, list(range(len(slots(x, fld)))))]
             for i, x in enumerate(xs) if len(slots(x, fld)) > 1}
    bar = tqdm(desc=desc, disable=desc is None, leave=False, unit='step')
    while state:
        if check is not None:
            check()
        order = sorted(state)
        flat = [b for i in order for b in state[i]]
        atts = explainer.attributions([b.x for b in flat], method)
        cands, start = {}, 0
        for i in order:
            n = len(state[i])
            cands[i] = _candidates(state[i], atts[start:start + n], beam, fld)
            start += n
        tried = [c for i in order for c in cands[i]]
        new = explainer.predictions([c.x for c in tried])
        start = 0
        for i in order:
            n = len(cands[i])
            alive = [c for c, p in zip(cands[i], new[start:start + n])
                     if p == out[i].prediction]
            start += n
            state.pop(i)
            if alive:   # one token shorter than every earlier survivor
                full = list(range(len(slots(xs[i], fld))))
                out[i].reduced = alive[0].x
                out[i].removed = [j for j in full if j not in alive[0].kept]
                if len(alive[0].kept) > 1:
                    state[i] = alive
        if log is not None:
            log.append({'beams': len(flat), 'candidates': len(tried)})
        bar.update()
    bar.close()
    return out


def measures(explainer, inputs):
    """Every confidence of the robustness argument, per input.

    Returns:
        dict: (M,) arrays ``softmax`` (max probability), ``calibrated``
        (max temperature-scaled probability), ``conformity`` (DkNN
        conformity credibility), ``conformal_credibility`` and
        ``conformal_confidence`` (DkNN conformal), ``graded_credibility``
        and ``graded_conformal_credibility`` (the graded rules), and
        ``dknn_pred`` (conformity's).
    """
    logits, layers = explainer.forward(inputs)
    head = explainer.head
    found = head.search(layers)   # one search answers every rule
    out = {rule: head.with_scoring(rule).answer(found)
           for rule in dknn.SCORINGS}
    return {'softmax': metrics.softmax(logits).max(axis=1),
            'calibrated': explainer.scaled.probs(logits).max(axis=1),
            'conformity': out['conformity'].credibility,
            'conformal_credibility': out['conformal'].credibility,
            'conformal_confidence': out['conformal'].confidence,
            'graded_credibility': out['graded'].credibility,
            'graded_conformal_credibility':
                out['graded-conformal'].credibility,
            'dknn_pred': out['conformity'].pred}


MEASURES = ('softmax', 'calibrated', 'conformity', 'conformal_credibility',
            'conformal_confidence', 'graded_credibility',
            'graded_conformal_credibility')


def _mean(values):
    return float(numpy.mean(values)) if len(values) else float('nan')


def summarise(examples, high=0.9):
    """The summary of ``reduction.json``, from its examples alone: per
    measure the mean and the share above ``high`` on original and reduced
    inputs; how often the DkNN changes its prediction; mean lengths."""
    out = {}
    for m in MEASURES:
        for side in ('original', 'reduced'):
            v = numpy.array([e[side][m] for e in examples], numpy.float64)
            out.setdefault(m, {}).update({
                'mean_' + side: _mean(v),
                'above_{}_{}'.format(high, side): _mean(v > high)})
    out['dknn_changes'] = _mean([e['original']['dknn_pred'] !=
                                 e['reduced']['dknn_pred'] for e in examples])
    for side in ('original', 'reduced'):
        out['mean_length_' + side] = _mean(
            [len(e[side + '_tokens']) for e in examples])
    return out


def records(run, indices, reds, before, after, field):
    """One JSON-ready dict per example: tokens, removed positions, and each
    measure on the original and the reduced input."""
    explained = nlp_utils.explained_parts(run.pair, field)
    rows = []
    for j, (i, r) in enumerate(zip(indices, reds)):
        fields, label = run.splits.raw['test'][i]
        tokens = [t for p in explained for t in fields[p]]
        rows.append({
            'index': i, 'label': label, 'prediction': r.prediction,
            'context': [' '.join(fields[p]) for p in range(len(fields))
                        if p not in explained],
            'original_tokens': tokens, 'removed': r.removed,
            'reduced_tokens': [t for k, t in enumerate(tokens)
                               if k not in r.removed],
            'original': {m: _item(v[j]) for m, v in before.items()},
            'reduced': {m: _item(v[j]) for m, v in after.items()}})
    return rows


def _item(value):
    return int(value) if numpy.issubdtype(type(value), numpy.integer) \
        else float(value)


def reduce_run(run, explainer, indices, method='grad', beam=5):
    """Reduce the run's test examples ``indices`` and measure every
    confidence on the original and the reduced inputs.

    Returns:
        dict: the ``reduction.json`` payload: settings, seconds, per-step
        sizes, the :func:`summarise` summary and the :func:`records`.
    """
    dknn.require_calibration(len(run.examples('calib')))
    T, source = explainer.temperature
    xs = [run.splits.test[i][0] for i in indices]
    log, start = [], time.time()
    reds = reduce(explainer, xs, method, beam, log,
                  desc='reduction ({})'.format(method))
    seconds = time.time() - start
    before = measures(explainer, xs)
    after = measures(explainer, [r.reduced for r in reds])
    examples = records(run, indices, reds, before, after, explainer.field)
    return {'reduce_by': method, 'beam': beam, 'k': explainer.settings.k,
            'layers': explainer.head.layers, 'field': explainer.field
            if run.pair else None, 'temperature': T,
            'temperature_from': source, 'seconds': seconds, 'steps': log,
            'summary': summarise(examples), 'examples': examples}
