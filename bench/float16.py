#!/usr/bin/env python
"""What storing hidden layers as float16 (``run_dknn.py --float16``) costs
in accuracy, and saves in memory. Into BENCHMARKS.md.

    python bench/float16.py --model-setup result/stsa.binary_cnn/args.json \\
        result/grid/s0/stsa.binary_bilstm/args.json ...

For each run, the forward passes are computed twice in memory (nothing is
written to the run folder), as float32 and as float16, and the DkNN
(k = 75, last layer, exact search) answers the test set from each: accuracy
of both rules, agreement of the predictions, the largest change of a
credibility, recall@75 of the float16 neighbours against the float32
ones, and the bytes of the training activations.
"""
import argparse
import time

import numpy

from report import write_section  # NOQA (first: sets sys.path)
from toolkit import cli  # NOQA
import dknn  # NOQA
import run_dknn  # NOQA
from toolkit import runs  # NOQA
import search  # NOQA


def measure(setup, float16):
    run = runs.load(setup, cached=False, float16=float16)
    start = time.time()
    results, outs, head = run_dknn.evaluate(run)
    train = run.forward('train')
    return {'results': results, 'outs': outs, 'layer': head.layers[-1],
            'bytes': sum(a.nbytes for a in train.layers.values()),
            'seconds': time.time() - start, 'name': '{}_{}'.format(
                run.setup['dataset'], run.setup['model'])}


def row(a, b):
    """One table row: float32 run ``a`` against float16 run ``b``."""
    cells = [a['name']]
    for s in dknn.PAPER:
        cells.append('{:.4f} / {:.4f}'.format(a['results'][s]['accuracy'],
                                              b['results'][s]['accuracy']))
    oa, ob = a['outs']['conformity'], b['outs']['conformity']
    cells.append('{:.2%}'.format(float((oa.pred == ob.pred).mean())))
    cells.append('{:.4f}'.format(float(numpy.abs(
        oa.credibility - ob.credibility).max())))
    cells.append('{:.4f}'.format(search.recall_at_k(
        ob.neighbours[b['layer']].indices,
        oa.neighbours[a['layer']].indices)))
    cells.append('{:.1f} / {:.1f}'.format(a['bytes'] / 2 ** 20,
                                          b['bytes'] / 2 ** 20))
    return '| ' + ' | '.join(cells) + ' |'


@cli.script
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model-setup', nargs='+', required=True)
    args = p.parse_args(argv)
    rows = [row(measure(s, False), measure(s, True))
            for s in args.model_setup]
    write_section('float16', '\n'.join([
        '## Hidden layers as float16 (`bench/float16.py`)', '',
        'Command: `python bench/float16.py --model-setup {}`. k = 75, last '
        'layer, exact search; each cell float32 / float16.'.format(
            ' '.join(args.model_setup)), '',
        '| run | conformity acc. | conformal acc. | same prediction | largest '
        'credibility change | recall@75 of float16 neighbours | training '
        'activations, all layers (MiB) |', '|---|---|---|---|---|---|---|']
        + rows))


if __name__ == '__main__':
    main()
