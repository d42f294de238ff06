"""Encoders and classifiers, with the hidden layers DkNN searches.

Every classifier takes a list of B inputs: (L,)-shaped int32 token-id
arrays, or (premise, hypothesis) pairs of them for :class:`SNLIClassifier`.
It exposes:

* ``logits(xs)``: a (B, n_class) Variable;
* ``predict(xs)``: logits and an ordered dict of hidden layers, each a
  (B, D_layer) array, in test mode without backprop; ``layer_names``
  says which layer is which (the last one feeds the output layer);
* ``embedding_gradients(xs, ys)``: d loss / d embedding of every token,
  with the embeddings themselves, shaped like the inputs: (L, E) arrays.

Layer names per encoder (``n`` = ``--layer``):

====== ======================================================
cnn    ``cnn`` (pooled widths, 3/4/5 by default, after ReLU), ``mlp1..n``
rnn    ``lstm1..n`` (last hidden state of each LSTM layer)
bilstm ``bilstm1..n`` (forward and backward last states, concatenated)
bow    ``bow`` (mean embedding), ``mlp1..n``
====== ======================================================

:class:`SNLIClassifier` has ``features`` ([u, v, |u-v|, u*v]) and
``mlp1..n`` instead.
"""
import collections
from typing import NamedTuple

import numpy
import chainer
import chainer.functions as F
import chainer.links as L
from chainer import reporter
from tqdm import tqdm

import nlp_utils

embed_init = chainer.initializers.Uniform(.25)


def numbered(prefix, n):
    """Layer names ``prefix1`` .. ``prefixn``."""
    return ['%s%d' % (prefix, i + 1) for i in range(n)]


class MLP(chainer.ChainList):
    """``n_layers`` of dropout -> Linear -> ReLU.

    Returns the last activation and the list of all of them, each (B, U).
    """

    def __init__(self, n_layers, n_in, n_units, dropout=0.1):
        super().__init__(*[L.Linear(n_in if i == 0 else n_units, n_units)
                           for i in range(n_layers)])
        self.dropout = dropout

    def forward(self, h):
        layers = []
        for link in self.children():
            h = F.relu(link(F.dropout(h, self.dropout)))
            layers.append(h)
        return h, layers


class Encoder(chainer.Chain):
    """Base: an embedding and ``encode`` over embedded sequences.

    ``encode(exs)`` takes a list of B (L_i, E) Variables and returns the
    (B, out_units) encoding and a list of (name, (B, D)) hidden layers.
    """

    def __init__(self, n_vocab, n_embed, initialW=None):
        super().__init__()
        with self.init_scope():
            self.embed = L.EmbedID(n_vocab, n_embed,
                                   initialW=initialW if initialW is not None
                                   else embed_init)


class CNNEncoder(Encoder):
    """Filters of each width (3, 4, 5 tokens by default; n_units // number
    of widths filters each), max over time, then an MLP."""

    def __init__(self, n_vocab, n_embed, n_units, n_layers, dropout=0.1,
                 initialW=None, widths=(3, 4, 5)):
        super().__init__(n_vocab, n_embed, initialW)
        n_filters = n_units // len(widths)
        with self.init_scope():
            self.convs = chainer.ChainList(*[
                L.Convolution2D(n_embed, n_filters, ksize=(w, 1),
                                pad=(w - 1, 0), nobias=True)
                for w in widths])
            self.mlp = MLP(n_layers, len(widths) * n_filters, n_units,
                           dropout)
        self.dropout = dropout
        self.out_units = n_units if n_layers else len(widths) * n_filters
        self.layer_names = ['cnn'] + numbered('mlp', n_layers)

    def encode(self, exs):
        # Zero padding adds windows whose output is exactly 0 (no bias); the
        # ReLU after the max makes the result independent of the batch.
        e = F.pad_sequence(exs, padding=0)                    # (B, L, E)
        e = F.dropout(e, self.dropout)
        e = F.transpose(e, (0, 2, 1))[:, :, :, None]          # (B, E, L, 1)
        pooled = [F.max(conv(e), axis=(2, 3)) for conv in self.convs]
        h = F.relu(F.concat(pooled, axis=1))          # (B, widths * F)
        out, mlp_layers = self.mlp(h)
        return out, list(zip(self.layer_names, [h] + mlp_layers))


class RNNEncoder(Encoder):
    """An ``n_layers`` LSTM; each layer's last hidden state is a layer."""

    bidirectional = False

    def __init__(self, n_vocab, n_embed, n_units, n_layers, dropout=0.1,
                 initialW=None):
        super().__init__(n_vocab, n_embed, initialW)
        rnn = L.NStepBiLSTM if self.bidirectional else L.NStepLSTM
        with self.init_scope():
            self.rnn = rnn(n_layers, n_embed, n_units, dropout)
        self.dropout = dropout
        self.n_layers = n_layers
        n_dir = 2 if self.bidirectional else 1
        self.out_units = n_units * n_dir
        prefix = 'bilstm' if self.bidirectional else 'lstm'
        self.layer_names = numbered(prefix, n_layers)

    def encode(self, exs):
        exs = [F.dropout(e, self.dropout) for e in exs]
        hy, _, _ = self.rnn(None, None, exs)   # (n_layers * n_dir, B, U)
        if self.bidirectional:
            layers = [F.concat([hy[2 * i], hy[2 * i + 1]], axis=1)
                      for i in range(self.n_layers)]
        else:
            layers = [hy[i] for i in range(self.n_layers)]
        return layers[-1], list(zip(self.layer_names, layers))


class BiLSTMEncoder(RNNEncoder):
    """A bidirectional LSTM; a layer is (B, 2 * n_units)."""

    bidirectional = True


class BOWMLPEncoder(Encoder):
    """Mean of the embeddings, then an MLP."""

    def __init__(self, n_vocab, n_embed, n_units, n_layers, dropout=0.1,
                 initialW=None):
        super().__init__(n_vocab, n_embed, initialW)
        with self.init_scope():
            self.mlp = MLP(n_layers, n_embed, n_units, dropout)
        self.out_units = n_units if n_layers else n_embed
        self.layer_names = ['bow'] + numbered('mlp', n_layers)

    def encode(self, exs):
        lengths = self.xp.array([[len(e)] for e in exs], numpy.float32)
        h = F.sum(F.pad_sequence(exs, padding=0), axis=1) / lengths  # (B, E)
        out, mlp_layers = self.mlp(h)
        return out, list(zip(self.layer_names, [h] + mlp_layers))


ENCODERS = {'cnn': CNNEncoder, 'rnn': RNNEncoder, 'bilstm': BiLSTMEncoder,
            'bow': BOWMLPEncoder}


class Classifier(chainer.Chain):
    """Shared logic: subclasses define ``_sequences``/``_regroup`` and
    ``_features`` (embedded sequences -> (B, D) features, hidden layers)."""

    def __init__(self, encoder, n_class, dropout=0.1):
        super().__init__()
        with self.init_scope():
            self.encoder = encoder
        self.n_class = n_class
        self.dropout = dropout

    def _sequences(self, xs):
        return list(xs)

    def _regroup(self, seqs, n):
        return list(seqs)

    @staticmethod
    def _sections(seqs):
        return numpy.cumsum([len(s) for s in seqs[:-1]])

    def _embed(self, seqs):
        """Flat list of (L_i,) id arrays -> list of (L_i, E) Variables."""
        flat = self.encoder.embed(self.xp.concatenate(seqs, axis=0))
        return F.split_axis(flat, self._sections(seqs), axis=0,
                            force_tuple=True)

    def forward_embedded(self, exs):
        """Embedded sequences -> ((B, C) logits, ordered dict of layers)."""
        h, layers = self._features(exs)
        logits = self.output(F.dropout(h, self.dropout))
        return logits, collections.OrderedDict(layers)

    def logits(self, xs):
        """Inputs -> (B, n_class) logits Variable."""
        return self.forward_embedded(self._embed(self._sequences(xs)))[0]

    def forward(self, xs, ys):
        logits = self.logits(xs)
        loss = F.softmax_cross_entropy(logits, ys)
        reporter.report({'loss': loss, 'accuracy': F.accuracy(logits, ys)},
                        self)
        return loss

    def predict(self, xs):
        """Test-mode forward pass without backprop.

        Returns:
            tuple: (B, C) logits array and an ordered dict ``layer name ->
            (B, D) array`` in the order of ``layer_names``.
        """
        with chainer.using_config('train', False), \
                chainer.no_backprop_mode():
            logits, layers = self.forward_embedded(
                self._embed(self._sequences(xs)))
        return logits.array, collections.OrderedDict(
            (k, v.array) for k, v in layers.items())

    def embedding_gradients(self, xs, ys=None, with_logits=False):
        """Gradient of the loss with respect to each token's embedding.

        Args:
            xs (list): B inputs.
            ys ((B,) int array): labels the loss is taken against; None
                takes the model's own predictions.
            with_logits (bool): also return the (B, C) logits of the same
                forward pass.

        Returns:
            tuple: (grads, embeddings), each shaped like ``xs`` with every
            (L,) id array replaced by an (L, E) float array, and the logits
            if asked. Each example's loss is its own (the batch loss is a
            sum), so examples do not mix.
        """
        seqs = self._sequences(xs)
        sections = self._sections(seqs)
        # a copy of the rows, so the gradient stops at the embeddings
        flat = chainer.Variable(self.encoder.embed.W.array[
            self.xp.concatenate(seqs, axis=0)])
        with chainer.using_config('train', False):
            logits, _ = self.forward_embedded(
                F.split_axis(flat, sections, axis=0, force_tuple=True))
            if ys is None:
                ys = logits.array.argmax(axis=1).astype(numpy.int32)
            loss = F.sum(F.softmax_cross_entropy(logits, ys, reduce='no'))
            loss.backward()
        grads = self.xp.split(flat.grad, sections)
        embs = self.xp.split(flat.array, sections)
        out = self._regroup(grads, len(xs)), self._regroup(embs, len(xs))
        return out + (logits.array,) if with_logits else out


class TextClassifier(Classifier):
    """A sentence encoder, dropout, and a Linear output layer."""

    def __init__(self, encoder, n_class, dropout=0.1):
        super().__init__(encoder, n_class, dropout)
        with self.init_scope():
            self.output = L.Linear(encoder.out_units, n_class)
        self.layer_names = list(encoder.layer_names)

    def _features(self, exs):
        return self.encoder.encode(exs)


class SNLIClassifier(Classifier):
    """Encode premise u and hypothesis v with one encoder, then an MLP over
    [u, v, |u-v|, u*v] (a (B, 4 * out_units) ``features`` layer)."""

    def __init__(self, encoder, n_class=3, n_units=300, n_layers=3,
                 dropout=0.1):
        super().__init__(encoder, n_class, dropout)
        with self.init_scope():
            self.mlp = MLP(n_layers, 4 * encoder.out_units, n_units, dropout)
            self.output = L.Linear(
                n_units if n_layers else 4 * encoder.out_units, n_class)
        self.layer_names = ['features'] + numbered('mlp', n_layers)

    def _sequences(self, xs):
        """B pairs -> 2B sequences: all premises, then all hypotheses."""
        return [p for p, _ in xs] + [h for _, h in xs]

    def _regroup(self, seqs, n):
        return list(zip(seqs[:n], seqs[n:]))

    def _features(self, exs):
        n = len(exs) // 2
        h, _ = self.encoder.encode(list(exs))
        u, v = h[:n], h[n:]
        features = F.concat([u, v, F.absolute(u - v), u * v], axis=1)
        out, mlp_layers = self.mlp(F.dropout(features, self.dropout))
        return out, list(zip(self.layer_names, [features] + mlp_layers))


# ----------------------------------------------------------- saved models

# The largest value of each size a run's settings hold (the training flags,
# ``args.json``): a file from a stranger cannot make the tool allocate more.
MAX_SIZES = {'unit': 1 << 14, 'layer': 16, 'n_class': 1 << 14,
             'n_embed': nlp_utils.MAX_EMBED, 'n_vocab': nlp_utils.MAX_VOCAB,
             'widths': 16, 'width': 64}


def _mlp_size(n_layers, n_in, n_units):
    return sum((n_in if i == 0 else n_units) * n_units + n_units
               for i in range(n_layers))


def _lstm_size(n_layers, n_in, n_units, n_dir):
    """Parameters of Chainer's NStepLSTM (n_dir 1) or NStepBiLSTM (2)."""
    return sum(n_dir * (4 * (n_in if i == 0 else n_dir * n_units) * n_units +
                        4 * n_units * n_units + 8 * n_units)
               for i in range(n_layers))


def _encoder_size(s):
    """(parameters of the encoder of settings ``s``, its output width)."""
    E, U, n = s['n_embed'], s['unit'], s['layer']
    size = s['n_vocab'] * E
    if s['model'] == 'cnn':
        widths = s.get('widths') or (3, 4, 5)
        nf = U // len(widths)
        size += sum(nf * E * w for w in widths)
        return size + _mlp_size(n, len(widths) * nf, U), \
            U if n else len(widths) * nf
    if s['model'] == 'bow':
        return size + _mlp_size(n, E, U), U if n else E
    n_dir = 2 if s['model'] == 'bilstm' else 1
    return size + _lstm_size(n, E, U, n_dir), n_dir * U


def n_parameters(setup):
    """How many numbers :func:`build_model` would allocate for ``setup``,
    computed without allocating (checked against the built models by
    tests/test_nets.py), so a run's settings are bounded before any
    model is built."""
    size, out = _encoder_size(setup)
    if setup.get('pair'):
        size += _mlp_size(setup['layer'], 4 * out, setup['unit'])
        out = setup['unit'] if setup['layer'] else 4 * out
    return size + out * setup['n_class'] + setup['n_class']


def build_model(setup, initialW=None):
    """A fresh classifier from a run's settings (``args.json`` contents)."""
    extra = {'widths': tuple(setup['widths'])} \
        if setup['model'] == 'cnn' and setup.get('widths') else {}
    encoder = ENCODERS[setup['model']](
        setup['n_vocab'], setup['n_embed'], setup['unit'], setup['layer'],
        setup['dropout'], initialW=initialW, **extra)
    if setup.get('pair'):
        return SNLIClassifier(encoder, setup['n_class'], setup['unit'],
                              setup['layer'], setup['dropout'])
    return TextClassifier(encoder, setup['n_class'], setup['dropout'])


def to_cpu(array):
    """A NumPy copy of a NumPy or CuPy array."""
    return chainer.backend.CpuDevice().send(array)


class Activations(NamedTuple):
    """A forward pass over N examples (on the CPU).

    Attributes:
        logits: (N, C) float32.
        layers: ordered dict ``layer name -> (N, D) float32 array``.
        labels: (N,) int32 gold labels.
    """
    logits: numpy.ndarray
    layers: dict
    labels: numpy.ndarray


def _in_memory(key, shape, dtype):
    return numpy.empty(shape, dtype)


def predict_inputs(model, xs, device, batchsize=256, desc=None, alloc=None,
                   dtype=numpy.float32):
    """Logits and hidden layers of B model inputs, batch by batch (at most
    ``batchsize`` inputs and :data:`nlp_utils.BATCH_TOKENS` tokens a batch),
    written into arrays allocated once (a layer never exists twice in
    memory).

    Args:
        xs (list): model inputs (see the module docstring).
        desc (str): tqdm label; None shows no bar.
        alloc (callable): ``(key, shape, dtype) -> array`` for ``logits``
            and ``layer.NAME``; default: in memory (a memory-mapped file
            writes them to disk as they come).
        dtype: of the hidden layers (float32, or float16 to halve them).

    Returns:
        tuple: (B, C) float32 logits and an ordered dict ``layer -> (B, D)``
        array, on the CPU.
    """
    alloc = alloc or _in_memory
    logits, layers = None, collections.OrderedDict()
    for rows in tqdm(nlp_utils.batches(xs, batchsize), desc=desc,
                     disable=desc is None, leave=False):
        rows = numpy.sort(rows)   # batches of similar lengths
        out, hidden = model.predict(nlp_utils.send_xs([xs[r] for r in rows],
                                                      device))
        if logits is None:
            logits = alloc('logits', (len(xs), out.shape[1]), numpy.float32)
            for name, h in hidden.items():
                layers[name] = alloc('layer.' + name, (len(xs), h.shape[1]),
                                     dtype)
        logits[rows] = to_cpu(out)
        for name, h in hidden.items():
            layers[name][rows] = to_cpu(h)
    if logits is None:
        return numpy.zeros((0, model.n_class), numpy.float32), layers
    return logits, layers


def predict_dataset(model, examples, device, batchsize=256, desc=None,
                    alloc=None, dtype=numpy.float32):
    """:func:`predict_inputs` of array examples ``(x, y)``, with their
    labels.

    Returns:
        Activations: of every layer in ``model.layer_names``.
    """
    logits, layers = predict_inputs(model, [x for x, _ in examples], device,
                                    batchsize, desc, alloc, dtype)
    labels = numpy.array([int(y[0]) for _, y in examples], numpy.int32)
    return Activations(logits, layers, labels)
