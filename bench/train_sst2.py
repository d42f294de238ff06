#!/usr/bin/env python
"""Train the SST-2 classifiers of the training issue and record them.

    python bench/train_sst2.py

Trains CNN, BiLSTM and BoW on stsa.binary, with and without GloVe 6B 50d,
with the recipes of bench/grid.py, into result/sst2_grid/, and writes the
``training`` section of RESULTS.md (test accuracy, validation accuracy,
seconds per epoch). Finished runs are kept and not retrained.
"""
import argparse
import os

from report import RESULTS, write_section, read_json  # NOQA (first)
from toolkit import cli  # NOQA
import text_datasets  # NOQA
import train_text_classifier  # NOQA
from toolkit.settings import TrainSettings  # NOQA
import grid  # NOQA
from grid import RECIPES  # NOQA

RUNS = [('cnn', False), ('cnn', True), ('bilstm', False), ('bilstm', True),
        ('bow', False), ('bow', True)]


@cli.script
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    p.add_argument('--out', default='result/sst2_grid')
    args = p.parse_args(argv)
    data = text_datasets.data_dir_from(None)
    glove = os.path.join(data, 'glove', 'glove.6B.50d.txt.gz')
    rows = []
    for model, vectors in RUNS:
        out = os.path.join(args.out, 'glove' if vectors else 'random')
        run = os.path.join(out, 'stsa.binary_' + model)
        done = os.path.join(run, 'train_results.json')
        if not os.path.exists(done):
            train_text_classifier.train_run(TrainSettings(
                dataset='stsa.binary', model=model, out=out,
                word_vectors=glove if vectors else None, **RECIPES[model]))
        r = read_json(done)
        flags = grid.flags(RECIPES[model])
        rows.append('| {} | `{}` | {} | {:.2%} | {:.2%} | {:.1f} |'.format(
            model, flags, 'GloVe 6B 50d' if vectors else
            'none (random, {}-d)'.format(RECIPES[model]['unit']),
            r['test_accuracy'], r['val_accuracy'], r['seconds_per_epoch']))
    body = '\n'.join([
        '## Training on SST-2 (`bench/train_sst2.py`)', '',
        'Command: `python bench/train_sst2.py` (each run: '
        '`train_text_classifier.py --dataset stsa.binary --model MODEL '
        'FLAGS`, plus `--word_vectors` for GloVe). 5920 training, '
        '872 validation (the official dev file; the best epoch is chosen '
        'on it), 1821 test sentences; 1000 training sentences are held out '
        'for calibration.',
        '', '| model | flags | word vectors | test accuracy | validation '
        'accuracy | seconds per epoch |', '|---|---|---|---|---|---|'] +
        rows + [
        '', 'Reference points, from the original project\'s published logs '
        '(glove.840B.300d, 10 epochs): CNN 84.5, BiLSTM 85.7. Without '
        'vectors the embedding has --unit dimensions; with them, 50. '
        'Seconds per epoch are wall time on 2 cores and vary by about 30% '
        'with other load (the BiLSTM rows ran beside bench/grid.py).'])
    write_section('training', body, RESULTS)


if __name__ == '__main__':
    main()
