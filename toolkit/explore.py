"""The explorer's answers, as JSON-ready dicts: one input's prediction,
saliency and neighbours (:meth:`Explorer.explain`), the test-set browser
(:meth:`Explorer.examples`), input reduction (:meth:`Explorer.reduce`) and
the training-set audit of neighbours (:meth:`Explorer.audit`).

``explore.py``'s page (:mod:`toolkit.explore_page`) and its JSON API
(:mod:`toolkit.explore_api`) both call these methods and compute nothing
themselves, so the two cannot disagree.

Everything heavy happens once, when the :class:`Explorer` is made: the
model, the training activations and their index, the calibration scores
and the temperature. A DkNN head is built for each (k, layers) a request
asks for and kept (the :data:`MAX_HEADS` most recent). One lock serialises
every Chainer call and every cache update, so concurrent requests are safe.
"""
import collections
import logging
import os
import threading
import time

import numpy

import dknn
# the attribution methods' registry and Explainer: the explorer's importances
# must be interpretations.py's own, so it calls them rather than a copy
import interpretations
import nlp_utils
from errors import UserError
from toolkit import conformal
from toolkit import explore_export
from toolkit import metrics
from toolkit import reduction
from toolkit import safeio

MAX_TOKENS = 512          # default cap on an input's tokens
CHARS_PER_TOKEN = 64      # texts longer than this many characters a token
MAX_HEADS = 8             # DkNN heads kept, one per (k, layers)
ORDERS = ('errors', 'credibility', 'index')
AUDIT_FILE = 'train_audit.json'
AUDIT_MAX_BYTES = 64 * 1024 ** 2
METHODS = tuple(interpretations.INTERPRETERS)
log = logging.getLogger('explore')


class ExploreError(UserError):
    """A request the explorer refuses; ``status`` is the HTTP status to
    answer it with (400, or 413 for an input over the token cap)."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def answer(call):
    """Run ``call()`` -> (HTTP status, body): 200 and its result, or the
    refusal as ``{"error": message}``; the page and the API both answer
    through here, so they show the same messages."""
    try:
        return 200, call()
    except ExploreError as e:
        return e.status, {'error': str(e)}
    except UserError as e:
        return 400, {'error': str(e)}
    except Exception:   # a bug: the log gets the traceback, never the client
        log.exception('explorer request failed')
        return 500, {'error': 'internal error; the server log has details'}


def text_of(fields, char_based):
    """Token lists -> one display string (sides of a pair joined by /)."""
    glue = '' if char_based else ' '
    return ' / '.join(glue.join(f) for f in fields)


class Explorer:
    """A trained run, loaded once, answering the explorer's requests.

    Args:
        run (toolkit.runs.Run): the trained run (with a calibration set).
        settings (dknn.Settings): the default DkNN (k, layers, backend, ...).
        field (str): for a pair model, the side whose tokens are explained.
        max_tokens (int): inputs with more tokens (all sides) are refused.
        epsilon (float): default significance of the prediction set.
    """

    def __init__(self, run, settings=dknn.Settings(), *, field='hypothesis',
                 max_tokens=MAX_TOKENS, epsilon=0.1):
        dknn.require_calibration(len(run.examples('calib')))
        self.run, self.field, self.max_tokens = run, field, max_tokens
        self.settings = settings.replace(scoring='conformity')
        self.epsilon = check_epsilon(epsilon)
        self.lock = threading.RLock()
        self.temperature = run.temperature_or_fit()   # (T, where from)
        self._heads = collections.OrderedDict()
        self._tables = {}
        with self.lock:   # index, calibration and test table now
            self._test_table(self.settings_for())
        self._explain(run.splits.test[0][0], run.splits.raw['test'][0][0],
                      self.settings_for(), self.epsilon)   # warm up

    @property
    def label_names(self):
        return self.run.label_names

    @property
    def layer_names(self):
        return list(self.run.model.layer_names)

    def describe(self):
        """The run and defaults, for the page's header and the API."""
        s = self.run.setup
        return {'dataset': s['dataset'], 'model': s['model'],
                'char_based': s['char_based'], 'pair': self.run.pair,
                'labels': self.label_names, 'layers': self.layer_names,
                'field': self.field if self.run.pair else None,
                'k': self.settings.k,
                'default_layers': dknn.resolve_layers(
                    self.layer_names, self.settings.layers),
                'epsilon': self.epsilon, 'max_tokens': self.max_tokens,
                'temperature': self.temperature[0],
                'temperature_from': self.temperature[1],
                'n_test': len(self.run.examples('test'))}

    # ------------------------------------------------------------ settings

    def settings_for(self, k=None, layers=None):
        """The default settings with ``k`` and ``layers`` changed (checked;
        ``layers`` as :func:`dknn.resolve_layers` takes it)."""
        changes = {}
        if k is not None:
            n_train = len(self.run.examples('train'))
            if not 1 <= k <= n_train:
                raise ExploreError('k must be between 1 and {} (the training '
                                   'examples), got {}'.format(n_train, k))
            changes['k'] = k
        if layers is not None:
            changes['layers'] = tuple(dknn.resolve_layers(self.layer_names,
                                                          layers))
        else:
            changes['layers'] = tuple(dknn.resolve_layers(
                self.layer_names, self.settings.layers))
        return self.settings.replace(**changes)

    def explainer(self, settings):
        """The :class:`interpretations.Explainer` of ``settings``, its DkNN
        head built and calibrated (cached; call under :attr:`lock`)."""
        if settings in self._heads:
            self._heads.move_to_end(settings)
            return self._heads[settings]
        ex = interpretations.Explainer(self.run.model, self.run,
                                       settings=settings, field=self.field)
        ex.temperature = self.temperature   # looked up once, at start
        ex.head   # build the index and calibrate now
        self._heads[settings] = ex
        while len(self._heads) > MAX_HEADS:
            dropped, _ = self._heads.popitem(last=False)
            self._tables.pop(dropped, None)
        return ex

    # --------------------------------------------------------------- input

    def encode(self, texts):
        """The model input of raw texts, checked.

        Args:
            texts (tuple of str): ``(text,)``, or ``(premise, hypothesis)``
                for a pair model.

        Returns:
            tuple: the model input (an (L,) id array, or a pair of them)
            and the token lists of each side.
        """
        names = ('premise', 'hypothesis') if self.run.pair else ('text',)
        if len(texts) != len(names):
            raise ExploreError('this model reads {}; got {} text(s)'.format(
                ' and '.join(names), len(texts)))
        limit = self.max_tokens * CHARS_PER_TOKEN
        if any(len(t) > limit for t in texts):
            raise ExploreError(self._too_long('over {} characters'.format(
                limit)), 413)
        char_based = self.run.setup['char_based']
        fields = tuple(nlp_utils.split_text(nlp_utils.normalize_text(t),
                                            char_based) for t in texts)
        empty = [n for n, f in zip(names, fields) if not f]
        if empty:
            raise ExploreError('the {} is empty: type some text'.format(
                ' and the '.join(empty)))
        n = sum(len(f) for f in fields)
        if n > self.max_tokens:
            raise ExploreError(self._too_long('{} tokens'.format(n)), 413)
        x, _ = nlp_utils.to_example(fields, 0, self.run.vocab)
        return x, fields

    def _too_long(self, what):
        return 'the input is too long ({}); the limit is {} tokens (the ' \
            'server\'s --max-tokens)'.format(what, self.max_tokens)

    # ------------------------------------------------------------- explain

    def explain(self, texts, k=None, layers=None, epsilon=None):
        """Prediction, every confidence, the conformal set, each method's
        importances and the neighbours of one input: the payload of the
        page and of ``GET /api/explain``.

        Args:
            texts (tuple of str): see :meth:`encode`.
            k (int), layers (str or list): the DkNN (default: the server's).
            epsilon (float): significance of the prediction set, in (0, 1).

        Returns:
            dict: ``tokens``, ``prediction``, ``labels``, ``confidence``,
            ``importance`` (method -> one number per token),
            ``neighbours`` (layer -> list of {index, text, label,
            distance}), ``prediction_set`` and the extras documented in
            docs/explore.md.
        """
        eps = self.epsilon if epsilon is None else check_epsilon(epsilon)
        settings = self.settings_for(k, layers)
        x, fields = self.encode(texts)
        return self._explain(x, fields, settings, eps)

    def _explain(self, x, fields, settings, eps):
        """:meth:`explain` of model input ``x`` (token lists ``fields``)."""
        start = time.perf_counter()
        with self.lock:
            ex = self.explainer(settings)
            out = self._scores(ex, x, eps)
            atts = {m: interpretations.explain(ex, [x], m)[0]
                    for m in METHODS}
        out.update(self._tokens(fields), importance={
            m: a.importance.tolist() for m, a in atts.items()}, methods={
            m: {'title': interpretations.INTERPRETERS[m].title,
                'label': self.label_names[a.prediction], 'score': a.score}
            for m, a in atts.items()})
        out['settings'] = {'k': settings.k, 'layers': list(settings.layers),
                           'epsilon': eps}
        out['seconds'] = time.perf_counter() - start
        return out

    def _tokens(self, fields):
        explained = nlp_utils.explained_parts(self.run.pair, self.field)
        tokens = [t for p in explained for t in fields[p]]
        return {'tokens': tokens, 'parts': [list(f) for f in fields],
                'explained': list(explained),
                'unknown': [t not in self.run.vocab for t in tokens]}

    def _scores(self, ex, x, eps):
        """Prediction, confidences, p-values, set and neighbours of x."""
        names = self.label_names
        logits, layers = ex.forward([x])                        # (1, C)
        probs = metrics.softmax(logits)[0]
        scaled = ex.scaled.probs(logits)[0]
        head = ex.head
        vote = head.predict_activations(layers)                 # conformity
        papernot = head.with_scoring('conformal').predict_activations(layers)
        p = conformal.p_values(conformal.dknn_nonconformity(
            vote.counts, head.n_votes), head.calib_nonconformity)[0]
        pred = int(probs.argmax())
        return {
            'prediction': names[pred], 'labels': names,
            'dknn_prediction': names[int(papernot.pred[0])],
            'confidence': {
                'softmax': float(probs[pred]),
                'temperature_scaled': float(scaled[pred]),
                'dknn_credibility': float(papernot.credibility[0]),
                'dknn_confidence': float(papernot.confidence[0]),
                'dknn_conformity': float(vote.credibility[0])},
            'probabilities': {
                'softmax': _by_name(names, probs),
                'temperature_scaled': _by_name(names, scaled),
                'dknn_conformity': _by_name(names, vote.scores[0]),
                'p_value': _by_name(names, p)},
            'prediction_set': [n for n, keep in zip(
                names, conformal.prediction_sets(p, eps)) if keep],
            'neighbours': self._neighbours(vote.neighbours),
            'neighbour_counts': {
                'all layers': _by_name(names, vote.counts[0], int),
                **{layer: _by_name(names, numpy.bincount(
                    nb.labels[0], minlength=len(names)), int)
                   for layer, nb in vote.neighbours.items()}}}

    def _neighbours(self, found):
        raw = self.run.splits.raw['train']
        char_based = self.run.setup['char_based']
        return {layer: [{'index': int(j),
                         'text': text_of(raw[j][0], char_based),
                         'label': self.label_names[raw[j][1]],
                         'distance': float(d)}
                        for j, d in zip(nb.indices[0], nb.distances[0])]
                for layer, nb in found.items()}

    # ------------------------------------------------------------ test set

    def examples(self, order='errors', limit=20, k=None, layers=None):
        """Test examples for the browser.

        Args:
            order (str): ``errors`` (the model's errors first, each group
                lowest DkNN credibility first), ``credibility`` (lowest
                first) or ``index``.
            limit (int): at most this many, from 1.

        Returns:
            dict: ``order``, ``total`` and ``examples``: each with
            ``index``, ``texts`` (one per side), ``text``, ``label``,
            ``prediction``, ``correct``, ``softmax`` and
            ``dknn_credibility``.
        """
        if order not in ORDERS:
            raise ExploreError('order must be one of {}, got {!r}'.format(
                ', '.join(ORDERS), order))
        if limit < 1:
            raise ExploreError('limit must be at least 1, got {}'.format(
                limit))
        settings = self.settings_for(k, layers)
        with self.lock:
            table = self._test_table(settings)
        rows = _ordered(table, order)[:limit]
        raw = self.run.splits.raw['test']
        names, char_based = self.label_names, self.run.setup['char_based']
        return {'order': order, 'total': len(raw), 'examples': [{
            'index': int(i),
            'texts': [text_of([f], char_based) for f in raw[i][0]],
            'text': text_of(raw[i][0], char_based),
            'label': names[raw[i][1]],
            'prediction': names[table['pred'][i]],
            'correct': bool(table['pred'][i] == raw[i][1]),
            'softmax': float(table['softmax'][i]),
            'dknn_credibility': float(table['credibility'][i])}
            for i in rows]}

    def _test_table(self, settings):
        """(N,) softmax prediction and confidence, DkNN credibility and
        gold labels of the test set (cached per settings)."""
        if settings not in self._tables:
            acts = self.run.forward('test', settings.batchsize)
            head = self.explainer(settings).head.with_scoring('conformal')
            probs = metrics.softmax(acts.logits)
            self._tables[settings] = {
                'pred': probs.argmax(axis=1), 'softmax': probs.max(axis=1),
                'credibility': head.predict_activations(acts).credibility,
                'label': numpy.asarray(acts.labels)}
        return self._tables[settings]

    # ----------------------------------------------------------- on demand

    def reduce(self, texts, k=None, layers=None, method='grad', beam=5):
        """Input reduction of one input (Feng et al. 2018; see
        :mod:`toolkit.reduction`), and every confidence before and after.

        Returns:
            dict: ``tokens``, ``removed`` (positions), ``reduced_tokens``,
            ``reduced_text``, ``prediction``, ``reduce_by``, ``beam``,
            ``original`` and ``reduced`` (measure -> value; ``dknn_pred``
            as a label name).
        """
        if method not in METHODS:
            raise ExploreError('method must be one of {}, got {!r}'.format(
                ', '.join(METHODS), method))
        if not 1 <= beam <= 20:
            raise ExploreError('beam must be between 1 and 20')
        settings = self.settings_for(k, layers)
        x, fields = self.encode(texts)
        with self.lock:
            ex = self.explainer(settings)
            red = reduction.reduce(ex, [x], method, beam)[0]
            before = reduction.measures(ex, [x])
            after = reduction.measures(ex, [red.reduced])
        tokens = self._tokens(fields)['tokens']
        kept = [t for j, t in enumerate(tokens) if j not in red.removed]
        glue = '' if self.run.setup['char_based'] else ' '
        return {'tokens': tokens, 'removed': list(red.removed),
                'reduced_tokens': kept, 'reduced_text': glue.join(kept),
                'prediction': self.label_names[red.prediction],
                'reduce_by': method, 'beam': beam,
                'original': self._measures(before),
                'reduced': self._measures(after)}

    def _measures(self, values):
        out = {m: float(values[m][0]) for m in reduction.MEASURES}
        out['dknn_pred'] = self.label_names[int(values['dknn_pred'][0])]
        return out

    def audit(self, indices):
        """The entries of ``train_audit.json`` (in the run folder, written by
        the audit command) for training examples ``indices``.

        Returns:
            dict: ``available`` (bool), ``message`` and, when available,
            ``entries`` (str(index) -> the file's entry, or None).
        """
        try:
            path = safeio.inside(self.run.folder, AUDIT_FILE, 'audit')
        except UserError as e:
            return {'available': False, 'message': str(e)}
        if not os.path.lexists(path):
            return {'available': False, 'message': 'no {} in the run folder '
                    '(the training-set audit has not been run)'.format(
                        AUDIT_FILE)}
        try:
            entries = audit_entries(read_audit(path))
        except UserError as e:
            return {'available': False, 'message': str(e)}
        return {'available': True, 'message': '{}: {} entries'.format(
            AUDIT_FILE, len(entries)), 'entries': {
            str(int(i)): entries.get(int(i)) for i in indices}}

    def export(self, payload, index=None, fmt='html'):
        """An explain payload as the exported HTML page (str) or PNG
        (bytes), drawn by the renderers of interpretations.py.

        Args:
            index (int): the test example the payload explains (its gold
                label is shown); None for typed text.
            fmt (str): ``html`` or ``png``.
        """
        label = None
        if index is not None:
            n = len(self.run.examples('test'))
            if not 0 <= index < n:
                raise ExploreError('index must be in 0..{}'.format(n - 1))
            label = self.run.splits.raw['test'][index][1]
        where = index if index is not None else 'input'
        s = self.run.setup
        with self.lock:   # one matplotlib figure at a time
            if fmt == 'png':
                return explore_export.png_of(payload, self.run.pair, where,
                                             label)
            return explore_export.html_of(
                payload, '{} {}'.format(s['dataset'], s['model']),
                self.run.pair, self.field, where, label)


def read_audit(path):
    """``train_audit.json``'s content: a regular file of bounded size."""
    if not os.path.isfile(path):
        raise UserError('{} is not a regular file; ignored'.format(
            AUDIT_FILE))
    if os.path.getsize(path) > AUDIT_MAX_BYTES:
        raise UserError('{} is larger than {} MiB; ignored'.format(
            AUDIT_FILE, AUDIT_MAX_BYTES >> 20))
    return safeio.read_json(path, 'run the audit again')


def audit_entries(data):
    """Training index -> entry, from the forms ``train_audit.json`` may take:
    a list of objects with an integer ``index`` (or ``train_index``), such a
    list under ``entries``, ``examples``, ``records`` or ``issues``, or an
    object keyed by the index."""
    if isinstance(data, dict):
        for key in ('entries', 'examples', 'records', 'issues'):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            if data and all(k.isdigit() for k in data):
                return {int(k): v for k, v in data.items()}
    if isinstance(data, list):
        out = {}
        for e in data:
            i = e.get('index', e.get('train_index')) \
                if isinstance(e, dict) else None
            if isinstance(i, int) and not isinstance(i, bool):
                out[i] = e
        if out or not data:
            return out
    raise UserError('{}: a format this explorer does not know (expected a '
                    'list of entries with an "index")'.format(AUDIT_FILE))


def check_epsilon(epsilon):
    """ε of a prediction set, strictly between 0 and 1."""
    if not (isinstance(epsilon, (int, float)) and 0 < epsilon < 1):
        raise ExploreError('epsilon must lie strictly between 0 and 1, got '
                           '{!r}'.format(epsilon))
    return float(epsilon)


def _by_name(names, values, cast=float):
    return {n: cast(v) for n, v in zip(names, values)}


def _ordered(table, order):
    """Test indices in the browser's ``order``."""
    n = len(table['label'])
    if order == 'index':
        return numpy.arange(n)
    by_cred = numpy.argsort(table['credibility'], kind='stable')
    if order == 'credibility':
        return by_cred
    wrong = table['pred'][by_cred] != table['label'][by_cred]
    return numpy.concatenate([by_cred[wrong], by_cred[~wrong]])
