"""Shared fixtures: a tiny synthetic dataset and the real data folder."""
import os
import sys

import numpy
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory):
    """Train a tiny CNN once; return the path of its args.json."""
    import train_text_classifier
    base = tmp_path_factory.mktemp('run')
    data = write_tiny_sst(base / 'data')
    train_text_classifier.main(TINY_TRAIN + ['--model', 'cnn', '--data-dir',
                                             data, '--out', str(base / 'r')])
    return str(base / 'r' / 'stsa.binary_cnn' / 'args.json')


RUN_FILES = ('args.json', 'best_model.npz', 'vocab.json', 'calib.json')


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
    env = os.environ.get('DKNN_DATA_DIR')
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
