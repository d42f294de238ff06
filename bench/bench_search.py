#!/usr/bin/env python
"""The DkNN's search, per label against one index, and exact search
against bare faiss, at SST-2 size and at 550,000 points.

    python bench/bench_search.py
    python bench/bench_search.py --sizes 5920x300 --repeats 3

For each size (synthetic activations as in ``bench/bench_scale.py``, two
labels drawn at random; 1821 queries, SST-2's test set, at k = 75), the
same points and queries are searched, interleaved, ``--repeats`` times:

* **bare faiss**: ``IndexFlatL2.search`` for k, nothing else;
* **exact, one index**: the ``faiss`` backend (search for k plus a margin,
  then an exact re-rank in float64): the search before the graded rules;
* **per label**: :class:`search.ByLabel`, one exact index per label, each
  searched for k, and the global k merged from them: what the DkNN does now,
  serving the vote rules and the graded rules from one search;
* **re-rank alone**: :func:`search.rerank` of the one index's candidates
  (found once, untimed): the part of the second that bare faiss lacks.

The medians, and the ratios of the second and third to the first and of
the third to the second, go to the ``search-by-label`` section of
BENCHMARKS.md.
"""
import argparse
import statistics
import time

import numpy

from report import write_section  # NOQA (first: sets sys.path)
from toolkit import cli  # NOQA
import search  # NOQA

SIZES = ('5920x300', '550000x300')
N_QUERIES, K = 1821, 75


def make(n, dim, seed=0):
    """(N, D) points from 64 Gaussian clusters, (Q, D) queries, (N,) labels
    in {0, 1}."""
    rng = numpy.random.RandomState(seed)
    centres = rng.randn(64, dim).astype(numpy.float32) * 2
    points = numpy.empty((n, dim), numpy.float32)
    for start in range(0, n, 50000):
        m = min(50000, n - start)
        points[start:start + m] = centres[rng.randint(0, 64, m)] + \
            rng.randn(m, dim).astype(numpy.float32)
    queries = centres[rng.randint(0, 64, N_QUERIES)] + rng.randn(
        N_QUERIES, dim).astype(numpy.float32)
    return points, queries.astype(numpy.float32), rng.randint(0, 2, n)


def searches(points, queries, labels):
    """name -> a function that runs one search of every query."""
    faiss = search._faiss()
    bare = faiss.IndexFlatL2(points.shape[1])
    bare.add(points)
    one = search.FaissIndex(points)
    by_label = search.ByLabel(search.FaissIndex, points, labels, 2)
    found = one._candidates(queries, min(len(one), K + search.margin(K)))
    return {'bare faiss': lambda: bare.search(queries, K),
            'exact, one index': lambda: one.query(queries, K),
            'per label (both kinds of rule)':
                lambda: by_label.query_by_label(queries, K),
            're-rank alone': lambda: search.rerank(points, queries, found,
                                                   K)}, \
        one, by_label


def measure(size, repeats):
    n, dim = map(int, size.split('x'))
    points, queries, labels = make(n, dim)
    runs_, one, by_label = searches(points, queries, labels)
    times = {name: [] for name in runs_}
    for _ in range(repeats):   # interleaved, so load hits all alike
        for name, fn in runs_.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    same = numpy.array_equal(one.query(queries, K)[0],
                             by_label.query(queries, K)[0])
    return {name: statistics.median(t) for name, t in times.items()}, same


def section(rows, repeats):
    out = ['## Search per label (`bench/bench_search.py`)', '',
           'Command: `python bench/bench_search.py --repeats {}`. {} queries '
           'at k = {} over synthetic activations (64 Gaussian clusters, two '
           'labels at random), median seconds of {} interleaved runs on '
           'this 2-core machine. "Per label" is what the DkNN searches now: '
           'one exact faiss index per label, each searched for k (the graded '
           'rules need them), and the global k merged from them (the vote '
           'rules). "Re-rank" is the exact float64 ranking of the one '
           'index\'s k + margin candidates, timed alone: the part of the '
           'exact search that bare faiss lacks.'.format(
               repeats, N_QUERIES, K, repeats), '',
           '| points | bare faiss (s) | exact, one index (s) | re-rank (s) '
           '| per label (s) | exact / bare | per label / bare | per label / '
           'one index | same global k |',
           '|---|---|---|---|---|---|---|---|---|']
    for size, (t, same) in rows:
        a, b, c, r = (t['bare faiss'], t['exact, one index'],
                      t['per label (both kinds of rule)'], t['re-rank alone'])
        out.append('| {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.2f}x | '
                   '{:.2f}x | {:.2f}x | {} |'.format(
                       size, a, b, r, c, b / a, c / a, c / b,
                       'yes' if same else 'no'))
    return '\n'.join(out)


@cli.script
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--sizes', nargs='+', default=list(SIZES),
                   help='points x dimensions')
    p.add_argument('--repeats', type=cli.int_in(1, 100), default=5,
                   help='interleaved runs per search')
    p.add_argument('--no-write', action='store_true',
                   help='print the section without writing BENCHMARKS.md')
    args = p.parse_args(argv)
    rows = []
    for size in args.sizes:
        if not all(x.isdigit() and int(x) > 0 for x in size.split('x')) \
                or size.count('x') != 1:
            raise SystemExit('error: --sizes {}: expected POINTSxDIMS, e.g. '
                             '5920x300'.format(size))
        rows.append((size, measure(size, args.repeats)))
        print(section(rows, args.repeats), flush=True)
    if not args.no_write:
        write_section('search-by-label', section(rows, args.repeats))


if __name__ == '__main__':
    main()
