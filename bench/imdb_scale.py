#!/usr/bin/env python
"""A real large case: IMDB (25k training reviews, long documents). Into
BENCHMARKS.md.

    python bench/imdb_scale.py [--epoch 3] [--reviews 100]

Trains a CNN on ``imdb.binary`` (GloVe 6B 50d; finished training is
reused), then times the whole of ``run_dknn`` (forward passes of the 24k
indexed reviews, 1000 calibration and 25k test reviews included; exact
search with the default backend and with faiss) and conformity
leave-one-out over the first ``--reviews`` test reviews (as
``interpretations.py --interp_method dknn --first N``).
"""
import argparse
import json
import os
import time

import numpy

from report import write_section, read_json  # NOQA (first: sets sys.path)
from toolkit import cli  # NOQA
import dknn  # NOQA
from toolkit import attribution  # NOQA
from toolkit import explanations  # NOQA
import run_dknn  # NOQA
from toolkit import runs  # NOQA
import text_datasets  # NOQA
import train_text_classifier  # NOQA
from toolkit.settings import TrainSettings  # NOQA


IMDB_TOKENS = 4096   # the longest review has about 2,500 words


def train(args):
    folder = os.path.join(args.out, 'imdb.binary_cnn')
    if not os.path.exists(os.path.join(folder, 'train_results.json')):
        shared = text_datasets.data_dir_from(None)
        train_text_classifier.train_run(TrainSettings(
            dataset='imdb.binary', model='cnn', epoch=args.epoch, patience=1,
            batchsize=32, dropout=0.2, out=args.out, data_dir=shared,
            max_tokens=IMDB_TOKENS,
            word_vectors=os.path.join(shared, 'glove',
                                      'glove.6B.50d.txt.gz')))
    return folder, read_json(os.path.join(folder, 'train_results.json'))


def timed(f, *a, **k):
    start = time.time()
    out = f(*a, **k)
    return out, time.time() - start


@cli.script
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--epoch', type=cli.int_in(1, 10 ** 4), default=3)
    p.add_argument('--reviews', type=cli.int_in(1, 10 ** 6), default=100)
    p.add_argument('--out', default='result/imdb')
    args = p.parse_args(argv)
    folder, trained = train(args)
    setup = os.path.join(folder, 'args.json')
    # a cold run: the forward passes are computed and cached
    cold, cold_s = timed(run_dknn.evaluate_run, runs.load(setup,
                                                          cached=False))
    warm = {}
    for backend in ('brute', 'faiss'):
        warm[backend] = timed(run_dknn.evaluate_run, runs.load(setup),
                              dknn.Settings(backend=backend))
    run = runs.load(setup)
    lengths = [len(x) for x, _ in run.examples('test')[:args.reviews]]
    _, loo_s = timed(explanations.explain_run, attribution.Explainer(
        run.model, run), ['dknn'], list(range(args.reviews)))
    train_acts = run.forward('train')
    width = {n: a.shape[1] for n, a in train_acts.layers.items()}
    write_section('imdb', '\n'.join([
        '## A real large case: IMDB (`bench/imdb_scale.py`)', '',
        'Command: `python bench/imdb_scale.py --epoch {} --reviews {}`. CNN, '
        'GloVe 6B 50d, best of {} epochs by validation (test accuracy '
        '{:.4f}); {} indexed training reviews, {} test reviews; the '
        'layers\' widths: {}. k = 75, last layer.'.format(
            args.epoch, args.reviews, trained.get('epochs'),
            trained['test_accuracy'], cold['n_train'], cold['n_test'],
            json.dumps(width)), '',
        '| step | seconds | notes |', '|---|---|---|',
        '| run_dknn, cold (forward passes computed and cached) | {:.1f} | '
        'DkNN accuracy {:.4f}, softmax {:.4f} |'.format(
            cold_s, cold['conformity']['accuracy'],
            cold['softmax']['accuracy']),
        '| run_dknn, warm, brute | {:.1f} | search: {} |'.format(
            warm['brute'][1], json.dumps({k: round(v, 2) for k, v in
                                          warm['brute'][0]['seconds']
                                          .items()})),
        '| run_dknn, warm, faiss | {:.1f} | search: {} |'.format(
            warm['faiss'][1], json.dumps({k: round(v, 2) for k, v in
                                          warm['faiss'][0]['seconds']
                                          .items()})),
        '| conformity leave-one-out, first {} test reviews | {:.1f} | '
        '{:.0f} tokens per review on average, {} forward passes and '
        'searches in all |'.format(args.reviews, loo_s,
                                   float(numpy.mean(lengths)),
                                   int(numpy.sum(lengths)))]))


if __name__ == '__main__':
    main()
