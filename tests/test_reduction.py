"""Input reduction: properties and a hand-written greedy loop."""
import numpy
import pytest

import interpretations as interp
import reduction
import runs
from nlp_utils import remove, slots


@pytest.fixture
def explainer(run_copy):
    run = runs.load(run_copy)
    return interp.Explainer(run.model, run, k=5), run


@pytest.mark.parametrize('method,beam', [('grad', 5), ('softmax', 3),
                                         ('dknn', 2)])
def test_reduction_keeps_the_prediction_and_eos(explainer, method, beam):
    ex, run = explainer
    xs = [x for x, _ in run.splits.test]
    log = []
    reds = reduction.reduce(ex, xs, method, beam, log)
    preds = ex.predictions(xs)
    assert ex.predictions([r.reduced for r in reds]).tolist() == \
        preds.tolist() == [r.prediction for r in reds]
    for x, r in zip(xs, reds):
        assert r.reduced[-1] == 0 and (r.reduced == 0).sum() == \
            (x == 0).sum()                          # <eos> is never removed
        assert len(r.reduced) == len(x) - len(r.removed)
        kept = [j for j in range(len(x) - 1) if j not in r.removed]
        assert r.reduced.tolist() == x[kept].tolist() + [0]
    # a step tries at most `beam` removals per input, and the survivors are
    # the next step's beams; each step removes one more token
    assert log[0]['beams'] == sum(1 for x in xs if len(x) > 1)
    for step, nxt in zip(log, log[1:]):
        assert nxt['beams'] <= step['candidates'] <= beam * len(xs)
    assert len(log) - 1 <= max(len(r.removed) for r in reds) <= len(log)


def greedy(ex, x):
    """Beam 1 by hand: drop the least important token by the gradient while
    the prediction holds."""
    pred = ex.predictions([x])[0]
    while slots(x):
        att = interp.explain(ex, [x], 'grad')[0]
        smaller = remove(x, [int(numpy.argmin(att.importance))])
        if ex.predictions([smaller])[0] != pred:
            break
        x = smaller
    return x


def test_beam_one_is_the_greedy_loop(explainer):
    ex, run = explainer
    xs = [x for x, _ in run.splits.test]
    reds = reduction.reduce(ex, xs, 'grad', beam=1)
    for x, r in zip(xs, reds):
        assert r.reduced.tolist() == greedy(ex, x).tolist()


def test_a_wider_beam_never_reduces_less(explainer):
    ex, run = explainer
    xs = [x for x, _ in run.splits.test]
    one = reduction.reduce(ex, xs, 'grad', beam=1)
    five = reduction.reduce(ex, xs, 'grad', beam=5)
    assert all(len(b.reduced) <= len(a.reduced) for a, b in zip(one, five))


def test_one_token_and_empty_inputs(explainer):
    ex, _ = explainer
    one = numpy.array([3, 0], numpy.int32)
    empty = numpy.array([0], numpy.int32)
    r1, r0 = reduction.reduce(ex, [one, empty], 'grad')
    assert r0.reduced.tolist() == [0] and r0.removed == []
    # a one-token input loses its token only if <eos> alone keeps the label
    alone = ex.predictions([empty])[0] == ex.predictions([one])[0]
    assert r1.reduced.tolist() == ([0] if alone else [3, 0])
