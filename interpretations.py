#!/usr/bin/env python
"""Which words made the model decide: leave-one-out and gradient saliency.

    python interpretations.py --model-setup result/stsa.binary_cnn/args.json \\
        --interp_method dknn

Explains test examples with the methods of :mod:`toolkit.attribution`
(``dknn``: conformity leave-one-out, the paper's; ``softmax`` and
``calibrated``: confidence leave-one-out; ``grad``: the gradient), prints
each example's words ranked and writes ``interpretations_METHODS.html``,
``.png`` and ``.json`` beside the model; ``--reduce`` runs input reduction
instead (:mod:`toolkit.reduction`).
"""
import numpy

import nlp_utils

from errors import UserError

from toolkit import cli
from toolkit import explanations
from toolkit import render
from toolkit import runs
from toolkit.attribution import INTERPRETERS, Explainer


# ---------------------------------------------------------------- script

def build_parser():
    p = cli.parser(__doc__)
    cli.add_run_flags(p)
    p.add_argument('--interp-method', '--interp_method', default='dknn',
                   dest='interp_method',
                   help='one of {}, several joined by commas, or all'.format(
                       ', '.join(INTERPRETERS)))
    cli.add_example_flags(p)
    p.add_argument('--field', default='hypothesis',
                   choices=list(nlp_utils.FIELD_PARTS),
                   help='SNLI: which side to explain')
    p.add_argument('--neighbours', type=cli.int_in(0, 1000), default=0,
                   help="show each example's N most relevant training "
                        'examples (interpretation by analogy)')
    cli.add_metric_flag(p)
    p.add_argument('--figure', type=cli.int_in(0, 1000), default=5,
                   help='examples drawn in the PNG heatmap (0: no PNG)')
    p.add_argument('--reduce-by', default='grad', choices=list(INTERPRETERS),
                   help='the method that ranks tokens for --reduce')
    p.add_argument('--max-explain-tokens', type=cli.int_in(1, 1 << 16),
                   default=nlp_utils.EXPLAIN_TOKENS,
                   help='the longest input leave-one-out and --reduce take: '
                        'their cost grows with the square of its length '
                        '(the gradient takes any)')
    p.add_argument('--beam', type=cli.int_in(1, 100), default=5,
                   help='partial reductions kept per input (--reduce)')
    cli.add_switches(p, {
        '--faithfulness': 'also compute deletion / ERASER / input-reduction '
                          'metrics',
        '--artifacts': 'aggregate, per predicted class, the words most often '
                       'most important (the SNLI artifact analysis)',
        '--reduce': 'input reduction (Feng et al. 2018) instead: writes '
                    'reduction.json, .png, .html',
        '--distributed': cli.DISTRIBUTED,
        '--quiet': 'do not print ranked words'})
    cli.add_dknn_flags(p)
    cli.add_tag_flag(p)
    cli.add_device_args(p)
    return p


def parse_methods(spec):
    """``--interp-method``: names joined by commas, or ``all``."""
    names = list(INTERPRETERS) if spec == 'all' else \
        [m for m in spec.split(',') if m]
    unknown = [m for m in names if m not in INTERPRETERS]
    if unknown or not names:
        raise UserError('unknown --interp-method {}; choose from {} or all'
                        .format(','.join(unknown) or repr(spec),
                                ', '.join(INTERPRETERS)))
    if len(set(names)) < len(names):
        raise UserError('--interp-method names a method twice ({}); name '
                        'each once'.format(spec))
    return names


def print_ranked(rec, methods, label_names):
    """One example's tokens, most supporting first, for each method; every
    text of the data shown escaped (:func:`cli.printable`)."""
    show = cli.printable
    tokens = explanations.tokens_of(rec)
    for m in methods:
        att = rec['results'][m]
        print('#{} [{}] label: {}  prediction: {} ({:.4f})'.format(
            rec['index'], m, show(label_names[rec['label']]),
            show(label_names[att.prediction]), att.score))
        print('  ' + show(' || '.join(' '.join(t) for t in rec['parts'])))
        for j in numpy.argsort(-att.importance, kind='stable'):
            print('  {:+.4f} {}'.format(att.importance[j], show(tokens[j])))
    for s, y in rec['neighbours'] or []:
        print('  neighbour [{}] {}'.format(show(label_names[y]), show(s)))


def reduce_command(explainer, indices, method, beam, flags=None, tag=None):
    """``--reduce``: reduce, write the files, print the summary."""
    payload = explanations.reduce_run(explainer, indices, method, beam,
                                      flags, tag)
    if cli.is_rank0():
        print(render.reduction_table(payload['summary']))
        print('{} inputs reduced in {:.1f} s; wrote {} in {}'.format(
            len(payload['examples']), payload['seconds'],
            ', '.join(payload.pop('written')), explainer.run.folder))
    return payload


@cli.script
def main(argv=None):
    args = cli.parse(build_parser(), argv)
    comm = cli.communicator() if args.distributed else None
    run = runs.from_args(args)
    cli.agree(comm, cli.fingerprint(args, run))
    settings = cli.dknn_settings(args)
    explainer = Explainer(run.model, run, settings=settings,
                          field=args.field, comm=comm,
                          max_tokens=args.max_explain_tokens)
    indices = cli.chosen_examples(args, len(run.splits.test))
    flags = cli.settings_of(args)
    if args.reduce:
        return reduce_command(explainer, indices, args.reduce_by, args.beam,
                              flags, args.tag)
    methods = parse_methods(args.interp_method)
    if args.neighbours > settings.k and args.neighbour_metric == 'l2':
        raise UserError('--neighbours {} is more than the --k {} neighbours '
                        'the DkNN finds; raise --k'.format(args.neighbours,
                                                           settings.k))
    payload, records, base = explanations.explain_run(
        explainer, methods, indices, args.neighbours, args.figure,
        args.faithfulness, args.artifacts, flags, args.tag,
        args.neighbour_metric)
    if not cli.is_rank0():
        return payload
    if not args.quiet:
        for rec in records:
            print_ranked(rec, methods, run.label_names)
    if 'temperature' in payload:
        print('calibrated: T = {:.4f} ({})'.format(
            payload['temperature']['T'], payload['temperature']['source']))
    print('wrote {} in {}'.format(', '.join(payload.pop('written')),
                                  run.folder))
    return payload


if __name__ == '__main__':
    main()
