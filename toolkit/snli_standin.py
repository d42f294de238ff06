"""The offline SNLI stand-in: official-schema ``snli_1.0/`` files built
from the e-SNLI copies of SNLI dev and test, the only SNLI data here.

A preparation step of the data path: :func:`prepare` builds it once, into
Chainer's dataset cache (:func:`text_datasets.standin_folder`), when the
data folder holds ``e-snli/`` but no ``snli_1.0``; then
:func:`text_datasets.snli_path` finds it. See docs/snli.md.
"""
import json
import os

import numpy

import text_datasets
from errors import DataError
from toolkit import fileio


def prepare(data_dir=None):
    """Build the stand-in unless the data folder holds SNLI, the stand-in
    exists, or there is no e-SNLI to build it from (then loading says
    what is missing); says so in one line when it builds."""
    for names in (['snli_1.0'], ['snli_1.0.zip']):
        try:
            text_datasets.locate(names, None, data_dir)
            return
        except DataError:
            pass
    folder = text_datasets.standin_folder()
    if os.path.isfile(os.path.join(folder, 'snli_1.0_test.jsonl')):
        return
    try:
        esnli = text_datasets.locate(['e-snli'], None, data_dir)
    except DataError:
        return
    write_snli_standin(esnli, os.path.dirname(folder))
    print('note: no SNLI train file in the data folder; built the offline '
          'stand-in (train = 90% of SNLI dev, test = SNLI test; '
          'docs/snli.md) from {} into {}'.format(esnli, folder))


def write_snli_standin(src_dir, out_dir, val_ratio=0.1, seed=0):
    """Official-schema ``snli_1.0/`` jsonl files from the e-SNLI copies of
    SNLI dev and test (the only SNLI data offline).

    A stand-in, not SNLI: ``train`` holds 90% of the dev pairs, ``dev``
    the other 10%, ``test`` the test pairs. The real run trains on the 550k
    train pairs.

    Args:
        src_dir (str): folder holding ``s1.dev``, ``s2.dev``, ``labels.dev``
            and the same for ``test`` (``../shared/data/snli/e-snli``).
        out_dir (str): ``out_dir/snli_1.0/`` is written.

    Returns:
        str: the ``snli_1.0`` folder.
    """
    def pairs(split):
        cols = []
        for col in ('s1', 's2', 'labels'):
            path = os.path.join(src_dir, '{}.{}'.format(col, split))
            if not os.path.isfile(path):
                raise DataError('{}: missing; point at the e-SNLI folder '
                                '(../shared/data/snli/e-snli)'.format(path))
            with fileio.text_file(path, DataError) as f:
                cols.append([line.strip() for line in f])
        return [json.dumps({'sentence1': p, 'sentence2': h,
                            'gold_label': y, 'annotator_labels': [y]})
                for p, h, y in zip(*cols)]
    dev = pairs('dev')
    perm = numpy.random.RandomState(seed).permutation(len(dev))
    n_val = int(round(len(dev) * val_ratio))
    splits = {'train': [dev[i] for i in sorted(perm[n_val:])],
              'dev': [dev[i] for i in sorted(perm[:n_val])],
              'test': pairs('test')}
    folder = os.path.join(out_dir, 'snli_1.0')
    os.makedirs(folder, exist_ok=True)
    out = fileio.Outputs(folder)
    names = {split: 'snli_1.0_{}.jsonl'.format(split) for split in splits}
    out.expect(*names.values())
    for split in ('train', 'dev', 'test'):   # test last: it marks the end
        out.write(names[split], lambda f, s=split: f.write(
            '\n'.join(splits[s]) + '\n'), 'w')
    return folder
