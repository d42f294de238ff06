"""Nearest-neighbour search backends for the DkNN, behind one interface.

Every backend indexes the rows of an (N, D) float32 array and answers
``query(queries, k)`` with (M, k) int64 indices and (M, k) float32
Euclidean distances, nearest first:

* ``brute``: exact, a chunked matrix multiply (NumPy BLAS);
* ``kdtree``: exact, scikit-learn's KDTree (the original project's);
* ``lsh``: approximate, nearpy random projections (the original's
  ``--lsh``), re-ranked exactly;
* ``faiss``: exact, faiss's flat index (the default, :data:`DEFAULT`);
* ``faiss-ivf``, ``faiss-hnsw``: approximate faiss indexes.

:func:`recall_at_k` measures an approximate backend against exact search.
"""
import os

import numpy

from errors import UserError


class Rows:
    """Some rows of an (N, D) array, seen as an (n, D) array without copying
    them (a memory-mapped array stays on disk): slices, index arrays and
    iteration read the rows they name. The per-label indexes of
    :class:`ByLabel` index the rows of one label each this way."""

    ndim = 2

    def __init__(self, points, rows):
        self.base, self.rows = points, numpy.asarray(rows, numpy.int64)
        self.shape = (len(self.rows), points.shape[1])

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, key):
        return numpy.asarray(self.base[self.rows[key]], numpy.float32)

    def __iter__(self):
        for start in range(0, len(self), 4096):
            yield from self[start:start + 4096]

    def __array__(self, dtype=None):
        return numpy.asarray(self[:], dtype or numpy.float32)


class NeighbourIndex:
    """k-NN over the rows of an (N, D) array (not copied: a memory-mapped
    array stays on disk).

    A backend finds candidates (``_candidates``: k and a margin, ranked by
    its own, float32 or approximate, arithmetic); :meth:`query` then ranks
    them by distance summed in float64, ties going to the lower index. So every
    exact backend returns the same k neighbours, in the same order, and a
    search split over shards (:class:`ShardedIndex`) returns what one
    process would. ``max_bytes`` bounds the scratch of a query's ranking.
    """

    max_bytes = 64 << 20
    refine = 1   # candidates ranked exactly: refine * k + margin(k)

    def __init__(self, points):
        self.points = points if isinstance(points, (numpy.ndarray, Rows)) \
            and points.ndim == 2 else numpy.asarray(points, numpy.float32)

    def __len__(self):
        return len(self.points)

    def _candidates(self, queries, k):
        """(M, k) int64 indices of likely neighbours; -1 for none."""
        raise NotImplementedError

    def query(self, queries, k):
        """(M, k) int64 indices and (M, k) float64 distances, nearest
        first."""
        queries = numpy.asarray(queries, numpy.float32)
        kk = min(len(self), self.refine * k + margin(k))
        idx, dist = rerank(self.points, queries,
                           self._candidates(queries, kk), k, self.max_bytes)
        short = (idx < 0).any(axis=1)   # an approximate index found < k
        if short.any():
            self.topped_up = getattr(self, 'topped_up', 0) + int(short.sum())
            exact = BruteIndex(self.points)._candidates(queries[short], kk)
            idx[short], dist[short] = rerank(self.points, queries[short],
                                             exact, k, self.max_bytes)
        return idx, dist


def margin(k):
    """Candidates beyond k that absorb float32 rounding in a backend's own
    ranking before the exact one (a true neighbour would have to fall more
    than this many places to be missed)."""
    return max(8, k // 8)


def rerank(points, queries, candidates, k, max_bytes=64 << 20):
    """The k of each row's candidates nearest by distance (float32
    differences, squares summed in float64, so each pair's distance is the
    same whatever the batch; ties: the lower index), a chunk of queries at
    a time.

    Args:
        candidates: (M, C) int64 indices into ``points``; -1 is skipped.

    Returns:
        tuple: (M, k) int64 indices, (M, k) float64 distances.
    """
    m, c = candidates.shape
    dim = points.shape[1]
    # per query row: the gathered points and their differences (float32),
    # and einsum's float64 copy of the differences; a few MiB at a time stay
    # in cache (twice as fast as 64 MiB chunks)
    step = max(1, min(max_bytes, 4 << 20) // (16 * max(c * dim, 1)))
    idx = numpy.empty((m, k), numpy.int64)
    dist = numpy.empty((m, k), numpy.float64)
    for start in range(0, m, step):
        cand = candidates[start:start + step]                     # (s, C)
        diff = numpy.asarray(points[numpy.maximum(cand, 0)], numpy.float32) \
            - queries[start:start + step, None, :]               # (s, C, D)
        d = numpy.sqrt(numpy.einsum('scd,scd->sc', diff, diff,
                                    dtype=numpy.float64))        # (s, C)
        d[cand < 0] = numpy.inf
        order = numpy.lexsort((cand, d))[:, :k]                  # (s, k)
        idx[start:start + step] = numpy.take_along_axis(cand, order, 1)
        dist[start:start + step] = numpy.take_along_axis(d, order, 1)
    return idx, dist


class BruteIndex(NeighbourIndex):
    """Exact search by matrix multiply, block by block, in bounded memory.

    For a query q and a point x, ``|q - x|^2 = |q|^2 - 2 q.x + |x|^2``. The
    candidates of a row need only ``|x|^2 - 2 q.x``, since ``|q|^2`` is the
    same for every x of the row. Points and queries are centred on the
    points' mean, so the expansion loses less to float32 rounding; the
    candidates are then ranked exactly (:func:`rerank`).

    The points are used as given (a memory-mapped array is read a block at
    a time, never copied whole): the index adds only their (N,) squared
    norms. A block of ``n`` points is centred into scratch, multiplied by a
    chunk of ``m`` queries, and its top k merged into those queries' running
    top k. ``n`` and ``m`` keep the scratch under ``max_bytes``.
    """

    def __init__(self, points, max_bytes=64 << 20):
        super().__init__(points)
        self.max_bytes = max_bytes
        n, dim = self.points.shape
        # scratch: two centred blocks (n, D) alive at once (the next one is
        # made before the last is freed) in a quarter of max_bytes; a block
        # of products (m, n) in a sixteenth, and argpartition's (m, n) int64
        # indices in an eighth
        self.block = max(1, min(n, max_bytes // 8 // (4 * max(dim, 1))))
        self.mean = numpy.zeros(dim, numpy.float64)                # (D,)
        for start in range(0, n, self.block):
            self.mean += self.points[start:start + self.block].sum(axis=0,
                                                                   dtype='d')
        self.mean = (self.mean / max(n, 1)).astype(numpy.float32)
        self.sq_norms = numpy.concatenate([numpy.einsum(
            'nd,nd->n', x, x) for x in self._blocks()] or [
                numpy.zeros(0, numpy.float32)])                    # (N,)
        self.chunk = max(1, max_bytes // 16 // (4 * self.block))

    def _blocks(self):
        """Each block of points, centred: (n, D) float32 scratch."""
        for start in range(0, len(self.points), self.block):
            yield numpy.asarray(self.points[start:start + self.block],
                                numpy.float32) - self.mean

    def _candidates(self, queries, k):
        queries = queries - self.mean                                # (M, D)
        chunks = [slice(s, min(s + self.chunk, len(queries)))
                  for s in range(0, len(queries), self.chunk)]
        best_idx = [numpy.zeros((c.stop - c.start, 0), numpy.int64)
                    for c in chunks]
        best = [numpy.zeros((c.stop - c.start, 0), numpy.float32)
                for c in chunks]
        for b, x in enumerate(self._blocks()):                   # (n, D)
            offset = b * self.block
            for c, rows in enumerate(chunks):
                part = queries[rows] @ x.T                       # (m, n)
                part *= -2
                part += self.sq_norms[offset:offset + len(x)]  # |x|^2 - 2q.x
                best_idx[c], best[c] = _merge(best_idx[c], best[c], part,
                                              offset, k)
        return numpy.concatenate(best_idx or [numpy.zeros((0, k), 'i8')])


def _merge(best_idx, best, part, offset, k):
    """The k smallest of each row among a running top k ``best`` (with
    indices ``best_idx``) and a new (M, n) block ``part`` of points
    ``offset ..``; ties keep the earlier point."""
    kk = min(k, part.shape[1])
    top = numpy.argpartition(part, kk - 1, axis=1)[:, :kk] if kk < \
        part.shape[1] else numpy.broadcast_to(numpy.arange(part.shape[1]),
                                              part.shape)       # (M, kk)
    values = numpy.concatenate([best, numpy.take_along_axis(
        part, top, axis=1)], axis=1)                            # (M, <= 2k)
    indices = numpy.concatenate([best_idx, top + offset], axis=1)
    if values.shape[1] <= k:
        return indices, values
    keep = numpy.argsort(values, axis=1, kind='stable')[:, :k]
    return (numpy.take_along_axis(indices, keep, axis=1),
            numpy.take_along_axis(values, keep, axis=1))


class KDTreeIndex(NeighbourIndex):
    """scikit-learn's KDTree, queried with the whole batch at once."""

    def __init__(self, points):
        from sklearn.neighbors import KDTree
        super().__init__(points)
        self.tree = KDTree(self.points)

    def _candidates(self, queries, k):
        return self.tree.query(numpy.asarray(queries, numpy.float64), k,
                               return_distance=False).astype(numpy.int64)


class LSHIndex(NeighbourIndex):
    """nearpy random binary projections (``n_tables`` hashes of ``n_bits``).

    Candidates from the matching buckets are re-ranked exactly. A query
    whose buckets hold fewer than k points is topped up by exact search;
    ``self.topped_up`` counts them, and :func:`recall_at_k` measures the
    result against exact search.
    """

    def __init__(self, points, n_bits=10, n_tables=4, seed=0):
        from nearpy import Engine
        from nearpy.hashes import RandomBinaryProjections
        super().__init__(points)
        hashes = [RandomBinaryProjections('rbp%d' % t, n_bits,
                                          rand_seed=seed + t)
                  for t in range(n_tables)]
        self.engine = Engine(self.points.shape[1], lshashes=hashes)
        for i, p in enumerate(self.points):
            self.engine.store_vector(p, i)
        self.topped_up = 0

    def _bucket_mates(self, q):
        keys = set()
        for lshash in self.engine.lshashes:
            for key in lshash.hash_vector(q, querying=True):
                for _, data in self.engine.storage.get_bucket(
                        lshash.hash_name, key):
                    keys.add(data)
        return numpy.fromiter(keys, numpy.int64, len(keys))

    def _candidates(self, queries, k):
        """Every point in a query's buckets (padded with -1); a query
        with fewer than k takes exact search's k."""
        mates = [self._bucket_mates(q) for q in queries]
        width = max([k] + [len(c) for c in mates])
        out = numpy.full((len(queries), width), -1, numpy.int64)
        short = [m for m, c in enumerate(mates) if len(c) < k]
        self.topped_up += len(short)
        if short:
            exact = BruteIndex(self.points)._candidates(queries[short], k)
            for m, row in zip(short, exact):
                mates[m] = row
        for m, c in enumerate(mates):
            out[m, :len(c)] = c
        return out


def _faiss():
    try:
        import faiss
    except ImportError:
        raise UserError('the faiss backends need the faiss-cpu package: '
                        'pip install faiss-cpu (it is in requirements.txt)'
                        ) from None
    return faiss


class FaissIndex(NeighbourIndex):
    """Exact search with faiss's ``IndexFlatL2`` (Johnson, Douze and Jegou,
    2019, "Billion-scale similarity search with GPUs"): blocked BLAS and a
    heap for the top k, threaded."""

    chunk_bytes = 64 << 20   # float32 points converted at a time

    def __init__(self, points):
        super().__init__(points)
        self.index = self._build(_faiss(), self.points.shape[1])
        self._add()

    def _build(self, faiss, dim):
        return faiss.IndexFlatL2(dim)

    def _add(self):
        """The flat index's storage is sized once for the N points and
        filled a chunk at a time: one float32 copy of the points, never
        two (adding chunk by chunk would grow it by doubling, with the old
        and the new storage alive at once)."""
        n, dim = self.points.shape
        if n == 0:
            return
        self.index.codes.resize(n * dim * 4)
        self.index.ntotal = n
        store = _faiss().rev_swig_ptr(self.index.codes.data(), n * dim * 4)
        store = store.view(numpy.float32).reshape(n, dim)   # (N, D), faiss's
        step = self._chunk()
        for start in range(0, n, step):
            store[start:start + step] = self.points[start:start + step]

    def _chunk(self):
        """Points per chunk: ``chunk_bytes`` of float32."""
        return max(1, self.chunk_bytes // (4 * max(self.points.shape[1], 1)))

    def _add_chunks(self):
        """Add the points a chunk at a time (indexes that cluster or link
        them as they come), never a whole float32 copy."""
        step = self._chunk()
        for start in range(0, len(self.points), step):
            self.index.add(numpy.ascontiguousarray(
                self.points[start:start + step], numpy.float32))

    def _candidates(self, queries, k):
        _, idx = self.index.search(numpy.ascontiguousarray(queries), k)
        return idx.astype(numpy.int64)   # -1: an approximate index found
        # fewer than k (query() then takes exact search's)


class FaissIVFIndex(FaissIndex):
    """Approximate: ``nlist`` k-means cells, ``nprobe`` of them searched
    (faiss ``IndexIVFFlat``); a query finds its neighbours only in the cells
    probed. Report its recall (:func:`recall_at_k`)."""

    def __init__(self, points, nlist=256, nprobe=16, seed=0):
        if not 1 <= nprobe <= nlist:
            raise UserError('--nprobe {} must be between 1 and --nlist {}'
                            .format(nprobe, nlist))
        if nlist > len(points):
            raise UserError('--nlist {} is more than the {} points to index; '
                            'lower it'.format(nlist, len(points)))
        self.nlist, self.nprobe, self.seed = nlist, nprobe, seed
        super().__init__(points)

    _add = FaissIndex._add_chunks

    def _build(self, faiss, dim):
        quantizer = faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, self.nlist)
        return self._trained(index, quantizer)

    def _trained(self, index, quantizer):
        """k-means (and codebooks) on a seeded sample of at most
        max(64 nlist, 10000) points, as faiss advises."""
        n = len(self.points)
        take = min(n, max(64 * self.nlist, 10000))
        rows = numpy.sort(numpy.random.RandomState(self.seed).permutation(
            n)[:take]) if take < n else slice(None)
        index.cp.seed = self.seed
        index.train(numpy.ascontiguousarray(self.points[rows], numpy.float32))
        index.nprobe = self.nprobe
        self.quantizer = quantizer   # faiss keeps no Python reference
        return index


class FaissHNSWIndex(FaissIndex):
    """Approximate: a hierarchical navigable small-world graph (Malkov and
    Yashunin, 2018) with ``M`` links per node, searched with a queue of
    ``ef_search`` (faiss ``IndexHNSWFlat``). Report its recall."""

    def __init__(self, points, M=32, ef_search=128):
        if M < 2:
            raise UserError('--hnsw-m must be at least 2, not {}'.format(M))
        self.M, self.ef_search = M, ef_search
        super().__init__(points)

    _add = FaissIndex._add_chunks

    def _build(self, faiss, dim):
        index = faiss.IndexHNSWFlat(dim, self.M)
        index.hnsw.efSearch = self.ef_search
        return index


class FaissIVFPQIndex(FaissIVFIndex):
    """Approximate and compact: IVF cells as :class:`FaissIVFIndex`, each
    point stored as ``pq_m`` bytes of product-quantiser codes (Jegou, Douze
    and Schmid, 2011, faiss ``IndexIVFPQ``). The ``refine`` * k best by
    code are then ranked by exact distance, reading only those rows of the
    (memory-mapped) points: RAM holds the codes, disk the vectors. Report
    its recall."""

    def __init__(self, points, nlist=256, nprobe=16, pq_m=0, refine=4,
                 seed=0):
        dim = numpy.shape(points)[1]
        # default: a byte per 4 dimensions, 1/16 of float32. At 550k points
        # recall@75 is 0.94 for 300-d and 0.93 for 1200-d (BENCHMARKS.md);
        # the earlier cap of 64 bytes gave 0.85 and 0.30 in the same bench
        self.pq_m = pq_m or max(m for m in range(1, max(1, dim // 4) + 1)
                                if dim % m == 0)
        if dim % self.pq_m:
            raise UserError('--pq-m {} must divide the layer width {}'
                            .format(self.pq_m, dim))
        if len(points) < 256:
            raise UserError('faiss-ivfpq needs at least 256 points to train '
                            'its codebooks, not {}; use --backend faiss'
                            .format(len(points)))
        self.refine = refine
        super().__init__(points, nlist, nprobe, seed)

    def _build(self, faiss, dim):
        quantizer = faiss.IndexFlatL2(dim)
        return self._trained(faiss.IndexIVFPQ(quantizer, dim, self.nlist,
                                              self.pq_m, 8), quantizer)


BACKENDS = {'brute': BruteIndex, 'kdtree': KDTreeIndex, 'lsh': LSHIndex,
            'faiss': FaissIndex, 'faiss-ivf': FaissIVFIndex,
            'faiss-hnsw': FaissHNSWIndex, 'faiss-ivfpq': FaissIVFPQIndex}
EXACT = ('brute', 'kdtree', 'faiss')
# the default, chosen by measurement (BENCHMARKS.md, 'Search at scale'):
# 1.9-3.8x faster than brute at every size from 5,920 to 550,000 points,
# and within 1.1x of faiss alone from 100,000 points up
DEFAULT = 'faiss'


class FaissInnerProduct:
    """Exact maximum inner-product search (faiss ``IndexFlatIP``), for the
    relevance metrics that are inner products of embeddings
    (:mod:`toolkit.relevance`): ``query`` gives (M, k) indices and float64
    inner products, largest first."""

    def __init__(self, points):
        faiss = _faiss()
        points = numpy.asarray(points, numpy.float32)
        self.index = faiss.IndexFlatIP(points.shape[1])
        for start in range(0, len(points), 1 << 16):
            self.index.add(numpy.ascontiguousarray(
                points[start:start + (1 << 16)]))

    def __len__(self):
        return self.index.ntotal

    def query(self, queries, k):
        sims, idx = self.index.search(numpy.ascontiguousarray(
            queries, numpy.float32), min(k, len(self)))
        return idx.astype(numpy.int64), sims.astype(numpy.float64)


class ByLabel:
    """One index per label, over the rows that carry it (global indices
    kept), for the DkNN's class-conditional rules; and, merged, the k
    nearest of all labels together, exact (each label's share of the global
    k nearest is among its own k nearest), so one search per layer and
    label serves both kinds of rule.

    Args:
        make: ``make(points) -> NeighbourIndex`` (a backend and its options).
        points: (N, D) activations (a :class:`Rows` view per label: no
            copy).
        labels: (N,) int labels; n_class: how many labels.
        comm, offset: a ChainerMN communicator when ``points`` is this
            rank's shard, rows ``offset ..`` of the whole set; every rank
            then answers every query together.
    """

    def __init__(self, make, points, labels, n_class, comm=None, offset=0):
        labels = numpy.asarray(labels)
        self.comm, self.offset = comm, offset
        self.rows = [numpy.flatnonzero(labels == c) for c in range(n_class)]
        self.parts = [_label_index(make, points, rows) if len(rows) else None
                      for rows in self.rows]
        counts = numpy.array([len(r) for r in self.rows])
        self.sizes = comm.mpi_comm.allreduce(counts) if comm else counts

    def __len__(self):
        return int(self.sizes.sum())

    def query_by_label(self, queries, k):
        """Per label c, (M, min(k, n_c)) global indices and float64
        distances of its nearest rows, nearest first (ties: the lower
        index)."""
        queries = numpy.asarray(queries, numpy.float32)
        out = []
        for c, (rows, part) in enumerate(zip(self.rows, self.parts)):
            kc = int(min(k, len(rows)))
            if part is None or not kc:
                idx = numpy.zeros((len(queries), 0), numpy.int64)
                dist = numpy.zeros((len(queries), 0))
            else:
                idx, dist = part.query(queries, kc)
                idx = rows[idx] + self.offset
            if self.comm is not None:
                idx, dist = _gathered(self.comm, idx, dist,
                                      int(min(k, self.sizes[c])))
            out.append((idx, dist))
        return out

    def query(self, queries, k):
        """(M, k) global indices and distances over every label."""
        return merge(self.query_by_label(queries, k), k)


def _label_index(make, points, rows):
    """A label's index; an approximate backend a label is too small for
    (fewer points than its cells or codebooks need) searches exactly."""
    view = Rows(points, rows)
    try:
        return make(view)
    except UserError:
        return FaissIndex(view)


def merge(parts, k):
    """The k nearest of several (M, k_i) answers, by (distance, index)."""
    idx = numpy.concatenate([i for i, _ in parts], axis=1)
    dist = numpy.concatenate([d for _, d in parts], axis=1)
    order = numpy.lexsort((idx, dist))[:, :k]
    return (numpy.take_along_axis(idx, order, axis=1),
            numpy.take_along_axis(dist, order, axis=1))


def _gathered(comm, idx, dist, k):
    """Every rank's answers merged into the k nearest."""
    return merge(comm.mpi_comm.allgather((idx, dist)), k)


def recall_at_k(approx_idx, exact_idx):
    """Mean share of the exact k neighbours that an approximate search found.
    """
    hits = [len(set(a) & set(e)) for a, e in zip(approx_idx, exact_idx)]
    return float(numpy.mean(hits)) / exact_idx.shape[1]


def share_cores(ranks_here):
    """Give each of the ``ranks_here`` MPI ranks on this machine its share
    of the cores for BLAS (the ``brute`` backend's multiply) and for
    faiss's OpenMP threads. Without it every rank starts a thread per core,
    and two ranks on two cores run three times slower than one.

    Returns:
        int: the threads each rank may use.
    """
    from threadpoolctl import threadpool_limits   # scikit-learn's dependency
    threads = max(1, (os.cpu_count() or 1) // max(1, ranks_here))
    threadpool_limits(threads)
    try:
        import faiss
    except ImportError:
        return threads
    faiss.omp_set_num_threads(threads)
    return threads


class ShardedIndex(NeighbourIndex):
    """One shard of a training set split over MPI ranks (ChainerMN).

    Each rank indexes its own rows ``offset .. offset + n`` with any
    backend. A query goes to every rank; each answers its exact top k (with
    global indices), and the answers are merged by (distance, index): the
    same k neighbours, in the same order, as one process searching the
    whole set (:class:`NeighbourIndex` ranks by exact distance).

    Args:
        local (NeighbourIndex): this rank's index.
        offset (int): global index of its first row.
        comm: a ChainerMN communicator (every rank queries together).
    """

    def __init__(self, local, offset, comm):
        self.local, self.offset, self.comm = local, offset, comm
        self.size = comm.mpi_comm.allreduce(len(local))

    def __len__(self):
        return self.size

    def query(self, queries, k):
        idx, dist = self.local.query(queries, min(k, len(self.local)))
        parts = self.comm.mpi_comm.allgather((idx + self.offset, dist))
        idx = numpy.concatenate([i for i, _ in parts], axis=1)   # (M, <=Sk)
        dist = numpy.concatenate([d for _, d in parts], axis=1)
        order = numpy.lexsort((idx, dist))[:, :k]                 # (M, k)
        return (numpy.take_along_axis(idx, order, axis=1),
                numpy.take_along_axis(dist, order, axis=1))
