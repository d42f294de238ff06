"""Input reduction: properties and a hand-written greedy loop."""
import numpy
import pytest

import dknn
import interpretations as interp
from toolkit import attribution
from toolkit import reduction
from toolkit import runs
from nlp_utils import remove, slots


@pytest.fixture
def explainer(run_copy):
    run = runs.load(run_copy)
    return attribution.Explainer(run.model, run, settings=dknn.Settings(k=5)), run


@pytest.mark.parametrize('method,beam', [('grad', 5), ('softmax', 3),
                                         ('dknn', 2)])
def test_reduction_keeps_the_prediction_and_eos(explainer, method, beam):
    ex, run = explainer
    xs = [x for x, _ in run.splits.test]
    log = []
    reds = reduction.reduce(ex, xs, method, beam, log)
    assert all(len(r.reduced) - 1 >= min(1, len(x) - 1)
               for x, r in zip(xs, reds))
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
    assert log[0]['beams'] == sum(1 for x in xs if len(x) > 2)
    for step, nxt in zip(log, log[1:]):
        assert nxt['beams'] <= step['candidates'] <= beam * len(xs)
    assert len(log) - 1 <= max(len(r.removed) for r in reds) <= len(log)


def greedy(ex, x):
    """Beam 1 by hand: drop the least important token by the gradient while
    the prediction holds and more than one token is left."""
    pred = ex.predictions([x])[0]
    while len(slots(x)) > 1:
        att = attribution.explain(ex, [x], 'grad')[0]
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


def test_one_token_and_empty_inputs_stay_as_they_are(explainer):
    ex, run = explainer
    one = numpy.array([3, 0], numpy.int32)
    empty = numpy.array([0], numpy.int32)
    r1, r0 = reduction.reduce(ex, [one, empty], 'grad')
    assert r0.reduced.tolist() == [0] and r0.removed == []
    assert r1.reduced.tolist() == [3, 0] and r1.removed == []
    # and no reduction ends empty: one token always stays
    reds = reduction.reduce(ex, [x for x, _ in run.splits.test], 'grad')
    assert all(len(r.reduced) >= 2 for r in reds)


def test_reduce_command_writes_the_set_and_its_summary(run_copy):
    """--reduce on the tiny run: the summary is a recomputation of the
    examples, and the page and figure are written."""
    import json
    import os
    payload = interp.main(['--model-setup', run_copy, '--reduce', '--all',
                           '--k', '5', '--beam', '2'])
    folder = os.path.dirname(run_copy)
    saved = json.load(open(os.path.join(folder, 'reduction.json')))
    assert saved == json.loads(json.dumps(payload))
    examples = saved['examples']
    s = saved['summary']
    for m in reduction.MEASURES:
        for side in ('original', 'reduced'):
            values = [e[side][m] for e in examples]
            assert s[m]['mean_' + side] == pytest.approx(numpy.mean(values))
            assert s[m]['above_0.9_' + side] == pytest.approx(
                numpy.mean([v > 0.9 for v in values]))
    assert s['dknn_changes'] == pytest.approx(numpy.mean(
        [e['original']['dknn_pred'] != e['reduced']['dknn_pred']
         for e in examples]))
    assert s['mean_length_reduced'] == pytest.approx(numpy.mean(
        [len(e['reduced_tokens']) for e in examples]))
    for e in examples:
        kept = [t for k, t in enumerate(e['original_tokens'])
                if k not in e['removed']]
        assert e['reduced_tokens'] == kept
    run = runs.load(run_copy)
    assert [e['prediction'] for e in examples] == attribution.Explainer(
        run.model, run).predictions([x for x, _ in run.splits.test]).tolist()
    page = open(os.path.join(folder, 'reduction.html')).read()
    assert page.count('<tr>') == 1 + len(examples)
    with open(os.path.join(folder, 'reduction.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    # no temperature.json: fitted on the calibration set, and said so
    assert saved['temperature_from'].startswith('fitted')
