import json
import os

import numpy
import pytest

from toolkit import metrics
import nets
from toolkit import render
import run_dknn
from toolkit import runfiles
from toolkit import runs
import scaling
from toolkit import temperature

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


@pytest.fixture
def run_folder(run_copy):
    import pathlib
    return pathlib.Path(run_copy).parent


def main_on(run, *extra):
    return scaling.main(['--model-setup', str(run / 'args.json')] +
                        list(extra))


def read_png(path):
    import matplotlib.image
    with open(str(path), 'rb') as f:
        assert f.read(8) == PNG_SIGNATURE
    return matplotlib.image.imread(str(path))


def test_main_writes_temperature_and_reliability(run_folder, capsys):
    results = main_on(run_folder, '--k', '5')
    saved = json.loads((run_folder / 'temperature.json').read_text())
    assert saved == json.loads(json.dumps(results))
    # every number is recomputed from the model's own predictions
    run = runs.load(str(run_folder / 'args.json'))
    calib = nets.predict_dataset(run.model, run.splits.calib, None)
    test = nets.predict_dataset(run.model, run.splits.test, None)
    T = temperature.fit_temperature(calib.logits, calib.labels)
    assert saved['temperature'] == pytest.approx(T, rel=1e-6)
    assert runfiles.read_temperature(str(run_folder)) == saved['temperature']
    for split, acts in (('calib', calib), ('test', test)):
        r = saved[split]
        right = acts.logits.argmax(1) == acts.labels
        assert r['n'] == len(acts.labels)
        assert r['accuracy'] == pytest.approx(right.mean())
        assert r['nll_before'] == pytest.approx(
            metrics.nll(acts.logits, acts.labels))
        assert r['nll_after'] == pytest.approx(
            metrics.nll(acts.logits, acts.labels, T), rel=1e-6)
        assert r['ece_after'] == pytest.approx(
            metrics.expected_calibration_error(
                metrics.softmax(acts.logits / T).max(1), right), abs=1e-6)
    # T minimises NLL on the calibration set, so it can only lower it there
    assert saved['calib']['nll_after'] <= saved['calib']['nll_before']
    # the DkNN panel is the DkNN of run_dknn.py with the same k and layers
    dk = run_dknn.main(['--model-setup', str(run_folder / 'args.json'),
                        '--k', '5', '--scoring', 'conformity'])
    assert saved['dknn']['ece'] == pytest.approx(dk['conformity']['ece'])
    assert saved['dknn']['layers'] == dk['layers'] == ['mlp1']
    image = read_png(run_folder / 'reliability.png')
    assert image.shape[1] > 2.5 * image.shape[0]  # three panels side by side
    assert [p.split()[0] for p in results['panels']] == [
        'softmax', 'temperature', 'DkNN']
    assert 'ECE before' in capsys.readouterr().out
    assert not [p for p in os.listdir(str(run_folder)) if p.startswith('.')]


def test_without_the_dknn_panel(run_folder):
    results = main_on(run_folder, '--no-dknn')
    assert len(results['panels']) == 2 and 'dknn' not in results
    image = read_png(run_folder / 'reliability.png')
    assert 1.5 * image.shape[0] < image.shape[1] < 2.5 * image.shape[0]
    rng = numpy.random.RandomState(0)
    conf = rng.uniform(0, 1, 30)
    fig = render.plot_reliability(
        [('a', conf, conf > .5), ('b', conf, conf > .3),
         ('c', conf, conf > .1)])
    assert len(fig.axes) == 3
    assert 'ECE = ' in fig.axes[2].get_title()


def fails_cleanly(run, match):
    with pytest.raises(SystemExit, match=match) as e:
        main_on(run)
    assert str(e.value.code).startswith('error: ')
    assert not (run / 'temperature.json').exists()
    assert not (run / 'reliability.png').exists()


def test_calibration_set_changed_since_training(run_folder):
    calib = json.loads((run_folder / 'calib.json').read_text())
    other = min(set(range(len(calib) + 1)) - set(calib))
    (run_folder / 'calib.json').write_text(json.dumps(sorted(calib[1:] + [
        other])))
    fails_cleanly(run_folder, 'the data changed since')
    (run_folder / 'calib.json').unlink()
    fails_cleanly(run_folder, 'calib.json: no such file')


def test_empty_calibration_set(tiny_data, tmp_path):
    import pathlib
    import train_text_classifier
    from conftest import TINY_TRAIN
    train_text_classifier.main(TINY_TRAIN[:-2] + [
        '--n-calib', '0', '--data-dir', tiny_data, '--out', str(tmp_path)])
    fails_cleanly(pathlib.Path(tmp_path) / 'stsa.binary_cnn',
                  'calibration set is empty')


def test_bad_flags_and_missing_files(run_folder, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main_on(run_folder, '--n-bins', '0')
    assert 'argument --n-bins: must be an integer in [1, 10000], got 0' in \
        capsys.readouterr().err
    with pytest.raises(SystemExit, match='error: .*no such file'):
        scaling.main(['--model-setup', str(tmp_path / 'nope' / 'args.json')])
