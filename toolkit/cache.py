"""The forward-pass cache of a run: logits and hidden layers on disk.

A run's ``activations/`` folder holds, per split (train, val, calib, test),
one uncompressed ``.npy`` file per array and a stamp::

    activations/train.json            model and data sha256, n, widths, dtype
    activations/train.logits.npy      (N, C) float32
    activations/train.labels.npy      (N,) int32
    activations/train.layer.mlp3.npy  (N, D) float32 (or float16), per layer

The stamp ties the arrays to the model file and to the examples they were
computed from; a mismatch means "compute again". Arrays are read with
``allow_pickle=False`` and memory-mapped, so a large training set is paged
in as the search touches it rather than copied; a file that is truncated,
of the wrong dtype or shape is refused with a line saying how to rebuild.
"""
import json
import os

import numpy

import errors
import nets
from errors import UserError

from toolkit import fileio

FIX = 'compute it again with: python run_dknn.py --rebuild'


def _array_name(split, key):
    return '{}.{}.npy'.format(split, key)


def _load(folder, split, key, shape, dtype_ok, sha256):
    """A cached array, memory-mapped after its sha256 was checked against
    the one its stamp records, and its ``.npy`` header against ``shape``
    (the stamp's sizes) and ``dtype_ok(dtype)``; the file is opened through
    :func:`errors.open_regular`, so a FIFO or device is never opened."""
    path = fileio.inside(folder, _array_name(split, key), 'activations')
    with errors.open_regular(path, 'array', FIX) as f:
        try:
            found, fortran, dtype = fileio.npy_header(f)
        except (ValueError, OSError, EOFError) as e:
            raise UserError('{}: unreadable ({}); {}'.format(
                path, fileio.one_line(e)[:100], FIX)) from None
        if tuple(found) != tuple(shape) or fortran or dtype.hasobject or \
                not dtype_ok(dtype):
            raise UserError('{}: unexpected dtype or shape {} {}; {}'.format(
                path, dtype, tuple(found), FIX))
        offset = f.tell()
        f.seek(0)
        if fileio.stream_sha256(f) != sha256:
            raise UserError('{}: not the array its stamp records (sha256 in '
                            '{}.json); {}'.format(path, split, FIX))
        try:
            return numpy.memmap(f, dtype=dtype, mode='r', offset=offset,
                                shape=tuple(shape))
        except (ValueError, OSError) as e:   # shorter than its header says
            raise UserError('{}: unreadable ({}); {}'.format(
                path, fileio.one_line(e)[:100], FIX)) from None


def _keys(stamp):
    """The arrays of a stamp: logits, labels and one per layer."""
    return ['logits', 'labels'] + ['layer.' + n for n in stamp['layers']]


def _saved_stamp(folder, split, stamp):
    """The stamp ``split.json`` holds if it is this model's and these
    examples' with a sha256 for every array, else None."""
    path = fileio.inside(folder, split + '.json', 'activations')
    if not os.path.lexists(path):
        return None
    saved = fileio.read_json(path, FIX)
    if not isinstance(saved, dict) or saved.get('dtype') not in (
            'float16', 'float32') or \
            {k: v for k, v in saved.items() if k not in ('dtype', 'arrays')} \
            != {k: v for k, v in stamp.items() if k != 'dtype'}:
        return None   # another model, other data: compute again
    hashes = saved.get('arrays')
    if not isinstance(hashes, dict) or set(hashes) != set(_keys(stamp)):
        return None   # written before arrays were hashed: compute again
    return saved


def read(folder, split, stamp, labels, n_class):
    """The cached activations of ``split`` if their stamp equals ``stamp``
    (model sha256, data sha256, n, layer widths; float16 or float32
    layers are both taken), else None. Arrays that disagree with the stamp
    (their sha256, shape, dtype) or with the examples' ``labels`` are
    refused.

    Returns:
        nets.Activations or None: memory-mapped arrays.
    """
    saved = _saved_stamp(folder, split, stamp)
    if saved is None:
        return None
    n, sha = stamp['n'], saved['arrays']   # the run's own sizes
    logits = _load(folder, split, 'logits', (n, n_class),
                   lambda d: d.kind == 'f', sha['logits'])
    cached = _load(folder, split, 'labels', (n,), lambda d: d.kind in 'iu',
                   sha['labels'])
    if not numpy.array_equal(cached, labels):
        raise UserError('{}: not the labels of the {} examples; {}'.format(
            os.path.join(folder, _array_name(split, 'labels')), split, FIX))
    layers = {name: _load(folder, split, 'layer.' + name, (n, width),
                          lambda d: d.name == saved['dtype'],
                          sha['layer.' + name])
              for name, width in stamp['layers'].items()}
    return nets.Activations(logits, layers, numpy.asarray(cached))


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


def compute(out, subfolder, split, model, examples, device, batchsize,
            stamp, dtype=numpy.float32):
    """Run ``examples`` through ``model`` into ``.npy`` files under
    ``out.folder/subfolder``, batch by batch (memory-mapped temporary files,
    allocated on disk first, renamed into place when complete); the stamp
    is written last, so a partial set is never read as a cache.

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
        with fileio._naming(final):
            return _memmap(temps[final], shape, dt)
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
            out.written.append(os.path.relpath(final, out.folder))
    finally:
        for tmp in temps.values():
            fileio.remove_quietly(tmp)
    out.write(os.path.join(subfolder, _array_name(split, 'labels')),
              lambda f: numpy.save(f, acts.labels, allow_pickle=False))
    hashes = {key: fileio.file_sha256(os.path.join(
        folder, _array_name(split, key))) for key in _keys(stamp)}
    out.write(os.path.join(subfolder, split + '.json'),
              lambda f: json.dump(dict(stamp, arrays=hashes), f, indent=1),
              'w')
    return acts   # the maps follow their files through the rename
