"""What every script shares: one-line errors, checked flags and devices.

A script's ``main(argv=None)`` is wrapped by :func:`script`. The project's
own errors (:class:`UserError`) and the OS and format errors a user can
cause (a missing file, a folder where a file was expected, a corrupt
archive, a full disk, a read-only folder) end as one line
``error: ...`` on stderr and a non-zero exit. Anything else is a bug and
keeps its traceback. Flags are checked for their range while parsing
(:func:`int_at_least`, :func:`float_in`), so a bad value stops the script
before it reads or writes anything.
"""
import argparse
import contextlib
import errno
import functools
import hashlib
import json
import os
import re
import signal
import sys
import threading
import time
import zipfile
import zlib

import chainer

import dknn
import search

from errors import UserError

MAX_BATCH = 1 << 16   # inputs in one forward pass (--batchsize)


# What to do about an OS error, by errno.
_OS_HINTS = {
    errno.ENOSPC: 'no space left on the device; free some space and run '
                  'again (no file was left half-written)',
    errno.EDQUOT: 'disk quota exceeded; free some space and run again '
                  '(no file was left half-written)',
    errno.EACCES: 'permission denied; make the folder writable or pass '
                  'another one',
    errno.EPERM: 'operation not permitted; make the folder writable or pass '
                 'another one',
    errno.EROFS: 'the file system is read-only; write elsewhere',
    errno.ENOENT: 'no such file or folder',
    errno.EISDIR: 'is a folder, but a file was expected',
    errno.ENOTDIR: 'is a file, but a folder was expected',
}


def describe(exc):
    """One line for an error a user can cause, or None for a bug."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in _OS_HINTS:
        where = exc.filename if exc.filename is not None else 'a file'
        return '{}: {}'.format(where, _OS_HINTS[exc.errno])
    if isinstance(exc, OSError):
        return '{}: {}'.format(exc.filename or 'a file',
                               exc.strerror or exc)
    if isinstance(exc, (zipfile.BadZipFile, EOFError, zlib.error)):
        return 'a file is corrupt or truncated ({}: {})'.format(
            type(exc).__name__, exc)
    if isinstance(exc, MemoryError):
        return 'out of memory; lower --batchsize or use a smaller data set'
    if isinstance(exc, KeyboardInterrupt):
        return 'interrupted; nothing was changed'
    return None


@contextlib.contextmanager
def _sigterm_as_exit():
    """Turn SIGTERM into SystemExit while a script runs, so a killed run
    still removes its temporary files."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        if _mpi_job() and _told():   # mpiexec ends the job another began
            os._exit(1)
        raise SystemExit('error: stopped by signal {}; nothing was '
                         'changed'.format(signum))
    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def one_line(text):
    """``text`` with its line breaks (from a path, or a library's message)
    made spaces, so the error is one line."""
    return ' '.join(str(text).split())


# control characters (C0, DEL, C1), line and paragraph separators, bidi
# overrides and lone surrogates: shown escaped, never sent to a terminal
_UNPRINTABLE = re.compile('[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e'
                          '\u2066-\u2069\ud800-\udfff]')


def printable(text):
    """``text`` safe for a terminal: every control character (from a label,
    a text or a path of someone's data) shown as its escape, ``\\x1b`` or
    ``\\n``, so data can neither forge a line nor move the cursor."""
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], str(text))


def _close_progress_bars():
    """End unfinished tqdm bars so the error line starts a line."""
    from tqdm import tqdm
    for bar in list(getattr(tqdm, '_instances', [])):
        bar.close()


_COMM = []   # the ChainerMN communicator of --distributed, once made


def is_rank0():
    """True unless this is an MPI rank other than 0 (which prints nothing).
    """
    return not _COMM or _COMM[0].rank == 0


def _abort_others(line):
    """Under MPI, one rank's end must stop every rank (the others would
    wait for it forever): print its line, then abort the MPI job. Only
    the first caller on a rank prints and aborts."""
    import sys
    import traceback
    if not _ABORTING.acquire(blocking=False):
        return
    if line is None:
        traceback.print_exc()
    else:
        print('error: ' + printable(one_line(line)), file=sys.stderr)
    sys.stderr.flush()
    _tell_others()
    _COMM[0].mpi_comm.Abort(1)


_NOTICE = 30907   # the tag of "I abort the job": the others end quietly


def _tell_others():
    """Tell the other ranks this one aborts the job, so that the signal
    the MPI launcher then sends them ends them without a line of their
    own: the job shows one ``error:`` line, the cause."""
    from mpi4py import MPI
    comm = _COMM[0].mpi_comm
    requests = [comm.Isend([bytearray(1), MPI.BYTE], dest=r, tag=_NOTICE)
                for r in range(comm.size) if r != comm.rank]
    deadline = time.time() + 0.5
    while not MPI.Request.Testall(requests) and time.time() < deadline:
        time.sleep(0.01)


def _told(wait=0.2):
    """True when another rank said it aborts the job (see
    :func:`_tell_others`), waiting up to ``wait`` seconds."""
    from mpi4py import MPI
    deadline = time.time() + wait
    while time.time() < deadline:
        if _COMM[0].mpi_comm.Iprobe(source=MPI.ANY_SOURCE, tag=_NOTICE):
            return True
        time.sleep(0.02)
    return False


_ABORTING = threading.Lock()   # held by the one thread that aborts


def _exit_line(exc):
    """The line of a ``SystemExit`` that ends one MPI rank."""
    if isinstance(exc.code, str):
        return exc.code[len('error: '):] if exc.code.startswith('error: ') \
            else exc.code
    return 'rank {} exited (status {}) before the others'.format(
        _COMM[0].rank, exc.code)


def _mpi_job():
    return bool(_COMM) and _COMM[0].size > 1


def script(main):
    """Decorate a script's ``main(argv=None)``: user errors become one
    ``error: ...`` line (``SystemExit`` with a message, exit status 1).
    Under MPI any rank that stops (an error, an exit, a signal) aborts the
    whole job, so no other rank waits for it forever."""
    @functools.wraps(main)
    def wrapped(argv=None):
        with _sigterm_as_exit():
            try:
                return main(argv)
            except SystemExit as e:
                if _mpi_job():   # main returns; an exit inside is early
                    _abort_others(_exit_line(e))
                raise
            except (Exception, KeyboardInterrupt) as e:
                line = describe(e)
                if _mpi_job():
                    _abort_others(line)
                if line is None:
                    raise
                _close_progress_bars()
                raise SystemExit('error: ' + printable(one_line(line))) \
                    from None
    return wrapped


def _watch_signals():
    """Under MPI: a rank blocked inside an MPI call never runs a Python
    signal handler, so the handler's C part wakes a thread (through
    ``signal.set_wakeup_fd``) that prints the error line and aborts the
    job at once."""
    if threading.current_thread() is not threading.main_thread():
        return
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write)
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: None)   # the thread acts

    def watch():
        while True:
            got = os.read(read, 64)
            hit = [n for n in got if n in STOP_SIGNALS]
            if hit and _told():   # the launcher ends the job: be quiet
                os._exit(1)
            if hit:
                _abort_others('rank {} stopped by signal {} (sent to it, or '
                              'by mpiexec when another rank died); the MPI '
                              'job is aborted'.format(_COMM[0].rank, hit[0]))
    threading.Thread(target=watch, daemon=True, name='mpi-signals').start()


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


# ------------------------------------------------------------- flag types

def _parsed(cast, text, what):
    try:
        return cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            'expected {}, got {!r}'.format(what, text[:40])) from None


def int_in(low, high=None):
    """argparse type: an int in [low, high] (no upper bound: None)."""
    words = 'an integer in [{}, {}]'.format(low, high) if high is not None \
        else 'an integer of at least {}'.format(low)

    def parse(text):
        value = _parsed(int, text, words)
        if value < low or high is not None and value > high:
            raise argparse.ArgumentTypeError('must be {}, got {}'.format(
                words, value))
        return value
    return parse


def path_arg(text):
    """argparse type: a path, not empty and without control characters."""
    if not text:
        raise argparse.ArgumentTypeError('expected a path, got an empty one')
    if re.search('[\x00-\x1f\x7f]', text):
        raise argparse.ArgumentTypeError('a path may not hold control '
                                         'characters')
    return text


def folder_arg(text):
    """argparse type: an existing folder (a data folder)."""
    path_arg(text)
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError('{} is not a folder'.format(
            printable(text)))
    return text


def tag_arg(text):
    """argparse type: a ``--tag`` (letters, digits, ``_.-``, 1 to 40)."""
    from toolkit import runfiles
    if not runfiles.TAG.fullmatch(text):
        raise argparse.ArgumentTypeError(
            'expected 1 to 40 letters, digits, _ . or -, starting with a '
            'letter or digit')
    return text


def add_tag_flag(p):
    p.add_argument('--tag', type=tag_arg, default=None,
                   help='keep these results beside others: every file this '
                        'command writes gets _TAG before its extension')


def add_metric_flag(p):
    """``--neighbour-metric``: how the training examples shown beside an
    input are found (:mod:`toolkit.relevance`)."""
    from toolkit import relevance
    p.add_argument('--neighbour-metric', default=relevance.DEFAULT,
                   choices=list(relevance.METRICS),
                   help='the relevance metric of the training examples '
                        'shown: {} (the default) passes the tests of '
                        'Hanawa et al. best on our models; l2 is the '
                        "paper's (docs/interpretations.md)".format(
                            relevance.DEFAULT))


def once(values, flag):
    """Refuse a value given twice to ``flag`` (two seeds that are one)."""
    if len(set(values)) < len(values):
        raise UserError('{} names a value twice ({}); name each once'.format(
            flag, ', '.join(map(str, values))))
    return values


def int_at_least(low):
    """argparse type: an int >= ``low``."""
    return int_in(low)


def float_in(low, high, low_open=False, high_open=False):
    """argparse type: a finite float in an interval, e.g. [0, 1)."""
    interval = '{}{}, {}{}'.format('(' if low_open else '[', low, high,
                                   ')' if high_open else ']')

    def parse(text):
        value = _parsed(float, text, 'a number')
        if not (low < value if low_open else low <= value) or \
                not (value < high if high_open else value <= high):
            raise argparse.ArgumentTypeError(
                'must be in {}, got {}'.format(interval, text))
        return value
    return parse


def add_example_flags(p, first=50):
    """``--index I ...`` / ``--first N`` / ``--all``: which test examples."""
    which = p.add_mutually_exclusive_group()
    which.add_argument('--index', type=int_at_least(0), nargs='+',
                       help='test examples by index')
    which.add_argument('--first', type=int_at_least(1), default=first,
                       help='the first N test examples')
    which.add_argument('--all', action='store_true',
                       help='the whole test set')


def chosen_examples(args, n_test):
    """The test indices :func:`add_example_flags` chose, checked."""
    if args.all:
        return list(range(n_test))
    if args.index:
        bad = [i for i in args.index if not 0 <= i < n_test]
        if bad:
            raise UserError(
                '--index {} is out of range: the test set has {} examples '
                '(0..{})'.format(bad[0], n_test, n_test - 1))
        return list(args.index)
    return list(range(min(args.first, n_test)))


LAUNCHER_RANK = ('OMPI_COMM_WORLD_RANK', 'PMIX_RANK', 'PMI_RANK')


def launcher_rank():
    """This process's rank as mpiexec numbered it (0 outside MPI), read
    before MPI starts: a flag error is then said once, by rank 0."""
    for name in LAUNCHER_RANK:
        value = os.environ.get(name, '')
        if value.isdigit():
            return int(value)
    return 0


def _let_rank0_say_it(seconds=10):
    """A flag error on a rank other than 0, which says nothing: wait up to
    ``seconds`` for rank 0 to print the same error and end the job (the
    launcher then stops this rank, quietly). Exiting at once could let the
    launcher stop rank 0 before it has said anything."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: os._exit(2))
    time.sleep(seconds)


def parse(parser, argv):
    """Parse ``argv``; with ``--verbose`` (where the parser has it) print
    the settings as JSON. Otherwise they go only to the results file.
    Under mpiexec only rank 0 prints usage, help and flag errors (every
    rank still exits on them)."""
    if launcher_rank():
        parser._print_message = lambda message, file=None: None
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        if e.code and launcher_rank():
            _let_rank0_say_it()
        raise
    if getattr(args, 'verbose', False) and is_rank0():
        print(json.dumps(vars(args), indent=2))
    return args


def settings_of(args):
    """The parsed flags as a JSON-ready dict, for a results file."""
    return dict(vars(args))


def parser(doc):
    """An ArgumentParser described by a script's docstring (its first
    paragraph), with ``--verbose``."""
    p = argparse.ArgumentParser(
        description=doc.strip().split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--verbose', action='store_true',
                   help='print every setting before starting')
    return p


DISTRIBUTED = ('split the training set of the DkNN over the MPI ranks of '
               'mpiexec (ChainerMN); rank 0 writes')


def add_switches(p, switches):
    """On/off flags from a table: flag -> help."""
    for flag, text in switches.items():
        p.add_argument(flag, action='store_true', help=text)


def add_run_flags(p):
    """``--model-setup`` and ``--data-dir``: the trained run a script reads.
    """
    p.add_argument('--model-setup', required=True, metavar='ARGS_JSON',
                   type=path_arg, help="the trained run's args.json")
    p.add_argument('--data-dir', default=None, type=path_arg,
                   help="where the run's data is: the data folder of a "
                        "built-in data set (default: $DKNN_DATA_DIR, else "
                        "data/ in the clone, else ../shared/data beside it), "
                        "or your own data file or folder, or the folder "
                        "holding it (default: where training read it, "
                        "checked by its sha256)")
    p.add_argument('--verify-cache', action='store_true',
                   help='hash the cached activations against the sha256 '
                        'they were written with before using them (by '
                        'default only their headers and sizes are checked)')


# ------------------------------------------------------------ DkNN settings

def add_dknn_flags(p, scoring_both=False):
    """The flags of :class:`dknn.Settings`, one default each, for every
    script that builds a DkNN. ``scoring_both`` adds ``--scoring both``."""
    d = dknn.Settings()
    g = p.add_argument_group('DkNN (see docs/dknn.md)')
    g.add_argument('--k', type=int_in(1, 10 ** 6), default=d.k,
                   help='neighbours per layer (or in total: --pool total)')
    g.add_argument('--layers', default=d.layers,
                   help='"last" (the paper), "all", or names joined by ","')
    g.add_argument('--pool', default=d.pool, choices=dknn.POOLS,
                   help='k neighbours in each layer (the original code), or '
                        'k in total over the layers')
    g.add_argument('--backend', default=d.backend,
                   choices=sorted(search.BACKENDS),
                   help='nearest-neighbour search')
    g.add_argument('--lsh', action='store_true',
                   help='alias for --backend lsh (the original flag)')
    g.add_argument('--scoring', default='both' if scoring_both else d.scoring,
                   choices=dknn.SCORINGS + (('both', 'all') if scoring_both
                                            else ()),
                   help='conformity shares (Wallace et al.), conformal '
                        'p-values (Papernot and McDaniel), or the graded '
                        'rules of class-conditional distances (graded, '
                        'graded-conformal; docs/dknn.md)' +
                        ('; both: the paper\'s two, all: all four'
                         if scoring_both else ''))
    g.add_argument('--batchsize', type=int_in(1, MAX_BATCH),
                   default=d.batchsize, help='inputs per forward pass')
    g.add_argument('--nlist', type=int_in(1, 1 << 20), default=d.nlist,
                   help='faiss-ivf, faiss-ivfpq: k-means cells')
    g.add_argument('--nprobe', type=int_in(1, 1 << 20), default=d.nprobe,
                   help='faiss-ivf, faiss-ivfpq: cells searched per query '
                        '(<= --nlist)')
    g.add_argument('--pq-m', type=int_in(0, 1 << 16), default=d.pq_m,
                   help='faiss-ivfpq: bytes of code per point (must divide '
                        'the layer width; 0: the largest divisor <= width/4)')
    g.add_argument('--refine', type=int_in(1, 1 << 10), default=d.refine,
                   help='faiss-ivfpq: refine * k candidates by code are '
                        'ranked by exact distance')
    g.add_argument('--hnsw-m', type=int_in(1, 1 << 10), default=d.hnsw_m,
                   help='faiss-hnsw: links per node')
    g.add_argument('--ef-search', type=int_in(1, 1 << 20),
                   default=d.ef_search,
                   help='faiss-hnsw: search queue length')


def dknn_settings(args):
    """The :class:`dknn.Settings` the flags of :func:`add_dknn_flags` name;
    ``--scoring both`` gives the conformity rule (see :func:`scorings`)."""
    return dknn.Settings(
        k=args.k, layers=args.layers, pool=args.pool,
        backend='lsh' if args.lsh else args.backend,
        scoring=scorings(args)[0], batchsize=args.batchsize,
        nlist=args.nlist, nprobe=args.nprobe, pq_m=args.pq_m,
        refine=args.refine, hnsw_m=args.hnsw_m, ef_search=args.ef_search)


def scorings(args):
    """The scoring rules ``--scoring`` names: ``both`` the paper's two,
    ``all`` all four."""
    return {'both': dknn.PAPER, 'all': dknn.SCORINGS}.get(
        args.scoring, (args.scoring,))


# ---------------------------------------------------------------- devices

def add_device_args(p):
    """``--device`` (Chainer specifier) and ``--gpu`` (the original's alias).
    """
    p.add_argument('--device', default='@numpy',
                   help='Chainer device: @numpy (CPU, also -1), '
                        '@cupy:0 or 0 (GPU 0), @intel64')
    p.add_argument('--gpu', '-g', type=int, default=None,
                   help='deprecated alias: GPU id, negative for CPU')


def device_from_args(args):
    """The Chainer device named by ``--device`` / ``--gpu``, made current."""
    spec = args.device
    if args.gpu is not None:
        spec = '@cupy:{}'.format(args.gpu) if args.gpu >= 0 else '@numpy'
    if isinstance(spec, str) and spec.lstrip('-').isdigit():
        spec = int(spec)
    if isinstance(spec, int) and spec < 0:
        spec = '@numpy'
    try:
        device = chainer.get_device(spec)
        device.use()
    except Exception as e:
        raise UserError('cannot use device {!r}: {}'.format(spec, e))
    return device


def agree(comm, fingerprint):
    """Every MPI rank must work on the same settings, run and data: each
    rank's ``fingerprint`` (JSON-ready) is compared across the ranks before
    any work. If one differs, rank 0 ends the job with one line (the others
    wait to be stopped), instead of a deadlock or a silently wrong result.
    """
    if comm is None or comm.size == 1:
        return
    mine = hashlib.sha256(json.dumps(fingerprint, sort_keys=True,
                                     default=str).encode()).hexdigest()
    every = comm.mpi_comm.allgather(mine)
    odd = [r for r, h in enumerate(every) if h != every[0]]
    if not odd:
        return
    if comm.rank == 0:
        raise UserError('the MPI ranks were not given the same settings, run '
                        'and data (rank {} differs from rank 0); start every '
                        'rank with the same command and files'.format(odd[0]))
    comm.mpi_comm.barrier()   # rank 0 aborts the job; nothing to say here


def fingerprint(args, run):
    """What every MPI rank of one command must share: its flags, the run's
    settings, model file and data stamps."""
    setup = {k: v for k, v in run.setup.items() if k != 'run_dir'}
    return {'flags': settings_of(args), 'setup': setup,
            'model': run.model_sha256}


def communicator(name='naive'):
    """A ChainerMN communicator over the ranks of ``mpiexec`` (for
    ``--distributed``); one line saying how to install MPI if it is
    missing. ``naive`` and ``flat`` run on the CPU, ``pure_nccl`` on
    GPUs."""
    try:
        import chainermn
        comm = chainermn.create_communicator(name)   # imports mpi4py
    except ImportError:
        raise UserError('--distributed needs MPI: make install-mpi (pip '
                        'install -r requirements-mpi.txt), then run with '
                        'mpiexec -n N') from None
    _COMM[:] = [comm]
    if comm.size > 1:   # at once: a rank may be told to stop any time now
        _watch_signals()
    else:
        print('note: --distributed with one MPI rank; start it with '
              'mpiexec -n N to split the work')
    search.share_cores(comm.intra_size)   # ranks on this machine share it
    if comm.rank != 0:   # one screen: rank 0 prints; errors still show
        from tqdm import tqdm
        tqdm.__init__ = functools.partialmethod(tqdm.__init__, disable=True)
        sys.stdout = open(os.devnull, 'w')
    return comm
