#!/usr/bin/env python
"""Compare the numbers two run folders hold, file by file.

    python bench/compare_runs.py BEFORE/stsa.binary_cnn AFTER/stsa.binary_cnn

Reads the JSON outputs both folders have (``train_results.json``,
``dknn_results.json``, ``temperature.json``, ``interpretations_*.json``)
and prints, per file, every number that differs by more than ``--tol``,
and the largest difference. Timings (``seconds``) and paths are skipped.
Used to check that a refactor gives the same answers as before: the exit
status is 0 only when every file of BEFORE is in AFTER with the same
numbers at the same places (NaN matches only NaN). Folders that do not
exist, or hold no JSON output to compare, are an error, never "the same".
"""
import argparse
import glob
import math
import os

from report import read_json  # NOQA (first: sets sys.path)
from toolkit import cli  # NOQA
from errors import UserError  # NOQA

SKIP = {'seconds', 'seconds_per_epoch', 'model_setup', 'panels'}


def numbers(obj, path=''):
    """Every number in a JSON value, by its path (``a/b/3``)."""
    if isinstance(obj, (bool, int, float)):
        yield path, float(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if k not in SKIP:
                yield from numbers(v, '{}/{}'.format(path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from numbers(v, '{}/{}'.format(path, i))


def same(x, y, tol):
    """Equal within ``tol``; NaN equals only NaN, infinities only
    themselves."""
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return x == y or abs(x - y) <= tol


def compare(a_path, b_path, tol):
    """(number of values compared, largest |difference| (NaN when a NaN
    meets a number), differing paths, paths only in one file)."""
    a = dict(numbers(read_json(a_path)))
    b = dict(numbers(read_json(b_path)))
    common = sorted(set(a) & set(b))
    diffs = [(p, a[p], b[p]) for p in common if not same(a[p], b[p], tol)]
    gaps = [abs(a[p] - b[p]) if not (math.isnan(a[p]) or math.isnan(b[p]))
            else (0.0 if same(a[p], b[p], tol) else math.nan)
            for p in common]
    largest = math.nan if any(math.isnan(g) for g in gaps) else \
        max(gaps, default=0.0)
    return len(common), largest, diffs, sorted(set(a) ^ set(b))


def outputs(folder):
    """The JSON outputs of a run folder that are compared."""
    if not os.path.isdir(folder):
        raise UserError('{}: {}; pass two run folders'.format(
            folder, 'not a folder' if os.path.exists(folder) else
            'no such folder'))
    return sorted({os.path.basename(f) for f in glob.glob(os.path.join(
        glob.escape(folder), '*.json'))} - {'args.json', 'vocab.json',
                                            'calib.json'})


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('before')
    p.add_argument('after')
    p.add_argument('--tol', type=cli.float_in(0, 1e300), default=1e-6)
    return p


@cli.script
def main(argv=None):
    args = build_parser().parse_args(argv)
    names = outputs(args.before)
    outputs(args.after)
    if not names:
        raise UserError('{}: holds no JSON output to compare (results, '
                        'temperature, interpretations)'.format(args.before))
    ok = True
    print('| file | values compared | largest difference | differing (> {}) '
          '| only in one |'.format(args.tol))
    print('|---|---|---|---|---|')
    for name in names:
        b_path = os.path.join(args.after, name)
        if not os.path.exists(b_path):
            print('| {} | missing after | | | |'.format(name))
            ok = False
            continue
        n, largest, diffs, lonely = compare(os.path.join(args.before, name),
                                            b_path, args.tol)
        ok = ok and not diffs and not lonely
        print('| {} | {} | {:.2e} | {} | {} |'.format(
            name, n, largest, len(diffs), len(lonely)))
        for path, x, y in diffs[:5]:
            print('|   {} | {} -> {} | | | |'.format(path, x, y))
    print('same numbers' if ok else 'the folders differ')
    return 0 if ok else 1


if __name__ == '__main__':
    raise SystemExit(main())
