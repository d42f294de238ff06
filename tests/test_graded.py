"""The graded DkNN rules (issue 29): the per-label search against brute
force, graded leave-one-out against a manual deletion, graded-conformal
coverage over random calibration splits, and importances that a unanimous
neighbourhood cannot blank."""
import os

import numpy
import pytest

from conftest import ROOT, USER_DATA

import dknn
import nets
import search
from toolkit import attribution
from toolkit import conformal
from toolkit import runs


class FakeModel:
    layer_names = ['h1', 'h2']
    n_class = 3


def acts(layers, labels):
    n = len(labels)
    return nets.Activations(numpy.zeros((n, 3), 'f'), layers,
                            numpy.asarray(labels, numpy.int32))


def brute(points, queries, k):
    d = numpy.linalg.norm(queries[:, None, :].astype(numpy.float64) -
                          points[None].astype(numpy.float64), axis=2)
    order = numpy.lexsort((numpy.broadcast_to(numpy.arange(len(points)),
                                              d.shape), d))[:, :k]
    return order, numpy.take_along_axis(d, order, axis=1)


@pytest.mark.parametrize('backend', ['faiss', 'brute', 'kdtree'])
def test_per_label_search_equals_brute_force(backend):
    """Per label, the k nearest of that label's rows; merged, the k nearest
    of all: the same indices and distances as a brute-force reference."""
    rng = numpy.random.RandomState(0)
    points = rng.randn(900, 12).astype(numpy.float32)
    labels = rng.randint(0, 3, 900)
    queries = rng.randn(40, 12).astype(numpy.float32)
    index = search.ByLabel(lambda p: search.BACKENDS[backend](p), points,
                           labels, 3)
    for c, (idx, dist) in enumerate(index.query_by_label(queries, 7)):
        rows = numpy.flatnonzero(labels == c)
        want, want_d = brute(points[rows], queries, 7)
        numpy.testing.assert_array_equal(idx, rows[want])
        numpy.testing.assert_allclose(dist, want_d, rtol=1e-5, atol=1e-5)
    idx, dist = index.query(queries, 10)
    want, want_d = brute(points, queries, 10)
    numpy.testing.assert_array_equal(idx, want)
    numpy.testing.assert_allclose(dist, want_d, rtol=1e-5, atol=1e-5)


def graded_head(scoring, rng, n=600):
    labels = rng.randint(0, 3, n)
    centres = rng.randn(3, 6) * 1.5

    def layers(y):
        return {name: (centres[y] + rng.randn(len(y), 6)).astype('f')
                for name in FakeModel.layer_names}
    h = dknn.DkNN(FakeModel(), dknn.Settings(layers='all', k=10,
                                             backend='brute',
                                             scoring=scoring))
    h.fit(acts(layers(labels), labels))
    return h, layers


def test_graded_conformal_sets_keep_coverage_over_200_splits():
    """The graded-conformal nonconformity is exchangeable across
    calibration and test examples, so its sets cover the true label with
    probability at least 1 - eps over random calibration splits."""
    rng = numpy.random.RandomState(1)
    h, layers = graded_head('graded-conformal', rng)
    labels = rng.randint(0, 3, 1200)
    h.calibrate(acts(layers(labels[:50]), labels[:50]))   # the floors
    alpha = dknn.margins(h.search(layers(labels)).distances)   # (N, C)
    for eps in (0.05, 0.1, 0.2):
        cover, size = [], []
        for _ in range(200):
            perm = rng.permutation(len(labels))
            cal, test = perm[:400], perm[400:]
            p = conformal.p_values(alpha[test], conformal.true_label_scores(
                alpha[cal], labels[cal]))
            s = conformal.set_summary(conformal.prediction_sets(p, eps),
                                      labels[test])
            cover.append(s['coverage'])
            size.append(s['mean_size'])
        assert numpy.mean(cover) >= 1 - eps - 0.01, (eps, numpy.mean(cover))
        assert numpy.mean(size) < 3   # not the trivial all-labels set


def test_graded_credibility_has_no_ties():
    """Vote counts take few values, so conformal p-values tie in blocks;
    the graded margins are continuous: no two calibration examples tie,
    and credibility takes as many values as the calibration set allows."""
    rng = numpy.random.RandomState(2)
    h, layers = graded_head('graded-conformal', rng)
    y = rng.randint(0, 3, 300)
    h.calibrate(acts(layers(y), y))
    assert len(numpy.unique(h.calib_alpha)) == 300
    assert len(numpy.unique(h.calib_nonconformity)) <= 2 * 10 + 1
    query = layers(rng.randint(0, 3, 200))
    graded = h.predict_activations(query).credibility
    votes = h.with_scoring('conformal').predict_activations(query).credibility
    assert len(numpy.unique(graded)) > 3 * len(numpy.unique(votes))


@pytest.fixture
def graded(run_copy):
    run = runs.load(run_copy)
    ex = attribution.Explainer(run.model, run, settings=dknn.Settings(
        k=5, scoring='graded'))
    return ex, run


def manual_drops(ex, x, label, n):
    """(C,) the DkNN scores of ``x``, and the drop of ``label``'s score
    when each of its first ``n`` tokens is deleted by hand."""
    full = ex.scores([x], 'dknn')[0]
    return full, [full[label] - ex.scores([numpy.delete(x, j)], 'dknn')[0][
        label] for j in range(n)]


def test_graded_leave_one_out_equals_manual_deletion(graded):
    ex, run = graded
    xs = [x for x, _ in run.splits.test[:6]]
    for x, att in zip(xs, attribution.explain(ex, xs, 'dknn', chunk=4)):
        full, drops = manual_drops(ex, x, att.prediction, len(x) - 1)
        assert att.prediction == full.argmax()
        assert list(att.importance[:len(x) - 1]) == pytest.approx(
            drops, rel=1e-5, abs=1e-5)   # float32 passes


def test_graded_scores_are_the_log_odds_of_the_rule(graded):
    ex, run = graded
    x = run.splits.test[0][0]
    _, hidden = ex.model.predict([x])
    out = ex.head.predict_activations(hidden)
    p = out.scores[0]
    numpy.testing.assert_allclose(ex.scores([x], 'dknn')[0],
                                  numpy.log(p / (1 - p)), rtol=1e-6)


def test_a_unanimous_neighbourhood_still_moves(graded):
    """Where every one of the k neighbours carries one label whatever word
    is deleted, conformity leave-one-out is 0 on every token; the graded
    rule's is not."""
    ex, run = graded
    vote = attribution.Explainer(run.model, run, settings=dknn.Settings(k=5))
    xs = [x for x, _ in run.splits.test]
    conformity = attribution.explain(vote, xs, 'dknn')
    blank = [i for i, a in enumerate(conformity)
             if a.score == 1.0 and not numpy.any(a.importance)]
    assert blank, 'no unanimous test input in the tiny run'
    grade = attribution.explain(ex, [xs[i] for i in blank], 'dknn')
    for a in grade:
        assert numpy.count_nonzero(a.importance) == len(a.importance)


def test_the_search_bench_finds_the_same_global_k(capsys):
    """bench/bench_search.py at a toy size: the per-label search gives the
    one index's global k, and the section names every search."""
    import sys
    sys.path.insert(0, os.path.join(ROOT, 'bench'))
    import bench_search
    bench_search.main(['--sizes', '600x16', '--repeats', '1', '--no-write'])
    table = capsys.readouterr().out
    row = [ln for ln in table.splitlines() if ln.startswith('| 600x16 |')]
    assert len(row) == 1 and row[0].endswith('| yes |')
    with pytest.raises(SystemExit, match='--sizes 600: expected'):
        bench_search.main(['--sizes', '600', '--no-write'])


def tiny_setup(kind, tmp_path):
    """Train a tiny run of ``kind``: a character CNN on the tiny SST, a
    word CNN on your own CSV, a pair model on your own JSONL folder."""
    import shutil
    import train_text_classifier
    from conftest import TINY_TRAIN
    flags = ['--model', 'cnn', '--out', str(tmp_path)]
    if kind == 'char':
        train_text_classifier.main(TINY_TRAIN + flags + ['--char-based'])
        return str(tmp_path / 'stsa.binary_cnn_char' / 'args.json')
    source = {'csv': 'reviews.csv', 'pair': 'nli'}[kind]
    data = str(tmp_path / source)
    (shutil.copytree if kind == 'pair' else shutil.copy)(
        os.path.join(USER_DATA, source), data)
    train_text_classifier.main(TINY_TRAIN[2:] + flags +   # not stsa.binary
                               ['--dataset', data])
    return str(tmp_path / '{}_cnn'.format(os.path.splitext(source)[0]) /
               'args.json')


@pytest.mark.parametrize('kind', ['char', 'csv', 'pair'])
def test_the_scripts_run_the_graded_rule(kind, tmp_path):
    """``run_dknn.py --scoring graded`` and ``interpretations.py
    --interp_method dknn --scoring graded`` on a character model, your own
    CSV and a pair model: the accuracy is the graded head's, and each
    importance is the drop of the graded score when its token is
    deleted."""
    import interpretations
    import run_dknn
    setup = tiny_setup(kind, tmp_path)
    results = run_dknn.main(['--model-setup', setup, '--k', '3',
                             '--scoring', 'graded'])
    assert 'graded' in results and 'conformity' not in results
    run = runs.load(setup)
    ex = attribution.Explainer(run.model, run, settings=dknn.Settings(
        k=3, scoring='graded'))
    xs = [x for x, _ in run.splits.test]
    labels = numpy.concatenate([y for _, y in run.splits.test])   # (N,)
    predicted = numpy.array([ex.scores([x], 'dknn')[0].argmax() for x in xs])
    assert results['graded']['accuracy'] == pytest.approx(
        (predicted == labels).mean())
    payload = interpretations.main([
        '--model-setup', setup, '--k', '3', '--interp_method', 'dknn',
        '--scoring', 'graded', '--first', '3', '--quiet'])
    assert payload['settings']['scoring'] == 'graded'
    for e in payload['examples']:
        x, att = xs[e['index']], e['dknn']
        assert att['prediction'] == predicted[e['index']]
        assert len(att['importance']) == len(e['tokens'])
        if kind == 'pair':   # the hypothesis is explained; see test_snli
            continue
        _, drops = manual_drops(ex, x, att['prediction'],
                                len(att['importance']))
        assert att['importance'] == pytest.approx(drops, rel=1e-5, abs=1e-5)
