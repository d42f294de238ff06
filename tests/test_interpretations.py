import json
import os

import chainer
import numpy
import pytest

from toolkit import faithfulness
import dknn
import interpretations as interp
from toolkit import attribution
import nets
from toolkit import render
from toolkit import runs
from toolkit.metrics import softmax


@pytest.fixture
def run(run_copy):
    return run_copy


def explainer_for(setup_path, **kw):
    r = runs.load(setup_path)
    return attribution.Explainer(r.model, r, settings=dknn.Settings(k=5), **kw), r.splits


def write_temperature(setup_path, T=2.0):
    folder = os.path.dirname(setup_path)
    with open(os.path.join(folder, 'temperature.json'), 'w') as f:
        json.dump({'temperature': T}, f)


@pytest.mark.parametrize('method,kind', [('softmax', 'softmax'),
                                         ('calibrated', 'calibrated'),
                                         ('dknn', 'dknn')])
def test_leave_one_out_equals_manual_deletion(run, method, kind):
    write_temperature(run)
    ex, splits = explainer_for(run)
    xs = [x for x, _ in splits.test[:6]]
    atts = attribution.explain(ex, xs, method, chunk=4)
    for x, att in zip(xs, atts):
        assert len(att.importance) == len(x) - 1  # one per token, no <eos>
        full = ex.scores([x], kind)[0]
        assert att.prediction == full.argmax()
        assert att.score == pytest.approx(full[att.prediction])
        for j in range(len(x) - 1):
            manual = numpy.delete(x, j)   # the sentence without token j
            s = ex.scores([manual], kind)[0][att.prediction]
            assert att.importance[j] == pytest.approx(full[att.prediction] - s,
                                                      abs=1e-6)


def test_dknn_scores_are_the_dknn_conformity(run):
    ex, splits = explainer_for(run)
    x = splits.test[0][0]
    train = nets.predict_dataset(ex.model, splits.train, None)
    _, layers = ex.model.predict([x])
    layer = ex.model.layer_names[-1]
    d = numpy.linalg.norm(train.layers[layer] - layers[layer][0], axis=1)
    votes = train.labels[numpy.argsort(d, kind='stable')[:5]]
    numpy.testing.assert_allclose(ex.scores([x], 'dknn')[0],
                                  numpy.bincount(votes, minlength=2) / 5.0)


def test_calibrated_uses_the_temperature(run):
    write_temperature(run, T=3.0)
    ex, splits = explainer_for(run)
    x = splits.test[1][0]
    logits = ex.logits([x])
    numpy.testing.assert_allclose(ex.scores([x], 'calibrated'),
                                  softmax(logits / 3.0), rtol=1e-6)


def test_gradient_matches_finite_difference():
    setup = {'model': 'cnn', 'n_vocab': 10, 'n_embed': 5, 'unit': 6,
             'layer': 1, 'dropout': 0.0, 'n_class': 2}
    numpy.random.seed(3)
    with chainer.using_config('dtype', numpy.float64):
        model = nets.build_model(setup)
    ex = attribution.Explainer(model)
    xs = [numpy.array([2, 5, 7, 3, 0], numpy.int32),
          numpy.array([4, 0], numpy.int32)]
    atts = attribution.explain(ex, xs, 'grad')

    def log_p(x, t, eps, label):
        emb = model.encoder.embed.W.array[x].copy()
        emb[t] *= 1 + eps     # move token t along its own embedding
        with chainer.using_config('train', False):
            logits, _ = model.forward_embedded([chainer.Variable(emb)])
        return float(chainer.functions.log_softmax(logits).array[0, label])

    for x, att in zip(xs, atts):
        assert len(att.importance) == len(x) - 1
        for t in range(len(x) - 1):
            fd = (log_p(x, t, 1e-6, att.prediction) -
                  log_p(x, t, -1e-6, att.prediction)) / 2e-6
            assert att.importance[t] == pytest.approx(fd, rel=1e-4, abs=1e-9)


def test_one_token_and_empty_sentences_are_defined(run):
    ex, splits = explainer_for(run)
    one = numpy.array([3, 0], numpy.int32)      # a word and <eos>
    empty = numpy.array([0], numpy.int32)       # nothing to leave out
    for method in ('dknn', 'softmax', 'grad'):
        a1, a0 = attribution.explain(ex, [one, empty], method)
        assert a1.importance.shape == (1,) and numpy.isfinite(a1.importance)
        assert a0.importance.shape == (0,)
        if method != 'grad':   # the score is the method's own yardstick
            full = ex.scores([empty], method)[0]
            assert a0.score == pytest.approx(full.max())


def test_pair_leave_one_out_equals_manual_deletion():
    setup = {'model': 'bow', 'n_vocab': 10, 'n_embed': 5, 'unit': 6,
             'layer': 1, 'dropout': 0.0, 'n_class': 3, 'pair': True}
    numpy.random.seed(0)
    model = nets.build_model(setup)
    prem = numpy.array([2, 3, 4, 0], numpy.int32)
    hyp = numpy.array([5, 6, 0], numpy.int32)
    for field, n in (('hypothesis', 2), ('premise', 3), ('both', 5)):
        ex = attribution.Explainer(model, field=field)
        att, = attribution.explain(ex, [(prem, hyp)], 'softmax')
        assert len(att.importance) == n
        full = ex.scores([(prem, hyp)], 'softmax')[0]
        for j in range(n):
            p, h = prem, hyp
            if field == 'premise' or (field == 'both' and j < 3):
                p = numpy.delete(prem, j)
            else:
                h = numpy.delete(hyp, j - (3 if field == 'both' else 0))
            s = ex.scores([(p, h)], 'softmax')[0][att.prediction]
            assert att.importance[j] == pytest.approx(
                full[att.prediction] - s, abs=1e-6)


def test_faithfulness_matches_manual_deletions(run):
    ex, splits = explainer_for(run)
    xs = [x for x, _ in splits.test[:5]]
    atts = attribution.explain(ex, xs, 'softmax')
    f = faithfulness.summary(lambda inputs: ex.scores(inputs, 'softmax'),
                             xs, atts, k_max=2, fractions=(0.5,))

    def prob(x, label):
        return ex.scores([x], 'softmax')[0][label]
    drops, comp, suff = [], [], []
    for x, a in zip(xs, atts):
        pred = int(ex.scores([x], 'softmax')[0].argmax())
        order = numpy.argsort(-a.importance, kind='stable')
        n = len(order)
        half = order[:int(numpy.ceil(0.5 * n))]
        drops.append(prob(x, pred) - prob(numpy.delete(x, order[0]), pred))
        comp.append(prob(x, pred) - prob(numpy.delete(x, half), pred))
        kept = numpy.delete(x, [j for j in range(n) if j not in half])
        suff.append(prob(x, pred) - prob(kept, pred))
    assert f['deletion_curve'][0] == pytest.approx(numpy.mean(drops),
                                                   abs=1e-6)
    assert f['comprehensiveness']['0.5'] == pytest.approx(numpy.mean(comp),
                                                          abs=1e-6)
    assert f['sufficiency']['0.5'] == pytest.approx(numpy.mean(suff),
                                                    abs=1e-6)
    p = [numpy.abs(a.importance) / numpy.abs(a.importance).sum()
         for a in atts]
    assert f['entropy'] == pytest.approx(numpy.mean(
        [-(q * numpy.log(q)).sum() / numpy.log(len(q)) for q in p]))
    assert f['mean_length'] == numpy.mean([len(x) - 1 for x in xs])


def test_one_colour_convention_for_every_label():
    """Support blue, evidence against orange, each sentence divided by its
    largest absolute importance: a vote of 0.013 beside a main piece of
    evidence of 0.5 stays pale, whatever label is explained."""
    imp = numpy.array([0.5, -0.013, 0.1, 0.0])
    v = render.colour_values(imp)
    numpy.testing.assert_allclose(v, [1.0, 0.487, 0.6, 0.5], atol=1e-9)
    cmap = render.colormap()
    assert render._hex(cmap, 1.0) == '#2166ac'   # support: blue
    assert render._hex(cmap, 0.0) == '#e66101'   # against: orange
    assert min(cmap(0.5)[:3]) > 0.99              # none: white
    att = attribution.Attribution(2, 0.9, imp)
    rec = {'index': 0, 'label': 1, 'parts': [['a', 'b', 'c', 'd']],
           'explained': [0], 'results': {'softmax': att}}
    page = render.html_page('t', [rec], {'softmax': 'confidence LOO'},
                            ['x', 'y', 'z'], False, 'hypothesis')
    assert 'title="importance 0.5"' in page and 'importance -0.013' in page
    assert 'toward' not in page    # no split of the label list
    fig = render.plot_heatmaps([rec], {'softmax': 'confidence LOO'},
                               ['x', 'y', 'z'], False)
    ticks = [t.get_text() for t in fig.axes[-1].get_xticklabels()]
    assert ticks == list(render.KEY)


def test_html_escapes_every_token():
    att = attribution.Attribution(1, 0.9, numpy.array([0.5, -0.2, 0.1]))
    rec = {'index': 0, 'label': 1, 'parts': [['<script>', 'a&b', '<unk>']],
           'explained': [0], 'results': {'softmax': att},
           'neighbours': [('x <b>y</b>', 0)]}
    page = render.html_page('t <i>', [rec], {'softmax': 'confidence <LOO>'},
                            ['neg', 'pos'], False, 'hypothesis')
    assert '<script>' not in page and '&lt;script&gt;' in page
    assert 'a&amp;b' in page and '&lt;unk&gt;' in page
    assert '<b>y' not in page and '<i>' not in page
    assert '&lt;LOO&gt;' in page


def test_main_writes_html_png_json(run):
    write_temperature(run)
    payload = interp.main(['--model-setup', run, '--interp_method', 'all',
                           '--first', '4', '--neighbours', '2', '--k', '5',
                           '--faithfulness'])
    base = os.path.join(os.path.dirname(run),
                        'interpretations_dknn+softmax+calibrated+grad')
    page = open(base + '.html').read()
    assert page.count('<tr>') == 1 + 4 * 4   # header + 4 examples x 4 methods
    with open(base + '.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    saved = json.load(open(base + '.json'))
    assert saved == json.loads(json.dumps(payload))
    ex0 = saved['examples'][0]
    assert len(ex0['dknn']['importance']) == len(ex0['tokens'])
    assert len(ex0['neighbours']) == 2
    assert set(saved['faithfulness']) == {'dknn', 'softmax', 'calibrated',
                                          'grad'}
    assert os.path.exists(base + '_faithfulness.md')


def test_main_bad_input(run):
    with pytest.raises(SystemExit, match='--index 16 is out of range.*0..15'):
        interp.main(['--model-setup', run, '--index', '16'])
    with pytest.raises(SystemExit, match='unknown --interp-method lime'):
        interp.main(['--model-setup', run, '--interp_method', 'lime'])
    with pytest.raises(SystemExit, match='names a method twice'):
        interp.main(['--model-setup', run, '--interp_method', 'dknn,dknn'])


def test_calibrated_without_temperature_json_fits_one(run):
    payload = interp.main(['--model-setup', run, '--interp_method',
                           'calibrated', '--first', '2', '--quiet'])
    assert len(payload['examples']) == 2


def test_tokens_that_break_renderers(tmp_path):
    """Mathtext, HTML and markdown in tokens are shown, never parsed."""
    import train_text_classifier
    from conftest import TINY_TRAIN, write_tiny_sst
    data = write_tiny_sst(tmp_path / 'data')
    nasty = '$x^$ <script> a|b **bold** $\\frac{'
    for split in ('train', 'test'):
        with open(os.path.join(data, 'stsa.binary.' + split), 'a') as f:
            f.write(('1 good ' + nasty + '\n') * 3)
    train_text_classifier.main(TINY_TRAIN + ['--model', 'bow', '--data-dir',
                                             data, '--out', str(tmp_path)])
    run = str(tmp_path / 'stsa.binary_bow' / 'args.json')
    payload = interp.main(['--model-setup', run, '--interp_method', 'softmax',
                           '--all', '--figure', '20', '--artifacts',
                           '--quiet', '--data-dir', data])
    folder = os.path.dirname(run)
    assert any('$x^$' in ex['tokens'] for ex in payload['examples'])
    for name in ('interpretations_softmax.png', 'artifacts_softmax.png'):
        with open(os.path.join(folder, name), 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    page = open(os.path.join(folder, 'interpretations_softmax.html')).read()
    assert '<script>' not in page and '&lt;script&gt;' in page
    table = open(os.path.join(folder, 'artifacts_softmax.md')).read()
    assert '<script>' not in table and '**' not in table
    assert all(line.count(' | ') == 3 for line in table.splitlines()[2:])


def test_outputs_record_their_set_and_a_failure_changes_nothing(run):
    """The JSON, written last, names the files of its set with their
    sha256; a rerun that fails leaves the folder as it was."""
    interp.main(['--model-setup', run, '--interp_method', 'softmax',
                 '--first', '3', '--quiet'])
    folder = os.path.dirname(run)
    base = 'interpretations_softmax'
    saved = json.load(open(os.path.join(folder, base + '.json')))
    assert sorted(saved['files']) == [base + '.html', base + '.png']
    interp.main(['--model-setup', run, '--interp_method', 'softmax',
                 '--first', '2', '--figure', '0', '--quiet'])
    saved = json.load(open(os.path.join(folder, base + '.json')))
    assert sorted(saved['files']) == [base + '.html']   # the old PNG stays
    good = {p: open(os.path.join(folder, p), 'rb').read()
            for p in os.listdir(folder) if p != 'activations'}
    render_html = render.html_page

    def broken(*a, **k):
        raise OSError(28, 'No space left on device')
    render.html_page = broken
    try:
        with pytest.raises(SystemExit, match='no space left'):
            interp.main(['--model-setup', run, '--interp_method', 'softmax',
                         '--first', '4', '--quiet'])
    finally:
        render.html_page = render_html
    assert {p: open(os.path.join(folder, p), 'rb').read()
            for p in os.listdir(folder) if p != 'activations'} == good


def test_kendall_tau_against_a_reference_ranking():
    att = attribution.Attribution
    a = [att(0, 1., numpy.array([.3, .2, .1])),     # same order: tau 1
         att(0, 1., numpy.array([.1, .2, .3])),     # reversed: tau -1
         att(0, 1., numpy.array([.5])),             # one token: skipped
         att(0, 1., numpy.array([0., 0., 0.]))]     # constant: skipped
    ref = [att(0, 1., numpy.array([3., 2., 1.]))] * 2 + [
        att(0, 1., numpy.array([1.])), att(0, 1., numpy.array([1., 2., 3.]))]
    assert faithfulness.kendall_tau(a, ref) == pytest.approx(0.0)
    assert faithfulness.kendall_tau(a[:1], ref[:1]) == pytest.approx(1.0)
    assert faithfulness.zero_share(a, 0.15) == pytest.approx(5 / 10)
