#!/usr/bin/env python
"""Compare the numbers two run folders hold, file by file.

    python bench/compare_runs.py BEFORE/stsa.binary_cnn AFTER/stsa.binary_cnn

Reads the JSON outputs both folders have (``train_results.json``,
``dknn_results.json``, ``temperature.json``, ``interpretations_*.json``)
and prints, per file, every number that differs by more than ``--tol``,
and the largest difference. Timings (``seconds``) and paths are skipped.
Used to check that a refactor gives the same answers as before.
"""
import argparse
import glob
import json
import os

SKIP = {'seconds', 'seconds_per_epoch', 'model_setup', 'panels'}


def numbers(obj, path=''):
    """Every number in a JSON value, by its path (``a/b/3``)."""
    if isinstance(obj, bool):
        yield path, float(obj)
    elif isinstance(obj, (int, float)):
        yield path, float(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if k not in SKIP:
                yield from numbers(v, '{}/{}'.format(path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from numbers(v, '{}/{}'.format(path, i))


def compare(a_path, b_path, tol):
    """(number of values compared, largest |difference|, differing paths,
    paths only in one file)."""
    a = dict(numbers(json.load(open(a_path))))
    b = dict(numbers(json.load(open(b_path))))
    common = sorted(set(a) & set(b))
    diffs = [(p, a[p], b[p]) for p in common if abs(a[p] - b[p]) > tol]
    largest = max((abs(a[p] - b[p]) for p in common), default=0.0)
    return len(common), largest, diffs, sorted(set(a) ^ set(b))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('before')
    p.add_argument('after')
    p.add_argument('--tol', type=float, default=1e-6)
    args = p.parse_args(argv)
    names = sorted({os.path.basename(f) for f in glob.glob(
        os.path.join(args.before, '*.json'))} - {'args.json', 'vocab.json'})
    same = True
    print('| file | values compared | largest difference | differing (> {}) '
          '| only in one |'.format(args.tol))
    print('|---|---|---|---|---|')
    for name in names:
        b_path = os.path.join(args.after, name)
        if not os.path.exists(b_path):
            print('| {} | missing after | | | |'.format(name))
            same = False
            continue
        n, largest, diffs, lonely = compare(os.path.join(args.before, name),
                                            b_path, args.tol)
        same = same and not diffs
        print('| {} | {} | {:.2e} | {} | {} |'.format(
            name, n, largest, len(diffs), len(lonely)))
        for path, x, y in diffs[:5]:
            print('|   {} | {} -> {} | | | |'.format(path, x, y))
    return 0 if same else 1


if __name__ == '__main__':
    raise SystemExit(main())
