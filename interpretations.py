#!/usr/bin/env python
"""Which words made the model decide: leave-one-out and gradient saliency.

    python interpretations.py --model-setup result/stsa.binary_cnn/args.json \\
        --interp_method dknn

Methods (one registry, :data:`INTERPRETERS`, one signature):

* ``dknn``: conformity leave-one-out (Wallace et al. 2018): the drop in the
  share of DkNN neighbours that carry the DkNN's predicted label;
* ``softmax`` / ``calibrated``: confidence leave-one-out, on the softmax or
  the temperature-scaled probability of the predicted label;
* ``grad``: vanilla gradient: d log p(predicted) / d e_t, dotted with e_t.

Every method returns, per example, the prediction, the score on the full
input and one importance per token (``<eos>`` excluded), signed so that a
positive importance means the token *supported* the prediction.
Leave-one-out scores all variants of many sentences in one forward pass and
one neighbour search. :mod:`render` draws the page and figures;
:mod:`faithfulness` and :mod:`artifacts` measure the importances.
"""
import functools
from dataclasses import dataclass

import numpy
from tqdm import tqdm

import dknn
import nets
import nlp_utils
from nlp_utils import parts, remove, slots

from errors import UserError

from toolkit import artifacts
from toolkit import cli
from toolkit import faithfulness
from toolkit import metrics
from toolkit import reduction
from toolkit import render
from toolkit import runs
from toolkit.temperature import TemperatureScaling


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


class Explainer:
    """What the methods need: the model, and for a trained run its DkNN head
    (built on first use) and temperature (looked up on first use).

    Args:
        model: a classifier from :mod:`nets`.
        run (toolkit.runs.Run): the trained run; None for the model alone
            (then only ``softmax`` and ``grad`` work).
        settings (dknn.Settings): the DkNN of ``dknn`` (its scoring rule is
            always conformity) and the batch size of forward passes.
        field (str): for pairs, which side's tokens are explained.
        comm: a ChainerMN communicator: the training set is split over the
            MPI ranks (``--distributed``), and rank 0 alone writes.
    """

    def __init__(self, model, run=None, *, settings=dknn.Settings(),
                 field='hypothesis', comm=None):
        self.model, self.run, self.comm = model, run, comm
        self.device = run.device if run is not None else None
        self.settings = settings.replace(scoring='conformity')
        self.field, self.batchsize = field, settings.batchsize

    @functools.cached_property
    def head(self):
        """The run's DkNN (conformity scoring)."""
        return dknn.for_run(self.run, self.settings, self.comm)[0]

    @functools.cached_property
    def temperature(self):
        """(T, where it came from): see :meth:`runs.Run.temperature_or_fit`.
        """
        return self.run.temperature_or_fit()

    @functools.cached_property
    def scaled(self):
        """The run's temperature scaling."""
        return TemperatureScaling(self.temperature[0])

    def forward(self, inputs):
        """(M, C) logits and {layer: (M, D)} activations of M inputs."""
        return nets.predict_inputs(self.model, inputs, self.device,
                                   self.batchsize)

    def logits(self, inputs):
        """(M, C) logits of M inputs."""
        return self.forward(inputs)[0]

    def predictions(self, inputs):
        """(M,) the model's labels of M inputs."""
        return self.logits(inputs).argmax(axis=1)

    def attributions(self, inputs, method):
        """A registered method's :class:`Attribution` of each input."""
        return explain(self, inputs, method, chunk=256)

    def scores(self, inputs, method):
        """(M, C) scores of every label under a leave-one-out method's
        yardstick (``softmax``, ``calibrated`` or ``dknn``)."""
        return INTERPRETERS[method].scores(self, inputs)


# ------------------------------------------------------------ the methods

@dataclass(frozen=True)
class Method:
    """A registered method: its title, ``explain(explainer, xs) -> list of
    Attribution``, and for leave-one-out the score it perturbs,
    ``scores(explainer, inputs) -> (M, C)``."""
    title: str
    explain: object
    scores: object = None


INTERPRETERS = {}


def softmax_scores(explainer, inputs):
    return metrics.softmax(explainer.logits(inputs))


def calibrated_scores(explainer, inputs):
    return explainer.scaled.probs(explainer.logits(inputs))


def conformity_scores(explainer, inputs):
    if not len(inputs):
        return numpy.zeros((0, explainer.model.n_class))
    _, layers = explainer.forward(inputs)
    return explainer.head.predict_activations(layers).scores


def leave_one_out(explainer, xs, scores, filler=None):
    """Drop in ``scores`` of the full input's top label when each explained
    token is left out (``filler``: replaced by that token id instead). One
    batch holds every variant of every input.

    Returns:
        list of :class:`Attribution`.
    """
    def variant(x, j):
        if filler is None:
            return remove(x, [j], explainer.field)
        return nlp_utils.substitute(x, [j], filler, explainer.field)
    inputs, spans = [], []
    for x in xs:
        n = len(slots(x, explainer.field))
        spans.append((len(inputs), n))
        inputs.append(x)
        inputs.extend(variant(x, j) for j in range(n))
    s = scores(explainer, inputs)                                  # (M, C)
    out = []
    for start, n in spans:
        full = s[start]
        pred = int(full.argmax())
        drop = full[pred] - s[start + 1:start + 1 + n, pred]       # (n,)
        out.append(Attribution(pred, float(full[pred]), drop))
    return out


for _name, _title, _scores in (
        ('dknn', 'conformity leave-one-out', conformity_scores),
        ('softmax', 'confidence leave-one-out', softmax_scores),
        ('calibrated', 'calibrated confidence leave-one-out',
         calibrated_scores)):
    INTERPRETERS[_name] = Method(
        _title, functools.partial(leave_one_out, scores=_scores), _scores)


def vanilla_gradient(explainer, xs):
    """(d log p(prediction) / d e_t) . e_t for each explained token t."""
    device_xs = nlp_utils.send_xs(xs, explainer.device)
    # the loss is taken against the model's own predictions
    grads, embs, logits = explainer.model.embedding_gradients(
        device_xs, with_logits=True)
    probs = metrics.softmax(nets.to_cpu(logits))
    preds = probs.argmax(axis=1)
    out = []
    for x, g, e, pred, p in zip(xs, grads, embs, preds, probs):
        # per token g . e; the loss is -log p, so negate for support
        dots = [-(nets.to_cpu(gp) * nets.to_cpu(ep)).sum(axis=1)
                for gp, ep in zip(parts(g), parts(e))]
        imp = [dots[q][i] for q, i in slots(x, explainer.field)]
        out.append(Attribution(int(pred), float(p[pred]),
                               numpy.array(imp, numpy.float32)))
    return out


INTERPRETERS['grad'] = Method('vanilla gradient', vanilla_gradient)


def explain(explainer, xs, method, chunk=64, desc=None):
    """Run one registered method over many inputs, ``chunk`` at a time
    (inputs of similar lengths together: less padding)."""
    order = nlp_utils.length_order(xs)
    out = [None] * len(xs)
    for i in tqdm(range(0, len(xs), chunk), desc=desc, disable=desc is None,
                  leave=False):
        rows = order[i:i + chunk]
        for r, a in zip(rows, INTERPRETERS[method].explain(
                explainer, [xs[r] for r in rows])):
            out[r] = a
    return out


# ------------------------------------------------------------ a run's page

def interpret(explainer, methods, indices, n_neighbours=0):
    """Explain the run's test examples ``indices`` with each method.

    Returns:
        list: one record per example, for the page, figure and JSON:
        ``index``, ``label``, ``parts`` (token lists), ``explained`` (the
        coloured parts), ``neighbours`` and ``results`` (method ->
        :class:`Attribution`).
    """
    run = explainer.run
    if 'calibrated' in methods:
        explainer.scaled  # fail early, saying how to fit one
    xs = [run.splits.test[i][0] for i in indices]
    results = {m: explain(explainer, xs, m, desc=m) for m in methods}
    nbrs = [None] * len(xs)
    if n_neighbours:   # interpretation by analogy: the nearest examples
        found = explainer.head.predict(xs).neighbours
        nbrs = neighbour_texts(
            run.splits.raw['train'],
            found[explainer.head.layers[-1]].indices[:, :n_neighbours])
    explained = nlp_utils.explained_parts(run.pair, explainer.field)
    test = run.splits.raw['test']
    return [
        {'index': i, 'label': test[i][1], 'parts': list(test[i][0]),
         'explained': explained, 'neighbours': nbrs[j],
         'results': {m: r[j] for m, r in results.items()}}
        for j, i in enumerate(indices)]


def neighbour_texts(raw_train, indices):
    """``(text, label)`` of training examples, for (B, n) ``indices``."""
    return [[(' / '.join(' '.join(f) for f in raw_train[j][0]),
              raw_train[j][1]) for j in row] for row in indices]


def tokens_of(rec):
    """The explained tokens of a record of :func:`interpret`."""
    return [t for p in rec['explained'] for t in rec['parts'][p]]


def payload_of(records, methods, field, label_names):
    """The ``interpretations_*.json`` content: labels as ids into
    ``label_names`` and by name."""
    return {'methods': methods, 'field': field, 'label_names': label_names,
            'examples': [{
                'index': r['index'], 'label': r['label'],
                'label_name': label_names[r['label']],
                'tokens': tokens_of(r), 'neighbours': r['neighbours'],
                **{m: {'prediction': a.prediction,
                       'prediction_name': label_names[a.prediction],
                       'score': a.score,
                       'importance': a.importance.tolist()}
                   for m, a in r['results'].items()}} for r in records]}


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
                   help="show each example's N nearest training examples "
                        '(interpretation by analogy)')
    p.add_argument('--figure', type=cli.int_in(0, 1000), default=5,
                   help='examples drawn in the PNG heatmap (0: no PNG)')
    p.add_argument('--reduce-by', default='grad', choices=list(INTERPRETERS),
                   help='the method that ranks tokens for --reduce')
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


def write_page(out, base, records, payload, run, titles, figure):
    """``BASE.html``, ``BASE.png`` (the first ``figure`` records; none if
    0), ``BASE_faithfulness.md`` (if the payload has faithfulness), then
    ``BASE.json``, which records completion."""
    field = payload['field']
    title = '{} {}: {}'.format(run.setup['dataset'], run.setup['model'],
                               ', '.join(titles.values()))
    out.write(base + '.html', lambda f: f.write(render.html_page(
        title, records, titles, run.label_names, run.pair, field)), 'w')
    if figure:
        fig = render.plot_heatmaps(records[:figure], titles, run.label_names,
                                   run.pair)
        out.write(base + '.png', render.png_writer(fig, dpi=110))
    if 'faithfulness' in payload:
        table = render.faithfulness_table(payload['faithfulness'], titles)
        out.write(base + '_faithfulness.md', lambda f: f.write(table), 'w')
    out.finish(base + '.json', payload)


def write_artifacts(out, records, method, names):
    """``artifacts_METHOD.md`` (printed too) and ``.png``; returns class
    name -> rows of :func:`toolkit.artifacts.artifact_words`."""
    words = artifacts.artifact_words(records, method, len(names))
    table = artifacts.artifact_table(words, names)
    print(table)
    out.write('artifacts_{}.md'.format(method), lambda f: f.write(table),
              'w')
    out.write('artifacts_{}.png'.format(method), render.png_writer(
        artifacts.plot_artifacts(words, names)))
    return {names[c]: rows for c, rows in words.items()}


def explain_run(explainer, methods, indices, neighbours=0, figure=5,
                with_faithfulness=False, with_artifacts=False, flags=None):
    """Explain test examples and write the page, the figure and the JSON.

    Returns:
        tuple: (the JSON payload, the records, the files' common name).
    """
    run, field = explainer.run, explainer.field
    titles = {m: INTERPRETERS[m].title for m in methods}
    base = 'interpretations_' + '+'.join(methods)
    with run.writing(explainer.comm) as out:
        out.expect(base + '.html', base + '.json', *(
            [base + '.png'] * bool(figure) +
            [base + '_faithfulness.md'] * with_faithfulness +
            ['artifacts_{}.{}'.format(methods[0], ext)
             for ext in ('md', 'png')] * with_artifacts))
        records = interpret(explainer, methods, indices, neighbours)
        payload = payload_of(records, methods, field if run.pair else None,
                             run.label_names)
        if with_faithfulness:
            payload['faithfulness'] = faithfulness.by_method(
                functools.partial(softmax_scores, explainer),
                [run.splits.test[i][0] for i in indices], records, methods,
                field)
        if with_artifacts:
            payload['artifacts'] = write_artifacts(
                out, records, methods[0], run.label_names)
        payload['settings'] = dict(flags or {},
                                   dknn=explainer.settings.public())
        write_page(out, base, records, payload, run, titles, figure)
    return payload, records, base


def print_ranked(rec, methods, label_names):
    """One example's tokens, most supporting first, for each method."""
    tokens = tokens_of(rec)
    for m in methods:
        att = rec['results'][m]
        print('#{} [{}] label: {}  prediction: {} ({:.4f})'.format(
            rec['index'], m, label_names[rec['label']],
            label_names[att.prediction], att.score))
        print('  ' + ' || '.join(' '.join(t) for t in rec['parts']))
        for j in numpy.argsort(-att.importance, kind='stable'):
            print('  {:+.4f} {}'.format(att.importance[j], tokens[j]))
    for s, y in rec['neighbours'] or []:
        print('  neighbour [{}] {}'.format(label_names[y], s))


def write_reduction(out, run, payload):
    """``reduction.png``, ``reduction.html``, then ``reduction.json``."""
    out.write(runs.ARTIFACTS['reduction_figure'], render.png_writer(
        render.plot_reduction(payload['examples'])))
    title = '{} {}: input reduction guided by {}'.format(
        run.setup['dataset'], run.setup['model'], payload['reduce_by'])
    out.write(runs.ARTIFACTS['reduction_page'], lambda f: f.write(
        render.reduction_page(title, payload, run.label_names)), 'w')
    out.finish(runs.ARTIFACTS['reduction'], payload)


def reduce_command(explainer, indices, method, beam, flags=None):
    """``--reduce``: reduce, write ``reduction.png``, ``.html``, then
    ``reduction.json``; print the summary."""
    run = explainer.run
    with run.writing(explainer.comm) as out:
        out.expect(*(runs.ARTIFACTS[role] for role in (
            'reduction_figure', 'reduction_page', 'reduction')))
        payload = reduction.reduce_run(run, explainer, indices, method, beam)
        payload['settings'] = dict(flags or {},
                                   dknn=explainer.settings.public())
        write_reduction(out, run, payload)
    if cli.is_rank0():
        print(render.reduction_table(payload['summary']))
        print('{} inputs reduced in {:.1f} s; wrote reduction.json, .png, '
              '.html in {}'.format(len(payload['examples']),
                                   payload['seconds'], run.folder))
    return payload


@cli.script
def main(argv=None):
    args = cli.parse(build_parser(), argv)
    comm = cli.communicator() if args.distributed else None
    run = runs.from_args(args)
    settings = cli.dknn_settings(args)
    explainer = Explainer(run.model, run, settings=settings,
                          field=args.field, comm=comm)
    indices = cli.chosen_examples(args, len(run.splits.test))
    flags = cli.settings_of(args)
    if args.reduce:
        return reduce_command(explainer, indices, args.reduce_by, args.beam,
                              flags)
    methods = parse_methods(args.interp_method)
    if args.neighbours > settings.k:
        raise UserError('--neighbours {} is more than the --k {} neighbours '
                        'the DkNN finds; raise --k'.format(args.neighbours,
                                                           settings.k))
    payload, records, base = explain_run(
        explainer, methods, indices, args.neighbours, args.figure,
        args.faithfulness, args.artifacts, flags)
    if not cli.is_rank0():
        return payload
    if not args.quiet:
        for rec in records:
            print_ranked(rec, methods, run.label_names)
    print('wrote {}.html, .json{}{} in {}'.format(
        base, ', .png' if args.figure else '',
        ', _faithfulness.md' if args.faithfulness else '', run.folder))
    return payload


if __name__ == '__main__':
    main()
