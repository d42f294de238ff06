#!/usr/bin/env python
"""Which words made the model decide: leave-one-out and gradient saliency.

    python interpretations.py --model-setup result/stsa.binary_cnn/args.json \\
        --interp_method dknn

Methods (one registry, :data:`INTERPRETERS`, one signature):

* ``dknn``: conformity leave-one-out (Wallace et al. 2018): the drop in the
  share of DkNN neighbours that carry the DkNN's predicted label;
* ``softmax``: confidence leave-one-out: the drop in the softmax
  probability of the predicted label;
* ``calibrated``: the same on temperature-scaled probabilities (needs
  ``temperature.json`` from scaling.py);
* ``grad``: vanilla gradient: d log p(predicted) / d embedding, dotted with
  the embedding, per token.

Every method returns, per example, the prediction, the score on the full
input and one importance per token (the ``<eos>`` marker excluded), signed
so that a positive importance means the token *supported* the prediction.
Leave-one-out runs as batches of variants: one forward pass and one batched
neighbour search for many sentences at a time.

Colours follow the original project. The value shown for a token is its
importance, negated when a single-text prediction falls in the lower half
of the labels (negative sentiment); positive and negative values are each
divided by their sum over the sentence, halved and centred on 0.5. With
RdBu (single texts) blue means support for the upper labels (positive) and
red for the lower labels (negative); with PiYG (SNLI) green means support
for the prediction and pink evidence against it.
"""
import collections
import os
from dataclasses import dataclass

import numpy
from tqdm import tqdm

import cli
import dknn as dknn_lib
import faithfulness
import nets
import nlp_utils
import render
import runs
from cli import UserError
from metrics import softmax
from nlp_utils import parts, remove, slots


@dataclass
class Attribution:
    """One method's explanation of one example.

    Attributes:
        prediction (int): the label being explained.
        score (float): the method's score of that label on the full input.
        importance ((n,) float array): one value per explained token.
    """
    prediction: int
    score: float
    importance: numpy.ndarray


# ------------------------------------------------------------------ scorers

class Explainer:
    """What the methods need: the model, and for a trained run its DkNN head
    (built on first use) and temperature (read on first use).

    Args:
        model: a classifier from :mod:`nets`.
        run (runs.Run): the trained run; None for the model alone (then only
            ``softmax`` and ``grad`` work).
        out (safeio.OutputSet): where a newly built DkNN index is saved.
        field (str): for pairs, which side's tokens are explained.
    """

    def __init__(self, model, run=None, device=None, field='hypothesis',
                 k=75, layers='last', batchsize=512, out=None):
        self.model, self.run, self.out = model, run, out
        self.device, self.field, self.batchsize = device, field, batchsize
        self.k, self.layers = k, layers
        self._head = None

    @property
    def head(self):
        """The DkNN (conformity scoring), loaded from the saved index when
        run_dknn.py left one, else built and saved."""
        if self._head is None:
            self._head, _ = dknn_lib.for_run(self.run, self.out,
                                             layers=self.layers, k=self.k)
        return self._head

    @property
    def temperature(self):
        return self.run.temperature

    def _batches(self, inputs):
        for i in range(0, len(inputs), self.batchsize):
            yield inputs[i:i + self.batchsize]

    def logits(self, inputs):
        """(M, C) logits of M inputs."""
        out = [nets.to_cpu(self.model.predict(
            nlp_utils.send_xs(xs, self.device))[0])
            for xs in self._batches(inputs)]
        return numpy.concatenate(out) if out else \
            numpy.zeros((0, self.model.n_class), numpy.float32)

    def class_scores(self, inputs, kind):
        """(M, C) scores of every label: ``softmax`` probabilities,
        ``calibrated`` (temperature-scaled) probabilities, or ``dknn``
        conformity (share of neighbours)."""
        if kind == 'dknn':
            out = [self.head.predict(xs).scores
                   for xs in self._batches(inputs)]
            return numpy.concatenate(out)
        logits = self.logits(inputs)
        if kind == 'calibrated':
            logits = logits / self.temperature
        return softmax(logits)


# ------------------------------------------------------------ the methods

INTERPRETERS = {}


def register(name):
    def wrap(fn):
        INTERPRETERS[name] = fn
        return fn
    return wrap


def leave_one_out(explainer, xs, kind):
    """Drop in ``kind`` score of the full input's top label when each
    explained token is left out. One batch holds every variant of every
    input in ``xs``.

    Returns:
        list of :class:`Attribution`.
    """
    inputs, spans = [], []
    for x in xs:
        n = len(slots(x, explainer.field))
        spans.append((len(inputs), n))
        inputs.append(x)
        inputs.extend(remove(x, [j], explainer.field) for j in range(n))
    scores = explainer.class_scores(inputs, kind)
    out = []
    for start, n in spans:
        full = scores[start]
        pred = int(full.argmax())
        drop = full[pred] - scores[start + 1:start + 1 + n, pred]
        out.append(Attribution(pred, float(full[pred]), drop))
    return out


@register('dknn')
def conformity_loo(explainer, xs):
    """Conformity leave-one-out (the paper's method)."""
    return leave_one_out(explainer, xs, 'dknn')


@register('softmax')
def confidence_loo(explainer, xs):
    """Softmax-confidence leave-one-out."""
    return leave_one_out(explainer, xs, 'softmax')


@register('calibrated')
def calibrated_loo(explainer, xs):
    """Temperature-scaled confidence leave-one-out."""
    explainer.temperature  # fail early, with how to fit one
    return leave_one_out(explainer, xs, 'calibrated')


@register('grad')
def vanilla_gradient(explainer, xs):
    """(d log p(prediction) / d e_t) . e_t for each explained token t."""
    probs = explainer.class_scores(xs, 'softmax')
    preds = probs.argmax(axis=1).astype(numpy.int32)
    device_xs = nlp_utils.send_xs(xs, explainer.device)
    ys = explainer.device.send(preds) if explainer.device is not None \
        else preds
    grads, embs = explainer.model.embedding_gradients(device_xs, ys)
    out = []
    for x, g, e, pred, p in zip(xs, grads, embs, preds, probs):
        # per token g . e; the loss is -log p, so negate for support
        dots = [-(nets.to_cpu(gp) * nets.to_cpu(ep)).sum(axis=1)
                for gp, ep in zip(parts(g), parts(e))]
        imp = [dots[q][i] for q, i in slots(x, explainer.field)]
        out.append(Attribution(int(pred), float(p[pred]),
                               numpy.array(imp, numpy.float32)))
    return out


def explain(explainer, xs, method, chunk=64, desc=None):
    """Run one registered method over many inputs, ``chunk`` at a time."""
    if method not in INTERPRETERS:
        raise UserError('unknown method {!r}; choose from {}'.format(
            method, ', '.join(INTERPRETERS)))
    out = []
    for i in tqdm(range(0, len(xs), chunk), desc=desc, disable=desc is None,
                  leave=False):
        out.extend(INTERPRETERS[method](explainer, xs[i:i + chunk]))
    return out


# --------------------------------------------------------- artifacts (SNLI)

def artifact_words(records, method, tokens_of, n_class, top=10):
    """Per predicted class, the words that most often carry the largest
    importance of their example.

    Args:
        records (list of dict): as for :func:`html_page`.
        tokens_of (callable): record -> its explained tokens.

    Returns:
        dict: class -> list of ``(word, count, mean importance)``, most
        frequent first (ties: larger mean importance first).
    """
    hits = [collections.defaultdict(list) for _ in range(n_class)]
    for rec in records:
        att = rec['results'][method]
        if len(att.importance):
            j = int(numpy.argmax(att.importance))
            hits[att.prediction][tokens_of(rec)[j]].append(
                float(att.importance[j]))
    return {c: sorted(((w, len(v), float(numpy.mean(v)))
                       for w, v in hits[c].items()),
                      key=lambda r: (-r[1], -r[2], r[0]))[:top]
            for c in range(n_class)}


# ---------------------------------------------------------------- script

def build_parser():
    p = cli.parser(__doc__)
    p.add_argument('--model-setup', required=True)
    p.add_argument('--interp_method', '--interp-method', default='dknn',
                   help='one of {}, several joined by commas, or all'.format(
                       ', '.join(INTERPRETERS)))
    which = p.add_mutually_exclusive_group()
    which.add_argument('--index', type=cli.int_at_least(0), nargs='+',
                       help='test examples by index')
    which.add_argument('--first', type=cli.int_at_least(1), default=50,
                       help='the first N test examples')
    which.add_argument('--all', action='store_true',
                       help='the whole test set')
    p.add_argument('--field', default='hypothesis',
                   choices=list(nlp_utils.FIELD_PARTS),
                   help='SNLI: which side to explain')
    p.add_argument('--neighbours', type=cli.int_at_least(0), default=0,
                   help='show each example\'s N nearest training examples '
                        '(interpretation by analogy)')
    p.add_argument('--figure', type=cli.int_at_least(0), default=5,
                   help='examples drawn in the PNG heatmap (the first N; '
                        '0: no PNG)')
    p.add_argument('--faithfulness', action='store_true',
                   help='also compute deletion / ERASER / input-reduction '
                        'metrics')
    p.add_argument('--artifacts', action='store_true',
                   help='aggregate, per predicted class, the words most '
                        'often most important (the SNLI artifact analysis)')
    p.add_argument('--k', type=cli.int_at_least(1), default=75)
    p.add_argument('--layers', default='last')
    p.add_argument('--quiet', action='store_true',
                   help='do not print ranked words')
    p.add_argument('--data-dir', default=None)
    p.add_argument('--batchsize', type=cli.int_at_least(1), default=512)
    cli.add_device_args(p)
    return p


def parse_methods(spec):
    names = list(INTERPRETERS) if spec == 'all' else \
        [m for m in spec.split(',') if m]
    unknown = [m for m in names if m not in INTERPRETERS]
    if unknown or not names:
        raise UserError('unknown --interp_method {}; choose from {} or all'
                        .format(','.join(unknown) or repr(spec),
                                ', '.join(INTERPRETERS)))
    return names


def choose(args, n_test):
    if args.all:
        return list(range(n_test))
    if args.index:
        bad = [i for i in args.index if not 0 <= i < n_test]
        if bad:
            raise UserError(
                '--index {} is out of range: the test set has {} examples '
                '(0..{})'.format(bad[0], n_test, n_test - 1))
        return list(args.index)
    return list(range(min(args.first, n_test)))


def neighbours_of(explainer, xs, n):
    """The n nearest training examples (last DkNN layer) of each input."""
    head = explainer.head
    out = head.predict(xs)
    idx = out.neighbours[head.layers[-1]][0][:, :n]
    raw = explainer.run.splits.raw['train']
    return [[(' / '.join(' '.join(f) for f in raw[j][0]), raw[j][1])
             for j in row] for row in idx]


def print_ranked(rec, method, tokens, label_names):
    att = rec['results'][method]
    print('#{} [{}] label: {}  prediction: {} ({:.4f})'.format(
        rec['index'], method, label_names[rec['label']],
        label_names[att.prediction], att.score))
    print('  ' + ' || '.join(' '.join(t) for t in rec['parts']))
    for j in numpy.argsort(-att.importance, kind='stable'):
        print('  {:+.4f} {}'.format(att.importance[j], tokens[j]))


def make_records(run, chosen, results, explained, nbrs):
    """One dict per explained example, for the page, figure and JSON."""
    records = []
    for j, i in enumerate(chosen):
        fields, label = run.splits.raw['test'][i]
        records.append({'index': i, 'label': label, 'parts': list(fields),
                        'explained': explained, 'neighbours': nbrs[j],
                        'results': {m: r[j] for m, r in results.items()}})
    return records


def tokens_of(rec):
    return [t for p in rec['explained'] for t in rec['parts'][p]]


def payload_of(records, methods, field):
    """The ``interpretations_*.json`` content."""
    return {'methods': methods, 'field': field, 'examples': [{
        'index': r['index'], 'label': r['label'], 'tokens': tokens_of(r),
        'neighbours': r['neighbours'],
        **{m: {'prediction': a.prediction, 'score': a.score,
               'importance': a.importance.tolist()}
           for m, a in r['results'].items()}} for r in records]}


def run_command(args, run, out):
    methods = parse_methods(args.interp_method)
    if 'calibrated' in methods:
        run.temperature  # fail early, saying how to fit one
    explainer = Explainer(run.model, run, run.device, args.field, args.k,
                          args.layers, args.batchsize, out)
    chosen = choose(args, len(run.splits.test))
    xs = [run.splits.test[i][0] for i in chosen]
    results = {m: explain(explainer, xs, m, desc=m) for m in methods}
    explained = nlp_utils.explained_parts(run.pair, args.field)
    names = run.label_names
    nbrs = neighbours_of(explainer, xs, args.neighbours) \
        if args.neighbours else [None] * len(xs)
    records = make_records(run, chosen, results, explained, nbrs)
    if not args.quiet:
        for rec in records:
            for m in methods:
                print_ranked(rec, m, tokens_of(rec), names)
            for s, y in rec['neighbours'] or []:
                print('  neighbour [{}] {}'.format(names[y], s))
    base = 'interpretations_' + '+'.join(methods)
    title = '{} {}: {}'.format(run.setup['dataset'], run.setup['model'],
                               ', '.join(render.METHOD_TITLES[m]
                                         for m in methods))
    out.write(base + '.html', lambda f: f.write(render.html_page(
        title, records, methods, names, run.pair, args.field)), 'w')
    if args.figure > 0:
        fig = render.plot_heatmaps(records[:args.figure], methods, names,
                                   run.pair)
        out.write(base + '.png', render.png_writer(fig, dpi=110))
    else:
        out.discard(base + '.png')
    payload = payload_of(records, methods, args.field if run.pair else None)
    if args.faithfulness:
        score = lambda inputs: explainer.class_scores(  # NOQA
            inputs, 'softmax')
        payload['faithfulness'] = {
            m: faithfulness.summary(score, xs, results[m], args.field)
            for m in tqdm(methods, desc='faithfulness', leave=False)}
        out.write(base + '_faithfulness.md', lambda f: f.write(
            faithfulness_table(payload['faithfulness'])), 'w')
    else:
        out.discard(base + '_faithfulness.md')
    if args.artifacts:
        payload['artifacts'] = write_artifacts(out, records, methods[0],
                                               names)
    out.write_json(base + '.json', payload)
    print('wrote {}.html, .json{}{} in {}'.format(
        base, ', .png' if args.figure > 0 else '',
        ', _faithfulness.md' if args.faithfulness else '', run.folder))
    return payload


def write_artifacts(out, records, method, names):
    """Artifact table (markdown, printed) and bar chart for one method."""
    words = artifact_words(records, method, tokens_of, len(names))
    table = render.artifact_table(words, names)
    print(table)
    base = 'artifacts_' + method
    out.write(base + '.md', lambda f: f.write(table), 'w')
    out.write(base + '.png', render.png_writer(
        render.plot_artifacts(words, names)))
    return {names[c]: rows for c, rows in words.items()}


def faithfulness_table(metrics):
    """Markdown: one row per method."""
    fr = list(next(iter(metrics.values()))['comprehensiveness'])
    head = ['method', 'AOPC (top 1-10)'] + \
        ['compr. {:.0%}'.format(float(f)) for f in fr] + \
        ['suff. {:.0%}'.format(float(f)) for f in fr] + \
        ['reduced length', 'entropy', 'zero share']
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]
    for m, r in metrics.items():
        cells = [render.METHOD_TITLES[m], '%.4f' % r['aopc']] + \
            ['%.4f' % r['comprehensiveness'][f] for f in fr] + \
            ['%.4f' % r['sufficiency'][f] for f in fr] + \
            ['%.2f / %.2f' % (r['reduction_length'], r['mean_length']),
             '%.3f' % r['entropy'], '%.3f' % r['zero_share']]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


@cli.script
def main(argv=None):
    args = build_parser().parse_args(argv)
    device = cli.device_from_args(args)
    run = runs.load(args.model_setup, device, args.data_dir)
    with run.writing() as out:
        return run_command(args, run, out)


if __name__ == '__main__':
    main()
