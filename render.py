"""How explanations are shown: colours, the HTML page, PNG figures and
markdown tables.

Every function returns a string or a matplotlib Figure; callers write them
(through :class:`safeio.OutputSet`). Tokens come from data files and may
hold anything: HTML is escaped with :func:`html.escape`, markdown with
:func:`md_escape`, and matplotlib text is drawn with ``parse_math=False`` so
a token such as ``$x^$`` is shown as it is instead of breaking mathtext.
"""
import html
import re

import numpy

METHOD_TITLES = {'dknn': 'conformity leave-one-out',
                 'softmax': 'confidence leave-one-out',
                 'calibrated': 'calibrated confidence leave-one-out',
                 'grad': 'vanilla gradient'}

_MD_SPECIAL = re.compile(r'([\\`*_{}\[\]()#+\-.!|~])')


def md_escape(text):
    """A token made safe inside a markdown table cell: HTML-escaped, and
    every markdown punctuation character backslash-escaped."""
    return _MD_SPECIAL.sub(r'\\\1', html.escape(str(text), quote=False))


def figure(width, height):
    """A Figure on the Agg canvas, without touching pyplot's global state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def png_writer(fig, dpi=100):
    """A ``write(fileobj)`` callable for :meth:`safeio.OutputSet.write`."""
    return lambda f: fig.savefig(f, format='png', dpi=dpi)


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


def plot_heatmaps(records, methods, label_names, pair):
    """Methods side by side for each record: one row per method, one
    coloured cell per token (the paper's figures)."""
    import matplotlib
    cmap = matplotlib.colormaps[cmap_name(pair)]
    width = max(len(next(iter(r['results'].values())).importance)
                for r in records)
    fig = figure(max(6, 0.75 * width + 2.5),
                 sum(0.45 * len(methods) + 0.9 for _ in records))
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
                        color='white' if dark else 'black', parse_math=False)
        ax.set_yticks(range(len(methods)))
        ax.set_yticklabels([METHOD_TITLES[m] for m in methods], fontsize=8)
        ax.set_xticks([])
        att = rec['results'][methods[0]]
        ax.set_title('#{}  label: {}  prediction ({}): {}'.format(
            rec['index'], label_names[rec['label']], methods[0],
            label_names[att.prediction]), fontsize=9, loc='left',
            parse_math=False)
    fig.tight_layout()
    return fig


def artifact_table(words, label_names):
    """Markdown: for each class, its top words with counts and mean
    importance; every word escaped."""
    lines = ['| predicted class | word | times most important | mean '
             'importance |', '|---|---|---|---|']
    for c, rows in words.items():
        for w, n, m in rows:
            lines.append('| {} | {} | {} | {:.3f} |'.format(
                md_escape(label_names[c]), md_escape(w), n, m))
    return '\n'.join(lines) + '\n'


def plot_artifacts(words, label_names):
    """A bar chart per class of how often each word was the most important.
    """
    fig = figure(4 * len(words), 4)
    axes = fig.subplots(1, len(words), squeeze=False)[0]
    for ax, (c, rows) in zip(axes, words.items()):
        rows = rows[::-1]
        ax.barh(range(len(rows)), [n for _, n, _ in rows], color='#4d9221')
        ax.set_yticks(range(len(rows)), [w for w, _, _ in rows],
                      parse_math=False)
        ax.set_title('predicted: {}'.format(label_names[c]),
                     parse_math=False)
        ax.set_xlabel('examples where the word is most important')
    fig.tight_layout()
    return fig
