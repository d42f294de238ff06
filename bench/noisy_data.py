"""Noisy copies of a data set that keep its splits, for bench/label_noise.py.

Labels are flipped in the training split only (never calibration,
validation or test), and the result is written as a user data set (a
JSON Lines folder, docs/data.md) that the unchanged training script reads:

* ``train.jsonl`` is the training pool: the training split in its order,
  with the calibration examples placed at exactly the positions that
  ``get_dataset(..., seed)`` draws for calibration, so a run trained with
  that seed and ``--n-calib len(calib)`` sees the same calibration set and
  the same training split, in the same order (training index i is the
  same example in the clean and the noisy run);
* ``dev.jsonl`` is the validation split and ``test.jsonl`` the test split.

Labels are written by name: a user data set sorts its label names, so
label ids may differ from the built-in's; everything here works by name
or by position in the training split.
"""
import json
import os

import numpy

from report import ROOT  # NOQA (sets sys.path)
from toolkit import fileio  # NOQA
from toolkit import user_data  # NOQA


def flip_uniform(labels, rate, n_class, rng):
    """Flip ``round(rate * N)`` labels, each to one of the other classes
    drawn uniformly.

    Args:
        labels: (N,) int labels.
        rng (numpy.random.RandomState): the noise seed.

    Returns:
        tuple: (N,) noisy labels and the sorted flipped positions.
    """
    labels = numpy.asarray(labels)
    flipped = numpy.sort(rng.choice(len(labels), int(round(rate * len(
        labels))), replace=False))
    noisy = labels.copy()
    shift = rng.randint(1, n_class, len(flipped))   # never the same class
    noisy[flipped] = (labels[flipped] + shift) % n_class
    return noisy, flipped


def flip_pair(labels, a, b, rate, rng):
    """Class-conditional noise: ``round(rate * n_a)`` examples of class
    ``a`` get label ``b``, and as many of ``b`` in proportion get ``a``.

    Returns:
        tuple: (N,) noisy labels and the sorted flipped positions.
    """
    labels = numpy.asarray(labels)
    noisy, flipped = labels.copy(), []
    for src, dst in ((a, b), (b, a)):
        members = numpy.flatnonzero(labels == src)
        pick = rng.choice(members, int(round(rate * len(members))),
                          replace=False)
        noisy[pick] = dst
        flipped.append(pick)
    return noisy, numpy.sort(numpy.concatenate(flipped))


def flip_one_way(labels, a, b, rate, rng):
    """Asymmetric noise: ``round(rate * n_a)`` examples of class ``a`` get
    label ``b``, none the other way. Returns (noisy labels, positions)."""
    labels = numpy.asarray(labels)
    noisy = labels.copy()
    members = numpy.flatnonzero(labels == a)
    pick = numpy.sort(rng.choice(members, int(round(rate * len(members))),
                                 replace=False))
    noisy[pick] = b
    return noisy, pick


def record(fields, label):
    """One JSON Lines record: tokens joined by spaces, label by name."""
    keys = ('premise', 'hypothesis') if len(fields) == 2 else ('text',)
    return dict(zip(keys, (' '.join(t) for t in fields)), label=label)


def calib_positions(n_pool, n_calib, seed):
    """Where ``get_dataset`` draws the calibration set from a pool of
    ``n_pool`` examples with ``seed`` when there is a dev file (see
    ``text_datasets._pool_positions``)."""
    rng = numpy.random.RandomState(seed)
    return set(numpy.sort(rng.permutation(n_pool)[:n_calib]).tolist())


def pool_order(train, calib, seed):
    """The training pool: ``train`` in order, ``calib`` at the positions
    the seed draws for calibration."""
    n = len(train) + len(calib)
    at = calib_positions(n, len(calib), seed)
    it_train, it_calib = iter(train), iter(calib)
    return [next(it_calib) if i in at else next(it_train) for i in range(n)]


def write_folder(folder, parts, names, seed):
    """Write a JSON Lines data set that :func:`toolkit.user_data.get_dataset`
    splits back into exactly ``parts``.

    Args:
        parts (dict): ``train``, ``calib``, ``val``, ``test``: lists of
            ``(fields, label id)``; ``names``: label names by id.
        seed (int): the training seed (it draws the calibration set).

    Returns:
        str: the folder.
    """
    os.makedirs(folder, exist_ok=True)
    files = {'train': pool_order(parts['train'], parts['calib'], seed),
             'dev': parts['val'], 'test': parts['test']}
    for name, rows in files.items():
        fileio.save_atomic(os.path.join(folder, name + '.jsonl'), lambda f,
                           rows=rows: f.write(''.join(json.dumps(record(
                               fields, names[y])) + '\n' for fields, y in
                               rows)), 'w')
    return folder


def check_folder(folder, parts, names, seed):
    """Refuse a folder whose splits differ from ``parts`` (by name)."""
    got = user_data.get_dataset(folder, seed=seed,
                                n_calib=len(parts['calib']))
    for split in ('train', 'calib', 'val', 'test'):
        mine = [(tuple(f), names[y]) for f, y in parts[split]]
        theirs = [(tuple(f), got.label_names[y])
                  for f, y in got.raw[split]]
        if mine != theirs:
            raise AssertionError('{}: the {} split changed'.format(folder,
                                                                  split))
    return got


def with_labels(examples, labels):
    """``examples`` with their labels replaced by ``labels``."""
    return [(fields, int(y)) for (fields, _), y in zip(examples, labels)]
