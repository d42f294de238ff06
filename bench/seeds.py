#!/usr/bin/env python
"""The `make train` model over several seeds, into RESULTS.md.

    python bench/seeds.py [--seeds 0 1 2 3 4]

Trains the SST-2 CNN of `make train` (GloVe 6B 50d, 5 epochs, batch 32,
dropout 0.2) once per seed, then evaluates the DkNN (k = 75, last layer)
and fits the temperature, and writes the ``seeds`` section of RESULTS.md:
the spread the README's expected numbers come from. Finished seeds are
reused.
"""
import argparse
import os

import numpy

from report import RESULTS, write_section, read_json  # NOQA (first)
from toolkit import cli  # NOQA
import run_dknn  # NOQA
from toolkit import runs  # NOQA
import scaling  # NOQA
import text_datasets  # NOQA
import train_text_classifier  # NOQA
from toolkit.settings import TrainSettings  # NOQA

MAKE_TRAIN = dict(dataset='stsa.binary', model='cnn', epoch=5, batchsize=32,
                  dropout=0.2)


def one_seed(seed, out, glove):
    """Train (unless done), DkNN and scaling for one seed: a row dict."""
    folder = os.path.join(out, 'seed{}'.format(seed), 'stsa.binary_cnn')
    if not os.path.exists(os.path.join(folder, 'train_results.json')):
        train_text_classifier.train_run(TrainSettings(
            seed=seed, word_vectors=glove,
            out=os.path.dirname(folder), **MAKE_TRAIN))
    run = runs.load(os.path.join(folder, 'args.json'))
    train = read_json(run.path('train_results'))
    dk = run_dknn.evaluate_run(run)
    ts = scaling.calibrate_run(run)
    return {'seed': seed, 'val': train['val_accuracy'],
            'test': train['test_accuracy'],
            'epoch_s': train['seconds_per_epoch'],
            'dknn': dk['conformity']['accuracy'],
            'conformal': dk['conformal']['accuracy'],
            'ece_softmax': dk['softmax']['ece'],
            'ece_dknn': dk['conformity']['ece'],
            'T': ts['temperature'], 'ece_scaled': ts['test']['ece_after'],
            'nll': ts['test']['nll_before'],
            'nll_scaled': ts['test']['nll_after']}


COLUMNS = [('seed', 'seed', '{}'), ('val', 'validation acc.', '{:.4f}'),
           ('test', 'test acc.', '{:.4f}'), ('dknn', 'DkNN acc.', '{:.4f}'),
           ('conformal', 'DkNN conformal acc.', '{:.4f}'),
           ('ece_softmax', 'ECE softmax', '{:.4f}'),
           ('ece_scaled', 'ECE scaled', '{:.4f}'), ('T', 'T', '{:.3f}'),
           ('ece_dknn', 'ECE DkNN', '{:.4f}'),
           ('epoch_s', 's / epoch', '{:.1f}')]


def section(rows):
    head = '| ' + ' | '.join(title for _, title, _ in COLUMNS) + ' |'
    lines = [head, '|' + '---|' * len(COLUMNS)]
    for r in rows:
        lines.append('| ' + ' | '.join(fmt.format(r[key])
                                       for key, _, fmt in COLUMNS) + ' |')
    for name, agg in (('mean', numpy.mean), ('std', numpy.std)):
        lines.append('| ' + ' | '.join(
            name if key == 'seed' else fmt.format(agg([r[key] for r in rows]))
            for key, _, fmt in COLUMNS) + ' |')
    return '\n'.join([
        '## The `make train` model over seeds (`bench/seeds.py`)', '',
        'Command: `python bench/seeds.py --seeds {}`. The SST-2 CNN of `make '
        'train` (GloVe 6B 50d, `--epoch 5 --batchsize 32 --dropout 0.2`), '
        'one run per seed; DkNN with k = 75 on the last layer (conformity '
        'unless said), temperature fitted on the 1000 calibration examples. '
        'Seed 0 is what `make train` prints. Seconds per epoch depend on the '
        'machine and its load; the accuracies of a seed did not, on the '
        'machines we tried.'.format(' '.join(str(r['seed']) for r in rows)),
        ''] + lines)


@cli.script
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', type=cli.int_in(0, 2 ** 32 - 1), nargs='+',
                   default=[0, 1, 2, 3, 4])
    p.add_argument('--out', default='result/seeds')
    args = p.parse_args(argv)
    glove = os.path.join(text_datasets.data_dir_from(None), 'glove',
                         'glove.6B.50d.txt.gz')
    rows = [one_seed(s, args.out, glove) for s in args.seeds]
    write_section('seeds', section(rows), RESULTS)
    return rows


if __name__ == '__main__':
    main()
