"""The forward-pass cache of a run: logits and hidden layers on disk.

A run's ``activations/`` folder holds, per split (train, val, calib, test),
one uncompressed ``.npy`` file per array and a stamp::

    activations/train.json            model and data sha256, n, widths,
                                      dtype; each array's bytes and sha256
    activations/train.logits.npy      (N, C) float32
    activations/train.labels.npy      (N,) int32
    activations/train.layer.mlp3.npy  (N, D) float32 (or float16), per layer

The stamp ties the arrays to the model file and to the examples they were
computed from; a mismatch means "compute again". It is written last, so a
partial set is never read as a cache. Reading checks what is cheap: each
array's ``.npy`` header (shape and dtype against the stamp) and its size,
then memory-maps it, so a large training set is paged in as the search
touches it. The sha256 each array was written with is checked only on
request (``--verify-cache``): a stamp in the same folder cannot stand
against a stranger, who can rewrite both, and sizes plus the completion
record already catch corruption and partial writes.
"""
import hashlib
import json
import os

import numpy

import nets
from errors import UserError
from toolkit import fileio

FIX = 'compute it again with: python run_dknn.py --rebuild'


def _array_name(split, key):
    return '{}.{}.npy'.format(split, key)


def _keys(stamp):
    """The arrays of a stamp: logits, labels and one per layer."""
    return ['logits', 'labels'] + ['layer.' + n for n in stamp['layers']]


def _saved_stamp(folder, split, stamp):
    """The stamp ``split.json`` holds if it is this model's and these
    examples', recording every array, else None."""
    path = fileio.inside(folder, split + '.json', 'activations')
    if not os.path.lexists(path):
        return None
    saved = fileio.read_json(path, FIX)
    if not isinstance(saved, dict) or saved.get('dtype') not in (
            'float16', 'float32') or \
            {k: v for k, v in saved.items() if k not in ('dtype', 'arrays')} \
            != {k: v for k, v in stamp.items() if k != 'dtype'}:
        return None   # another model, other data: compute again
    arrays = saved.get('arrays')
    if not isinstance(arrays, dict) or set(arrays) != set(_keys(stamp)) or \
            not all(isinstance(a, dict) and fileio.is_int(a.get('bytes')) and
                    isinstance(a.get('sha256'), str)
                    for a in arrays.values()):
        return None
    return saved


def _load(folder, split, key, shape, dtype_ok, record, verify):
    path = fileio.inside(folder, _array_name(split, key), 'activations')
    array = fileio.load_array(path, shape, dtype_ok, FIX)
    if os.path.getsize(path) != record['bytes'] or verify and \
            fileio.file_sha256(path) != record['sha256']:
        raise UserError('{}: not the array its stamp records ({}.json); {}'
                        .format(path, split, FIX))
    return array


def read(folder, split, stamp, labels, n_class, verify=False):
    """The cached activations of ``split`` if their stamp equals ``stamp``
    (model sha256, data sha256, n, layer widths; float16 or float32 layers
    are both taken), else None. An array whose header, size or (with
    ``verify``) sha256 disagrees with the stamp, or labels other than the
    examples' ``labels``, is refused.

    Returns:
        nets.Activations or None: memory-mapped arrays.
    """
    saved = _saved_stamp(folder, split, stamp)
    if saved is None:
        return None
    n, arrays = stamp['n'], saved['arrays']

    def get(key, shape, ok):
        return _load(folder, split, key, shape, ok, arrays[key], verify)
    logits = get('logits', (n, n_class), lambda d: d.kind == 'f')
    cached = get('labels', (n,), lambda d: d.kind in 'iu')
    if not numpy.array_equal(cached, labels):
        raise UserError('{}: not the labels of the {} examples; {}'.format(
            os.path.join(folder, _array_name(split, 'labels')), split, FIX))
    layers = {name: get('layer.' + name, (n, width),
                        lambda d: d.name == saved['dtype'])
              for name, width in stamp['layers'].items()}
    return nets.Activations(logits, layers, numpy.asarray(cached))


def in_memory(model, examples, device, batchsize, split, dtype):
    """The forward pass of a split, kept in memory."""
    return nets.predict_dataset(model, examples, device, batchsize,
                                '{}: forward pass'.format(split),
                                dtype=dtype)


def _memmap(path, shape, dtype):
    """A new ``.npy`` file memory-mapped for writing, its disk space
    allocated first: a full disk raises ENOSPC here rather than killing
    the process (SIGBUS) on a later write."""
    array = numpy.lib.format.open_memmap(path, mode='w+', dtype=dtype,
                                         shape=shape)
    with open(path, 'r+b') as f:
        size = os.fstat(f.fileno()).st_size
        if size:
            fileio._fallocate(f.fileno(), 0, size)
    return array


def _record(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return {'bytes': os.path.getsize(path), 'sha256': h.hexdigest()}


def compute(out, subfolder, split, model, examples, device, batchsize,
            stamp, dtype=numpy.float32):
    """Run ``examples`` through ``model`` into ``.npy`` files under
    ``out.folder/subfolder``, batch by batch (memory-mapped temporary files,
    allocated on disk first, renamed into place when complete); the stamp,
    with every array's size and sha256, is written last. The cache records
    its own completion, so the command's record does not list its files.

    Args:
        out (fileio.Outputs): where the caller said to save the cache.

    Returns:
        nets.Activations: memory-mapped.
    """
    folder = os.path.join(out.folder, subfolder)
    os.makedirs(folder, exist_ok=True)
    temps = {}   # final path -> temporary path

    def alloc(key, shape, dt):
        final = os.path.join(folder, _array_name(split, key))
        fileio.check_target(final)
        temps[final] = fileio.temp_path(final)
        try:
            return _memmap(temps[final], shape, dt)
        except OSError as e:
            e.filename = final
            raise
    try:
        acts = nets.predict_dataset(model, examples, device, batchsize,
                                    '{}: forward pass'.format(split), alloc,
                                    dtype)
        for a in [acts.logits] + list(acts.layers.values()):
            if isinstance(a, numpy.memmap):
                a.flush()
        # the old stamp goes first: old arrays are never read as new ones
        fileio.remove_quietly(os.path.join(folder, split + '.json'))
        for final, tmp in temps.items():
            os.replace(tmp, final)
    finally:
        for tmp in temps.values():
            fileio.remove_quietly(tmp)
    fileio.save_atomic(os.path.join(folder, _array_name(split, 'labels')),
                       lambda f: numpy.save(f, acts.labels,
                                            allow_pickle=False))
    arrays = {key: _record(os.path.join(folder, _array_name(split, key)))
              for key in _keys(stamp)}
    fileio.save_atomic(os.path.join(folder, split + '.json'),
                       lambda f: json.dump(dict(stamp, arrays=arrays), f,
                                           indent=1), 'w')
    return acts   # the maps follow their files through the rename
