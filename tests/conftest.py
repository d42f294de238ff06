"""Shared fixtures: a tiny synthetic dataset and the real data folder."""
import os
import sys

import numpy
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# small data sets of your own kind (a CSV, a TSV folder, a JSONL pair folder)
USER_DATA = os.path.join(ROOT, 'tests', 'data', 'user')
sys.path.insert(0, ROOT)

POSITIVE = ['good', 'great', 'fun', 'superb']
NEGATIVE = ['bad', 'dull', 'awful', 'boring']
NEUTRAL = ['movie', 'plot']


def synthetic_lines(n, seed):
    """``LABEL text`` lines over a 10-word vocabulary; the label is the
    majority sentiment of the words."""
    rng = numpy.random.RandomState(seed)
    lines = []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(POSITIVE if label else NEGATIVE,
                                rng.randint(1, 4)))
        words += list(rng.choice(NEUTRAL, rng.randint(0, 3)))
        rng.shuffle(words)
        lines.append('{} {}'.format(label, ' '.join(words)))
    return lines


def write_tiny_sst(folder, n_train=60, n_dev=12, n_test=16):
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    for split, n, seed in (('train', n_train, 0), ('dev', n_dev, 1),
                           ('test', n_test, 2)):
        with open(os.path.join(folder, 'stsa.binary.' + split), 'w') as f:
            f.write('\n'.join(synthetic_lines(n, seed)) + '\n')
    return folder


@pytest.fixture
def tiny_data(tmp_path):
    """A data folder holding a 10-word stsa.binary look-alike."""
    return write_tiny_sst(tmp_path / 'data')


TINY_TRAIN = ['--dataset', 'stsa.binary', '--unit', '9', '--layer', '1',
              '--epoch', '1', '--batchsize', '8', '--n-calib', '10']
# $DKNN_DATA_DIR as the tests found it: the real data, if set
REAL_DATA_ENV = os.environ.get('DKNN_DATA_DIR')


@pytest.fixture(scope='session')
def tiny_data_dir(tmp_path_factory):
    """One tiny data folder for the session (write_tiny_sst is seeded, so
    every tiny folder holds the same files)."""
    return write_tiny_sst(tmp_path_factory.mktemp('tinydata'))


@pytest.fixture(scope='session', autouse=True)
def data_dir_env(tiny_data_dir):
    """``$DKNN_DATA_DIR`` is the tiny data, as a user sets it: a run folder
    never says where its data is (docs/robustness.md), so the tiny runs
    read theirs from here unless a test passes --data-dir."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('DKNN_DATA_DIR', tiny_data_dir)
        yield tiny_data_dir


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory, tiny_data_dir):
    """Train a tiny CNN once; return the path of its args.json."""
    import train_text_classifier
    base = tmp_path_factory.mktemp('run')
    train_text_classifier.main(TINY_TRAIN + ['--model', 'cnn', '--data-dir',
                                             tiny_data_dir, '--out',
                                             str(base / 'r')])
    return str(base / 'r' / 'stsa.binary_cnn' / 'args.json')


RUN_FILES = ('args.json', 'best_model.npz', 'vocab.json', 'calib.json',
             'train_results.json')


def copy_run(setup_path, folder):
    """Copy a trained run's training outputs (not later artifacts) into
    ``folder``; return the copy's args.json."""
    import shutil
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    for name in RUN_FILES:
        shutil.copy(os.path.join(os.path.dirname(setup_path), name),
                    os.path.join(folder, name))
    return os.path.join(folder, 'args.json')


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A private copy of the tiny trained run: tests that write into a run
    folder use it, never the session-wide run."""
    return copy_run(tiny_run, tmp_path / 'run')


def real_data_dir():
    env = REAL_DATA_ENV
    if env and os.path.isdir(env):
        return env
    path = os.path.join(ROOT, '..', 'shared', 'data')
    return os.path.abspath(path) if os.path.isdir(path) else None


@pytest.fixture
def real_data():
    """The real data folder (``$DKNN_DATA_DIR`` or ``../shared/data``)."""
    path = real_data_dir()
    if path is None:
        pytest.skip('real data not found: set DKNN_DATA_DIR')
    return path


@pytest.fixture(autouse=True)
def no_default_data_folder(monkeypatch):
    """Tests name their data; the default folders (data/ in the clone,
    ../shared/data beside it) would make them depend on this machine."""
    import text_datasets
    monkeypatch.setattr(text_datasets, 'DEFAULT_DATA_DIRS', ())
