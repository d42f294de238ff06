#!/usr/bin/env python
"""Do the methods' importances agree with word polarities humans rated?

    pip install -r requirements-bench.txt     # vaderSentiment
    python bench/human_alignment.py --model-setup result/stsa.binary_cnn/args.json

The VADER lexicon (Hutto and Gilbert, 2014, "VADER: a parsimonious
rule-based model for sentiment analysis of social media text", ICWSM)
rates about 7,500 words from -4 to +4, each by ten people. On every SST-2
test sentence and for each method, with importance taken toward the
positive class (negated when the prediction is negative):

* sign agreement: the share of lexicon words whose importance has the sign
  of their human valence (words with importance exactly 0 left out, and
  counted apart);
* Spearman's rank correlation between importance and valence;
* top-1 and top-3 precision: the share of the most important tokens that
  are lexicon words of the predicted polarity; a random ranking's share is
  given as the chance level.

Writes the ``human-alignment`` section of RESULTS.md: the evidence for or
against the paper's claim that DkNN interpretations "better align with
human perception".
"""
import argparse

import numpy
from scipy.stats import spearmanr

from report import RESULTS, write_section  # NOQA (first: sets sys.path)
from toolkit import cli  # NOQA
from toolkit import attribution  # NOQA
from toolkit import runs  # NOQA
from errors import UserError  # NOQA

METHODS = ('dknn', 'softmax', 'calibrated', 'grad')


def lexicon():
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise SystemExit('error: this benchmark needs the VADER lexicon: '
                         'pip install -r requirements-bench.txt')
    return SentimentIntensityAnalyzer().lexicon


def toward_positive(att):
    """Importance toward the positive class (label 1 of SST-2)."""
    return att.importance if att.prediction == 1 else -att.importance


def alignment(atts, token_lists, lex):
    """The four numbers of the module docstring, for one method."""
    pairs, top1, top3 = [], [], []
    for att, tokens in zip(atts, token_lists):
        imp = toward_positive(att)
        pairs += [(v, lex[t]) for v, t in zip(imp, tokens) if t in lex]
        sign = 1 if att.prediction == 1 else -1
        order = numpy.argsort(-att.importance, kind='stable')
        right = [tokens[j] in lex and numpy.sign(lex[tokens[j]]) == sign
                 for j in order[:3]]
        if right:
            top1.append(right[0])
            top3 += right
    imp, val = (numpy.array(c, numpy.float64) for c in zip(*pairs))
    nonzero = imp != 0
    return {'n': len(pairs), 'zero': float((~nonzero).mean()),
            'sign': float((numpy.sign(imp[nonzero]) ==
                           numpy.sign(val[nonzero])).mean()),
            'spearman': float(spearmanr(imp, val).statistic),
            'top1': float(numpy.mean(top1)), 'top3': float(numpy.mean(top3))}


def chance(atts, token_lists, lex):
    """Share of all tokens that are lexicon words of the predicted
    polarity: what a random ranking's top-k precision would be."""
    hits = [t in lex and numpy.sign(lex[t]) == (1 if a.prediction else -1)
            for a, tokens in zip(atts, token_lists) for t in tokens]
    return float(numpy.mean(hits))


def section(rows, base, n, setup_path):
    lines = ['| method | lexicon tokens | importance exactly 0 | sign '
             'agreement | Spearman rho | top-1 precision | top-3 precision |',
             '|' + '---|' * 7]
    for m, r in rows.items():
        lines.append('| {} | {} | {:.1%} | {:.1%} | {:.3f} | {:.1%} | {:.1%} '
                     '|'.format(attribution.INTERPRETERS[m].title, r['n'],
                                r['zero'], r['sign'], r['spearman'],
                                r['top1'], r['top3']))
    lines.append('| random ranking | | | 50% | 0 | {:.1%} | {:.1%} |'.format(
        base, base))
    return '\n'.join([
        '## Human alignment: importance against VADER word polarities '
        '(`bench/human_alignment.py`)', '',
        'Command: `python bench/human_alignment.py --model-setup {}` (needs '
        '`pip install -r requirements-bench.txt`). All {} SST-2 test '
        'sentences; importance toward the positive class; VADER valence '
        '(-4..+4, ten raters per word). Top-k precision: the share of each '
        'sentence\'s k most important tokens that are lexicon words of the '
        'predicted polarity.'.format(setup_path, n), ''] + lines)


@cli.script
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model-setup', default='result/stsa.binary_cnn/args.json')
    args = p.parse_args(argv)
    lex = lexicon()
    run = runs.load(args.model_setup)
    if run.setup['dataset'] != 'stsa.binary':
        raise UserError('human alignment needs a stsa.binary run')
    xs = [x for x, _ in run.splits.test]
    tokens = [fields[0] for fields, _ in run.splits.raw['test']]
    ex = attribution.Explainer(run.model, run)
    rows, base = {}, None
    for m in METHODS:
        atts = attribution.explain(ex, xs, m, desc=m)
        rows[m] = alignment(atts, tokens, lex)
        base = base if base is not None else chance(atts, tokens, lex)
    write_section('human-alignment', section(rows, base, len(xs),
                                             args.model_setup), RESULTS)
    return rows


if __name__ == '__main__':
    main()
