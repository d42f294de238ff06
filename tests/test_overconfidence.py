"""The overconfidence sweep's machinery on tiny synthetic data, and the
training flags it needs (--keep, --init-seed)."""
import json
import os
import sys

import numpy
import pytest

import nets
import train_text_classifier
from toolkit.settings import TrainSettings
from conftest import TINY_TRAIN
from toolkit import metrics
from toolkit import runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'bench'))
import overconfidence  # NOQA

TINY = dict(epoch=2, batchsize=8, unit=9, layer=1, n_calib=10)
LEXICON = {'good': 1.9, 'great': 3.1, 'fun': 2.3, 'superb': 3.1,
           'bad': -2.5, 'dull': -1.7, 'awful': -2.0, 'boring': -1.3}


@pytest.fixture
def tiny_sweep(monkeypatch):
    """A recipe table of tiny recipes: a trained one, one without dropout
    keeping the last epoch, and one derived from it by T = 0.5."""
    monkeypatch.setattr(overconfidence, 'RECIPES', {
        'a': {'title': 'tiny', 'train': dict(TINY, dropout=0.2)},
        'b': {'title': 'tiny, last', 'train': dict(TINY, epoch=3, dropout=0.0,
                                                   keep='last')},
        'd': {'title': 'b sharpened', 'from': 'b', 'temperature': 0.5}})
    monkeypatch.setattr(overconfidence, 'CELLS', [
        ('a', 'cnn', {}), ('b', 'cnn', {}), ('d', 'cnn', {})])
    monkeypatch.setattr(overconfidence, 'MODELS', {'cnn': {}})
    monkeypatch.setattr(overconfidence, 'K', 5)
    monkeypatch.setattr(overconfidence, 'FILLERS', ('<unk>', 'movie'))
    monkeypatch.setattr(overconfidence.human_alignment, 'lexicon',
                        lambda: LEXICON)


def test_sweep_table_has_every_column_and_a_rerun_skips_finished_cells(
        tiny_sweep, tiny_data, tmp_path):
    argv = ['--out', str(tmp_path / 'o'), '--data-dir', tiny_data,
            '--models', 'cnn', '--seeds', '0', '1', '--n-explain', '8',
            '--n-reduce', '4', '--figure', str(tmp_path / 'fig.png'),
            '--no-results']
    result = overconfidence.main(argv)
    rows = result['rows']
    assert [(r['recipe'], r['seed']) for r in rows] == [
        ('a', 0), ('a', 1), ('b', 0), ('b', 1), ('d', 0), ('d', 1)]
    table = overconfidence.table(rows).splitlines()
    header = [h.strip() for h in table[0].strip('|').split('|')]
    assert header == [h for h, _ in overconfidence.COLUMNS]
    assert len(table) == 2 + len(rows)
    assert all(line.count('|') == len(header) + 1 for line in table)
    for key in ('recipe', 'model', 'seed', 'accuracy', 'confidence', 'ece',
                'dknn_accuracy', 'dknn_ece', 'methods', 'reduction',
                'replaced'):
        assert all(key in r for r in rows)
    for r in rows:
        assert set(r['methods']) == set(overconfidence.LOO)
        assert set(r['replaced']) == set(overconfidence.FILLERS)
        assert r['reduction']['n'] == 4 and r['n_explain'] == 8
        for m in r['methods'].values():
            for k in ('zero', 'small', 'entropy', 'tau_loo', 'sign',
                      'sign_all', 'spearman', 'aopc_softmax',
                      'aopc_conformity'):
                assert k in m
    # d is b with logits / 0.5: same accuracy and DkNN, more confident
    by = {(r['recipe'], r['seed']): r for r in rows}
    for s in (0, 1):
        b, d = by['b', s], by['d', s]
        assert d['accuracy'] == b['accuracy']
        assert d['dknn_accuracy'] == b['dknn_accuracy']
        assert d['confidence'] > b['confidence']
        assert d['methods']['dknn']['zero'] == b['methods']['dknn']['zero']
    for claim in overconfidence.CLAIMS:
        assert claim in result['answers']
    assert (tmp_path / 'fig.png').stat().st_size > 1000
    assert 'Per model' in (tmp_path / 'o' / 'table.md').read_text()
    # a rerun finds every cell finished: nothing is trained or measured
    cells = sorted((tmp_path / 'o' / 'cells').iterdir())
    stamps = [os.path.getmtime(str(p)) for p in cells]
    model = tmp_path / 'o' / 'b' / 's0' / 'stsa.binary_cnn' / 'best_model.npz'
    before = os.path.getmtime(str(model))
    again = overconfidence.main(argv)
    # (as JSON text: a NaN, a Spearman of constant importances, equals
    # itself there)
    assert json.dumps(again['rows'], sort_keys=True) == \
        json.dumps(rows, sort_keys=True)
    assert [os.path.getmtime(str(p)) for p in cells] == stamps
    assert os.path.getmtime(str(model)) == before


def test_every_real_cell_has_valid_training_settings():
    for recipe, model, extra in overconfidence.CELLS:
        spec = overconfidence.RECIPES[recipe]
        source = spec.get('from', recipe)
        got = overconfidence.training_settings(source, model, extra)
        args = TrainSettings(
            dataset='stsa.binary', model=model, init_seed=1, **got)
        assert args.init_seed == 1 and args.seed == 0
        for key, value in extra.items():   # the cell's own settings win
            assert getattr(args, key) == value
        if source == 'b':
            assert args.dropout == 0.0 and args.keep == 'last'


def test_regime_names_the_ece_threshold():
    def cell(ece, holds):
        return {'recipe': 'r', 'model': 'cnn', 'seeds': [0, 1], 'ece': ece,
                'holds': {'robust': holds}}
    cells = [cell(0.02, 0), cell(0.05, 1), cell(0.10, 2), cell(0.2, 2)]
    assert overconfidence.regime(cells, 'robust').startswith(
        'holds for models with ECE above 0.050')
    assert overconfidence.regime([cell(0.02, 0), cell(0.1, 0)], 'robust') \
        .startswith('does not hold in any regime')
    assert overconfidence.regime([cell(0.02, 2), cell(0.1, 0)], 'robust') \
        .startswith('holds only for models with ECE below 0.100')
    assert overconfidence.regime([cell(0.02, 1), cell(0.1, 0)], 'robust') \
        .startswith('does not hold on every seed of any cell')
    assert overconfidence.regime([cell(0.02, 2), cell(0.1, 0),
                                  cell(0.2, 2)], 'robust').startswith('mixed')


def train(data, out, *extra):
    return train_text_classifier.main(
        TINY_TRAIN + ['--data-dir', data, '--out', str(out),
                      '--dropout', '0'] + list(extra))


def weights(folder):
    with numpy.load(os.path.join(str(folder), 'stsa.binary_cnn',
                                 'best_model.npz')) as z:
        return {k: z[k] for k in z.files}


def validation_loss(folder, batchsize=8):
    """The saved model's validation loss as Chainer's Evaluator logs it:
    the mean over batches of each batch's mean cross-entropy."""
    run = runs.load(os.path.join(str(folder), 'stsa.binary_cnn', 'args.json'))
    val, losses = run.splits.val, []
    for i in range(0, len(val), batchsize):
        batch = val[i:i + batchsize]
        logits = nets.predict_inputs(run.model, [x for x, _ in batch], None)[0]
        y = numpy.array([int(numpy.ravel(t)[0]) for _, t in batch])
        p = metrics.softmax(logits)[numpy.arange(len(y)), y]
        losses.append(-numpy.log(p).mean())
    return float(numpy.mean(losses))


def test_keep_last_keeps_the_last_epochs_weights(tiny_data, tmp_path):
    # on this data validation accuracy peaks at epoch 4 of 6
    runs_ = {keep: train(tiny_data, tmp_path / keep, '--epoch', '6',
                         '--keep', keep) for keep in ('last', 'best')}
    log = json.loads((tmp_path / 'last' / 'stsa.binary_cnn' / 'log')
                     .read_text())
    assert runs_['last']['kept_epoch'] == 6 == runs_['last']['epochs']
    assert runs_['best']['kept_epoch'] == runs_['best']['best_epoch'] < 6
    assert runs_['last']['val_accuracy'] != runs_['best']['val_accuracy']
    # the saved weights reproduce the kept epoch's logged validation loss
    assert validation_loss(tmp_path / 'last') == pytest.approx(
        log[-1]['validation/main/loss'], abs=1e-5)
    best = runs_['best']['best_epoch']
    assert validation_loss(tmp_path / 'best') == pytest.approx(
        log[best - 1]['validation/main/loss'], abs=1e-5)
    setup = json.loads((tmp_path / 'last' / 'stsa.binary_cnn' / 'args.json')
                       .read_text())
    assert setup['keep'] == 'last'


def test_init_seed_changes_the_weights_not_the_split(tiny_data, tmp_path):
    a = train(tiny_data, tmp_path / 'a')
    b = train(tiny_data, tmp_path / 'b', '--init-seed', '7')
    c = train(tiny_data, tmp_path / 'c', '--seed', '7')
    calib = {k: json.loads((tmp_path / k / 'stsa.binary_cnn' / 'calib.json')
                           .read_text()) for k in 'abc'}
    assert calib['a'] == calib['b'] != calib['c']
    wa, wb = weights(tmp_path / 'a'), weights(tmp_path / 'b')
    assert not all(numpy.array_equal(wa[k], wb[k]) for k in wa)
    assert a['n_calib'] == b['n_calib'] == c['n_calib']
    # --init-seed equal to --seed is the run without it: "already trained"
    again = train(tiny_data, tmp_path / 'a', '--init-seed', '0')
    assert again == a
    assert not (tmp_path / 'a' / 'stsa.binary_cnn-2').exists()
