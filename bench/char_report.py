#!/usr/bin/env python
"""The character-level CNN: DkNN, leave-one-out, and two observations of
the paper's supplementary site, checked on our model. Into RESULTS.md.

    python bench/char_report.py --model-setup result/grid/s0/stsa.binary_cnn_char/args.json \\
        --word-setup result/stsa.binary_cnn/args.json

1. Softmax and DkNN accuracy (k = 75, last layer) on the SST-2 test set.
2. Conformity and confidence leave-one-out over every test sentence. The
   site says importance is spread roughly uniformly over characters: we
   report the normalised entropy of |importance| per sentence (1 is
   uniform) against the word-level model's, and the share of the largest
   character's importance.
3. The site says ``?`` reads as strongly negative: the importance of every
   ``?`` toward the positive class, against all characters'.
"""
import argparse

import numpy

from report import RESULTS, write_section  # NOQA (first: sets sys.path)
from toolkit import cli  # NOQA
from toolkit import faithfulness  # NOQA
from toolkit import attribution  # NOQA
import run_dknn  # NOQA
from toolkit import runs  # NOQA


def toward_positive(att):
    return att.importance if att.prediction == 1 else -att.importance


def top_share(atts):
    """Mean share of a sentence's |importance| on its largest token."""
    shares = [numpy.abs(a.importance).max() / numpy.abs(a.importance).sum()
              for a in atts if numpy.abs(a.importance).sum() > 0]
    return float(numpy.mean(shares))


def question_marks(atts, texts):
    """Importance toward positive of every '?' and of every character."""
    marks, every = [], []
    for att, chars in zip(atts, texts):
        imp = toward_positive(att)
        every += list(imp)
        marks += [v for v, c in zip(imp, chars) if c == '?']
    return numpy.array(marks), numpy.array(every)


def explain_all(setup_path, methods):
    run = runs.load(setup_path)
    ex = attribution.Explainer(run.model, run)
    xs = [x for x, _ in run.splits.test]
    return run, {m: attribution.explain(ex, xs, m, desc=m) for m in methods}


@cli.script
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model-setup', required=True)
    p.add_argument('--word-setup', default='result/stsa.binary_cnn/args.json')
    args = p.parse_args(argv)
    run, char = explain_all(args.model_setup, ('dknn', 'softmax'))
    _, word = explain_all(args.word_setup, ('dknn', 'softmax'))
    dk = run_dknn.evaluate_run(run)
    texts = [fields[0] for fields, _ in run.splits.raw['test']]
    lines = ['| method | model | mean normalised entropy | largest token\'s '
             'share | exactly 0 |', '|---|---|---|---|---|']
    for m in ('dknn', 'softmax'):
        for name, atts in (('characters', char[m]), ('words', word[m])):
            lines.append('| {} | {} | {:.3f} | {:.3f} | {:.1%} |'.format(
                attribution.INTERPRETERS[m].title, name,
                faithfulness.entropy(atts), top_share(atts),
                faithfulness.zero_share(atts)))
    marks, every = question_marks(char['softmax'], texts)
    dmarks, devery = question_marks(char['dknn'], texts)
    body = '\n'.join([
        '## The character-level CNN (`bench/char_report.py`)', '',
        'Command: `python bench/char_report.py --model-setup {} '
        '--word-setup {}`. Recipe: {}.'.format(
            args.model_setup, args.word_setup, ' '.join(
                '--{} {}'.format(k, ' '.join(map(str, v)) if isinstance(
                    v, list) else v) for k, v in run.setup.items()
                if k in ('unit', 'layer', 'widths', 'embed', 'dropout',
                         'batchsize', 'epoch', 'patience'))), '',
        '| | softmax | DkNN conformity | DkNN conformal |', '|---|---|---|---|',
        '| SST-2 test accuracy | {:.2%} | {:.2%} | {:.2%} |'.format(
            dk['softmax']['accuracy'], dk['conformity']['accuracy'],
            dk['conformal']['accuracy']), '',
        'How spread the importance is (leave-one-out on every test '
        'sentence; entropy of the normalised |importance|, divided by log '
        'n: 1 is uniform):', ''] + lines + [
        '', '`?` toward the positive class: {} question marks in the test '
        'set; mean importance {:+.4f} by confidence leave-one-out ({:.0%} '
        'negative) and {:+.4f} by conformity ({:.0%} negative), against '
        '{:+.4f} and {:+.4f} for all characters.'.format(
            len(marks), marks.mean(), (marks < 0).mean(), dmarks.mean(),
            (dmarks < 0).mean(), every.mean(), devery.mean())])
    write_section('char', body, RESULTS)


if __name__ == '__main__':
    main()
