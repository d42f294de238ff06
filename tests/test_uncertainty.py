"""run_dknn.py's three uses of credibility end to end on the tiny run:
conformal prediction sets, out-of-distribution detection, selective
prediction; and the inputs they read from other data sets."""
import json
import os

import numpy
import pytest

from toolkit import conformal
from toolkit import metrics
import nlp_utils
import run_dknn
from toolkit import runs
from toolkit import uncertainty
from errors import UserError
from conftest import TINY_TRAIN, write_tiny_sst


def write_tiny_trec(folder, n=40):
    """TREC-like questions over words the tiny vocabulary lacks."""
    rng = numpy.random.RandomState(5)
    words = ['what', 'who', 'is', 'the', 'capital', 'of', 'where', 'when']
    for split in ('train', 'test'):
        lines = ['{} {} ?'.format(i % 6, ' '.join(rng.choice(words, 4)))
                 for i in range(n)]
        with open(os.path.join(folder, 'TREC.{}.all'.format(split)),
                  'w') as f:
            f.write('\n'.join(lines) + '\n')


@pytest.fixture
def data_with_trec(tmp_path):
    folder = write_tiny_sst(tmp_path / 'data')
    write_tiny_trec(folder)
    return folder


def test_all_three_uses_end_to_end(run_copy, data_with_trec):
    folder = os.path.dirname(run_copy)
    r = run_dknn.main(['--model-setup', run_copy, '--k', '5',
                       '--data-dir', data_with_trec, '--conformal-sets',
                       '--epsilon', '0.1', '0.3', '--ood', 'TREC',
                       '--selective'])
    for name in ('conformal_sets.png', 'ood_roc.png', 'risk_coverage.png'):
        with open(os.path.join(folder, name), 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    saved = json.load(open(os.path.join(folder, 'dknn_results.json')))
    assert saved['ood'] == json.loads(json.dumps(r['ood']))
    # sets: the same numbers as a recomputation from the forward passes
    run = runs.load(run_copy, data_dir=data_with_trec)
    test, calib = run.forward('test'), run.forward('calib')
    probs = metrics.softmax(test.logits), metrics.softmax(calib.logits)
    lac = [conformal.lac_nonconformity(p) for p in probs]
    p = conformal.p_values(lac[0], conformal.true_label_scores(
        lac[1], calib.labels))
    expected = conformal.set_summary(conformal.prediction_sets(p, 0.3),
                                     test.labels)
    assert r['conformal_sets']['table']['softmax_lac']['0.3'] == expected
    assert set(r['conformal_sets']['table']) == {'dknn', 'dknn_graded',
                                                 'softmax_lac',
                                                 'softmax_aps'}
    assert r['ood']['TREC']['n'] == 40        # TREC.test.all, every line
    assert r['ood']['temperature_source'].startswith(
        'fitted now on the calibration set')
    for score in uncertainty.SCORES:
        assert 0 <= r['ood']['TREC'][score]['auroc'] <= 1
        assert 0 <= r['selective'][score]['aurc'] <= 1
    # selective: the softmax's AURC recomputed
    correct = test.logits.argmax(axis=1) == test.labels
    assert r['selective']['softmax']['aurc'] == pytest.approx(metrics.aurc(
        metrics.softmax(test.logits).max(axis=1), correct))


def test_mondrian_reports_coverage_per_class(run_copy):
    r = run_dknn.main(['--model-setup', run_copy, '--k', '5',
                       '--conformal-sets', '--mondrian'])
    sets = r['conformal_sets']
    assert sets['mondrian'] and sets['epsilons'] == list(conformal.EPSILONS)
    assert len(sets['table']['dknn']['0.1']['class_coverage']) == 2


def test_sets_refuse_a_run_without_calibration(tiny_data, tmp_path):
    import train_text_classifier
    train_text_classifier.main(TINY_TRAIN[:-2] + [
        '--n-calib', '0', '--data-dir', tiny_data, '--out', str(tmp_path)])
    setup = str(tmp_path / 'stsa.binary_cnn' / 'args.json')
    before = sorted(os.listdir(os.path.dirname(setup)))
    with pytest.raises(SystemExit, match='error: the calibration set is '
                                         'empty'):
        run_dknn.main(['--model-setup', setup, '--k', '5', '--scoring',
                       'conformity', '--conformal-sets'])
    assert sorted(os.listdir(os.path.dirname(setup))) == before


def test_the_knn_distance_is_sun_et_al_s(run_copy):
    """Minus the distance between unit vectors to the k-th neighbour."""
    import dknn
    run = runs.load(run_copy)
    head, _ = dknn.for_run(run, dknn.Settings(k=5))
    layer = head.layers[-1]
    train = numpy.asarray(run.forward('train').layers[layer], 'd')
    test = numpy.asarray(run.forward('test').layers[layer], 'd')
    unit = lambda x: x / numpy.linalg.norm(x, axis=1, keepdims=True)  # NOQA
    d = numpy.linalg.norm(unit(test)[:, None] - unit(train)[None], axis=2)
    expected = -numpy.sort(d, axis=1)[:, 4]
    got = uncertainty.KthDistance(head, layer)(run.forward('test').layers)
    numpy.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_ood_inputs_drop_labels_and_sample(data_with_trec):
    inputs = uncertainty.ood_inputs('TREC', data_with_trec, limit=3)
    assert len(inputs) == 3 and all(len(f) == 1 for f in inputs)
    again = uncertainty.ood_inputs('TREC', data_with_trec, limit=3)
    assert inputs == again
    every = uncertainty.ood_inputs('TREC', data_with_trec, limit=0)
    assert len(every) == 40 and all(x in every for x in inputs)
    with pytest.raises(UserError, match='pair'):
        uncertainty.ood_inputs('TREC', data_with_trec, pair=True)
    with pytest.raises(UserError, match='unknown') as e:
        uncertainty.ood_inputs('nosuch', data_with_trec)
    assert 'imdb-sentences' in str(e.value)     # uncertainty.OOD_EXTRA


def test_ood_inputs_leave_out_long_inputs_with_a_note(tmp_path, capsys):
    folder = write_tiny_sst(tmp_path / 'data')
    lengths = [3, 9, 4, 12, 5]
    lines = ['{} {}'.format(i % 6, ' '.join(['w'] * n))
             for i, n in enumerate(lengths)]
    for split in ('train', 'test'):
        with open(os.path.join(folder, 'TREC.{}.all'.format(split)),
                  'w') as f:
            f.write('\n'.join(lines) + '\n')
    inputs = uncertainty.ood_inputs('TREC', folder, limit=0, max_tokens=5)
    assert sorted(len(f) for (f,) in inputs) == [3, 4, 5]
    out = capsys.readouterr().out
    assert 'note: TREC: left out 2 of 5 inputs longer than the 5-token ' \
        'limit' in out and nlp_utils.MAX_TOKENS_ENV in out
    assert len(uncertainty.ood_inputs('TREC', folder, limit=0,
                                      max_tokens=12)) == 5
    assert 'left out' not in capsys.readouterr().out


def test_imdb_sentences_on_the_real_archive(real_data):
    sentences = uncertainty.imdb_sentences(real_data)
    assert len(sentences) > 100000
    assert not any('<br' in ' '.join(s[0]) for s in sentences[:5000])
    assert all(len(s[0]) >= 4 for s in sentences)
