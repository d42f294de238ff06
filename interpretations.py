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
import argparse
import collections
import html
import math
import os
from dataclasses import dataclass

import numpy
from tqdm import tqdm

import dknn as dknn_lib
import nets
import nlp_utils
import scaling
import text_datasets

FIELDS = ('hypothesis', 'premise', 'both')


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


# ------------------------------------------------------------ editing inputs

def _parts(x):
    return list(x) if isinstance(x, tuple) else [x]


def slots(x, field='hypothesis'):
    """(part, position) of each explained token of an input (``<eos>``
    excluded): the sentence, or the chosen field(s) of a pair."""
    parts = _parts(x)
    if len(parts) == 1:
        which = [0]
    else:
        which = {'premise': [0], 'hypothesis': [1], 'both': [0, 1]}[field]
    return [(p, i) for p in which for i in range(len(parts[p]) - 1)]


def remove(x, drop, field='hypothesis'):
    """A copy of input ``x`` without the explained tokens numbered ``drop``.
    """
    parts = _parts(x)
    by_part = [[] for _ in parts]
    all_slots = slots(x, field)
    for j in drop:
        p, i = all_slots[j]
        by_part[p].append(i)
    new = [numpy.delete(a, d) if d else a for a, d in zip(parts, by_part)]
    return tuple(new) if isinstance(x, tuple) else new[0]


def keep_only(x, keep, field='hypothesis'):
    """A copy of ``x`` keeping only the explained tokens numbered ``keep``.
    """
    keep = set(keep)
    n = len(slots(x, field))
    return remove(x, [j for j in range(n) if j not in keep], field)


# ------------------------------------------------------------------ scorers

class Explainer:
    """A trained run and what the methods need: the model, its DkNN head
    (built on first use), its temperature (read on first use).

    Args:
        model, setup: from :func:`nets.load_model`.
        splits: from :func:`text_datasets.splits_for_setup`.
        field (str): for pairs, which side's tokens are explained.
    """

    def __init__(self, model, setup, splits, device=None, field='hypothesis',
                 k=75, layers='last', batchsize=512):
        self.model, self.setup, self.splits = model, setup, splits
        self.device, self.field, self.batchsize = device, field, batchsize
        self.k, self.layers = k, layers
        self._head = self._temperature = None

    @property
    def head(self):
        """The DkNN (conformity scoring), loaded from the saved index when
        run_dknn.py left one, else built and saved."""
        if self._head is None:
            self._head, _ = dknn_lib.for_run(
                self.model, self.setup, self.splits, layers=self.layers,
                k=self.k, device=self.device)
        return self._head

    @property
    def temperature(self):
        if self._temperature is None:
            self._temperature = scaling.load_temperature(self.setup)
        return self._temperature

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
        return dknn_lib.softmax(logits)


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
                for gp, ep in zip(_parts(g), _parts(e))]
        imp = [dots[q][i] for q, i in slots(x, explainer.field)]
        out.append(Attribution(int(pred), float(p[pred]),
                               numpy.array(imp, numpy.float32)))
    return out


def explain(explainer, xs, method, chunk=64, desc=None):
    """Run one registered method over many inputs, ``chunk`` at a time."""
    if method not in INTERPRETERS:
        raise nlp_utils.UserError('unknown method {!r}; choose from {}'.format(
            method, ', '.join(INTERPRETERS)))
    out = []
    for i in tqdm(range(0, len(xs), chunk), desc=desc, disable=desc is None,
                  leave=False):
        out.extend(INTERPRETERS[method](explainer, xs[i:i + chunk]))
    return out


# ------------------------------------------------------------- faithfulness

def faithfulness(explainer, xs, attributions, k_max=10,
                 fractions=(0.1, 0.2, 0.5)):
    """How well importances predict the model's behaviour under deletion.

    All scores are the softmax probability of the model's predicted label
    on the full input (the same yardstick for every method).

    Returns:
        dict: ``aopc`` (mean drop over removing the top 1..K tokens, K =
        ``k_max``), ``deletion_curve`` (mean drop after removing the top k,
        k = 1..K, among sentences with at least k tokens),
        ``comprehensiveness`` and ``sufficiency`` (ERASER, DeYoung et al.
        2020) at each fraction, ``reduction_length`` (Feng et al. 2018:
        tokens left after removing the least important token while the
        prediction holds, in the method's ranking) and ``entropy`` (of the
        normalised |importance|, divided by log n; lower is more
        concentrated) with ``zero_share`` (tokens whose importance is 0).
    """
    field = explainer.field
    inputs, jobs = [], []
    for idx, (x, att) in enumerate(zip(xs, attributions)):
        n = len(att.importance)
        order = [int(j) for j in numpy.argsort(-att.importance,
                                               kind='stable')]
        inputs.append(x)
        base = len(inputs) - 1
        for k in range(1, min(k_max, n) + 1):
            jobs.append((idx, 'del', k, base, len(inputs)))
            inputs.append(remove(x, order[:k], field))
        for f in fractions:
            m = max(1, int(math.ceil(f * n))) if n else 0
            jobs.append((idx, 'comp', f, base, len(inputs)))
            inputs.append(remove(x, order[:m], field))
            jobs.append((idx, 'suff', f, base, len(inputs)))
            inputs.append(keep_only(x, order[:m], field))
        for r in range(1, n + 1):  # drop the r least important tokens
            jobs.append((idx, 'red', r, base, len(inputs)))
            inputs.append(remove(x, order[n - r:], field))
    probs = explainer.class_scores(inputs, 'softmax')
    drops = {}
    held = {}
    for idx, kind, key, base, row in jobs:
        pred = probs[base].argmax()
        if kind == 'red':
            held.setdefault(idx, []).append((key, probs[row].argmax() == pred))
        else:
            drops.setdefault((kind, key), []).append(
                probs[base, pred] - probs[row, pred])
    curve = [float(numpy.mean(drops[('del', k)]))
             for k in range(1, k_max + 1) if ('del', k) in drops]
    lengths = []
    for idx, att in enumerate(attributions):
        n, removed = len(att.importance), 0
        for r, ok in sorted(held.get(idx, [])):
            if not ok:
                break
            removed = r
        lengths.append(n - removed)
    ent, zero = [], []
    for att in attributions:
        a = numpy.abs(att.importance.astype(numpy.float64))
        zero.extend(a <= 1e-7)
        if len(a) > 1 and a.sum() > 0:
            p = a / a.sum()
            p = p[p > 0]
            ent.append(float(-(p * numpy.log(p)).sum() / math.log(len(a))))
    mean = lambda v: float(numpy.mean(v)) if len(v) else float('nan')  # NOQA
    return {'n_examples': len(xs), 'aopc': mean(curve),
            'deletion_curve': curve,
            'comprehensiveness': {str(f): mean(drops.get(('comp', f), []))
                                  for f in fractions},
            'sufficiency': {str(f): mean(drops.get(('suff', f), []))
                            for f in fractions},
            'reduction_length': mean(lengths),
            'mean_length': mean([len(a.importance) for a in attributions]),
            'entropy': mean(ent), 'zero_share': mean(zero)}


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


def artifact_table(words, label_names):
    """Markdown: for each class, its top words with counts and mean
    importance."""
    lines = ['| predicted class | word | times most important | mean '
             'importance |', '|---|---|---|---|']
    for c, rows in words.items():
        for w, n, m in rows:
            lines.append('| {} | {} | {} | {:.3f} |'.format(
                label_names[c], w.replace('|', '\\|'), n, m))
    return '\n'.join(lines) + '\n'


def plot_artifacts(words, label_names, path):
    """A bar chart per class of how often each word was the most important.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(4 * len(words), 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(words), squeeze=False)[0]
    for ax, (c, rows) in zip(axes, words.items()):
        ax.barh([w for w, _, _ in rows][::-1], [n for _, n, _ in rows][::-1],
                color='#4d9221')
        ax.set_title('predicted: {}'.format(label_names[c]))
        ax.set_xlabel('examples where the word is most important')
    fig.tight_layout()
    nlp_utils.save_atomic(path, lambda f: fig.savefig(f, format='png',
                                                      dpi=100))


# ---------------------------------------------------------------- colours

def colour_values(importance, prediction, n_class, pair):
    """The original project's display values in [0, 1] (0.5 = neutral).

    Sign: importance, negated for a single-text prediction in the lower
    half of the labels. Scale: positive and negative values each divided by
    their total (plus 1e-6), halved, then shifted by 0.5.
    """
    v = numpy.asarray(importance, numpy.float64)
    if not pair and prediction < n_class / 2.0 and n_class > 1:
        v = -v
    pos = v[v > 0].sum() + 1e-6
    neg = -v[v < 0].sum() + 1e-6
    return 0.5 + numpy.where(v > 0, v / pos, v / neg) / 2


def cmap_name(pair):
    return 'PiYG' if pair else 'RdBu'


def _hex(cmap, value):
    import matplotlib.colors
    return matplotlib.colors.rgb2hex(cmap(float(value))[:3])


METHOD_TITLES = {'dknn': 'conformity leave-one-out',
                 'softmax': 'confidence leave-one-out',
                 'calibrated': 'calibrated confidence leave-one-out',
                 'grad': 'vanilla gradient'}


def coloured_tokens(tokens, values, cmap):
    """HTML spans, every token escaped, with background colours."""
    return ' '.join(
        '<span class="tok" style="background-color:{};color:{}" '
        'title="{:.3f}">{}</span>'.format(
            _hex(cmap, v), 'white' if abs(v - 0.5) > 0.33 else 'black',
            v - 0.5, html.escape(t))
        for t, v in zip(tokens, values))


PAGE_STYLE = """
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; width: 100%; }
td, th { border-bottom: 1px solid #ddd; padding: 6px; vertical-align: top;
         text-align: left; }
.tok { padding: 1px 3px; margin: 1px; border-radius: 3px; line-height: 2; }
.nb { color: #555; font-size: 90%; }
"""


def html_page(title, records, methods, label_names, pair, field):
    """The supplementary-site page: a row per example and method.

    Args:
        records (list of dict): each has ``index``, ``label``, ``parts``
            (list of token lists: the sentence, or premise and hypothesis),
            ``explained`` (which parts are coloured), ``results`` (method ->
            :class:`Attribution`) and optional ``neighbours``.
    """
    import matplotlib
    cmap = matplotlib.colormaps[cmap_name(pair)]
    rows = []
    name = lambda y: html.escape(label_names[y] if y < len(label_names)  # NOQA
                                 else str(y))
    for rec in records:
        for m_i, method in enumerate(methods):
            att = rec['results'][method]
            values = iter(colour_values(att.importance, att.prediction,
                                        len(label_names), pair))
            text = []
            for p, tokens in enumerate(rec['parts']):
                if p in rec['explained']:
                    vals = [next(values) for _ in tokens]
                    text.append(coloured_tokens(tokens, vals, cmap))
                else:
                    text.append(html.escape(' '.join(tokens)))
            cell = '<br>'.join(text)
            if m_i == len(methods) - 1 and rec.get('neighbours'):
                cell += '<div class="nb">nearest training examples:<br>' + \
                    '<br>'.join('[{}] {}'.format(name(y), html.escape(s))
                                for s, y in rec['neighbours']) + '</div>'
            rows.append('<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ({:.2f})'
                        '</td><td>{}</td></tr>'.format(
                            rec['index'], METHOD_TITLES[method],
                            name(rec['label']), name(att.prediction),
                            att.score, cell))
    legend = ('Green: the token supported the prediction; pink: it spoke '
              'against it.' if pair else 'Blue: support for the upper '
              'labels (positive); red: support for the lower labels '
              '(negative).')
    return ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>{0}'
            '</title><style>{1}</style></head><body><h1>{0}</h1><p>{2} '
            'Values are normalised per sentence as in the original '
            'project; hover a token for its value.{3}</p><table><tr>'
            '<th>#</th><th>method</th><th>label</th><th>prediction (score)'
            '</th><th>text</th></tr>{4}</table></body></html>\n').format(
                html.escape(title), PAGE_STYLE, legend,
                ' Explained: the {}.'.format(field) if pair else '',
                '\n'.join(rows))


def plot_heatmaps(records, methods, label_names, pair, path):
    """Methods side by side for each record: one row per method, one
    coloured cell per token (the paper's figures)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    import matplotlib
    cmap = matplotlib.colormaps[cmap_name(pair)]
    width = max(len(next(iter(r['results'].values())).importance)
                for r in records)
    fig = Figure(figsize=(max(6, 0.75 * width + 2.5),
                          sum(0.45 * len(methods) + 0.9 for _ in records)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(records), 1, squeeze=False)[:, 0]
    for ax, rec in zip(axes, records):
        tokens = [t for p, ts in enumerate(rec['parts'])
                  if p in rec['explained'] for t in ts]
        grid = numpy.full((len(methods), width), numpy.nan)
        for r, m in enumerate(methods):
            att = rec['results'][m]
            grid[r, :len(tokens)] = colour_values(
                att.importance, att.prediction, len(label_names), pair)
        ax.imshow(grid, cmap=cmap, vmin=0, vmax=1, aspect='auto')
        for r in range(len(methods)):
            for c, t in enumerate(tokens):
                dark = abs(grid[r, c] - 0.5) > 0.33
                ax.text(c, r, t, ha='center', va='center', fontsize=8,
                        color='white' if dark else 'black')
        ax.set_yticks(range(len(methods)))
        ax.set_yticklabels([METHOD_TITLES[m] for m in methods], fontsize=8)
        ax.set_xticks([])
        att = rec['results'][methods[0]]
        ax.set_title('#{}  label: {}  prediction ({}): {}'.format(
            rec['index'], label_names[rec['label']], methods[0],
            label_names[att.prediction]), fontsize=9, loc='left')
    fig.tight_layout()
    nlp_utils.save_atomic(path, lambda f: fig.savefig(f, format='png',
                                                      dpi=110))


# ---------------------------------------------------------------- script

def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[1],
                                formatter_class=argparse.
                                ArgumentDefaultsHelpFormatter)
    p.add_argument('--model-setup', required=True)
    p.add_argument('--interp_method', '--interp-method', default='dknn',
                   help='one of {}, several joined by commas, or all'.format(
                       ', '.join(INTERPRETERS)))
    which = p.add_mutually_exclusive_group()
    which.add_argument('--index', type=int, nargs='+',
                       help='test examples by index')
    which.add_argument('--first', type=int, default=50,
                       help='the first N test examples')
    which.add_argument('--all', action='store_true',
                       help='the whole test set')
    p.add_argument('--field', default='hypothesis', choices=FIELDS,
                   help='SNLI: which side to explain')
    p.add_argument('--neighbours', type=int, default=0,
                   help='show each example\'s N nearest training examples '
                        '(interpretation by analogy)')
    p.add_argument('--figure', type=int, default=5,
                   help='examples drawn in the PNG heatmap (the first N)')
    p.add_argument('--faithfulness', action='store_true',
                   help='also compute deletion / ERASER / input-reduction '
                        'metrics')
    p.add_argument('--artifacts', action='store_true',
                   help='aggregate, per predicted class, the words most '
                        'often most important (the SNLI artifact analysis)')
    p.add_argument('--k', type=int, default=75)
    p.add_argument('--layers', default='last')
    p.add_argument('--quiet', action='store_true',
                   help='do not print ranked words')
    p.add_argument('--data-dir', default=None)
    p.add_argument('--batchsize', type=int, default=512)
    nlp_utils.add_device_args(p)
    return p


def parse_methods(spec):
    names = list(INTERPRETERS) if spec == 'all' else \
        [m for m in spec.split(',') if m]
    unknown = [m for m in names if m not in INTERPRETERS]
    if unknown or not names:
        raise nlp_utils.UserError('unknown --interp_method {}; choose from {} '
                                  'or all'.format(','.join(unknown) or spec,
                                                  ', '.join(INTERPRETERS)))
    return names


def choose(args, n_test):
    if args.all:
        return list(range(n_test))
    if args.index:
        bad = [i for i in args.index if not 0 <= i < n_test]
        if bad:
            raise nlp_utils.UserError(
                'example index {} is out of range: the test set has {} '
                'examples (0..{})'.format(bad[0], n_test, n_test - 1))
        return list(args.index)
    return list(range(min(args.first, n_test)))


def neighbours_of(explainer, xs, n):
    """The n nearest training examples (last DkNN layer) of each input."""
    head = explainer.head
    out = head.predict(xs)
    idx = out.neighbours[head.layers[-1]][0][:, :n]
    raw = explainer.splits.raw['train']
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


def run(args):
    methods = parse_methods(args.interp_method)
    device = nlp_utils.device_from_args(args)
    model, setup, vocab = nets.load_model(args.model_setup, device)
    if 'calibrated' in methods:
        scaling.load_temperature(setup)
    splits = text_datasets.splits_for_setup(setup, vocab, args.data_dir)
    pair = bool(setup.get('pair'))
    explainer = Explainer(model, setup, splits, device, args.field, args.k,
                          args.layers, args.batchsize)
    chosen = choose(args, len(splits.test))
    xs = [splits.test[i][0] for i in chosen]
    results = {m: explain(explainer, xs, m, desc=m) for m in methods}
    explained = ({'premise': [0], 'hypothesis': [1], 'both': [0, 1]}
                 [args.field] if pair else [0])
    names = list(splits.label_names)
    nbrs = neighbours_of(explainer, xs, args.neighbours) \
        if args.neighbours else [None] * len(xs)
    records = []
    for j, i in enumerate(chosen):
        parts, label = splits.raw['test'][i]
        records.append({'index': i, 'label': label, 'parts': list(parts),
                        'explained': explained, 'neighbours': nbrs[j],
                        'results': {m: results[m][j] for m in methods}})
        if not args.quiet:
            tokens = [t for p in explained for t in parts[p]]
            for m in methods:
                print_ranked(records[-1], m, tokens, names)
            for s, y in nbrs[j] or []:
                print('  neighbour [{}] {}'.format(names[y], s))
    tag = '+'.join(methods)
    base = os.path.join(setup['run_dir'], 'interpretations_' + tag)
    title = '{} {}: {}'.format(setup['dataset'], setup['model'], ', '.join(
        METHOD_TITLES[m] for m in methods))
    nlp_utils.save_atomic(base + '.html', lambda f: f.write(html_page(
        title, records, methods, names, pair, args.field)), mode='w')
    if args.figure > 0:
        plot_heatmaps(records[:args.figure], methods, names, pair,
                      base + '.png')
    payload = {'methods': methods, 'field': args.field if pair else None,
               'examples': [{
                   'index': r['index'], 'label': r['label'],
                   'tokens': [t for p in explained for t in r['parts'][p]],
                   'neighbours': r['neighbours'],
                   **{m: {'prediction': a.prediction, 'score': a.score,
                          'importance': a.importance.tolist()}
                      for m, a in r['results'].items()}}
                   for r in records]}
    if args.faithfulness:
        payload['faithfulness'] = {
            m: faithfulness(explainer, xs, results[m]) for m in tqdm(
                methods, desc='faithfulness', leave=False)}
        nlp_utils.save_atomic(base + '_faithfulness.md', lambda f: f.write(
            faithfulness_table(payload['faithfulness'])), mode='w')
    if args.artifacts:
        payload['artifacts'] = write_artifacts(
            records, methods[0], explained, names,
            os.path.join(setup['run_dir'], 'artifacts_' + methods[0]))
    nlp_utils.save_json(base + '.json', payload)
    print('wrote {}.html, .json{}{}'.format(
        base, ', .png' if args.figure > 0 else '',
        ', _faithfulness.md' if args.faithfulness else ''))
    return payload


def write_artifacts(records, method, explained, names, base):
    """Artifact table (markdown, printed) and bar chart for one method."""
    words = artifact_words(
        records, method,
        lambda r: [t for p in explained for t in r['parts'][p]], len(names))
    table = artifact_table(words, names)
    print(table)
    nlp_utils.save_atomic(base + '.md', lambda f: f.write(table), mode='w')
    plot_artifacts(words, names, base + '.png')
    print('wrote {}.md, .png'.format(base))
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
        cells = [METHOD_TITLES[m], '%.4f' % r['aopc']] + \
            ['%.4f' % r['comprehensiveness'][f] for f in fr] + \
            ['%.4f' % r['sufficiency'][f] for f in fr] + \
            ['%.2f / %.2f' % (r['reduction_length'], r['mean_length']),
             '%.3f' % r['entropy'], '%.3f' % r['zero_share']]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except nlp_utils.UserError as e:
        raise SystemExit('error: {}'.format(e))


if __name__ == '__main__':
    nlp_utils.exit_on_sigterm()
    main()
