"""SNLI end to end on official-schema fixtures built from the real files."""
import json
import os

import numpy
import pytest

from conftest import real_data_dir
from errors import DataError

from toolkit import artifacts
import interpretations
from toolkit import attribution
import nets
from toolkit import runs
import run_dknn
import text_datasets
import train_text_classifier
from toolkit import snli_standin
from toolkit import user_data


@pytest.fixture(scope='module')
def snli_dir(tmp_path_factory):
    real = real_data_dir() or ''
    src = os.path.join(real, 'snli', 'e-snli')
    if not os.path.isdir(src):
        pytest.skip('real SNLI (e-SNLI) files not found')
    out = tmp_path_factory.mktemp('snli')
    folder = snli_standin.write_snli_standin(src, str(out))
    # keep the tests small: the first pairs of each split
    for split, n in (('train', 120), ('dev', 30), ('test', 30)):
        path = os.path.join(folder, 'snli_1.0_{}.jsonl'.format(split))
        lines = open(path).read().splitlines()[:n]
        open(path, 'w').write('\n'.join(lines) + '\n')
    return str(out)


def test_standin_has_the_official_schema(tmp_path, real_data):
    folder = snli_standin.write_snli_standin(
        os.path.join(real_data, 'snli', 'e-snli'), str(tmp_path))
    counts = {}
    for split in ('train', 'dev', 'test'):
        with open(os.path.join(folder, 'snli_1.0_%s.jsonl' % split)) as f:
            records = [json.loads(l) for l in f]
        counts[split] = len(records)
        assert {'sentence1', 'sentence2', 'gold_label',
                'annotator_labels'} <= set(records[0])
    assert counts == {'train': 8858, 'dev': 984, 'test': 9824}
    raw = text_datasets.load_raw('snli', str(tmp_path))
    assert (len(raw.train), len(raw.dev), len(raw.test)) == (8858, 984, 9824)
    assert raw.skipped == 0


def write_esnli(folder, n_dev=20, n_test=6):
    """A tiny e-SNLI look-alike: s1, s2 and labels of dev and test."""
    labels = text_datasets.SNLI_LABELS
    os.makedirs(folder, exist_ok=True)
    for split, n in (('dev', n_dev), ('test', n_test)):
        cols = {'s1': ['a {} man sits .'.format(i) for i in range(n)],
                's2': ['{} people'.format(split) for i in range(n)],
                'labels': [labels[i % 3] for i in range(n)]}
        for col, lines in cols.items():
            with open(os.path.join(folder, '{}.{}'.format(col, split)),
                      'w') as f:
                f.write('\n'.join(lines) + '\n')
    return folder


@pytest.fixture
def dataset_root(tmp_path):
    """Chainer's dataset cache in a temporary folder, for this test."""
    import chainer
    before = chainer.dataset.get_dataset_root()
    chainer.dataset.set_dataset_root(str(tmp_path / 'chainer'))
    yield str(tmp_path / 'chainer')
    chainer.dataset.set_dataset_root(before)


def test_prepare_builds_the_standin_once_in_the_cache(tmp_path, dataset_root,
                                                      capsys):
    data = tmp_path / 'data'
    write_esnli(str(data / 'snli' / 'e-snli'))     # one sub-folder down
    folder = text_datasets.standin_folder()
    assert folder.startswith(dataset_root) and not os.path.exists(folder)
    with pytest.raises(DataError):                 # not built yet, offline
        text_datasets.locate(['snli_1.0'], None, str(data))
    snli_standin.prepare(str(data))
    assert 'built the offline stand-in' in capsys.readouterr().out
    assert text_datasets.snli_path(str(data)) == folder
    raw = text_datasets.load_raw('snli', str(data))
    assert (len(raw.train), len(raw.dev), len(raw.test)) == (18, 2, 6)
    assert all(h == ['test', 'people'] for (_, h), _ in raw.test)
    stamp = os.stat(os.path.join(folder, 'snli_1.0_train.jsonl')).st_mtime_ns
    snli_standin.prepare(str(data))                # once: not rebuilt
    assert capsys.readouterr().out == ''
    assert os.stat(os.path.join(folder, 'snli_1.0_train.jsonl')
                   ).st_mtime_ns == stamp
    # the splits of a run: user_data.get_dataset prepares it itself
    s = user_data.get_dataset('snli', str(data), n_calib=3)
    assert s.pair and len(s.calib) == 3 and len(s.test) == 6


def test_prepare_leaves_real_snli_and_missing_esnli_alone(tmp_path,
                                                          dataset_root,
                                                          capsys):
    data = str(tmp_path / 'data')           # snli_1.0/ and e-snli/ in it
    snli_standin.write_snli_standin(write_esnli(os.path.join(
        data, 'e-snli')), data)
    snli_standin.prepare(data)
    os.mkdir(str(tmp_path / 'empty'))
    snli_standin.prepare(str(tmp_path / 'empty'))   # no e-SNLI to build from
    assert capsys.readouterr().out == ''
    assert not os.path.exists(text_datasets.standin_folder())
    assert text_datasets.snli_path(data) == os.path.join(data, 'snli_1.0')


def test_standin_needs_every_esnli_file(tmp_path):
    src = write_esnli(str(tmp_path / 'e'))
    os.unlink(os.path.join(src, 'labels.test'))
    with pytest.raises(DataError, match=r'labels\.test: missing'):
        snli_standin.write_snli_standin(src, str(tmp_path / 'out'))
    assert not os.path.exists(str(tmp_path / 'out' / 'snli_1.0' /
                                  'snli_1.0_test.jsonl'))


def test_empty_premise_or_hypothesis_is_kept_and_predictable():
    data, skipped = text_datasets.parse_snli_lines([json.dumps(
        {'sentence1': '', 'sentence2': 'A man .', 'gold_label': 'neutral'})])
    assert skipped == 0 and data == [(([], ['a', 'man', '.']), 1)]
    setup = {'model': 'cnn', 'n_vocab': 6, 'n_embed': 4, 'unit': 6,
             'layer': 1, 'dropout': 0.0, 'n_class': 3, 'pair': True}
    model = nets.build_model(setup)
    empty = numpy.array([0], numpy.int32)   # only <eos>
    logits, layers = model.predict([(empty, empty),
                                    (empty, numpy.array([2, 0], 'i'))])
    assert numpy.isfinite(logits).all() and logits.shape == (2, 3)


def test_snli_pair_model_dknn_and_interpretations(snli_dir, tmp_path):
    out = tmp_path / 'r'
    results = train_text_classifier.main(
        ['--dataset', 'snli', '--model', 'bow', '--unit', '8', '--layer',
         '1', '--epoch', '1', '--batchsize', '16', '--n-calib', '20',
         '--data-dir', snli_dir, '--out', str(out)])
    assert results['n_train'] == 100 and results['n_test'] == 30
    setup_path = str(out / 'snli_bow' / 'args.json')
    run = runs.load(setup_path, data_dir=snli_dir)
    assert run.pair and run.model.layer_names == ['features', 'mlp1']
    # the data is where the user says (a run folder never says it)
    r = run_dknn.main(['--model-setup', setup_path, '--k', '5', '--layers',
                       'all', '--data-dir', snli_dir])
    assert r['layers'] == ['features', 'mlp1'] and r['n_test'] == 30
    payload = interpretations.main(
        ['--model-setup', setup_path, '--interp_method', 'dknn,grad',
         '--all', '--k', '5', '--artifacts', '--quiet', '--data-dir',
         snli_dir])
    run_dir = str(out / 'snli_bow')
    page = open(os.path.join(run_dir, 'interpretations_dknn+grad.html')).read()
    assert 'entailment' in page or 'neutral' in page
    assert 'Blue: the token supported the label its method explains' in page
    ex = payload['examples'][0]
    hyp = text_datasets.load_raw('snli', snli_dir).test[0][0][1]
    assert ex['tokens'] == hyp   # the hypothesis is explained by default
    assert os.path.exists(os.path.join(run_dir, 'artifacts_dknn.md'))
    assert os.path.exists(os.path.join(run_dir, 'artifacts_dknn.png'))
    total = sum(n for rows in payload['artifacts'].values()
                for _, n, _ in rows)
    assert 0 < total <= 30


def test_artifact_words_counts_the_top_word_per_class():
    att = attribution.Attribution
    recs = [{'parts': [['p'], hyp], 'explained': [1],
             'results': {'dknn': att(pred, .9, numpy.array(imp))}}
            for hyp, pred, imp in ((['a', 'cat', 'sleeps'], 2, [.1, .2, .5]),
                                   (['nobody', 'sleeps'], 2, [.1, .3]),
                                   (['a', 'dog'], 0, [.4, .2]))]
    words = artifacts.artifact_words(recs, 'dknn', 3)
    assert words[2] == [('sleeps', 2, pytest.approx(0.4))]
    assert words[0] == [('a', 1, pytest.approx(0.4))] and words[1] == []


def test_hypothesis_only_dataset(snli_dir):
    pair = text_datasets.load_raw('snli', snli_dir)
    hyp = text_datasets.load_raw('snli-hypothesis', snli_dir)
    assert [f for f, _ in hyp.train] == [(f[1],) for f, _ in pair.train]
    assert [y for _, y in hyp.test] == [y for _, y in pair.test]
    s = text_datasets.get_dataset('snli-hypothesis', snli_dir, n_calib=10)
    assert s.train[0][0].ndim == 1 and s.n_class == 3
