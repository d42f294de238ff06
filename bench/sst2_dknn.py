#!/usr/bin/env python
"""DkNN and temperature scaling on one trained run, into RESULTS.md.

    python bench/sst2_dknn.py --model-setup result/stsa.binary_cnn/args.json

Evaluates the DkNN (both scoring rules; the last layer and all layers)
and temperature scaling on the run, and writes the ``sst2-dknn`` section of
RESULTS.md.
"""

from report import RESULTS, read_json, run_from_flags, write_section  # NOQA (first)
from toolkit import cli  # NOQA
import dknn  # NOQA
import run_dknn  # NOQA
import scaling  # NOQA


@cli.script
def main(argv=None):
    args, run = run_from_flags(__doc__.split('\n')[1], argv)
    setup = run.setup
    train = read_json(run.path('train_results'))
    rows = []
    for layers in ('last', 'all'):
        r = run_dknn.evaluate_run(run, dknn.Settings(layers=layers))
        for s in ('conformity', 'conformal'):
            rows.append('| {} | {} | {:.2%} | {:.2%} | {:+.2f} | {:.2%} | '
                        '{:.3f} / {:.3f} | {:.4f} |'.format(
                            ', '.join(r['layers']), s,
                            r['softmax']['accuracy'], r[s]['accuracy'],
                            100 * (r[s]['accuracy'] -
                                   r['softmax']['accuracy']),
                            r[s]['agreement_with_softmax'],
                            r[s]['credibility_correct'],
                            r[s]['credibility_wrong'], r[s]['ece']))
    t = scaling.calibrate_run(run, dknn.Settings(layers='last'))
    body = '\n'.join([
        '## DkNN and temperature scaling on the SST-2 CNN '
        '(`bench/sst2_dknn.py`)', '',
        'Model: `make train` ({} {}, GloVe 6B 50d, {} epochs, test accuracy '
        '{:.2%}). Command: `python bench/sst2_dknn.py --model-setup {}` '
        '(k = 75, brute backend).'.format(
            setup['dataset'], setup['model'], setup['epoch'],
            train['test_accuracy'], args.model_setup), '',
        '| layers | scoring | softmax acc. | DkNN acc. | difference '
        '(points) | agreement | mean credibility right / wrong | '
        'credibility ECE |', '|---|---|---|---|---|---|---|---|'] + rows + [
        '', 'Temperature scaling, fitted on the 1000 calibration examples: '
        'T = {:.3f}.'.format(t['temperature']), '',
        '| split | accuracy | NLL before | NLL after | ECE before | '
        'ECE after |', '|---|---|---|---|---|---|'] + [
        '| {} | {:.2%} | {:.4f} | {:.4f} | {:.4f} | {:.4f} |'.format(
            split, t[split]['accuracy'], t[split]['nll_before'],
            t[split]['nll_after'], t[split]['ece_before'],
            t[split]['ece_after']) for split in ('calib', 'test')] + [
        '', 'ECE uses 15 equal-width bins. The reliability diagram is '
        '`result/stsa.binary_cnn/reliability.png` (softmax, '
        'temperature-scaled softmax, DkNN conformity credibility of the '
        'last layer).'])
    write_section('sst2-dknn', body, RESULTS)


if __name__ == '__main__':
    main()
