"""Fuzzing the files of a run folder: random bytes, random truncations and
random JSON mutations of ``args.json``, ``vocab.json``, ``calib.json``,
``temperature.json``, ``best_model.npz`` and the forward-pass cache (its
JSON stamp and its ``.npy`` arrays), a few hundred cases under a fixed
seed. The library loaders are called directly (``runs.load``, the splits,
the temperature, ``run.forward``): every case must end in the right
answer (the numbers of the untouched run) or in one :class:`UserError`
whose message is one line, never in another exception. The cache is read
with ``verify_cache`` (its arrays hashed against their stamp); without it,
only a change of size or header is caught (docs/robustness.md), which a
second check asserts for every truncated or resized array."""
import json
import os
import shutil
import time

import numpy
import pytest

from conftest import copy_run
from errors import UserError
from toolkit import runs

SEED = 20
N_CASES = 400
FILES = ['args.json', 'vocab.json', 'calib.json', 'temperature.json',
         'best_model.npz', 'activations/test.json',
         'activations/test.logits.npy', 'activations/test.layer.mlp1.npy',
         'activations/train.labels.npy']
ODD_VALUES = [None, True, False, 0, -1, 1, 2 ** 31, 2 ** 64, 10 ** 400,
              -1e308, 1e-320, 0.5, float('nan'), float('inf'), '', 'x' * 300,
              '../../etc/passwd', '/dev/zero', '\u202e\x1b[2J', [], [1, 2],
              {}, {'a': {'b': []}}, [[[[[[[[[[]]]]]]]]]]]


@pytest.fixture(scope='module')
def pristine(tiny_run, tmp_path_factory):
    """A run folder with its cache and temperature, and the answers its
    untouched files give."""
    import run_dknn
    setup = copy_run(tiny_run, tmp_path_factory.mktemp('fuzz') / 'run')
    run_dknn.main(['--model-setup', setup, '--k', '5'])
    folder = os.path.dirname(setup)
    with open(os.path.join(folder, 'temperature.json'), 'w') as f:
        json.dump({'temperature': 1.5}, f)
    files = {name: open(os.path.join(folder, name), 'rb').read()
             for name in FILES}
    return setup, files, answers(setup)


def answers(setup, verify=True):
    """What a loaded run says: the temperature, and the logits, layers and
    labels of the test and training forward passes."""
    run = runs.load(setup, verify_cache=verify)
    out = {'T': run.temperature, 'calib': list(run.splits.calib_indices)}
    for split in ('test', 'train'):
        acts = run.forward(split)
        out[split] = (numpy.array(acts.logits), numpy.array(acts.labels),
                      {k: numpy.array(v) for k, v in acts.layers.items()})
    return out


def same(got, want, name, data):
    """The answers of the untouched run, but for a temperature.json that
    still holds a valid temperature: then that one."""
    T = json.loads(data)['temperature'] if name == 'temperature.json' \
        else want['T']
    if got['T'] != T or got['calib'] != want['calib']:
        return False
    for split in ('test', 'train'):
        (a, b, c), (x, y, z) = got[split], want[split]
        if not (numpy.allclose(a, x, atol=1e-5) and (b == y).all() and
                sorted(c) == sorted(z) and all(numpy.allclose(
                    c[k], z[k], atol=1e-5) for k in c)):
            return False
    return True


# ---------------------------------------------------------------- mutations

def random_bytes(data, rng):
    return bytes(rng.randint(0, 256, rng.randint(0, 200), dtype=numpy.uint8))


def truncation(data, rng):
    return data[:rng.randint(0, max(len(data), 1))]


def byte_flips(data, rng):
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if out:
            out[rng.randint(len(out))] = rng.randint(256)
    return bytes(out)


def json_mutation(data, rng):
    """A valid JSON document changed at one place: a value replaced by an
    odd one, a key dropped, repeated or added, or the whole nested."""
    obj = json.loads(data)
    kind = rng.randint(5)
    if kind == 4:
        return (json.dumps(obj) * 2 if rng.rand() < 0.5 else
                '[' * 50 + json.dumps(obj) + ']' * 50).encode()
    target, key = _random_slot(obj, rng)
    value = ODD_VALUES[rng.randint(len(ODD_VALUES))]
    if target is None:
        return json.dumps(value).encode()
    if kind == 0 or not isinstance(target, dict):
        target[key] = value
    elif kind == 1:
        target.pop(key)
    elif kind == 2:
        text = json.dumps(obj)
        return (text[:1] + json.dumps(key) + ': ' + json.dumps(value) +
                ', ' + text[1:]).encode()
    else:
        target['extra' + str(rng.randint(9))] = value
    return json.dumps(obj).encode()


def _random_slot(obj, rng):
    """(container, key) of a random place in a JSON value, None at the top
    for a bare value."""
    parent, key = None, None
    for _ in range(rng.randint(1, 4)):
        node = obj if parent is None else parent[key]
        if isinstance(node, dict) and node:
            parent, key = node, list(node)[rng.randint(len(node))]
        elif isinstance(node, list) and node:
            parent, key = node, rng.randint(len(node))
        else:
            break
    return parent, key


MUTATIONS = [random_bytes, truncation, byte_flips, json_mutation]


def cases():
    rng = numpy.random.RandomState(SEED)
    out = []
    for i in range(N_CASES):
        name = FILES[i % len(FILES)]
        fns = [m for m in MUTATIONS if name.endswith('.json') or
               m is not json_mutation]
        out.append((name, fns[rng.randint(len(fns))], rng.randint(2 ** 31)))
    return out


def test_every_mutation_is_the_answer_or_one_user_error(pristine):
    setup, files, want = pristine
    folder = os.path.dirname(setup)
    start, outcomes = time.time(), {'same': 0, 'error': 0}
    for name, mutate, seed in cases():
        path = os.path.join(folder, name)
        data = mutate(files[name], numpy.random.RandomState(seed))
        with open(path, 'wb') as f:
            f.write(data)
        try:
            got = answers(setup)
        except UserError as e:
            assert '\n' not in str(e), (name, mutate.__name__, str(e))
            outcomes['error'] += 1
        except Exception as e:   # a traceback: the bug this test finds
            raise AssertionError('{} by {} (seed {}): {}: {}'.format(
                name, mutate.__name__, seed, type(e).__name__, e)) from e
        else:
            assert same(got, want, name, data), (name, mutate.__name__,
                                                 seed)
            outcomes['same'] += 1
        if name.endswith('.npy') and len(data) != len(files[name]):
            with pytest.raises(UserError):   # a size change, unhashed
                answers(setup, verify=False)
        with open(path, 'wb') as f:
            f.write(files[name])
        shutil.rmtree(os.path.join(folder, 'tmp'), ignore_errors=True)
    assert sum(outcomes.values()) == N_CASES and outcomes['error'] > 100
    assert time.time() - start < 30
