#!/usr/bin/env python
"""Are the nearest training examples a faithful explanation? The three
minimal tests of Hanawa, Yokoi, Hara & Inui (2021), "Evaluation of
similarity-based explanations" (ICLR), for every relevance metric of
:mod:`toolkit.relevance`.

    python bench/neighbour_tests.py              # train, test, report
    python bench/neighbour_tests.py --stage train

Tests, on ``--n-test`` (500) test inputs per model (Hanawa et al.'s
protocol; their code: ``k-hanawa/criteria_for_instance_based_explanation``):

* **identical class**: the most relevant training example carries the
  label the model *predicted* for the test input;
* **identical subclass**: on a model trained on super-classes (TREC's six
  classes in two groups, {NUM, HUM, ENTY} and {LOC, DESC, ABBR}, the split
  of the authors' own TREC figure; SST-5's five in negative {0, 1}, neutral
  {2}, positive {3, 4}), over the test inputs whose super-class it predicts
  right, the most relevant training example comes from the test input's
  original sub-class;
* **model randomisation**: the ranking of all training examples under the
  trained model against the ranking under the same architecture with fresh
  random weights (Spearman's rank correlation per test input); a metric
  that ignores the model scores near 1, one that follows it near 0.

Success rates get a 95% bootstrap interval over the test inputs (2,000
resamples). Models: TREC and SST-5 (``stsa.fine``) with the CNN and the
BiLSTM of the ``make train`` recipe (5 epochs, dropout 0.2, GloVe 50d), and
the same on the super-classes, 2 seeds each (``--init-seed``; the data
split fixed with ``--seed 0``). A run folder that exists is not trained
again. Writes ``OUT/results.json`` and the ``neighbour-tests`` section of
RESULTS.md.
"""
import argparse
import csv
import json
import os
import time

import numpy

from report import RESULTS, write_section, read_json  # NOQA (first)
import text_datasets  # NOQA
import train_text_classifier  # NOQA
from errors import UserError  # NOQA
from toolkit import cli  # NOQA
from toolkit import fileio  # NOQA
from toolkit.settings import TrainSettings  # NOQA

GLOVE = os.path.join('glove', 'glove.6B.50d.txt.gz')
RECIPE = dict(epoch=5, batchsize=32, dropout=0.2, word_vectors=GLOVE)
MODELS = {'cnn': dict(unit=300, layer=3), 'bilstm': dict(unit=150, layer=1)}
DATASETS = ('TREC', 'stsa.fine')
SEEDS = (0, 1)
# super-classes: data set -> (name, {original label id: super-class name})
SUPER = {
    'TREC': ('trec-super', {4: 'LOC+DESC+ABBR', 0: 'LOC+DESC+ABBR',
                            2: 'LOC+DESC+ABBR', 5: 'NUM+HUM+ENTY',
                            3: 'NUM+HUM+ENTY', 1: 'NUM+HUM+ENTY'}),
    'stsa.fine': ('sst5-super', {0: 'negative', 1: 'negative', 2: 'neutral',
                                 3: 'positive', 4: 'positive'}),
}
FILES = {'TREC': {'train': 'TREC.train.all', 'test': 'TREC.test.all'},
         'stsa.fine': {'train': 'stsa.fine.train', 'dev': 'stsa.fine.dev',
                       'test': 'stsa.fine.test'}}


# ---------------------------------------------------------------- the data

def write_super_data(dataset, data_dir, out):
    """The super-class copy of a data set as CSV files (``text``,
    ``label`` the super-class, ``subclass`` the original label id, which
    the reader ignores and this script reads back by line), under
    ``out/data/NAME``. Returns the folder."""
    name, groups = SUPER[dataset]
    folder = os.path.join(out, 'data', name)
    os.makedirs(folder, exist_ok=True)
    for split, fname in FILES[dataset].items():
        path = text_datasets.locate([fname], None, data_dir)
        rows, _ = text_datasets.read_labelled(path)
        target = os.path.join(folder, split + '.csv')
        if os.path.exists(target):
            continue

        def write(f, rows=rows):
            w = csv.writer(f)
            w.writerow(['text', 'label', 'subclass'])
            for (tokens,), y in rows:
                w.writerow([' '.join(tokens), groups[y], y])
        fileio.save_atomic(target, write, 'w')
    return folder


def subclasses(csv_path):
    """line number -> the original label id of a super-class CSV."""
    out = {}
    for lineno, line in fileio.read_lines(csv_path):
        if lineno > 1 and line.strip():
            out[lineno] = int(next(csv.reader([line]))[-1])
    return out


# ------------------------------------------------------------ the models

MODELS_DIR = os.path.join('result', 'models', 'a')   # shared with graded.py


def run_folder(models_dir, dataset, model, seed):
    name = dataset if dataset in text_datasets.DATASETS else \
        os.path.basename(dataset)
    return os.path.join(models_dir, 's{}'.format(seed),
                        '{}_{}'.format(name, model))


def train(dataset, model, seed, models_dir, data_dir):
    """Train (or find trained) one model; returns its run folder."""
    folder = run_folder(models_dir, dataset, model, seed)
    if os.path.isfile(os.path.join(folder, 'train_results.json')):
        return folder
    s = TrainSettings(dataset=dataset, model=model, seed=0, init_seed=seed,
                      data_dir=data_dir, out=os.path.dirname(folder),
                      **dict(MODELS[model], **RECIPE))
    folder, r = train_text_classifier.train_run(s)
    print('{}: validation accuracy {:.4f}, test accuracy {:.4f}'.format(
        folder, r['val_accuracy'], r['test_accuracy']))
    return folder


def cells(out, data_dir, models, seeds, datasets):
    """(data set, super data folder, model, seed) of every cell."""
    return [(d, write_super_data(d, data_dir, out), m, s)
            for d in datasets for m in models for s in seeds]


def train_all(args):
    for d, sup, m, seed in cells(args.out, args.data_dir, args.models,
                                 args.seeds, args.datasets):
        train(d, m, seed, args.models_dir, args.data_dir)
        train(sup, m, seed, args.models_dir, args.data_dir)


def build_parser():
    p = cli.parser(__doc__)
    p.add_argument('--out', default='result/neighbour_tests',
                   type=cli.path_arg)
    p.add_argument('--models-dir', default=MODELS_DIR, type=cli.path_arg,
                   help='where the models are trained (S/NAME_MODEL), shared '
                        'with bench/graded.py')
    p.add_argument('--stage', default='all', choices=['train', 'test',
                                                      'report', 'all'])
    p.add_argument('--data-dir', default=None, type=cli.path_arg)
    p.add_argument('--models', nargs='+', default=list(MODELS),
                   choices=list(MODELS))
    p.add_argument('--datasets', nargs='+', default=list(DATASETS),
                   choices=list(DATASETS))
    p.add_argument('--seeds', nargs='+', type=cli.int_in(0, 2 ** 32 - 1),
                   default=list(SEEDS))
    p.add_argument('--n-test', type=cli.int_in(1, 10 ** 6), default=500)
    return p


@cli.script
def main(argv=None):
    args = cli.parse(build_parser(), argv)
    if len(set(args.seeds)) < len(args.seeds):
        raise UserError('--seeds names a seed twice; name each once')
    args.data_dir = text_datasets.data_dir_from(args.data_dir)
    if args.stage in ('train', 'all'):
        train_all(args)


if __name__ == '__main__':
    main()
