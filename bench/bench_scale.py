#!/usr/bin/env python
"""Search at SNLI scale and beyond: build time, memory, query time and
recall of every backend, on one machine and over MPI ranks.

    python bench/bench_scale.py                 # the five sizes below
    python bench/bench_scale.py --sizes 100000x300 --backends brute faiss

For each size (points x dimensions; synthetic activations with a fixed
seed: a mixture of 64 Gaussian clusters, as hidden layers cluster by
label), the points are written once to a ``.npy`` file and every backend is
measured in a fresh process that memory-maps them: build seconds, peak
resident memory beyond the mapped points, and seconds per 1000 queries at
k = 75, with recall@75 against brute force. Sharded search is timed with
``mpiexec -n 2`` (when MPI is installed) against one rank. Each size's
rows are kept in ``result/bench_scale/``, and the ``scale`` section of
BENCHMARKS.md is written from every size measured so far.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy

from report import BENCHMARKS, ROOT, write_section, read_json  # NOQA (first)
from toolkit import cli  # NOQA
import search  # NOQA
from toolkit import fileio  # NOQA

SIZES = ('5920x300', '100000x300', '300000x300', '550000x300',
         '550000x1200')
SAVED = os.path.join(ROOT, 'result', 'bench_scale')   # rows, one file a size
BACKENDS = ('faiss-raw', 'brute', 'faiss', 'faiss-ivf', 'faiss-ivfpq',
            'faiss-hnsw')
OPTIONS = {'faiss-ivf': {'nlist': 1024, 'nprobe': 32},
           'faiss-ivfpq': {'nlist': 1024, 'nprobe': 32, 'refine': 4},
           'faiss-hnsw': {'M': 32, 'ef_search': 256}}


def make_data(folder, n, dim, n_queries, seed=0):
    """Points and queries from one Gaussian mixture, written in chunks."""
    rng = numpy.random.RandomState(seed)
    centres = rng.randn(64, dim).astype(numpy.float32) * 2
    points = numpy.lib.format.open_memmap(
        os.path.join(folder, 'points.npy'), 'w+', numpy.float32, (n, dim))
    for start in range(0, n, 50000):
        m = min(50000, n - start)
        points[start:start + m] = centres[rng.randint(0, 64, m)] + \
            rng.randn(m, dim).astype(numpy.float32)
    points.flush()
    queries = centres[rng.randint(0, 64, n_queries)] + \
        rng.randn(n_queries, dim).astype(numpy.float32)
    numpy.save(os.path.join(folder, 'queries.npy'), queries)


def rss_mib(field='VmRSS'):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


class RawFaiss:
    """faiss's IndexFlatL2 searched directly: no candidates margin, no
    exact ranking (the issue's yardstick)."""

    def __init__(self, points):
        import faiss
        self.index = faiss.IndexFlatL2(points.shape[1])
        self.index.add(numpy.ascontiguousarray(points, numpy.float32))

    def query(self, queries, k):
        sq, idx = self.index.search(queries, k)
        return idx.astype(numpy.int64), numpy.sqrt(numpy.maximum(sq, 0))


def worker(args):
    """One backend in this process (or one shard of it under MPI)."""
    points = numpy.load(os.path.join(args.data, 'points.npy'),
                        mmap_mode='r')
    queries = numpy.load(os.path.join(args.data, 'queries.npy'))
    comm, offset = None, 0
    if args.sharded:
        import chainermn
        comm = chainermn.create_communicator('naive')
        search.share_cores(comm.intra_size)   # as run_dknn --distributed
        offset = len(points) * comm.rank // comm.size
        points = points[offset:len(points) * (comm.rank + 1) // comm.size]
    base = rss_mib()
    start = time.time()
    if args.backend == 'faiss-raw':   # the yardstick: faiss alone
        index = RawFaiss(points)
    else:
        index = search.BACKENDS[args.backend](points, **OPTIONS.get(
            args.backend, {}))
    if comm is not None:
        index = search.ShardedIndex(index, offset, comm)
    build = time.time() - start
    seconds = float('inf')
    # small sizes: the best of up to 5 searches (one is too short to time)
    for _ in range(max(1, min(5, int(1e8 // points.size)))):
        start = time.time()
        idx, _ = index.query(queries, args.k)
        seconds = min(seconds, time.time() - start)
    if comm is None or comm.rank == 0:
        numpy.save(args.out + '.npy', idx)
        with open(args.out, 'w') as f:
            json.dump({'build': build, 'query': seconds,
                       'rss_peak_mib': rss_mib('VmHWM') - base,
                       'points_mib': points.nbytes / 2 ** 20}, f)


def measure(folder, backend, k, sharded=False):
    out = os.path.join(folder, '{}{}.json'.format(
        backend, '-sharded' if sharded else ''))
    cmd = [sys.executable, os.path.abspath(__file__), '--worker',
           '--data', folder, '--backend', backend, '--k', str(k),
           '--out', out] + (['--sharded'] if sharded else [])
    if sharded:
        cmd = [shutil.which('mpiexec', path=os.path.dirname(sys.executable))
               or 'mpiexec', '--allow-run-as-root', '--oversubscribe', '-n',
               '2'] + cmd
    subprocess.run(cmd, check=True, cwd=ROOT)
    r = read_json(out)
    r['indices'] = numpy.load(out + '.npy')
    return r


def rows_for(size, backends, k, n_queries, mpi):
    """Measure every backend at one size; the rows are also saved, so the
    section can be rewritten from every size measured so far."""
    n, dim = (int(x) for x in size.split('x'))
    rows = []
    os.makedirs(os.path.join(ROOT, 'result'), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.join(ROOT, 'result')) as d:
        make_data(d, n, dim, n_queries)
        exact = measure(d, 'brute', k)
        for b in backends:
            r = exact if b == 'brute' else measure(d, b, k)
            rows.append((size, b, 1, r, search.recall_at_k(
                r['indices'], exact['indices'])))
        if mpi:
            for b in ('brute', 'faiss'):
                r = measure(d, b, k, sharded=True)
                rows.append((size, b, 2, r, search.recall_at_k(
                    r['indices'], exact['indices'])))
    save(size, [(s, b, ranks, {k: v for k, v in r.items()
                                if k != 'indices'}, recall)
                for s, b, ranks, r, recall in rows])
    return rows


def save(size, rows):
    """Keep a size's rows: these replace the saved ones of the same backend
    and rank count (a rerun of some backends keeps the others)."""
    os.makedirs(SAVED, exist_ok=True)
    path = os.path.join(SAVED, size + '.json')
    kept = {(r[1], r[2]): r for r in saved_rows([size])}
    kept.update({(r[1], r[2]): r for r in rows})
    order = {b: i for i, b in enumerate(BACKENDS)}
    fileio.save_json(path, sorted(kept.values(), key=lambda r: (
        r[2], order.get(r[1], len(order)))))


def saved_rows(sizes):
    """The rows of every size measured before, in :data:`SIZES` order."""
    rows = []
    for size in sorted(set(sizes), key=lambda s: (tuple(
            int(x) for x in s.split('x')))):
        path = os.path.join(SAVED, size + '.json')
        if os.path.exists(path):
            rows += [tuple(r) for r in read_json(path)]
    return rows


def section(rows, n_queries, k):
    flat = {s: r['query'] for s, b, ranks, r, _ in rows
            if b == 'faiss-raw'}
    lines = ['| points x dims | backend | ranks | build (s) | s per 1000 '
             'queries | / faiss flat alone | recall@{} | peak memory beyond '
             'the points (MiB) | points (MiB) |'.format(k), '|' + '---|' * 9]
    for size, b, ranks, r, recall in rows:
        per = r['query'] * 1000 / n_queries
        lines.append('| {} | {} | {} | {:.2f} | {:.2f} | {:.2f}x | {:.3f} | '
                     '{:.0f} | {:.0f} |'.format(
                         size, b, ranks, r['build'], per,
                         r['query'] / flat[size] if size in flat
                         else float('nan'), recall,
                         r['rss_peak_mib'], r['points_mib']))
    return '\n'.join([
        '## Search at scale (`bench/bench_scale.py`)', '',
        'Command: `python bench/bench_scale.py`. Synthetic activations (a '
        'mixture of 64 Gaussians, seed 0), memory-mapped from a `.npy` '
        'file; {} queries, k = {}; each backend in a fresh process. Options: '
        '{}. "faiss-raw" is faiss\'s IndexFlatL2 searched alone, the '
        'yardstick; every backend of the tool also ranks k + max(8, k/8) '
        'candidates by exact distance (the step the sharded merge needs). '
        '"Peak memory" is the process\'s peak '
        'resident memory after mapping the points, so it counts the pages of '
        'the points it read, any copy the index keeps, and scratch. Ranks 2: '
        '`mpiexec -n 2`, each rank holding half the points, on this 2-core '
        'machine (each rank gets one core: `search.share_cores`). '
        'faiss-ivfpq stores width / 4 bytes of code per point.'.format(
            n_queries, k, json.dumps(OPTIONS)), ''] + lines + [
        ''] + summary(rows))


def summary(rows):
    """Bullets: the default backend against faiss flat alone and against
    brute, and two ranks against one, at every size."""
    query = {(s, b, ranks): r['query'] for s, b, ranks, r, _ in rows}
    sizes = list(dict.fromkeys(s for s, *_ in rows))

    def ratios(a, b):
        return ', '.join('{} {:.2f}x'.format(s, query[a(s)] / query[b(s)])
                         for s in sizes if a(s) in query and b(s) in query)
    d = search.DEFAULT
    return [
        '- The default backend (`{}`) against faiss flat alone (goal: within '
        '1.2x): {}.'.format(d, ratios(lambda s: (s, d, 1),
                                       lambda s: (s, 'faiss-raw', 1))),
        '- The default against `brute`: {}.'.format(ratios(
            lambda s: (s, d, 1), lambda s: (s, 'brute', 1))),
        '- `{}` on 2 ranks against 1 (same 2 cores): {}.'.format(d, ratios(
            lambda s: (s, d, 2), lambda s: (s, d, 1)))]


@cli.script
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sizes', nargs='+', default=list(SIZES))
    p.add_argument('--backends', nargs='+', default=list(BACKENDS))
    p.add_argument('--queries', type=cli.int_in(1, 10 ** 7), default=1000)
    p.add_argument('--k', type=cli.int_in(1, 10 ** 6), default=75)
    p.add_argument('--no-mpi', action='store_true')
    p.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--sharded', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--data', help=argparse.SUPPRESS)
    p.add_argument('--backend', help=argparse.SUPPRESS)
    p.add_argument('--out', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    mpi = not args.no_mpi and shutil.which(
        'mpiexec', path=os.path.dirname(sys.executable)) is not None
    for size in args.sizes:
        rows_for(size, args.backends, args.k, args.queries, mpi)
        write_section('scale', section(saved_rows(SIZES + tuple(args.sizes)),
                                       args.queries, args.k), BENCHMARKS)


if __name__ == '__main__':
    main()
