"""A trained run's files, read and checked: the folder may come from a
stranger.

``args.json`` is checked against :func:`toolkit.settings.check_setup` (every
key's type and bound, and the model's size); ``vocab.json`` for ids within
the vocabulary; ``calib.json`` for indices within the data;
``best_model.npz`` through :func:`toolkit.fileio.load_npz` against the
shapes of the model ``args.json`` describes, its values finite. File names
in ``args.json`` stay inside the folder. Every name a run folder holds is
in :data:`ARTIFACTS`. Nothing here writes.
"""
import hashlib
import json
import os
import re

import numpy
import chainer

import nets
import nlp_utils
from errors import RunError, UserError
from toolkit import fileio
from toolkit import settings

# Every file a run folder may hold, by role.
ARTIFACTS = {
    'setup': 'args.json',
    'model': 'best_model.npz',
    'vocab': 'vocab.json',
    'calib': 'calib.json',
    'log': 'log',
    'train_results': 'train_results.json',
    'activations': 'activations',   # a folder: the forward-pass cache
    'dknn_results': 'dknn_results.json',
    'credibility': 'dknn_credibility.npz',
    'temperature': 'temperature.json',
    'reliability': 'reliability.png',
    'reduction': 'reduction.json',
    'reduction_figure': 'reduction.png',
    'reduction_page': 'reduction.html',
    'conformal_figure': 'conformal_sets.png',
    'ood_figure': 'ood_roc.png',
    'selective_figure': 'risk_coverage.png',
    'audit': 'train_audit.json',
    'audit_page': 'train_audit.html',
    'audit_figure': 'train_audit.png',
}
# The other files a command writes into a run folder, by name.
OUTPUT_NAMES = re.compile(r'((interpretations|artifacts|dknn_results|'
                          r'temperature|reliability|reduction|conformal_sets|'
                          r'ood_roc|risk_coverage|dknn_credibility)[\w+.-]*|'
                          r'train_audit[\w+.-]*)\.(html|json|png|md|npz)')
# The files of the forward-pass cache (see toolkit/cache.py).
CACHE_NAMES = re.compile(r'(train|val|calib|test)\.(json|logits\.npy|'
                         r'labels\.npy|layer\.[\w.-]+\.npy)')
SPLITS = ('train', 'val', 'calib', 'test')
T_RANGE = (1e-8, 1e8)   # a saved temperature outside is refused
RETRAIN = settings.RETRAIN


def read_setup(setup_path):
    """Read and check ``args.json``; adds ``run_dir``, its folder."""
    setup = fileio.read_json(setup_path, RETRAIN, RunError)
    settings.check_setup(setup, setup_path)
    setup['run_dir'] = os.path.dirname(os.path.abspath(setup_path))
    return setup


def run_path(setup, key):
    """Path of a file ``args.json`` names (``model_path`` ...), kept inside
    the run folder."""
    return fileio.inside(setup['run_dir'], setup[key],
                         '{} in args.json'.format(key))


def read_vocab(setup):
    """``vocab.json``: token -> distinct ids covering ``[0, n_vocab)``,
    ``<eos>`` = 0 and ``<unk>`` = 1, matching ``vocab_sha256``."""
    path = run_path(setup, 'vocab_path')
    vocab = fileio.read_json(path, RETRAIN, RunError)
    n = setup['n_vocab']
    ok = isinstance(vocab, dict) and len(vocab) == n and all(
        isinstance(k, str) and fileio.is_int(v) and 0 <= v < n
        for k, v in vocab.items())
    if not ok or len(set(vocab.values())) != n or vocab.get('<eos>') != 0 \
            or vocab.get('<unk>') != 1:
        raise RunError('{}: expected {} tokens with distinct ids 0..{}, '
                       '<eos> 0 and <unk> 1 (the n_vocab of args.json); {}'
                       .format(path, n, n - 1, RETRAIN))
    if setup['vocab_sha256'] != vocab_sha256(vocab):
        raise RunError('{}: the vocabulary changed since training (it does '
                       'not match vocab_sha256 in args.json); {}'.format(
                           path, RETRAIN))
    return vocab


def vocab_sha256(vocab):
    """sha256 of a vocabulary: its (token, id) pairs, sorted, as JSON."""
    return hashlib.sha256(json.dumps(sorted(vocab.items())).encode(
        'utf-8', 'surrogatepass')).hexdigest()


def read_calib(setup, pool_size):
    """``calib.json``: sorted distinct indices into a pool of
    ``pool_size`` training examples."""
    path = run_path(setup, 'calib_path')
    calib = fileio.read_json(path, RETRAIN, RunError)
    ok = isinstance(calib, list) and all(
        fileio.is_int(i) and 0 <= i < pool_size for i in calib) and \
        all(a < b for a, b in zip(calib, calib[1:]))
    if not ok:
        raise RunError('{}: expected sorted distinct indices below {} (the '
                       'training pool); {}'.format(path, pool_size, RETRAIN))
    return calib


def model_arrays(model):
    """Array name in ``best_model.npz`` -> the model's parameter."""
    return {name.lstrip('/'): param for name, param in model.namedparams()}


def read_weights(model, path):
    """Copy the weights saved in ``path`` into ``model`` (never unpickling:
    Chainer's ``load_npz`` would allow it), each array checked against its
    parameter's shape before it is read, its values finite.

    Returns:
        str: the sha256 of the file.
    """
    params = model_arrays(model)
    arrays = fileio.load_npz(path, {n: (p.shape, 'f')
                                    for n, p in params.items()},
                             RETRAIN, 'model', RunError,
                             'the model its args.json describes')
    for name, array in arrays.items():
        if array.size and not numpy.isfinite(array).all():
            raise RunError('{}: array {} holds nan or inf: the model is '
                           'broken; train it again'.format(path, name))
        params[name].array[...] = array
    return fileio.file_sha256(path, 'model')


def model_and_sha256(setup, device=None):
    """The classifier ``args.json`` describes, with the weights of
    ``best_model.npz``, on ``device``; and the sha256 of that file."""
    model = nets.build_model(setup)
    sha = read_weights(model, run_path(setup, 'model_path'))
    model.to_device(chainer.get_device(device if device is not None
                                       else '@numpy'))
    return model, sha


def read_model(setup, device=None):
    return model_and_sha256(setup, device)[0]


def read_temperature(folder):
    """The temperature scaling.py saved in a run folder: T > 0."""
    path = fileio.inside(folder, ARTIFACTS['temperature'], 'temperature')
    fix = 'fit it with: python scaling.py --model-setup {}'.format(
        os.path.join(folder, ARTIFACTS['setup']))
    saved = fileio.read_json(path, fix, RunError)
    T = saved.get('temperature') if isinstance(saved, dict) else None
    if not isinstance(T, (int, float)) or isinstance(T, bool) or \
            not T_RANGE[0] <= T <= T_RANGE[1]:
        raise RunError('{}: "temperature" must be a number in [{:g}, {:g}]; '
                       '{}'.format(path, T_RANGE[0], T_RANGE[1], fix))
    return float(T)


def examples_sha256(examples):
    """sha256 of array examples: every token id and label, in order."""
    h = hashlib.sha256()
    for x, y in examples:
        for part in nlp_utils.parts(x):
            h.update(numpy.ascontiguousarray(part, numpy.int32).tobytes())
            h.update(b'|')
        h.update(numpy.asarray(y, numpy.int32).tobytes())
        h.update(b';')
    return h.hexdigest()


# ------------------------------------------------- your data, by its bytes

def data_files(path):
    """The files of your data set at ``path`` (a file, or a folder's train,
    dev and test files): basename -> full path."""
    from toolkit import user_data
    _, files = user_data.user_files(path)
    return {os.path.basename(p): p for p in files.values()}


def stamp_data_files(path):
    """basename -> sha256 of the bytes of each file of your data set, for
    ``args.json`` (``data_files``)."""
    return {name: fileio.file_sha256(p, 'data')
            for name, p in data_files(path).items()}


def check_data_files(path, stamps, setup_path):
    """Refuse your data set at ``path`` unless its files are, byte for byte,
    the ones training read (``stamps``): each is read through the one
    reader and hashed before anything parses it, and a mismatch names the
    file and the stamp, never its content."""
    found = data_files(path)
    if set(found) != set(stamps):
        raise RunError('{}: holds {}, but the run was trained on {} ('
                       '"data_files" in {}); pass --data-dir with the '
                       'original data'.format(path, ', '.join(sorted(found)),
                                              ', '.join(sorted(stamps)),
                                              setup_path))
    for name, file_path in found.items():
        if fileio.file_sha256(file_path, 'data') != stamps[name]:
            raise RunError('{}: is not the file the run was trained on (its '
                           'sha256 differs from "data_files" in {}); pass '
                           '--data-dir with the original data, or train '
                           'again'.format(file_path, setup_path))


def is_data_stamp(v):
    return isinstance(v, dict) and 0 < len(v) <= 3 and all(
        isinstance(k, str) and settings.is_sha(s) for k, s in v.items())


TAG = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,39}')


def tagged(name, tag=None):
    """``dknn_results.json`` -> ``dknn_results_TAG.json``: the results of
    one setting kept beside another's (``--tag``)."""
    if not tag:
        return name
    stem, ext = os.path.splitext(name)
    return '{}_{}{}'.format(stem, tag, ext)


def replace_set(out, record, names):
    """Before a command writes the set whose completion record is
    ``record`` (with the files ``names``): the files the last such set
    wrote that this one will not (figures it no longer describes) are
    removed, and the replacement said in one line. Only regular files of
    this tool's names, listed in a readable record, are touched."""
    path = out.path(record)
    if not os.path.isfile(path):
        return
    try:
        old = fileio.read_json(path).get('files', {})
    except (UserError, AttributeError):
        old = {}
    stale = sorted(n for n in old if n not in names and n != record and
                   '/' not in n and os.path.isfile(out.path(n)) and
                   (n in ARTIFACTS.values() or OUTPUT_NAMES.fullmatch(n)))
    for n in stale:
        os.unlink(out.path(n))
    print('note: replacing {} in {}{}'.format(
        record, out.folder, '; removed {}, which it no longer describes'
        .format(', '.join(stale)) if stale else ''))


def check_tool_entry(folder, name):
    """Refuse an entry of a run folder this tool did not write (a name it
    never writes, a link, a FIFO, a folder other than the cache): called
    before a run folder is emptied, so nothing of someone else's goes."""
    import stat
    path = os.path.join(folder, name)
    mode = os.lstat(path).st_mode
    if name == ARTIFACTS['activations'] and stat.S_ISDIR(mode):
        for entry in os.listdir(path):
            if not CACHE_NAMES.fullmatch(entry) and \
                    not fileio.is_leftover(entry):
                raise UserError('{}: holds a file that is not of the '
                                'forward-pass cache; move it away, or write '
                                'elsewhere with --out (nothing was changed)'
                                .format(path))
            check_tool_entry(path, entry)
        return
    known = name in ARTIFACTS.values() or OUTPUT_NAMES.fullmatch(name) or \
        CACHE_NAMES.fullmatch(name) or fileio.is_leftover(name)
    if not known or not stat.S_ISREG(mode):
        raise UserError('{}: {}, which this tool does not write, stands in '
                        'the run folder; move it away, or write elsewhere '
                        'with --out (nothing was changed)'.format(
                            path, 'a file' if stat.S_ISREG(mode) else
                            fileio.file_kind(mode)))
