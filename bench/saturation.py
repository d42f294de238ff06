#!/usr/bin/env python
"""Saturation and faithfulness of the four methods, on two yardsticks,
and a sweep of the DkNN behind conformity leave-one-out. Into RESULTS.md.

    python bench/saturation.py --model-setup result/stsa.binary_cnn/args.json

1. Every test sentence, every method (conformity, confidence and
   calibrated leave-one-out, gradient): the share of tokens with importance
   exactly 0 and below 0.01, the entropy of the normalised importance, a
   histogram (``RUN/saturation.png``), and faithfulness (AOPC,
   comprehensiveness, sufficiency) measured both on the softmax probability
   and on the DkNN conformity of the prediction, with Kendall tau against
   confidence leave-one-out.
2. Conformity leave-one-out for k in 10, 25, 75, 150, the last layer or all
   layers, and k neighbours per layer or in total.
"""
import functools

from report import RESULTS, run_from_flags, write_section  # NOQA (first: sets sys.path)
from toolkit import cli  # NOQA
import dknn  # NOQA
from toolkit import faithfulness  # NOQA
from toolkit import attribution  # NOQA
from toolkit import render  # NOQA

METHODS = ('dknn', 'softmax', 'calibrated', 'grad')
KS = (10, 25, 75, 150)
SETTINGS = [('last', 'layer', k) for k in KS] + \
    [('all', pool, k) for pool in ('layer', 'total') for k in KS]
FRACTIONS = (0.1, 0.2, 0.5)


def yardsticks(ex):
    """The two scores faithfulness is measured on."""
    return {'softmax': functools.partial(attribution.softmax_scores, ex),
            'conformity': functools.partial(attribution.conformity_scores, ex)}


def method_rows(ex, xs, atts):
    """Per method: saturation, and faithfulness on both yardsticks."""
    rows = {}
    for m, a in atts.items():
        r = {'zero': faithfulness.zero_share(a),
             'small': faithfulness.zero_share(a, 0.01),
             'entropy': faithfulness.entropy(a),
             'tau_loo': faithfulness.kendall_tau(a, atts['softmax'])}
        for name, score in yardsticks(ex).items():
            curve = faithfulness.deletion_curve(score, xs, a, ex.field)
            r[name] = {'aopc': faithfulness.aopc(curve), **{
                'comp_' + str(f): faithfulness.comprehensiveness(
                    score, xs, a, f, ex.field) for f in FRACTIONS}, **{
                'suff_' + str(f): faithfulness.sufficiency(
                    score, xs, a, f, ex.field) for f in FRACTIONS}}
        rows[m] = r
    return rows


def sweep_rows(run, xs):
    """Conformity leave-one-out under each DkNN setting."""
    rows = []
    test = run.forward('test')
    for layers, pool, k in SETTINGS:
        ex = attribution.Explainer(run.model, run, settings=dknn.Settings(
            k=k, layers=layers, pool=pool))
        acc = float((ex.head.predict_activations(test).pred ==
                     test.labels).mean())
        a = attribution.explain(ex, xs, 'dknn')
        score = functools.partial(attribution.softmax_scores, ex)
        own = functools.partial(attribution.conformity_scores, ex)
        rows.append({
            'layers': layers, 'pool': pool, 'k': k, 'votes': ex.head.n_votes,
            'accuracy': acc, 'zero': faithfulness.zero_share(a),
            'small': faithfulness.zero_share(a, 0.01),
            'entropy': faithfulness.entropy(a),
            'aopc_softmax': faithfulness.aopc(faithfulness.deletion_curve(
                score, xs, a)),
            'aopc_conformity': faithfulness.aopc(
                faithfulness.deletion_curve(own, xs, a))})
    return rows


def methods_section(rows, n, setup_path):
    head = ('| method | exactly 0 | below 0.01 | entropy | Kendall tau vs '
            'confidence LOO | AOPC softmax | AOPC conformity | compr. 20% '
            'softmax / conformity | suff. 20% softmax / conformity |')
    lines = [head, '|' + '---|' * 9]
    for m, r in rows.items():
        s, c = r['softmax'], r['conformity']
        lines.append('| {} | {:.1%} | {:.1%} | {:.3f} | {:.3f} | {:.3f} | '
                     '{:.3f} | {:.3f} / {:.3f} | {:.3f} / {:.3f} |'.format(
                         attribution.INTERPRETERS[m].title, r['zero'], r['small'],
                         r['entropy'], r['tau_loo'], s['aopc'], c['aopc'],
                         s['comp_0.2'], c['comp_0.2'], s['suff_0.2'],
                         c['suff_0.2']))
    return '\n'.join([
        '## Saturation, and faithfulness on two yardsticks '
        '(`bench/saturation.py`)', '',
        'Command: `python bench/saturation.py --model-setup {}`; all {} '
        'SST-2 test sentences; DkNN k = 75, last layer. AOPC: mean drop as '
        'the top 1..10 tokens are removed; comprehensiveness / sufficiency at '
        '20% (ERASER). Each is measured on the softmax probability of the '
        'model\'s prediction and on the DkNN conformity of the DkNN\'s '
        'prediction, so that no method is judged only by the quantity it '
        'perturbs. Kendall tau against confidence leave-one-out as ferret\'s '
        '`taucorr_loo`. Importance histograms: `RUN/saturation.png`. The '
        'gradient\'s importances are not probabilities, so its "below 0.01" '
        'is on another scale.'.format(setup_path, n), ''] + lines)


def sweep_section(rows):
    lines = ['| layers | neighbours | k | votes | DkNN accuracy | exactly 0 '
             '| below 0.01 | entropy | AOPC softmax | AOPC conformity |',
             '|' + '---|' * 10]
    for r in rows:
        lines.append('| {} | {} | {} | {} | {:.2%} | {:.1%} | {:.1%} | '
                     '{:.3f} | {:.3f} | {:.3f} |'.format(
                         r['layers'], 'per layer' if r['pool'] == 'layer'
                         else 'in total', r['k'], r['votes'], r['accuracy'],
                         r['zero'], r['small'], r['entropy'],
                         r['aopc_softmax'], r['aopc_conformity']))
    return '\n'.join([
        '## Conformity leave-one-out across DkNN settings '
        '(`bench/saturation.py`)', '',
        'The original README asked "75 neighbors at each layer, or 75 '
        'neighbors total?". Conformity leave-one-out on the whole test set '
        'for each setting ("votes": neighbours pooled over the layers; '
        '`--pool total` splits k over the layers).', ''] + lines)


@cli.script
def main(argv=None):
    args, run = run_from_flags(__doc__.split('\n')[0], argv)
    xs = [x for x, _ in run.splits.test]
    ex = attribution.Explainer(run.model, run)
    atts = {m: attribution.explain(ex, xs, m, desc=m) for m in METHODS}
    with run.writing() as out:
        out.write('saturation.png', render.png_writer(
            render.plot_importance_histograms(atts, {
                m: attribution.INTERPRETERS[m].title for m in METHODS})))
    write_section('saturation', methods_section(
        method_rows(ex, xs, atts), len(xs), args.model_setup), RESULTS)
    write_section('saturation-sweep', sweep_section(sweep_rows(run, xs)),
                  RESULTS)


if __name__ == '__main__':
    main()
