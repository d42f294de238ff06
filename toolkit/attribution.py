"""The attribution methods: which tokens made the model decide.

One registry, :data:`INTERPRETERS`, one signature: ``explain(explainer,
xs) -> list of Attribution``. Methods:

* ``dknn``: conformity leave-one-out (Wallace et al. 2018): the drop in the
  share of DkNN neighbours that carry the DkNN's predicted label;
* ``softmax`` / ``calibrated``: confidence leave-one-out, on the softmax or
  the temperature-scaled probability of the predicted label;
* ``grad``: vanilla gradient: d log p(predicted) / d e_t, dotted with e_t.

Every method returns, per example, the prediction, the score on the full
input and one importance per token (``<eos>`` excluded), signed so that a
positive importance means the token *supported* the prediction.
Leave-one-out scores all variants of many sentences in one forward pass and
one neighbour search. ``interpretations.py`` is the command, and
:mod:`toolkit.explanations` explains a run's test examples with these.
"""
import functools
from dataclasses import dataclass

import numpy
from tqdm import tqdm

import dknn
import nets
import nlp_utils
from nlp_utils import parts, remove, slots

from toolkit import metrics
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
    (built on first use unless given) and temperature (looked up on first
    use unless given).

    Args:
        model: a classifier from :mod:`nets`.
        run (toolkit.runs.Run): the trained run; None for the model alone
            (then only ``softmax`` and ``grad`` work).
        settings (dknn.Settings): the DkNN of ``dknn`` (its scoring rule is
            the score leave-one-out perturbs) and the batch size of forward
            passes.
        field (str): for pairs, which side's tokens are explained.
        comm: a ChainerMN communicator: the training set is split over the
            MPI ranks (``--distributed``), and rank 0 alone writes.
        temperature (tuple): (T, where it came from), as
            :meth:`toolkit.runs.Run.temperature_or_fit` returns it; None:
            looked up there when first needed.
        head (dknn.DkNN): a fitted, calibrated DkNN of ``settings`` to use;
            None: built from the run when first needed.
        max_tokens (int): the longest input leave-one-out takes.
    """

    def __init__(self, model, run=None, *, settings=dknn.Settings(),
                 field='hypothesis', comm=None, temperature=None, head=None,
                 max_tokens=nlp_utils.EXPLAIN_TOKENS):
        self.model, self.run, self.comm = model, run, comm
        self.max_tokens = max_tokens
        self.device = run.device if run is not None else None
        self.settings = settings
        self.field, self.batchsize = field, settings.batchsize
        self._temperature, self._head = temperature, head

    @functools.cached_property
    def head(self):
        """The run's DkNN, answering with the settings' scoring rule."""
        if self._head is not None:
            return self._head.with_scoring(self.settings.scoring)
        return dknn.for_run(self.run, self.settings, self.comm)[0]

    @functools.cached_property
    def temperature(self):
        """(T, where it came from): given, else
        :meth:`runs.Run.temperature_or_fit`."""
        if self._temperature is not None:
            return self._temperature
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
    """(M, C) the DkNN rule's scores: conformity shares, p-values, or for
    the ``graded`` rule the log-odds of its probabilities, log(p_c / (1 -
    p_c)), which rank tokens as the probabilities do but cannot saturate
    (a probability of 1 - 1e-9 moves by less than float tolerance)."""
    if not len(inputs):
        return numpy.zeros((0, explainer.model.n_class))
    _, layers = explainer.forward(inputs)
    out = explainer.head.predict_activations(layers)
    if explainer.settings.scoring == 'graded':
        return dknn.graded_log_odds(out.distances,
                                    explainer.head.temperature)
    return out.scores


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


def title(method, scoring='conformity'):
    """A method's title; ``dknn`` names the DkNN rule it leaves one out of
    (``conformity leave-one-out``, the paper's, by default)."""
    if method == 'dknn':
        return '{} leave-one-out'.format(scoring)
    return INTERPRETERS[method].title


def explain(explainer, xs, method, chunk=64, desc=None):
    """Run one registered method over many inputs, at most ``chunk`` at a
    time, and at most :data:`nlp_utils.BATCH_TOKENS` tokens of inputs (the
    gradient) or :data:`nlp_utils.VARIANT_TOKENS` of their variants
    (leave-one-out), inputs of similar lengths together. Leave-one-out
    refuses inputs over ``explainer.max_tokens``."""
    if INTERPRETERS[method].scores is not None:
        nlp_utils.check_explainable(xs, explainer.max_tokens)
        # an input of n tokens makes n + 1 variants of about n tokens
        groups = nlp_utils.batches(xs, chunk, nlp_utils.VARIANT_TOKENS,
                                   cost=lambda n: n * (n + 1))
    else:
        groups = nlp_utils.batches(xs, chunk)
    out = [None] * len(xs)
    for rows in tqdm(groups, desc=desc, disable=desc is None, leave=False):
        for r, a in zip(rows, INTERPRETERS[method].explain(
                explainer, [xs[r] for r in rows])):
            out[r] = a
    return out
