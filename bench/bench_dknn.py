#!/usr/bin/env python
"""Benchmark DkNN build + calibrate + test evaluation per backend.

    python bench/bench_dknn.py --model-setup result/stsa.binary_cnn/args.json

Compares, in one run on the same model and arrays:

* each backend (faiss, the default; brute, kdtree, lsh) against a
  reference that reproduces the original algorithm: one KDTree per layer
  queried one example at a time, votes counted with a Counter;
* the brute backend's search against a bare numpy matmul + argpartition
  (no chunking, no exact re-rank): the practical limit here;
* LSH recall@k against exact search; peak memory (tracemalloc) of searches.

Writes the ``dknn`` section of BENCHMARKS.md.
"""
import argparse
import collections
import time
import tracemalloc

import numpy

from report import write_section  # NOQA (first: sets sys.path)
from toolkit import cli  # NOQA
import dknn  # NOQA
import nets  # NOQA
from toolkit import runs  # NOQA
import search  # NOQA


def reference_dknn(train_layers, train_labels, calib_layers, calib_labels,
                   test_layers, k):
    """The original run_dknn.py: a KDTree for every layer, each example
    queried one at a time on every layer (the loop kept only the last
    layer's neighbours), votes counted with a Counter, and calibrated
    credibility by a list comprehension over the calibration scores.

    Returns the (N,) DkNN predictions and calibrated credibilities.
    """
    from sklearn.neighbors import KDTree
    names = list(train_layers)
    trees = [KDTree(train_layers[n]) for n in names]

    def knn_labels(acts, i):
        for t, n in zip(trees, names):
            _, knn = t.query([acts[n][i]], k=k)
            neighbours = knn[0]  # overwritten: only the last layer counts
        return [int(train_labels[j]) for j in neighbours]

    A = []
    for i in range(len(calib_labels)):
        cnts = dict(collections.Counter(knn_labels(calib_layers, i))
                    .most_common())
        A.append(cnts.get(int(calib_labels[i]), 0) / k)
    preds, creds = [], []
    for i in range(len(test_layers[names[0]])):
        label, cnt = collections.Counter(
            knn_labels(test_layers, i)).most_common()[0]
        preds.append(label)
        creds.append(len([x for x in A if x >= cnt / k]) / len(A))
    return numpy.array(preds), numpy.array(creds)


def bare_search(points, queries, k):
    """numpy matmul + argpartition: the floor for exact search."""
    d2 = (points * points).sum(1)[None, :] - 2 * queries @ points.T
    return numpy.argpartition(d2, k - 1, axis=1)[:, :k]


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def peak_mib(fn):
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2 ** 20


@cli.script
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    p.add_argument('--model-setup', default='result/stsa.binary_cnn/args.json')
    p.add_argument('--k', type=cli.int_in(1, 10 ** 6), default=75)
    p.add_argument('--layers', default='last')
    p.add_argument('--repeat', type=cli.int_in(1, 1000), default=5)
    p.add_argument('--no-write', action='store_true')
    args = p.parse_args(argv)

    run = runs.load(args.model_setup)
    setup = run.setup
    layers = dknn.resolve_layers(run.model.layer_names, args.layers)
    # activations once: the forward pass is the same for every backend
    t0 = time.perf_counter()
    train, calib, test = (nets.predict_dataset(run.model, run.examples(s),
                                               None)
                          for s in ('train', 'calib', 'test'))
    forward = time.perf_counter() - t0
    train_acts, train_labels = train.layers, train.labels
    calib_acts, calib_labels = calib.layers, calib.labels
    test_acts, test_labels = test.layers, test.labels

    rows, preds, heads = time_backends(run, layers, train, calib, test_acts,
                                       args)
    t = time.perf_counter()
    ref_pred, _ = reference_dknn(train_acts, train_labels, calib_acts,
                                 calib_labels, test_acts, args.k)
    ref_total = time.perf_counter() - t
    rows.append(('reference (original: a KDTree per layer, one query at a '
                 'time)',
                 float('nan'), float('nan'), float('nan'), ref_total))
    body = search_section(args, setup, layers, train_acts, test_acts,
                          calib_labels, test_labels, forward, rows, preds,
                          heads, ref_pred, ref_total)
    if not args.no_write:
        write_section('dknn', body)


def time_backends(run, layers, train, calib, test_acts, args):
    """Best-of-``repeat`` build, calibrate and evaluate times of each
    backend: (rows, outputs, heads)."""
    rows, preds, heads = [], {}, {}
    for backend in ('faiss', 'brute', 'kdtree', 'lsh'):
        head = heads[backend] = dknn.DkNN(run.model, dknn.Settings(
            layers=layers, k=args.k, backend=backend))

        def one(head=head):
            t = time.perf_counter()
            head.fit(train)
            t_build = time.perf_counter() - t
            head.calibrate(calib)
            t_cal = time.perf_counter() - t - t_build
            out = head.predict_activations(test_acts)
            t_eval = time.perf_counter() - t - t_build - t_cal
            return t_build, t_cal, t_eval, out
        total, (t_build, t_cal, t_eval, out) = best_of(
            one, 1 if backend == 'lsh' else args.repeat)
        preds[backend] = out
        rows.append((backend, t_build, t_cal, t_eval, total))
    return rows, preds, heads


def search_alone(pts, qs, args):
    """Brute backend vs bare matmul + argpartition: best times, share of
    identical neighbour sets, peak MiB of each, brute's neighbours."""
    brute = search.BruteIndex(pts)
    t_brute, (idx_brute, _) = best_of(lambda: brute.query(qs, args.k),
                                      args.repeat * 4)
    t_bare, idx_bare = best_of(lambda: bare_search(pts, qs, args.k),
                               args.repeat * 4)
    same = numpy.mean([set(a) == set(b) for a, b in zip(idx_brute, idx_bare)])
    mem_brute = peak_mib(lambda: brute.query(qs, args.k))
    mem_bare = peak_mib(lambda: bare_search(pts, qs, args.k))
    return t_brute, t_bare, same, mem_brute, mem_bare, idx_brute


def backend_table(rows, acc, ref_acc, ref_total):
    """Markdown rows: each backend's times, accuracy and speed-up."""
    lines = ['| backend | index build (s) | calibrate (s) | test evaluation '
             '(s) | total (s) | DkNN accuracy | speed-up vs reference |',
             '|---|---|---|---|---|---|---|']
    for b, tb, tc, te, tt in rows:
        lines.append('| {} | {} | {} | {} | {:.3f} | {:.4f} | {:.1f}x |'
                     .format(b, *['-' if numpy.isnan(x) else '%.3f' % x
                                  for x in (tb, tc, te)], tt,
                             acc.get(b.split()[0], ref_acc), ref_total / tt))
    return lines


def search_section(args, setup, layers, train_acts, test_acts, calib_labels,
                   test_labels, forward, rows, preds, heads, ref_pred,
                   ref_total):
    """The ``dknn`` section of BENCHMARKS.md, with the search-alone and
    memory measurements."""
    name = layers[-1]
    pts, qs = train_acts[name], test_acts[name]
    t_brute, t_bare, same, mem_brute, mem_bare, idx_brute = search_alone(
        pts, qs, args)
    recall = search.recall_at_k(preds['lsh'].neighbours[name].indices,
                              idx_brute)
    agree_ref = float((ref_pred == preds[search.DEFAULT].pred).mean())
    acc = {b: float((preds[b].pred == test_labels).mean()) for b in preds}

    default_total = {r[0]: r[4] for r in rows}[search.DEFAULT]
    lines = [
        '## DkNN search (`bench/bench_dknn.py`)', '',
        'Command: `python bench/bench_dknn.py --model-setup {} --k {} '
        '--layers {}`'.format(args.model_setup, args.k, args.layers), '',
        'Model: {} {} ({} training points of dimension {} in layer `{}`, '
        '{} calibration, {} test). Forward passes, the same for every '
        'backend, took {:.2f} s and are not counted below. Times are the '
        'best of {} runs (LSH and the reference: one run).'.format(
            setup['dataset'], setup['model'], len(pts), pts.shape[1],
            name, len(calib_labels), len(test_labels), forward, args.repeat),
        '',
        ] + backend_table(rows, acc, float((ref_pred == test_labels).mean()),
                            ref_total) + [
        '',
        '- Default backend ({}) vs the reference: **{:.1f}x faster** '
        '(goal: at least 20x); the reference predicts the same label for '
        '{:.2%} of test examples. Counting the forward passes in both, the '
        'whole run is {:.1f}x faster ({:.2f} s against {:.2f} s).'.format(
            search.DEFAULT, ref_total / default_total, agree_ref,
            (ref_total + forward) / (default_total + forward),
            default_total + forward, ref_total + forward),
        '- Search alone, {} queries: brute backend {:.4f} s, bare numpy '
        'matmul + argpartition {:.4f} s: **{:.2f}x** the bare time (goal: '
        'within 2x); the two find the same neighbour sets for {:.2%} of '
        'queries.'.format(len(qs), t_brute, t_bare, t_brute / t_bare, same),
        '- Peak memory of one search (tracemalloc): brute {:.1f} MiB '
        '(chunked), bare {:.1f} MiB.'.format(mem_brute, mem_bare),
        '- LSH (nearpy, 4 tables of 10 bits) recall@{}: **{:.3f}**; queries '
        'topped up by exact search (too few candidates): {}.'.format(
            args.k, recall, heads['lsh'].indices[name].topped_up),
    ]
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
