"""The explorer's answers, as JSON-ready dicts: one input's prediction,
saliency and neighbours (:meth:`Explorer.explain`), where it sits among the
training examples (:meth:`Explorer.map`), the test-set browser
(:meth:`Explorer.examples`), input reduction (:meth:`Explorer.reduce`) and
the training-set audit of neighbours (:meth:`Explorer.audit`).

``explore.py``'s page and JSON API (:mod:`toolkit.explore_api`) both call
these methods and compute nothing themselves, so the two cannot disagree.

Everything heavy happens once, when the :class:`Explorer` is made: the
model, the training activations and their index, the calibration scores
and the temperature. A DkNN head is built for each (k, layers) a request
asks for and kept (the :data:`MAX_HEADS` most recent), every head sharing
one index per layer. One lock serialises every Chainer call and every cache
update, so concurrent requests are safe. A request may carry a
``deadline`` (``time.monotonic()``): work that runs past it stops with a
503 at its next step.
"""
import collections
import logging
import os
import threading
import time

import numpy

import dknn
import nlp_utils
from errors import UserError
from toolkit import attribution
from toolkit import conformal
from toolkit import explore_export
from toolkit import fileio
from toolkit import metrics
from toolkit import projection
from toolkit import reduction
from toolkit import relevance

MAX_TOKENS = 512          # default cap on an input's tokens
CHARS_PER_TOKEN = 64      # texts longer than this many characters a token
MAX_HEADS = 8             # DkNN heads kept, one per (k, layers)
MAX_K = 1000              # default cap on k per request
MAX_BEAM = 20
MAP_POINTS = 2000         # training examples drawn on the map
ORDERS = ('errors', 'credibility', 'index')
AUDIT_FILE = 'train_audit.json'
METHODS = tuple(attribution.INTERPRETERS)
RULES = dknn.SCORINGS     # the DkNN rules a request may choose
DEFAULT_RULE = 'graded'   # the rule that measures best (RESULTS.md)
METRICS = tuple(relevance.METRICS)   # how the related examples are found
N_RELATED = 10            # most relevant training examples shown
WHY = {m: '' for m in METRICS}
WHY[relevance.DEFAULT] = (
    'the default, because of every metric we measured it passed the three '
    'tests of Hanawa et al. (2021) best on our TREC and SST-5 models: its '
    'most relevant example always had the predicted label, it found the '
    'sub-class as often as any, and it changed when the weights were '
    'randomised')
WHY['l2'] = 'the paper\'s: the DkNN\'s own neighbours in the last layer'
PAPER_LINK = 'https://arxiv.org/abs/2006.04528'
log = logging.getLogger('explore')


class ExploreError(UserError):
    """A request the explorer refuses; ``status`` is the HTTP status to
    answer it with (400; 413 for an input over the token cap; 503 when the
    server is busy or the request ran out of time)."""

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


def in_time(deadline):
    """Stop a request whose ``deadline`` has passed (None: no deadline)."""
    if deadline is not None and time.monotonic() > deadline:
        raise ExploreError('the request took longer than the server\'s '
                           '--time-limit; shorten the input or ask for less',
                           503)


def text_of(fields, char_based):
    """Token lists -> one display string (sides of a pair joined by /)."""
    glue = '' if char_based else ' '
    return ' / '.join(glue.join(f) for f in fields)


class Explorer:
    """A trained run, loaded once, answering the explorer's requests.

    Args:
        run (toolkit.runs.Run): the trained run (with a calibration set).
        settings (dknn.Settings): the default DkNN (k, layers, backend, ...);
            its scoring rule is the default rule.
        field (str): for a pair model, the side whose tokens are explained.
        max_tokens (int): inputs with more tokens (all sides) are refused.
        epsilon (float): default significance of the prediction set.
        max_k (int): the largest k a request may ask for.
        metric (str): how the relevant training examples are found when a
            request does not say (:data:`METRICS`; ``--neighbour-metric``).
    """

    def __init__(self, run, settings=dknn.Settings(), *, field='hypothesis',
                 max_tokens=MAX_TOKENS, epsilon=0.1, max_k=MAX_K,
                 metric=relevance.DEFAULT):
        dknn.require_calibration(len(run.examples('calib')))
        self.run, self.field, self.max_tokens = run, field, max_tokens
        self.settings = settings
        self.max_k = min(max_k, len(run.examples('train')))
        self.epsilon = check_epsilon(epsilon)
        self.metric = check_metric(metric, relevance.DEFAULT)
        self.lock = threading.RLock()
        self.temperature = run.temperature_or_fit()   # (T, where from)
        self._heads = collections.OrderedDict()
        self._indexes = {}   # layer -> search index, shared by the heads
        self._tables, self._maps, self._relevance = {}, {}, {}
        self.example = tuple(text_of([f], run.setup['char_based'])
                             for f in run.splits.raw['test'][0][0])
        with self.lock:   # index, calibration and test table now
            self._test_table(self.settings_for())
            self._projection(self.settings_for().layers[-1])
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
        return {'dataset': os.path.basename(s['dataset']),
                'model': s['model'], 'char_based': s['char_based'],
                'pair': self.run.pair, 'labels': self.label_names,
                'layers': self.layer_names,
                'field': self.field if self.run.pair else None,
                'k': self.settings.k, 'max_k': self.max_k,
                'default_layers': dknn.resolve_layers(
                    self.layer_names, self.settings.layers),
                'rule': self.settings.scoring, 'rules': list(RULES),
                'metric': self.metric, 'metrics': {
                    m: relevance.METRICS[m].title for m in METRICS},
                'methods': {m: attribution.INTERPRETERS[m].title
                            for m in METHODS},
                'epsilon': self.epsilon, 'max_tokens': self.max_tokens,
                'temperature': self.temperature[0],
                'temperature_from': self.temperature[1],
                'n_test': len(self.run.examples('test')),
                'n_train': len(self.run.examples('train')),
                'example': list(self.example)}

    # ------------------------------------------------------------ settings

    def settings_for(self, k=None, layers=None, rule=None):
        """The default settings with ``k``, ``layers`` and the scoring
        ``rule`` changed (checked; ``layers`` as
        :func:`dknn.resolve_layers` takes it)."""
        changes = {}
        if k is not None:
            if not 1 <= k <= self.max_k:
                raise ExploreError('k must be between 1 and {} (this '
                                   'server\'s --max-k, at most the training '
                                   'examples), got {}'.format(self.max_k, k))
            changes['k'] = k
        if rule is not None:
            if rule not in RULES:
                raise ExploreError('rule must be one of {}, got {!r}'.format(
                    ', '.join(RULES), rule[:40]))
            changes['scoring'] = rule
        changes['layers'] = tuple(dknn.resolve_layers(
            self.layer_names, self.settings.layers if layers is None
            else layers))
        return self.settings.replace(**changes)

    def head(self, settings):
        """The fitted, calibrated DkNN of ``settings`` (any rule: the head
        answers with each), cached; call under :attr:`lock`."""
        key = settings.replace(scoring=dknn.SCORINGS[0])
        if key in self._heads:
            self._heads.move_to_end(key)
            return self._heads[key]
        head = dknn.DkNN(self.run.model, key, self.run.device)
        head.fit(self.run.forward('train', key.batchsize),
                 cache=self._indexes)
        head.calibrate(self.run.forward('calib', key.batchsize))
        self._heads[key] = head
        while len(self._heads) > MAX_HEADS:
            dropped, _ = self._heads.popitem(last=False)
            self._tables.pop(dropped, None)
        return head

    def explainer(self, settings):
        """An :class:`attribution.Explainer` of ``settings``, with this
        server's head and temperature (call under :attr:`lock`)."""
        return attribution.Explainer(
            self.run.model, self.run, settings=settings, field=self.field,
            temperature=self.temperature, head=self.head(settings))

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

    def explain(self, texts, k=None, layers=None, epsilon=None, rule=None,
                metric=None, deadline=None):
        """Prediction, every confidence, the conformal set, each method's
        importances and the neighbours of one input: the payload of the
        page and of ``GET /api/explain``.

        Args:
            texts (tuple of str): see :meth:`encode`.
            k (int), layers (str or list): the DkNN (default: the server's).
            epsilon (float): significance of the prediction set, in (0, 1).
            rule (str): the DkNN's scoring rule, for its prediction and the
                ``dknn`` importances (default: the server's).
            metric (str): how the neighbours are found (:data:`METRICS`).
            deadline (float): ``time.monotonic()`` by which to answer.

        Returns:
            dict: ``tokens``, ``prediction``, ``labels``, ``confidence``,
            ``importance`` (method -> one number per token),
            ``neighbours`` (layer -> list of {index, text, label,
            distance}), ``prediction_set`` and the extras documented in
            docs/explore.md.
        """
        eps = self.epsilon if epsilon is None else check_epsilon(epsilon)
        settings = self.settings_for(k, layers, rule)
        metric = check_metric(metric, self.metric)
        x, fields = self.encode(texts)
        return self._explain(x, fields, settings, eps, deadline, metric)

    def _explain(self, x, fields, settings, eps, deadline=None,
                 metric=None):
        """:meth:`explain` of model input ``x`` (token lists ``fields``)."""
        start = time.perf_counter()
        with self.lock:
            in_time(deadline)
            ex = self.explainer(settings)
            out = self._scores(ex, x, eps, settings.scoring)
            atts = {}
            for m in METHODS:
                in_time(deadline)
                atts[m] = attribution.explain(ex, [x], m)[0]
            out['related'] = self._related(ex, x, metric or self.metric)
        out.update(self._tokens(fields), importance={
            m: a.importance.tolist() for m, a in atts.items()}, methods={
            m: {'title': attribution.title(m, settings.scoring),
                'label': self.label_names[a.prediction], 'score': a.score}
            for m, a in atts.items()})
        out['settings'] = {'k': settings.k, 'layers': list(settings.layers),
                           'epsilon': eps, 'rule': settings.scoring,
                           'metric': metric}
        out['seconds'] = time.perf_counter() - start
        return out

    def _tokens(self, fields):
        explained = nlp_utils.explained_parts(self.run.pair, self.field)
        tokens = [t for p in explained for t in fields[p]]
        return {'tokens': tokens, 'parts': [list(f) for f in fields],
                'explained': list(explained),
                'unknown': [t not in self.run.vocab for t in tokens]}

    def _scores(self, ex, x, eps, rule):
        """Prediction, confidences, p-values, set and neighbours of x."""
        names = self.label_names
        logits, layers = ex.forward([x])                        # (1, C)
        probs = metrics.softmax(logits)[0]
        scaled = ex.scaled.probs(logits)[0]
        head = ex.head
        vote = head.with_scoring('conformity').predict_activations(layers)
        chosen = head.with_scoring(rule).predict_activations(layers)
        if rule in dknn.GRADED:   # the set of the rule's own family
            p = conformal.p_values(dknn.margins(chosen.distances),
                                   head.calib_alpha)[0]
        else:
            p = conformal.p_values(conformal.dknn_nonconformity(
                vote.counts, head.n_votes), head.calib_nonconformity)[0]
        pred = int(probs.argmax())
        return {
            'prediction': names[pred], 'labels': names,
            'dknn_prediction': names[int(chosen.pred[0])],
            'confidence': {
                'softmax': float(probs[pred]),
                'temperature_scaled': float(scaled[pred]),
                'dknn_credibility': float(chosen.credibility[0]),
                'dknn_confidence': float(chosen.confidence[0]),
                'dknn_conformity': float(vote.credibility[0])},
            'probabilities': {
                'softmax': _by_name(names, probs),
                'temperature_scaled': _by_name(names, scaled),
                'dknn': _by_name(names, chosen.scores[0]),
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

    def relevance(self, metric):
        """The metric over the training set, built once (call under
        :attr:`lock`)."""
        if metric not in self._relevance:
            train = self.run.forward('train', self.settings.batchsize)
            self._relevance[metric] = relevance.Relevance(
                metric, relevance.train_inputs(train),
                self.run.model.layer_names[-1], self.run.setup['seed'])
        return self._relevance[metric]

    def _related(self, ex, x, metric):
        """The :data:`N_RELATED` most relevant training examples of x by
        ``metric``, which found them and why it is the one shown."""
        logits, layers = ex.forward([x])
        idx, score = self.relevance(metric).top(relevance.test_inputs(
            nets_activations(logits, layers)), N_RELATED)
        raw = self.run.splits.raw['train']
        char_based = self.run.setup['char_based']
        return {'metric': metric, 'title': relevance.METRICS[metric].title,
                'why': WHY[metric], 'link': PAPER_LINK, 'examples': [
                    {'index': int(j), 'text': text_of(raw[j][0], char_based),
                     'label': self.label_names[raw[j][1]],
                     'relevance': float(v)}
                    for j, v in zip(idx[0], score[0])]}

    def _neighbours(self, found):
        raw = self.run.splits.raw['train']
        char_based = self.run.setup['char_based']
        return {layer: [{'index': int(j),
                         'text': text_of(raw[j][0], char_based),
                         'label': self.label_names[raw[j][1]],
                         'distance': float(d)}
                        for j, d in zip(nb.indices[0], nb.distances[0])]
                for layer, nb in found.items()}

    # ----------------------------------------------------------------- map

    def _projection(self, layer):
        """The 2-D projection of the training examples in ``layer``, fitted
        once (:func:`toolkit.projection.fit`); call under :attr:`lock`."""
        if layer not in self._maps:
            train = self.run.forward('train', self.settings.batchsize)
            self._maps[layer] = projection.fit(
                train.layers[layer], seed=self.run.setup['seed'])
        return self._maps[layer]

    def map(self, texts, k=None, layers=None, rule=None, metric=None,
            deadline=None):
        """Where an input sits among the training examples: a 2-D
        projection (PCA) of the last chosen layer.

        Returns:
            dict: ``layer``, ``method``, ``variance`` (the share of the
            layer's variance each axis holds), ``points`` (x, y, label,
            index, text of at most :data:`MAP_POINTS` training examples,
            the neighbours always among them), ``input`` (x, y) and
            ``neighbours`` (training indices, nearest first).
        """
        settings = self.settings_for(k, layers, rule)
        check_metric(metric, self.metric)
        x, _ = self.encode(texts)
        layer = settings.layers[-1]
        with self.lock:
            in_time(deadline)
            pca = self._projection(layer)
            head = self.head(settings)
            _, hidden = self.explainer(settings).forward([x])
            found = head.predict_activations(hidden).neighbours[layer]
        nbrs = [int(j) for j in found.indices[0]]
        train = self.run.forward('train', settings.batchsize)
        shown = projection.subsample(len(train.labels), MAP_POINTS, nbrs,
                                     seed=self.run.setup['seed'])
        xy = pca.transform(numpy.asarray(train.layers[layer][shown]))
        here = pca.transform(numpy.asarray(hidden[layer][:1]))[0]
        raw = self.run.splits.raw['train']
        char_based = self.run.setup['char_based']
        return {'layer': layer, 'method': 'PCA',
                'variance': [float(v) for v in pca.explained],
                'points': [{'x': float(a), 'y': float(b), 'index': int(i),
                            'label': self.label_names[raw[i][1]],
                            'text': text_of(raw[i][0], char_based)}
                           for (a, b), i in zip(xy, shown)],
                'input': {'x': float(here[0]), 'y': float(here[1])},
                'neighbours': nbrs, 'n_train': len(train.labels)}

    # ------------------------------------------------------------ test set

    def examples(self, order='errors', limit=20, k=None, layers=None,
                 rule=None, metric=None):
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
            ``dknn_credibility`` (conformal).
        """
        if order not in ORDERS:
            raise ExploreError('order must be one of {}, got {!r}'.format(
                ', '.join(ORDERS), order[:40]))
        if limit < 1:
            raise ExploreError('limit must be at least 1, got {}'.format(
                limit))
        settings = self.settings_for(k, layers, rule)
        check_metric(metric, self.metric)
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
        key = settings.replace(scoring=dknn.SCORINGS[0])
        if key not in self._tables:
            acts = self.run.forward('test', settings.batchsize)
            head = self.head(settings).with_scoring('conformal')
            probs = metrics.softmax(acts.logits)
            self._tables[key] = {
                'pred': probs.argmax(axis=1), 'softmax': probs.max(axis=1),
                'credibility': head.predict_activations(acts).credibility,
                'label': numpy.asarray(acts.labels)}
        return self._tables[key]

    # ----------------------------------------------------------- on demand

    def reduce(self, texts, k=None, layers=None, method='grad', beam=5,
               rule=None, metric=None, deadline=None):
        """Input reduction of one input (Feng et al. 2018; see
        :mod:`toolkit.reduction`), and every confidence before and after;
        it stops with a 503 when it runs past ``deadline``.

        Returns:
            dict: ``tokens``, ``removed`` (positions), ``reduced_tokens``,
            ``reduced_text``, ``prediction``, ``reduce_by``, ``beam``,
            ``original`` and ``reduced`` (measure -> value; ``dknn_pred``
            as a label name).
        """
        if method not in METHODS:
            raise ExploreError('method must be one of {}, got {!r}'.format(
                ', '.join(METHODS), method[:40]))
        if not 1 <= beam <= MAX_BEAM:
            raise ExploreError('beam must be between 1 and {}'.format(
                MAX_BEAM))
        settings = self.settings_for(k, layers, rule)
        check_metric(metric, self.metric)
        x, fields = self.encode(texts)
        with self.lock:
            in_time(deadline)
            ex = self.explainer(settings)
            red = reduction.reduce(ex, [x], method, beam,
                                   check=lambda: in_time(deadline))[0]
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
        n = len(self.run.examples('train'))
        bad = [i for i in indices if not 0 <= i < n]
        if bad or len(indices) > 1000:
            raise ExploreError('index: at most 1000 training indices in '
                               '0..{}'.format(n - 1))
        try:
            entries = read_audit(self.run.folder)
        except UserError as e:
            return {'available': False, 'message': str(e)}
        return {'available': True, 'message': '{}: {} entries'.format(
            AUDIT_FILE, len(entries)), 'entries': {
            str(int(i)): entries.get(int(i)) for i in indices}}

    def export(self, payload, index=None, fmt='html', where=None):
        """An explain payload (and its map, ``where``) as the exported HTML
        page or PNG (bytes), drawn by the renderers of interpretations.py.

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
        shown = index if index is not None else 'input'
        s = self.run.setup
        with self.lock:   # one matplotlib figure at a time
            if fmt == 'png':
                return explore_export.png_of(payload, self.run.pair, shown,
                                             label, where=where)
            return explore_export.html_of(
                payload, '{} {}'.format(os.path.basename(s['dataset']),
                                        s['model']),
                self.run.pair, self.field, shown, label,
                where=where).encode('utf-8')


def read_audit(folder):
    """Training index -> entry of the run's ``train_audit.json``, the file
    the audit writes (``{"entries": [{"index": ...}, ...]}``), read through
    the one reader."""
    path = fileio.inside(folder, AUDIT_FILE, 'audit')
    if not os.path.lexists(path):
        raise UserError('no {} in the run folder (the training-set audit has '
                        'not been run)'.format(AUDIT_FILE))
    data = fileio.read_json(path, 'run the audit again')
    entries = data.get('entries') if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and fileio.is_int(e.get('index'))
            for e in entries):
        raise UserError('{}: not an audit this tool wrote (no list of '
                        'entries with an "index"); run the audit again'.format(
                            AUDIT_FILE))
    return {e['index']: e for e in entries}


def check_epsilon(epsilon):
    """ε of a prediction set, strictly between 0 and 1."""
    if not (isinstance(epsilon, (int, float)) and 0 < epsilon < 1):
        raise ExploreError('epsilon must lie strictly between 0 and 1, got '
                           '{!r}'.format(epsilon))
    return float(epsilon)


def check_metric(metric, default):
    """The relevance metric of a request (``default`` when none is asked).
    """
    if metric is None:
        return default
    if metric not in METRICS:
        raise ExploreError('metric must be one of {}, got {!r}'.format(
            ', '.join(METRICS), metric[:40]))
    return metric


def nets_activations(logits, layers):
    import nets
    return nets.Activations(logits, layers, numpy.zeros(len(logits),
                                                        numpy.int32))


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
