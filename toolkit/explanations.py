"""A run's explanations: its test examples explained by the methods of
:mod:`toolkit.attribution`, and the page, figure and JSON written for them.

``interpretations.py`` calls :func:`explain_run` and :func:`reduce_run`;
the bench scripts call them too. Every file goes through a
:class:`toolkit.fileio.Outputs` of the run folder, the JSON that records
completion last.
"""
import functools

import numpy

import nlp_utils

from toolkit import artifacts
from toolkit import attribution
from toolkit import faithfulness
from toolkit import reduction
from toolkit import relevance
from toolkit import render
from toolkit import runfiles
from toolkit import runs


def interpret(explainer, methods, indices, n_neighbours=0,
              metric=relevance.DEFAULT):
    """Explain the run's test examples ``indices`` with each method, and
    show each one's ``n_neighbours`` most relevant training examples by the
    relevance ``metric`` (:mod:`toolkit.relevance`; ``l2``: the DkNN's own
    neighbours, the paper's).

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
    results = {m: attribution.explain(explainer, xs, m, desc=m) for m in methods}
    nbrs = [None] * len(xs)
    if n_neighbours:   # interpretation by analogy: the relevant examples
        nbrs = neighbour_texts(run.splits.raw['train'], related(
            explainer, xs, metric, n_neighbours))
    explained = nlp_utils.explained_parts(run.pair, explainer.field)
    test = run.splits.raw['test']
    return [
        {'index': i, 'label': test[i][1], 'parts': list(test[i][0]),
         'explained': explained, 'neighbours': nbrs[j],
         'results': {m: r[j] for m, r in results.items()}}
        for j, i in enumerate(indices)]


def related(explainer, xs, metric, n):
    """(B, n) the training examples most relevant to inputs ``xs``."""
    run = explainer.run
    if metric == 'l2':
        found = explainer.head.predict(xs).neighbours
        return found[explainer.head.layers[-1]].indices[:, :n]
    logits, layers = explainer.forward(xs)
    import nets
    rel = relevance.Relevance(metric, relevance.train_inputs(run.forward(
        'train')), run.model.layer_names[-1], run.setup['seed'])
    return rel.top(relevance.test_inputs(nets.Activations(
        logits, layers, numpy.zeros(len(xs), numpy.int32))), n)[0]


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
                with_faithfulness=False, with_artifacts=False, flags=None,
                tag=None, metric=relevance.DEFAULT):
    """Explain test examples and write the page, the figure and the JSON
    (``interpretations_METHODS[_TAG].*``); a set written before under that
    name is replaced, its files this one does not write removed.

    Returns:
        tuple: (the JSON payload, with ``written``; the records; the files'
        common name).
    """
    run, field = explainer.run, explainer.field
    titles = {m: attribution.title(m, explainer.settings.scoring)
              for m in methods}
    base = 'interpretations_' + '+'.join(methods) + ('_' + tag if tag
                                                      else '')
    names = [base + '.html', base + '.json'] + \
        [base + '.png'] * bool(figure) + \
        [base + '_faithfulness.md'] * with_faithfulness + \
        ['artifacts_{}.{}'.format(methods[0], ext)
         for ext in ('md', 'png')] * with_artifacts
    with run.writing(explainer.comm) as out:
        out.expect(*names)
        if out.folder is not None:
            runfiles.replace_set(out, base + '.json', set(names))
        records = interpret(explainer, methods, indices, neighbours, metric)
        payload = payload_of(records, methods, field if run.pair else None,
                             run.label_names)
        if with_faithfulness:
            payload['faithfulness'] = faithfulness.by_method(
                functools.partial(attribution.softmax_scores, explainer),
                [run.splits.test[i][0] for i in indices], records, methods,
                field)
        if with_artifacts:
            payload['artifacts'] = write_artifacts(
                out, records, methods[0], run.label_names)
        payload['settings'] = dict(flags or {},
                                   dknn=explainer.settings.public())
        if 'calibrated' in methods:
            T, source = explainer.temperature
            payload['temperature'] = {'T': T, 'source': source}
        write_page(out, base, records, payload, run, titles, figure)
    payload['written'] = list(out.written)
    return payload, records, base


def write_reduction(out, run, payload, names):
    """``reduction.png``, ``reduction.html``, then ``reduction.json`` (the
    file names ``names`` give, by role)."""
    out.write(names['reduction_figure'], render.png_writer(
        render.plot_reduction(payload['examples'])))
    title = '{} {}: input reduction guided by {}'.format(
        run.setup['dataset'], run.setup['model'], payload['reduce_by'])
    out.write(names['reduction_page'], lambda f: f.write(
        render.reduction_page(title, payload, run.label_names)), 'w')
    out.finish(names['reduction'], payload)


def reduce_run(explainer, indices, method, beam, flags=None, tag=None):
    """Input reduction of the run's test examples ``indices``: writes
    ``reduction.png``, ``.html``, then ``reduction.json`` (``_TAG`` with a
    tag); returns its content, with ``written``."""
    run = explainer.run
    names = {role: runfiles.tagged(runs.ARTIFACTS[role], tag) for role in (
        'reduction_figure', 'reduction_page', 'reduction')}
    with run.writing(explainer.comm) as out:
        out.expect(*names.values())
        payload = reduction.reduce_run(run, explainer, indices, method, beam)
        payload['settings'] = dict(flags or {},
                                   dknn=explainer.settings.public())
        write_reduction(out, run, payload, names)
    payload['written'] = list(out.written)
    return payload
