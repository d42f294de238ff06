"""The explorer's current view as files: a self-contained HTML page and a
PNG, drawn by the renderers ``interpretations.py`` uses
(:func:`toolkit.render.html_page`, :func:`toolkit.render.plot_heatmaps`).

Pure: a payload of :meth:`toolkit.explore.Explorer.explain` in, a string
or bytes out. Callers decide where (if anywhere) they go.
"""
import io

import numpy

from toolkit.attribution import Attribution
from toolkit import render

NEIGHBOURS_SHOWN = 10   # nearest training examples on the exported page


def record_of(payload, index='input', label=None):
    """The :func:`render.html_page` record of an explain payload.

    Args:
        payload (dict): from :meth:`Explorer.explain`.
        index: what the page's ``#`` column shows (a test index, or
            ``input`` for typed text).
        label (int): the gold label id, None if unknown.
    """
    names = payload['labels']
    last = payload['settings']['layers'][-1]
    return {
        'index': index, 'label': label, 'parts': payload['parts'],
        'explained': payload['explained'],
        'neighbours': [(n['text'], names.index(n['label']))
                       for n in payload['neighbours'][last]
                       [:NEIGHBOURS_SHOWN]],
        'results': {m: Attribution(names.index(info['label']),
                                   info['score'],
                                   numpy.asarray(payload['importance'][m],
                                                 numpy.float64))
                    for m, info in payload['methods'].items()}}


def title_of(payload, run_name):
    """One line: the run, the prediction and every confidence."""
    c = payload['confidence']
    return ('{}: prediction {} (softmax {:.2f}, temperature-scaled {:.2f}, '
            'DkNN credibility {:.2f}, confidence {:.2f}); prediction set at '
            'epsilon {:g}: {{{}}}'.format(
                run_name, payload['prediction'], c['softmax'],
                c['temperature_scaled'], c['dknn_credibility'],
                c['dknn_confidence'], payload['settings']['epsilon'],
                ', '.join(payload['prediction_set'])))


def _titles(payload):
    return {m: info['title'] for m, info in payload['methods'].items()}


def html_of(payload, run_name, pair, field, index='input', label=None,
            where=None):
    """The view as one HTML document (styles inline, no external file):
    the saliency rows, and the map (``where``, :meth:`Explorer.map`)."""
    page = render.html_page(title_of(payload, run_name),
                            [record_of(payload, index, label)],
                            _titles(payload), payload['labels'], pair, field)
    if where is None:
        return page
    return page.replace('</body>', '<h2>Where the input sits</h2>{}</body>'
                        .format(render.map_svg(where, payload['labels'])))


def png_of(payload, pair, index='input', label=None, dpi=110, where=None):
    """The view's heatmap (one row per method), and the map below it, as
    PNG bytes."""
    import matplotlib.image
    figs = [render.plot_heatmaps([record_of(payload, index, label)],
                                 _titles(payload), payload['labels'], pair)]
    if where is not None:
        figs.append(render.plot_map(where, payload['labels']))
    images = []
    for fig in figs:
        buf = io.BytesIO()
        render.png_writer(fig, dpi)(buf)
        buf.seek(0)
        images.append(matplotlib.image.imread(buf, format='png'))
    width = max(i.shape[1] for i in images)
    rows = [numpy.pad(i, ((0, 0), (0, width - i.shape[1]), (0, 0)),
                      constant_values=1.0) for i in images]
    out = io.BytesIO()
    matplotlib.image.imsave(out, numpy.concatenate(rows, axis=0),
                            format='png')
    return out.getvalue()
