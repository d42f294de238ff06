"""The explorer's page (Gradio): prediction, saliency and neighbours side by
side, settings, input reduction and the audit on demand, a browser over the
test set, and export.

Every button calls a method of :class:`toolkit.explore.Explorer` through
:func:`toolkit.explore.answer`, the same call the JSON API makes, and only
formats its dict here (every text HTML-escaped). Gradio is imported with
its analytics off and the page loads nothing from the internet: the
default theme's fonts are bundled, and the footer's links are left out.
"""
import html
import json
import os
import tempfile

from toolkit import render
from toolkit.explore import METHODS, ORDERS, answer

OFFLINE = {'GRADIO_ANALYTICS_ENABLED': 'False', 'HF_HUB_OFFLINE': '1',
           'HF_HUB_DISABLE_TELEMETRY': '1', 'GRADIO_RUN_HISTORY': 'False'}
NEGATIVE, POSITIVE = '128, 90, 213', '239, 68, 60'   # Gradio's score colours
CSS = """
.err { color: #b00020; font-weight: 600; }
.nb { color: #666; font-size: 85%; }
.nbs { max-height: 32em; overflow-y: auto; }
.nbs table, .pred table { border-collapse: collapse; width: 100%;
    font-size: 90%; }
.nbs td, .nbs th, .pred td, .pred th { border-bottom: 1px solid #ddd;
    padding: 3px 6px; text-align: left; vertical-align: top; }
.key { height: 12px; border-radius: 3px; background: linear-gradient(to right,
    rgb(128, 90, 213), white, rgb(239, 68, 60)); }
.keylabels { display: flex; justify-content: space-between;
    font-size: 85%; }
"""


def gradio():
    """Gradio, imported with its analytics and hub calls off."""
    os.environ.update(OFFLINE)
    import gradio as gr
    return gr


def mount(app, explorer):
    """``app`` with the page at ``/``."""
    gr = gradio()
    return gr.mount_gradio_app(
        app, build(explorer), path='/', footer_links=[], run_history=False,
        ssr_mode=False, mcp_server=False, show_error=True, css=CSS,
        theme=gr.themes.Default())


# ------------------------------------------------------------- formatting

def esc(value):
    return html.escape(str(value))


def error_html(message):
    return '<p class="err" id="error-message">{}</p>'.format(esc(message))


def prediction_html(p):
    """The prediction, every confidence, p-values and the conformal set."""
    c, probs = p['confidence'], p['probabilities']
    head = ('<p>Prediction: <b id="predicted-label">{}</b> &middot; DkNN '
            'prediction: <b>{}</b></p><table><tr><th>softmax confidence</th>'
            '<td>{:.3f}</td></tr><tr><th>temperature-scaled confidence</th>'
            '<td>{:.3f}</td></tr><tr><th>DkNN credibility</th><td>{:.3f}'
            '</td></tr><tr><th>DkNN confidence</th><td>{:.3f}</td></tr>'
            '<tr><th>prediction set, &epsilon; = {:g}</th><td><b>{{{}}}</b>'
            '</td></tr></table>').format(
                esc(p['prediction']), esc(p['dknn_prediction']),
                c['softmax'], c['temperature_scaled'], c['dknn_credibility'],
                c['dknn_confidence'], p['settings']['epsilon'],
                esc(', '.join(p['prediction_set'])))
    rows = ''.join(
        '<tr><td>{}</td><td>{:.3f}</td><td>{:.3f}</td><td>{:.3f}</td>'
        '<td>{:.3f}</td><td>{}</td></tr>'.format(
            esc(n), probs['softmax'][n], probs['temperature_scaled'][n],
            probs['dknn_conformity'][n], probs['p_value'][n],
            'yes' if n in p['prediction_set'] else '')
        for n in p['labels'])
    return ('<div class="pred">{}<p></p><table><tr><th>label</th><th>softmax'
            '</th><th>scaled</th><th>votes</th><th>p</th><th>in set</th></tr>'
            '{}</table><p class="nb">votes: share of the k neighbours; p: '
            'conformal p-value; {:.0f} ms</p></div>').format(
                head, rows, 1000 * p['seconds'])


def highlighted(tokens, importance, char_based):
    """HighlightedText value: (token, score in [-1, 1]) with spaces
    between words; scores divided by the largest absolute importance."""
    top = max([abs(v) for v in importance] + [0.0])
    out = []
    for j, (t, v) in enumerate(zip(tokens, importance)):
        if j and not char_based:
            out.append((' ', None))
        out.append((t, v / top if top else 0.0))
    return out


def saliency_label(payload, method):
    m = payload['methods'][method]
    top = max([abs(v) for v in payload['importance'][method]] + [0.0])
    scale = '1 = {:.3g}'.format(top) if top else 'every importance is 0'
    return '{} (explains {}; {})'.format(m['title'], m['label'], scale)


KEY_HTML = ('<div class="key"></div><div class="keylabels"><span>-1: spoke '
            'most against the explained label</span><span>0</span><span>+1: '
            'supported it most</span></div><p class="nb">One scale for every '
            'method: each importance divided by the method\'s largest '
            'absolute importance on this input ("1 = ..."); the raw numbers '
            'are in the JSON API.</p>')


def counts_text(counts):
    return ' &middot; '.join('{} {}'.format(esc(n), c)
                             for n, c in counts.items())


def neighbours_html(p):
    """Per chosen layer: label counts among the k, then the neighbours."""
    parts = ['<div class="nbs" id="neighbours-list"><p>All chosen layers: '
             '{}</p>'.format(counts_text(p['neighbour_counts']
                                         ['all layers']))]
    for layer, rows in p['neighbours'].items():
        parts.append('<h4>layer {} &middot; {}</h4><table><tr><th>#</th>'
                     '<th>label</th><th>distance</th><th>text</th></tr>'
                     .format(esc(layer),
                             counts_text(p['neighbour_counts'][layer])))
        parts.extend('<tr class="neighbour"><td>{}</td><td>{}</td><td>{:.3f}'
                     '</td><td>{}</td></tr>'.format(
                         r['index'], esc(r['label']), r['distance'],
                         esc(r['text'])) for r in rows)
        parts.append('</table>')
    return ''.join(parts) + '</div>'


def reduction_html(r):
    """Reduced text and every confidence before and after."""
    removed = set(r['removed'])
    struck = ' '.join('<s>{}</s>'.format(esc(t)) if j in removed else esc(t)
                      for j, t in enumerate(r['tokens']))
    rows = ''.join('<tr><td>{}</td><td>{:.3f}</td><td>{:.3f}</td></tr>'
                   .format(esc(title), r['original'][m], r['reduced'][m])
                   for m, title in render.MEASURE_TITLES.items())
    return ('<div class="pred"><p>Reduced by {} (beam {}), prediction {} '
            'kept: <b id="reduced-text">{}</b></p><p>{}</p><table><tr><th>'
            'measure</th><th>original</th><th>reduced</th></tr>{}<tr><td>'
            'DkNN prediction</td><td>{}</td><td>{}</td></tr></table></div>'
            ).format(esc(r['reduce_by']), r['beam'], esc(r['prediction']),
                     esc(r['reduced_text']) or '<i>(unchanged)</i>', struck,
                     rows, esc(r['original']['dknn_pred']),
                     esc(r['reduced']['dknn_pred']))


def audit_html(audit, payload):
    """The audit entries of the neighbours, or why there are none."""
    if not audit['available']:
        return '<p>Audit: {}</p>'.format(esc(audit['message']))
    rows, seen = [], set()
    for layer, nbs in payload['neighbours'].items():
        for n in nbs:
            if n['index'] in seen:
                continue
            seen.add(n['index'])
            entry = audit['entries'].get(str(n['index']))
            rows.append('<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}'
                        '</code></td></tr>'.format(
                            n['index'], esc(n['label']), esc(n['text']),
                            esc(json.dumps(entry)[:400]) if entry is not None
                            else 'no entry'))
    return ('<div class="nbs"><p>{}</p><table><tr><th>#</th><th>label</th>'
            '<th>text</th><th>audit entry</th></tr>{}</table></div>').format(
                esc(audit['message']), ''.join(rows))


# --------------------------------------------------------------- handlers

class Handlers:
    """What the page's events do: call the explorer, format its answer.

    Args:
        explorer (toolkit.explore.Explorer): the loaded run.
        folder (str): where exported files are written.
    """

    def __init__(self, explorer, folder):
        self.explorer, self.folder = explorer, folder
        self.char_based = explorer.run.setup['char_based']
        self.n_texts = 2 if explorer.run.pair else 1

    def show(self, *args):
        """texts..., k, layers, epsilon -> error, prediction, one
        saliency per method, neighbours, payload."""
        texts, (k, layers, eps) = self._split(args)
        status, p = answer(lambda: self.explorer.explain(
            texts, k=int(k) if k else None, layers=list(layers or ()),
            epsilon=float(eps)))
        if status != 200:
            return ((error_html(p['error']), '') +
                    (None,) * len(METHODS) + ('', None))
        return (('', prediction_html(p)) + tuple(
            self._saliency(p, m) for m in METHODS) +
            (neighbours_html(p), p))

    def _split(self, args):
        """Event inputs -> (the texts, None read as '') and the rest."""
        return (tuple(t or '' for t in args[:self.n_texts]),
                args[self.n_texts:])

    def refresh(self, *args):
        """A settings change: explain again when there is an input."""
        if not any(str(t or '').strip() for t in args[:self.n_texts]):
            gr = gradio()
            return tuple(gr.skip() for _ in range(len(METHODS) + 4))
        return self.show(*args)

    def _saliency(self, p, method):
        gr = gradio()
        return gr.HighlightedText(
            value=highlighted(p['tokens'], p['importance'][method],
                              self.char_based),
            label=saliency_label(p, method))

    def examples(self, order, limit):
        """The browser's rows and the examples behind them."""
        status, r = answer(lambda: self.explorer.examples(
            order, int(limit or 20)))
        if status != 200:
            return error_html(r['error']), [], []
        rows = [[e['index'], e['label'], e['prediction'],
                 round(e['dknn_credibility'], 3), round(e['softmax'], 3),
                 e['text']] for e in r['examples']]
        return '', rows, r['examples']

    def pick(self, shown, evt):
        """A clicked row -> its texts and test index."""
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) \
            else evt.index
        e = shown[row]
        return tuple(e['texts']) + (e['index'],)

    def reduce(self, *args):
        texts, (k, layers) = self._split(args)
        status, r = answer(lambda: self.explorer.reduce(
            texts, k=int(k) if k else None, layers=list(layers or ())))
        return error_html(r['error']) if status != 200 else reduction_html(r)

    def audit(self, payload):
        if not payload:
            return error_html('explain an input first')
        indices = sorted({n['index'] for nbs in payload['neighbours']
                          .values() for n in nbs})
        return audit_html(self.explorer.audit(indices), payload)

    def export(self, payload, index, fmt):
        """The current view as a file: its path, for a download."""
        if not payload:
            return None
        data = self.explorer.export(payload, index, fmt)
        folder = tempfile.mkdtemp(dir=self.folder)
        path = os.path.join(folder, 'explorer.' + fmt)
        with open(path, 'w' if fmt == 'html' else 'wb') as f:
            f.write(data)
        return path


# ------------------------------------------------------------------ layout

def build(explorer, folder=None):
    """The page as a ``gradio.Blocks``."""
    gr = gradio()
    h = Handlers(explorer, folder or tempfile.mkdtemp(prefix='explore-'))
    info = explorer.describe()
    with gr.Blocks(title='DkNN explorer', fill_width=True) as page:
        gr.Markdown(header_markdown(info))
        ui = _inputs(gr, info)
        ui.update(_results(gr))
        ui.update(_on_demand(gr))
        ui.update(_browser(gr, info))
        ui.update(_export(gr))
        _wire(gr, h, ui)
    return page


def header_markdown(info):
    return ('# DkNN explorer: {} {}\nLabels: {}. Temperature T = {:.3f} '
            '({}). Inputs up to {} tokens{}.'.format(
                info['dataset'], info['model'], ', '.join(info['labels']),
                info['temperature'], info['temperature_from'],
                info['max_tokens'], '; the {} is explained'.format(
                    info['field']) if info['pair'] else ''))


def _inputs(gr, info):
    ui = {}
    names = ('premise', 'hypothesis') if info['pair'] else ('text',)
    with gr.Row(equal_height=True):
        ui['texts'] = [gr.Textbox(label=n, lines=2, elem_id='input-' + n,
                                  placeholder='type a sentence', scale=4)
                       for n in names]
        ui['go'] = gr.Button('Explain', variant='primary', scale=1,
                             elem_id='explain-button')
    with gr.Accordion('Settings (applied at once)', open=True):
        with gr.Row():
            ui['k'] = gr.Number(value=info['k'], precision=0, minimum=1,
                                label='k (neighbours per layer)', scale=1)
            ui['layers'] = gr.CheckboxGroup(
                info['layers'], value=info['default_layers'], scale=2,
                label='layers')
            ui['eps'] = gr.Slider(0.01, 0.5, value=info['epsilon'],
                                  step=0.01, scale=2, label='epsilon of the '
                                  'prediction set')
    ui['error'] = gr.HTML(elem_id='error')
    return ui


def _results(gr):
    ui = {}
    with gr.Row():
        with gr.Column(scale=2):
            gr.Markdown('### Prediction')
            ui['prediction'] = gr.HTML(elem_id='prediction')
        with gr.Column(scale=3):
            gr.Markdown('### Saliency')
            ui['saliency'] = [gr.HighlightedText(
                label=m, combine_adjacent=False, show_legend=False,
                elem_id='saliency-' + m) for m in METHODS]
            gr.HTML(KEY_HTML, elem_id='colour-key')
        with gr.Column(scale=3):
            gr.Markdown('### Nearest training examples')
            ui['neighbours'] = gr.HTML(elem_id='neighbours')
    ui['payload'] = gr.State(None)
    ui['index'] = gr.State(None)
    return ui


def _on_demand(gr):
    ui = {}
    with gr.Accordion('On demand', open=False):
        with gr.Row():
            ui['reduce'] = gr.Button('Input reduction of this input')
            ui['audit'] = gr.Button('Audit entries of the neighbours')
        ui['reduced'] = gr.HTML(elem_id='reduction')
        ui['audited'] = gr.HTML(elem_id='audit')
    return ui


def _browser(gr, info):
    ui = {}
    with gr.Accordion('Test set ({} examples): click one to load it'.format(
            info['n_test']), open=False):
        with gr.Row():
            ui['order'] = gr.Dropdown(list(ORDERS), value='errors',
                                      label='order')
            ui['limit'] = gr.Number(value=min(20, info['n_test']),
                                    precision=0, minimum=1,
                                    maximum=info['n_test'], label='rows')
            ui['list'] = gr.Button('List')
        ui['table'] = gr.Dataframe(
            headers=['#', 'label', 'prediction', 'DkNN credibility',
                     'softmax', 'text'], interactive=False, wrap=True,
            elem_id='examples')
        ui['shown'] = gr.State([])
    return ui


def _export(gr):
    ui = {}
    with gr.Row():
        ui['html'] = gr.Button('Export HTML')
        ui['png'] = gr.Button('Export PNG')
        ui['file'] = gr.File(label='exported view', elem_id='export-file')
    return ui


def _wire(gr, h, ui):
    """Connect the events."""
    settings = [ui['k'], ui['layers'], ui['eps']]
    shown = [ui['error'], ui['prediction']] + ui['saliency'] + \
        [ui['neighbours'], ui['payload']]
    explain = dict(fn=h.show, inputs=ui['texts'] + settings, outputs=shown)
    ui['go'].click(**explain)
    for box in ui['texts']:
        box.submit(**explain)
        box.input(lambda: None, outputs=ui['index'])   # typed: no gold label
    refresh = dict(explain, fn=h.refresh)
    ui['k'].submit(**refresh)
    ui['layers'].input(**refresh)
    ui['eps'].release(**refresh)
    ui['list'].click(h.examples, [ui['order'], ui['limit']],
                     [ui['error'], ui['table'], ui['shown']])

    def pick(shown_rows, evt: gr.SelectData):
        return h.pick(shown_rows, evt)
    ui['table'].select(pick, ui['shown'], ui['texts'] + [ui['index']]).then(
        **explain)
    ui['reduce'].click(h.reduce, ui['texts'] + settings[:2], ui['reduced'])
    ui['audit'].click(h.audit, ui['payload'], ui['audited'])
    for fmt in ('html', 'png'):
        ui[fmt].click(lambda p, i, f=fmt: h.export(p, i, f),
                      [ui['payload'], ui['index']], ui['file'])
