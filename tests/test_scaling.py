import json
import os
import shutil

import numpy
import pytest

import chainer

import nets
import runs
import scaling
from cli import UserError

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def sample_labels(probs, rng):
    """One class per row of an (N, C) probability array."""
    return (rng.rand(len(probs), 1) > probs.cumsum(axis=1)).sum(axis=1)


# ------------------------------------------------------------------ metrics

def test_softmax_and_nll_agree_with_a_direct_computation():
    logits = numpy.array([[1., 2., 3.], [1000., 0., -1000.]])
    p = scaling.softmax(logits)
    numpy.testing.assert_allclose(p.sum(axis=1), 1)
    numpy.testing.assert_allclose(p[0], numpy.exp([1, 2, 3]) /
                                  numpy.exp([1, 2, 3]).sum())
    assert p[1, 0] == 1  # no overflow on large logits
    labels = numpy.array([2, 0])
    expected = -(numpy.log(p[0, 2]) + 0.) / 2
    assert scaling.nll(logits, labels) == pytest.approx(expected)
    assert scaling.nll(logits, labels, T=2.) == pytest.approx(
        -numpy.log(scaling.softmax(logits / 2.)[[0, 1], labels]).mean())


def test_ece_by_hand_on_six_points():
    conf = [1.0, 0.95, 0.70, 0.72, 0.45, 0.10]
    correct = [1, 0, 1, 1, 0, 0]
    # 15 bins of width 1/15, each (lower, upper]:
    #   bin 15 (14/15, 1]:        1.0, 0.95  mean conf .975, acc 1/2, gap .475
    #   bin 11 (10/15, 11/15]:    .70, .72   mean conf .71,  acc 1,   gap .29
    #   bin 7  (6/15, 7/15]:      .45        conf .45,       acc 0,   gap .45
    #   bin 2  (1/15, 2/15]:      .10        conf .10,       acc 0,   gap .10
    by_hand = (2 * .475 + 2 * .29 + 1 * .45 + 1 * .10) / 6
    assert scaling.expected_calibration_error(conf, correct) == \
        pytest.approx(by_hand)
    assert scaling.max_calibration_error(conf, correct) == pytest.approx(.475)
    bins = scaling.reliability_bins(conf, correct)
    full = numpy.flatnonzero(bins.count)
    assert full.tolist() == [1, 6, 10, 14]
    assert bins.count[full].tolist() == [1, 1, 2, 2]
    numpy.testing.assert_allclose(bins.confidence[full],
                                  [.10, .45, .71, .975])
    numpy.testing.assert_allclose(bins.accuracy[full], [0, 0, 1, .5])
    assert numpy.isnan(bins.accuracy[0])  # empty bins are NaN, not 0


def test_bins_include_their_upper_edge():
    upper = numpy.arange(1, 16) / 15.
    bins = scaling.reliability_bins(upper, numpy.ones(15))
    assert bins.count.tolist() == [1] * 15
    numpy.testing.assert_array_equal(bins.upper, upper)
    # a confidence of exactly 0 is counted, in the first bin
    assert scaling.reliability_bins([0.], [0]).count[0] == 1


def test_ece_near_zero_when_calibrated_and_large_when_not():
    rng = numpy.random.RandomState(0)
    conf = rng.uniform(0, 1, 100000)
    calibrated = rng.rand(len(conf)) < conf
    assert scaling.expected_calibration_error(conf, calibrated) < 0.01
    overconfident = rng.rand(len(conf)) < conf ** 2
    # E|c - c^2| = 1/2 - 1/3
    assert scaling.expected_calibration_error(conf, overconfident) == \
        pytest.approx(1 / 6, abs=0.01)


@pytest.mark.parametrize('conf, correct', [
    ([], []), ([0.5, 1.2], [1, 0]), ([numpy.nan], [1]), ([0.5], [1, 0])])
def test_ece_rejects_bad_scores(conf, correct):
    with pytest.raises(UserError):
        scaling.expected_calibration_error(conf, correct)


# ---------------------------------------------------------- the fit itself

@pytest.mark.parametrize('T', [0.5, 2., 3.])
def test_fit_recovers_the_temperature_that_generated_the_labels(T):
    rng = numpy.random.RandomState(int(T * 10))
    true_logits = rng.randn(100000, 3) * 2
    labels = sample_labels(scaling.softmax(true_logits), rng)
    # the model's logits are T times too large or small: dividing by T
    # gives back the distribution the labels were drawn from
    fitted = scaling.fit_temperature(true_logits * T, labels)
    assert fitted == pytest.approx(T, rel=0.02)


def test_fit_is_the_minimum_of_nll():
    rng = numpy.random.RandomState(1)
    logits = rng.randn(500, 4) * 3
    labels = rng.randint(0, 4, 500)
    labels[:250] = logits[:250].argmax(axis=1)
    T = scaling.fit_temperature(logits.astype(numpy.float32), labels)
    best = scaling.nll(logits, labels, T)
    for factor in (0.999, 1.001, 0.9, 1.1):
        assert scaling.nll(logits, labels, T * factor) > best
    # scaling never changes the predictions
    assert (scaling.softmax(logits / T).argmax(1) == logits.argmax(1)).all()


LOGITS = numpy.array([[2., 1., 0.], [0., 1., 3.], [1., 2., 0.], [0., 0., 1.]])


@pytest.mark.parametrize('logits, labels, match', [
    (numpy.zeros((0, 3)), numpy.zeros(0, int), 'empty'),
    (LOGITS, numpy.array([1, 1, 1, 1]), 'every calibration label is 1'),
    (numpy.ones((4, 3)), numpy.array([0, 1, 2, 0]), 'all logits.*equal'),
    (numpy.where(numpy.eye(4, 3), numpy.nan, LOGITS), numpy.array(
        [0, 2, 2, 0]), '3 of the 12 logits are NaN or infinite'),
    (numpy.where(numpy.eye(4, 3), numpy.inf, LOGITS), numpy.array(
        [0, 2, 2, 0]), 'NaN or infinite'),
    (LOGITS, numpy.array([0, 2, 1, 3]), r'labels must be ints in \[0, 3\)'),
    (LOGITS, numpy.array([0, 2]), 'shapes'),
    # every example right: NLL falls as T -> 0
    (LOGITS, numpy.array([0, 2, 1, 2]), 'all 4 calibration examples'),
    # worse than uniform: the optimum would be T = infinity or T < 0
    (LOGITS, numpy.array([2, 0, 2, 0]), 'no better than the uniform'),
])
def test_fit_refuses_bad_calibration_sets(logits, labels, match):
    with pytest.raises(UserError, match=match):
        scaling.fit_temperature(logits, labels)


# ------------------------------------------------------------------ the link

def test_temperature_scaling_link_divides_the_logits(tiny_run):
    run = runs.load(tiny_run)
    model = run.model
    xs = [x for x, _ in run.splits.test[:5]]
    scaled = scaling.TemperatureScaling(model, 2.5)
    assert scaled.temperature == pytest.approx(2.5)
    with chainer.using_config('train', False):
        numpy.testing.assert_allclose(scaled.logits(xs).array,
                                      model.logits(xs).array / 2.5, rtol=1e-5)
    logits, layers = scaled.predict(xs)
    raw, raw_layers = model.predict(xs)
    numpy.testing.assert_allclose(logits, raw / 2.5, rtol=1e-5)
    assert list(layers) == list(raw_layers)
    # the temperature is a parameter with a gradient, kept as log T
    assert [name for name, _ in scaled.namedparams()
            if 'temperature' in name] == ['/log_temperature']
    with chainer.using_config('train', False):
        chainer.functions.sum(scaled.logits(xs) ** 2).backward()
    assert scaled.log_temperature.grad is not None
    for bad in (0., -1., float('nan'), float('inf')):
        with pytest.raises(UserError, match='positive and finite'):
            scaling.TemperatureScaling(model, bad)


# ------------------------------------------------------------------- script

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
    results = main_on(run_folder)
    saved = json.loads((run_folder / scaling.TEMPERATURE_FILE).read_text())
    assert saved == results
    T = saved['temperature']
    assert numpy.isfinite(T) and T > 0
    for split, n in (('calib', 10), ('test', 16)):
        r = saved[split]
        assert r['n'] == n
        for key in ('nll_before', 'nll_after', 'ece_before', 'ece_after',
                    'accuracy'):
            assert numpy.isfinite(r[key])
        assert 0 <= r['ece_before'] <= 1 and 0 <= r['accuracy'] <= 1
    # T minimises NLL on the calibration set, so it can only lower it there
    assert saved['calib']['nll_after'] <= saved['calib']['nll_before']
    assert runs.read_temperature(str(run_folder)) == T
    # the numbers match the model's own predictions
    run = runs.load(str(run_folder / 'args.json'))
    logits, _, labels = nets.predict_dataset(run.model, run.splits.test,
                                             None)
    assert saved['test']['nll_after'] == pytest.approx(
        scaling.nll(logits, labels, T))
    image = read_png(run_folder / scaling.RELIABILITY_FILE)
    assert image.shape[1] > 1.5 * image.shape[0]  # two panels side by side
    assert results['panels'][0].startswith('softmax')
    assert len(results['panels']) == 2
    out = capsys.readouterr().out
    assert 'DkNN credibility panel is left out' in out
    assert 'ECE before' in out
    assert not [p for p in os.listdir(str(run_folder)) if p.startswith('.')]


def test_dknn_credibility_adds_a_third_panel(run_folder, tmp_path):
    rng = numpy.random.RandomState(0)
    numpy.savez(str(run_folder / scaling.DKNN_CREDIBILITY_FILE),
                credibility=rng.uniform(0, 1, 16),
                correct=rng.rand(16) < 0.5)
    results = main_on(run_folder)
    assert results['panels'][2].startswith('DkNN credibility')
    wide = read_png(run_folder / scaling.RELIABILITY_FILE)
    assert wide.shape[1] > 2.5 * wide.shape[0]
    conf = rng.uniform(0, 1, 30)
    fig = scaling.plot_reliability(
        [('a', conf, conf > .5), ('b', conf, conf > .3),
         ('c', conf, conf > .1)])
    assert len(fig.axes) == 3
    assert 'ECE = ' in fig.axes[2].get_title()


def fails_cleanly(run, match):
    with pytest.raises(SystemExit, match=match) as e:
        main_on(run)
    assert str(e.value.code).startswith('error: ')
    assert not (run / scaling.TEMPERATURE_FILE).exists()
    assert not (run / scaling.RELIABILITY_FILE).exists()


def test_calibration_set_changed_since_training(run_folder):
    calib = json.loads((run_folder / 'calib.json').read_text())
    other = min(set(range(len(calib) + 1)) - set(calib))
    (run_folder / 'calib.json').write_text(json.dumps(sorted(calib[1:] + [
        other])))
    fails_cleanly(run_folder, 'data changed since training')
    (run_folder / 'calib.json').unlink()
    fails_cleanly(run_folder, 'calib.json: no such file')


def test_empty_calibration_set(run_folder):
    setup = json.loads((run_folder / 'args.json').read_text())
    setup['n_calib'] = 0
    (run_folder / 'args.json').write_text(json.dumps(setup))
    (run_folder / 'calib.json').write_text('[]')
    fails_cleanly(run_folder, 'calibration set is empty')


def test_bad_flags_and_missing_files(run_folder, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main_on(run_folder, '--n-bins', '0')
    assert 'argument --n-bins: must be at least 1, got 0' in \
        capsys.readouterr().err
    with pytest.raises(SystemExit, match='error: .*no such file'):
        scaling.main(['--model-setup', str(tmp_path / 'nope' / 'args.json')])
