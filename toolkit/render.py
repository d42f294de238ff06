"""How explanations are shown: colours, the HTML page, PNG figures and
markdown tables.

Every function turns data into a string or a matplotlib Figure and does
nothing else: callers look data up, print and write files. Tokens come from data files and may
hold anything: HTML is escaped with :func:`html.escape`, markdown with
:func:`md_escape`, and matplotlib text is drawn with ``parse_math=False`` so
a token such as ``$x^$`` is shown as it is instead of breaking mathtext.
"""
import html
import re

import numpy

from toolkit import metrics

_MD_SPECIAL = re.compile(r'([\\`*_\[\]|~$])')  # markup inside a table cell


def md_escape(text):
    """A token made safe inside a markdown table cell: HTML-escaped, and
    the characters that make markup there (emphasis, code, links, cell
    bars, math) backslash-escaped."""
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
    """A ``write(fileobj)`` callable that saves ``fig`` as a PNG (for
    :meth:`toolkit.fileio.Outputs.write`)."""
    return lambda f: fig.savefig(f, format='png', dpi=dpi)


# One convention everywhere, the explorer's page included: each method's
# importances divided by their largest absolute value on the sentence, blue
# for support of the label the method explains, orange for evidence against
# it (colour-blind safe), white for none; the raw importance on hover.
AGAINST, SUPPORT = (230, 97, 1), (33, 102, 172)
KEY = ('spoke against the explained label', 'no importance',
       'supported the explained label')


def colour_values(importance):
    """Display values in [0, 1] (0.5 = none): each importance divided by the
    sentence's largest absolute importance, mapped from [-1, 1]."""
    v = numpy.asarray(importance, numpy.float64)
    top = numpy.abs(v).max() if v.size else 0.0
    return 0.5 + (v / top if top > 0 else 0 * v) / 2


def colormap():
    """Orange (against) - white - blue (support)."""
    import matplotlib.colors
    return matplotlib.colors.LinearSegmentedColormap.from_list(
        'dknn', [tuple(c / 255 for c in AGAINST), (1, 1, 1),
                 tuple(c / 255 for c in SUPPORT)])


def _hex(cmap, value):
    import matplotlib.colors
    return matplotlib.colors.rgb2hex(cmap(float(value))[:3])


def coloured_tokens(tokens, values, raw, cmap):
    """HTML spans, every token escaped, with background colours and the
    raw importance on hover."""
    return ' '.join(
        '<span class="tok" style="background-color:{};color:{}" '
        'title="importance {:.4g}">{}</span>'.format(
            _hex(cmap, v), 'white' if abs(v - 0.5) > 0.3 else 'black', r,
            html.escape(t))
        for t, v, r in zip(tokens, values, raw))


PAGE_STYLE = """
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; width: 100%; }
td, th { border-bottom: 1px solid #ddd; padding: 6px; vertical-align: top;
         text-align: left; }
.tok { padding: 1px 3px; margin: 1px; border-radius: 3px; line-height: 2; }
.nb { color: #555; font-size: 90%; }
"""


def label_name(label_names, y):
    """Label ``y``'s name; ``-`` for None (an input typed in, with no gold
    label), the number itself when it has no name."""
    if y is None:
        return '-'
    return label_names[y] if 0 <= y < len(label_names) else str(y)


def html_page(title, records, methods, label_names, pair, field):
    """The supplementary-site page: a row per example and method.

    Args:
        records (list of dict): each has ``index``, ``label``, ``parts``
            (list of token lists: the sentence, or premise and hypothesis),
            ``explained`` (which parts are coloured), ``results`` (method ->
            :class:`Attribution`) and optional ``neighbours``; ``label``
            may be None (no gold label).
    """
    cmap = colormap()
    rows = []
    name = lambda y: html.escape(label_name(label_names, y))  # NOQA
    for rec in records:
        for m_i, method in enumerate(methods):
            att = rec['results'][method]
            values = iter(colour_values(att.importance))
            raw = iter(att.importance)
            text = []
            for p, tokens in enumerate(rec['parts']):
                if p in rec['explained']:
                    vals = [next(values) for _ in tokens]
                    text.append(coloured_tokens(
                        tokens, vals, [next(raw) for _ in tokens], cmap))
                else:
                    text.append(html.escape(' '.join(tokens)))
            cell = '<br>'.join(text)
            if m_i == len(methods) - 1 and rec.get('neighbours'):
                cell += '<div class="nb">nearest training examples:<br>' + \
                    '<br>'.join('[{}] {}'.format(name(y), html.escape(s))
                                for s, y in rec['neighbours']) + '</div>'
            rows.append('<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ({:.2f})'
                        '</td><td>{}</td></tr>'.format(
                            rec['index'], html.escape(methods[method]),
                            name(rec['label']), name(att.prediction),
                            att.score, cell))
    legend = ('Blue: the token supported the label its method explains '
              '(the prediction column); orange: it spoke against it; white: '
              'no importance. Each method\'s importances are divided by '
              'their largest absolute value on the sentence, for two labels '
              'and for many.')
    return ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>{0}'
            '</title><style>{1}</style></head><body><h1>{0}</h1><p>{2} '
            'Hover a token for its raw importance.{3}</p><table><tr>'
            '<th>#</th><th>method</th><th>label</th><th>prediction (score)'
            '</th><th>text</th></tr>{4}</table></body></html>\n').format(
                html.escape(title), PAGE_STYLE, legend,
                ' Explained: the {}.'.format(field) if pair else '',
                '\n'.join(rows))


def plot_heatmaps(records, methods, label_names, pair):
    """Methods side by side for each record: one row per method, one
    coloured cell per token (the paper's figures)."""
    cmap = colormap()
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
            grid[r, :len(tokens)] = colour_values(att.importance)
        ax.imshow(grid, cmap=cmap, vmin=0, vmax=1, aspect='auto')
        for r in range(len(methods)):
            for c, t in enumerate(tokens):
                dark = abs(grid[r, c] - 0.5) > 0.3
                ax.text(c, r, t, ha='center', va='center', fontsize=8,
                        color='white' if dark else 'black', parse_math=False)
        ax.set_yticks(range(len(methods)))
        ax.set_yticklabels(['{} (explains {})'.format(
            t, label_names[rec['results'][m].prediction])
            for m, t in methods.items()], fontsize=8, parse_math=False)
        ax.set_xticks([])
        first = next(iter(methods))
        att = rec['results'][first]
        ax.set_title('#{}  label: {}  prediction ({}): {}'.format(
            rec['index'], label_name(label_names, rec['label']), first,
            label_names[att.prediction]), fontsize=9, loc='left',
            parse_math=False)
    fig.set_layout_engine('constrained')   # room for the key
    fig.set_figheight(fig.get_figheight() + 0.6)
    colour_key(fig, axes, cmap, label_names, pair)
    return fig


def colour_key(fig, axes, cmap, label_names, pair):
    """A colour bar under the heatmaps, in the words of :data:`KEY` (the
    same for two labels and for many)."""
    import matplotlib.cm
    import matplotlib.colors
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(
        norm=matplotlib.colors.Normalize(0, 1), cmap=cmap), ax=list(axes),
        orientation='horizontal', fraction=0.04, pad=0.02, aspect=60)
    bar.set_ticks([0, 0.5, 1])
    bar.set_ticklabels(list(KEY), fontsize=8)
    bar.set_label('importance / the largest absolute importance on the '
                  'sentence', fontsize=8, parse_math=False)


def plot_reliability(panels, n_bins=metrics.N_BINS):
    """Reliability diagrams side by side.

    Each panel shows per-bin accuracy as bars against confidence, the gap
    to the diagonal (at the bin's mean confidence) shaded, and the ECE in
    its title.

    Args:
        panels (list): ``(title, confidences, correct)`` triples, each with
            (N,)-shaped arrays; one panel per triple.
        n_bins (int): bins per panel.

    Returns:
        matplotlib.figure.Figure: the figure, one axes per panel.
    """
    fig = figure(4 * len(panels), 4.3)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, confidences, correct) in zip(axes, panels):
        bins = metrics.reliability_bins(confidences, correct, n_bins)
        ece = metrics.expected_calibration_error(confidences, correct,
                                                 n_bins)
        full = bins.count > 0
        width = bins.upper - bins.lower
        x, w = bins.lower[full], width[full]
        acc, conf = bins.accuracy[full], bins.confidence[full]
        ax.bar(x, acc, w, align='edge', color='#4c72b0', label='accuracy',
               zorder=2)
        # the gap between accuracy and the bin's mean confidence
        ax.bar(x, conf - acc, w, bottom=acc, align='edge', color='#dd5555',
               alpha=0.4, hatch='//', edgecolor='#aa0000', linewidth=0,
               label='gap to diagonal', zorder=3)
        ax.bar(x, acc, w, align='edge', fill=False, edgecolor='black',
               zorder=4)
        ax.plot([0, 1], [0, 1], '--', color='gray', label='perfect')
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel='confidence',
               title='{}\nECE = {:.4f}  (n = {})'.format(
                   title, ece, int(bins.count.sum())))
        ax.set_aspect('equal')
    axes[0].set_ylabel('accuracy')
    axes[0].legend(loc='upper left')
    fig.tight_layout()
    return fig


def faithfulness_table(metrics_by_method, titles):
    """Markdown: one row per method of :func:`faithfulness.summary`."""
    fr = list(next(iter(metrics_by_method.values()))['comprehensiveness'])
    head = ['method', 'AOPC (top 1-10)'] + \
        ['compr. {:.0%}'.format(float(f)) for f in fr] + \
        ['suff. {:.0%}'.format(float(f)) for f in fr] + \
        ['mean length', 'entropy', 'exactly 0', 'below 0.01']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for m, r in metrics_by_method.items():
        cells = [md_escape(titles[m]), '%.4f' % r['aopc']] + \
            ['%.4f' % r['comprehensiveness'][f] for f in fr] + \
            ['%.4f' % r['sufficiency'][f] for f in fr] + \
            ['%.2f' % r['mean_length'], '%.3f' % r['entropy'],
             '%.3f' % r['zero_share'], '%.3f' % r['below_0.01_share']]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


MEASURE_TITLES = {'softmax': 'softmax confidence',
                  'calibrated': 'temperature-scaled confidence',
                  'conformity': 'DkNN conformity credibility',
                  'conformal_credibility': 'DkNN conformal credibility',
                  'conformal_confidence': 'DkNN conformal confidence',
                  'graded_credibility': 'DkNN graded credibility',
                  'graded_conformal_credibility':
                      'DkNN graded conformal credibility'}


def plot_reduction(examples, measures=tuple(MEASURE_TITLES)[:5]):
    """Densities of each confidence measure on original and on reduced
    inputs, one panel per measure (the paper's robustness figure, after the
    authors' conf_figure.py)."""
    fig = figure(3.6 * len(measures), 3.4)
    axes = fig.subplots(1, len(measures), squeeze=False)[0]
    bins = numpy.linspace(0, 1, 21)
    for ax, m in zip(axes, measures):
        for side, colour in (('original', '#4c72b0'), ('reduced', '#dd5555')):
            values = [e[side][m] for e in examples]
            ax.hist(values, bins, density=True, histtype='step', lw=2,
                    color=colour, label='{} (mean {:.2f})'.format(
                        side, float(numpy.mean(values))))
        ax.set(xlim=(0, 1), xlabel=MEASURE_TITLES[m])
        ax.legend(loc='upper left', fontsize=8)
    axes[0].set_ylabel('density')
    fig.suptitle('original vs reduced inputs (n = {})'.format(len(examples)))
    fig.tight_layout()
    return fig


def _struck(tokens, removed):
    return ' '.join('<s class="gone">{}</s>'.format(html.escape(t))
                    if k in removed else html.escape(t)
                    for k, t in enumerate(tokens))


def reduction_page(title, payload, label_names):
    """Original and reduced inputs side by side, with each confidence."""
    name = lambda y: html.escape(label_names[y])  # NOQA
    rows = []
    for e in payload['examples']:
        removed = set(e['removed'])
        scores = '<br>'.join('{}: {:.2f} &rarr; {:.2f}'.format(
            html.escape(MEASURE_TITLES[m]), e['original'][m], e['reduced'][m])
            for m in MEASURE_TITLES)
        context = ''.join('<div class="nb">{}</div>'.format(html.escape(c))
                          for c in e['context'])
        rows.append('<tr><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td>'
                    '<td><b>{}</b></td><td class="nb">{}</td></tr>'.format(
                        e['index'], name(e['label']), name(e['prediction']),
                        context, _struck(e['original_tokens'], removed),
                        html.escape(' '.join(e['reduced_tokens'])) or
                        '<i>(nothing left)</i>', scores))
    return ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>{0}'
            '</title><style>{1} .gone {{ color: #bbb; }}</style></head><body>'
            '<h1>{0}</h1><p>Tokens removed while the prediction held are '
            'struck through (Feng et al. 2018, guided by {2}, beam {3}).</p>'
            '<table><tr><th>#</th><th>label</th><th>prediction</th><th>'
            'original</th><th>reduced</th><th>confidence: original &rarr; '
            'reduced</th></tr>{4}</table></body></html>\n').format(
                html.escape(title), PAGE_STYLE, html.escape(payload[
                    'reduce_by']), payload['beam'], '\n'.join(rows))


def reduction_table(summary):
    """Markdown: each measure's mean and share above 0.9, original and
    reduced, from :func:`reduction.summarise`."""
    lines = ['| measure | mean, original | mean, reduced | share > 0.9, '
             'original | share > 0.9, reduced |', '|---|---|---|---|---|']
    for m, title in MEASURE_TITLES.items():
        r = summary[m]
        lines.append('| {} | {:.3f} | {:.3f} | {:.1%} | {:.1%} |'.format(
            title, r['mean_original'], r['mean_reduced'],
            r['above_0.9_original'], r['above_0.9_reduced']))
    return '\n'.join(lines) + '\n\nMean length {:.2f} -> {:.2f} tokens; ' \
        'the DkNN changes its prediction on {:.1%} of reduced inputs.'.format(
            summary['mean_length_original'], summary['mean_length_reduced'],
            summary['dknn_changes'])


def plot_importance_histograms(atts_by_method, titles):
    """One histogram per method of its token importances (log counts), to
    see saturation: a spike at 0 is many tokens with no importance."""
    fig = figure(3.6 * len(atts_by_method), 3.2)
    axes = fig.subplots(1, len(atts_by_method), squeeze=False)[0]
    for ax, (m, atts) in zip(axes, atts_by_method.items()):
        values = numpy.concatenate([a.importance for a in atts])
        ax.hist(values, 60, color='#4c72b0', log=True)
        zero = float((numpy.abs(values) <= 1e-7).mean())
        ax.set_title('{}\n{:.0%} exactly 0'.format(titles[m], zero),
                     fontsize=9)
        ax.set_xlabel('importance')
    axes[0].set_ylabel('tokens (log scale)')
    fig.tight_layout()
    return fig


SCORE_TITLES = {'softmax': 'softmax max prob.',
                'scaled': 'temperature-scaled max prob.',
                'max_logit': 'max logit',
                'conformity': 'DkNN conformity credibility',
                'conformal': 'DkNN conformal credibility',
                'graded': 'DkNN graded credibility',
                'graded-conformal': 'DkNN graded conformal credibility',
                'knn_distance': 'k-th neighbour distance',
                'dknn': 'DkNN votes (conformal)',
                'dknn_graded': 'DkNN graded (conformal)',
                'softmax_lac': 'softmax, LAC', 'softmax_aps': 'softmax, APS'}
# drawn dashed: often on top of another score's curve
DASHED = {'scaled': '--', 'conformal': '--', 'graded-conformal': '--'}


def plot_conformal_sets(sets):
    """Coverage against 1 - eps, and mean set size, per score (from
    :func:`uncertainty.conformal_sets`)."""
    fig = figure(8, 3.6)
    cover, size = fig.subplots(1, 2)
    eps = numpy.array(sets['epsilons'])
    for name, by_eps in sets['table'].items():
        rows = [by_eps['{:g}'.format(e)] for e in eps]
        cover.plot(1 - eps, [r['coverage'] for r in rows], 'o-',
                   label=SCORE_TITLES[name])
        size.plot(1 - eps, [r['mean_size'] for r in rows], 'o-')
    lo = min(1 - eps.max(), min(r['coverage'] for t in sets['table'].values()
                                for r in t.values())) - 0.02
    cover.plot([lo, 1], [lo, 1], '--', color='gray', label='guarantee')
    cover.set(xlabel='target coverage 1 - eps', ylabel='empirical coverage',
              title='coverage{}'.format(' (Mondrian)' if sets['mondrian']
                                       else ''))
    size.set(xlabel='target coverage 1 - eps', ylabel='mean set size',
             title='set size')
    cover.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_roc(arrays):
    """ROC curves of telling the test set from each other data set, one
    panel per data set, one curve per trust score (from
    :func:`uncertainty.ood`)."""
    from sklearn.metrics import roc_curve
    names = [n for n in arrays if n != 'in']
    fig = figure(4 * len(names), 4)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        for score, s_in in arrays['in'].items():
            s_out = arrays[name][score]
            fpr, tpr, _ = roc_curve(numpy.r_[numpy.ones(len(s_in)),
                                             numpy.zeros(len(s_out))],
                                    numpy.r_[s_in, s_out])
            ax.plot(fpr, tpr, DASHED.get(score, '-'), label='{} ({:.3f})'
                    .format(SCORE_TITLES[score], metrics.auroc(s_in, s_out)))
        ax.plot([0, 1], [0, 1], ':', color='gray')
        ax.set(xlabel='false positive rate (out accepted)',
               title='in: test set, out: {}'.format(name))
        ax.legend(fontsize=7, loc='lower right', title='AUROC')
    axes[0].set_ylabel('true positive rate (in accepted)')
    fig.tight_layout()
    return fig


def plot_risk_coverage(curves, table):
    """Risk-coverage curves of every trust score (from
    :func:`uncertainty.selective`), AURC in the legend."""
    fig = figure(5.5, 4)
    ax = fig.subplots()
    for name, (cov, risk) in curves.items():
        ax.plot(cov, risk, DASHED.get(name, '-'), label='{} ({:.4f})'.format(
            SCORE_TITLES[name], table[name]['aurc']))
    ax.set(xlabel='coverage (share of inputs answered)',
           ylabel='risk (error rate among them)', xlim=(0, 1))
    ax.legend(fontsize=8, title='AURC')
    fig.tight_layout()
    return fig


# ------------------------------------------------------ training-set audit

def _fields_html(rec):
    """An audit record's text, escaped: the sentence, or premise above
    hypothesis."""
    if 'text' in rec:
        return html.escape(rec['text'])
    return 'premise: {}<br>hypothesis: {}'.format(
        html.escape(rec['premise']), html.escape(rec['hypothesis']))


def _votes_html(counts):
    return ', '.join('{} {}'.format(html.escape(n), c)
                     for n, c in counts.items())


def audit_page(title, records, note):
    """The most suspicious training examples, each with its nearest
    training examples (from :func:`toolkit.audit.page_records`).

    Args:
        records (list of dict): ``index``, ``source``, ``line``, the text
            fields, ``label``, ``suggested``, ``score``, ``counts`` and
            ``nearest`` (list of dicts: ``index``, text fields, ``label``,
            ``distance``).
        note (str): one sentence on the settings, shown as text.
    """
    rows = []
    for rank, r in enumerate(records, 1):
        where = '' if r['source'] is None else \
            '<div class="nb">{}:{}</div>'.format(html.escape(str(
                r['source'])), r['line'])
        nearest = '<br>'.join(
            '[{}] {} <span class="nb">(#{}, {} {:.3f})</span>'.format(
                html.escape(n['label']), _fields_html(n), n['index'],
                'distance' if 'distance' in n else 'relevance',
                n.get('distance', n.get('relevance'))) for n in r['nearest'])
        rows.append(
            '<tr><td>{}</td><td>{}{}</td><td>{}</td><td><b>{}</b></td>'
            '<td>{:.4f}<div class="nb">{}</div></td><td>{}'
            '<div class="nb">{}</div></td></tr>'.format(
                rank, r['index'], where, html.escape(r['label']),
                html.escape(r['suggested']), r['score'],
                _votes_html(r['counts']), _fields_html(r), nearest))
    return ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>{0}'
            '</title><style>{1}</style></head><body><h1>{0}</h1><p>{2}</p>'
            '<table><tr><th>rank</th><th>training example</th><th>label</th>'
            '<th>suggested</th><th>p-value (votes)</th><th>text, then its '
            'nearest training examples</th></tr>{3}</table></body></html>\n'
            ).format(html.escape(title), PAGE_STYLE, html.escape(note),
                     '\n'.join(rows))


def plot_audit_scores(p_values, differs, alpha):
    """Histogram of the training examples' p-values for their own labels,
    stacked by whether the neighbours suggest another label, with the
    threshold ``alpha`` marked.

    Args:
        p_values: (N,) scores; differs: (N,) bool.
    """
    p_values, differs = numpy.asarray(p_values), numpy.asarray(differs, bool)
    fig = figure(6.5, 4)
    ax = fig.subplots()
    ax.hist([p_values[~differs], p_values[differs]], numpy.linspace(0, 1, 41),
            stacked=True, color=['#4c72b0', '#dd5555'],
            label=['suggested label = given label ({})'.format(
                int((~differs).sum())), 'suggested label differs ({})'.format(
                    int(differs.sum()))])
    ax.axvline(alpha, ls='--', color='black', label='p = {:g}: {} below'
               .format(alpha, int((p_values < alpha).sum())))
    ax.set(xlim=(0, 1), xlabel='p-value of the given label (low: suspicious)',
           ylabel='training examples',
           title='training-set audit (n = {})'.format(len(p_values)))
    ax.legend(fontsize=8, title='key')
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ map

MAP_COLOURS = ('#1b9e77', '#7570b3', '#e7298a', '#66a61e', '#e6ab02',
               '#a6761d', '#666666', '#8c564b', '#17becf', '#d62728')


def map_caption(m):
    """What a map shows and how much of the layer it holds."""
    return ('{} of layer {}, fitted on the {} training examples ({} drawn; '
            'the {} neighbours ringed, the input a cross). The two axes '
            'hold {:.0%} and {:.0%} of the layer\'s variance: points close '
            'here may be far apart in the layer.'.format(
                m['method'], m['layer'], m['n_train'], len(m['points']),
                len(m['neighbours']), m['variance'][0], m['variance'][1]))


def map_svg(m, labels, width=560, height=400, pad=16):
    """The explorer's map as an SVG string (every text escaped)."""
    pts = m['points'] + [m['input']]
    xs, ys = [p['x'] for p in pts], [p['y'] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = lambda x: pad + (width - 2 * pad) * ((x - x0) / (x1 - x0)  # NOQA
                                              if x1 > x0 else 0.5)
    sy = lambda y: height - pad - (height - 2 * pad) * (  # NOQA
        (y - y0) / (y1 - y0) if y1 > y0 else 0.5)
    lit = set(m['neighbours'])
    colour = lambda n: MAP_COLOURS[labels.index(n) % len(MAP_COLOURS)]  # NOQA
    dots = []
    for p in sorted(m['points'], key=lambda p: p['index'] in lit):
        ring = p['index'] in lit
        dots.append('<circle cx="{:.1f}" cy="{:.1f}" r="{}" fill="{}" '
                    'fill-opacity="{}"{}><title>{}</title></circle>'.format(
                        sx(p['x']), sy(p['y']), 5 if ring else 2.5,
                        colour(p['label']), 1 if ring else 0.45,
                        ' stroke="black" stroke-width="1.5"' if ring else '',
                        html.escape('#{} [{}] {}'.format(
                            p['index'], p['label'], p['text']))))
    cx, cy = sx(m['input']['x']), sy(m['input']['y'])
    dots.append('<path d="M{0:.1f},{1:.1f}H{2:.1f}M{3:.1f},{4:.1f}V{5:.1f}" '
                'stroke="black" stroke-width="3"/>'.format(
                    cx - 7, cy, cx + 7, cx, cy - 7, cy + 7))
    legend = ' '.join('<span style="color:{}">&#9679;</span> {}'.format(
        colour(n), html.escape(n)) for n in labels)
    return ('<svg width="{}" height="{}" '
            'style="border:1px solid #ddd">{}</svg><p class="nb">{}</p>'
            '<p>{}</p>'.format(width, height, ''.join(dots),
                               html.escape(map_caption(m)), legend))


def plot_map(m, labels):
    """The explorer's map as a Figure."""
    fig = figure(6, 4.6)
    ax = fig.subplots()
    lit = set(m['neighbours'])
    for name in labels:
        colour = MAP_COLOURS[labels.index(name) % len(MAP_COLOURS)]
        for ring in (False, True):
            pts = [p for p in m['points'] if p['label'] == name and
                   (p['index'] in lit) == ring]
            if pts:
                ax.scatter([p['x'] for p in pts], [p['y'] for p in pts],
                           s=40 if ring else 6, c=colour,
                           alpha=1 if ring else 0.45,
                           edgecolors='black' if ring else 'none',
                           label=None if ring else name)
    ax.scatter([m['input']['x']], [m['input']['y']], marker='+', s=160,
               c='black', linewidths=3, label='the input')
    ax.legend(fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(map_caption(m), fontsize=7, wrap=True, parse_math=False)
    return fig
