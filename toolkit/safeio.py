"""Files written whole and read safely.

A result folder may come from a stranger, and a run may be killed or hit a
full disk at any moment. So:

* every file is written to a hidden temporary file beside it and renamed
  into place (:func:`save_atomic`); a command's files are committed
  together, all new or all old (:class:`OutputSet`);
* a killed run's temporary files are removed by the next run
  (:func:`clean_leftovers`);
* one command at a time writes a folder (:class:`FolderLock`);
* ``.npz`` archives are read with ``allow_pickle=False`` and only numeric
  or string arrays are accepted (:func:`load_npz`), and a path named in a
  file must stay inside its folder (:func:`inside`).
"""
import contextlib
import errno
import fcntl
import io
import json
import os
import random
import re
import shutil
import stat
import tempfile
import zipfile
import zlib

import numpy

from errors import UserError

TMP_TAG = '.tmp-'
_TMP_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789_'  # as tempfile's names
# ".NAME.tmp-XXXXXXXX": a temporary file or folder of this module
_LEFTOVER = re.compile(r'^\.(?P<name>.+)\.tmp-[a-z0-9_]{8}$')
JOURNAL = '.outputs-journal.json'   # an OutputSet commit in progress
_fallocate = os.posix_fallocate


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_path(final_path, folder=False):
    """A hidden temporary file (or folder) beside ``final_path``, with the
    usual permissions (mkstemp's are private)."""
    parent = os.path.dirname(os.path.abspath(final_path))
    prefix = '.' + os.path.basename(final_path) + TMP_TAG
    if folder:
        path = tempfile.mkdtemp(prefix=prefix, dir=parent)
        os.chmod(path, 0o777 & ~_umask())
        return path
    fd, path = tempfile.mkstemp(prefix=prefix, dir=parent)
    os.close(fd)
    os.chmod(path, 0o666 & ~_umask())
    return path


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


@contextlib.contextmanager
def _naming(final):
    """Report an OS error on a temporary file under its final name."""
    try:
        yield
    except OSError as e:
        if e.filename is None or TMP_TAG in str(e.filename):
            e.filename = final
        raise


def save_atomic(path, write, mode='wb'):
    """Write a file through ``write(fileobj)`` into a temporary file beside
    it, then rename: an interrupted run leaves no half-written file."""
    tmp = temp_path(path)
    try:
        with _naming(path):
            with open(tmp, mode) as f:
                write(f)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def save_json(path, obj):
    """Atomically write ``obj`` as indented JSON."""
    save_atomic(path, lambda f: json.dump(obj, f, indent=2), mode='w')


def clean_leftovers(folder, names=None):
    """Remove the temporary files and folders (``.NAME.tmp-XXXXXXXX``) that
    a killed run left in ``folder``: all of them, or only those of the final
    names in ``names``. Call it holding the folder's lock, after
    :func:`recover`."""
    try:
        entries = os.listdir(folder)
    except FileNotFoundError:
        return []
    removed = []
    for entry in entries:
        m = _LEFTOVER.match(entry)
        if m and (names is None or m.group('name') in names):
            _remove(os.path.join(folder, entry))
            removed.append(entry)
    return removed


def npy_map(out, name, shape, dtype):
    """A new ``.npy`` file of an :class:`OutputSet`, memory-mapped for
    writing, its disk space allocated first: a full disk raises ENOSPC
    here rather than killing the process (SIGBUS) on a later write."""
    path = out.reserve(name)
    with _naming(os.path.join(out.folder, name)):
        array = numpy.lib.format.open_memmap(path, mode='w+', dtype=dtype,
                                             shape=shape)
        with open(path, 'r+b') as f:
            size = os.fstat(f.fileno()).st_size
            if size:
                _fallocate(f.fileno(), 0, size)
    return array


def npz_writer(arrays):
    """A ``write(fileobj)`` for :meth:`OutputSet.write` that saves an
    ``.npz``: built in memory, then written at once, so a full disk fails
    cleanly instead of inside a half-written zip."""
    buf = io.BytesIO()
    numpy.savez(buf, **arrays)
    return lambda f: f.write(buf.getvalue())


class OutputSet:
    """Several files of one command, committed as one unit.

    ``write`` renders a file into a hidden temporary file at once (a
    renderer error or a full disk stops the command there, before anything
    is replaced); ``discard`` marks an older output that the new set does
    not include. On leaving the ``with`` block without an error every file
    is renamed into place; if a rename fails the files already replaced are
    restored, so the folder holds the old set or the new set, never a mix.

    Example::

        with OutputSet(run_dir) as out:
            out.write('results.json', lambda f: json.dump(r, f), 'w')
            out.write('figure.png', fig.savefig)
    """

    def __init__(self, folder):
        self.folder = folder
        self.pending = {}     # final name -> temporary path
        self.discarded = []
        self.made = []        # sub-folders created for new files

    def write(self, name, write, mode='wb'):
        """Render ``name`` (a file name, or ``sub/name``) now, through
        ``write(fileobj)``; it replaces the old file on commit."""
        final = os.path.join(self.folder, name)
        parent = os.path.dirname(final)
        if not os.path.isdir(parent):
            os.makedirs(parent)
            self.made.append(parent)
        tmp = temp_path(final)
        self.pending[name] = tmp
        with _naming(final):
            with open(tmp, mode) as f:
                write(f)
        return final

    def reserve(self, name):
        """A temporary path that will replace ``name`` on commit; the
        caller writes it (e.g. a memory-mapped array)."""
        final = os.path.join(self.folder, name)
        parent = os.path.dirname(final)
        if not os.path.isdir(parent):
            os.makedirs(parent)
            self.made.append(parent)
        self.pending[name] = temp_path(final)
        return self.pending[name]

    def write_json(self, name, obj):
        return self.write(name, lambda f: json.dump(obj, f, indent=2), 'w')

    def discard(self, name):
        if name not in self.pending:
            self.discarded.append(name)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        committed = False
        try:
            if exc_type is None:
                self._commit()
                committed = True
        finally:
            for tmp in self.pending.values():
                _remove(tmp)
            for folder in reversed(self.made if not committed else []):
                if not os.listdir(folder):
                    os.rmdir(folder)
        return False

    def _commit(self):
        """Rename every file into place, journaled: a crash or kill halfway
        is rolled back by the next command (:func:`recover`)."""
        plan = []
        for name in list(self.pending) + self.discarded:
            final = os.path.join(self.folder, name)
            plan.append({'final': name, 'new': _rel(self.folder,
                                                    self.pending.get(name)),
                         'backup': _rel(self.folder, _fresh_temp_name(final))
                         if os.path.lexists(final) else None})
        save_atomic(os.path.join(self.folder, JOURNAL),
                    lambda f: json.dump(plan, f), 'w')
        try:
            for step in plan:
                if step['backup']:
                    os.replace(self._abs(step['final']),
                               self._abs(step['backup']))
                if step['new']:
                    os.replace(self._abs(step['new']),
                               self._abs(step['final']))
        except BaseException:
            _roll_back(self.folder, plan)
            os.unlink(os.path.join(self.folder, JOURNAL))
            raise
        os.unlink(os.path.join(self.folder, JOURNAL))   # the commit point
        for step in plan:
            if step['backup']:
                _remove(self._abs(step['backup']))

    def _abs(self, rel):
        return os.path.join(self.folder, rel)


def _rel(folder, path):
    return None if path is None else os.path.relpath(path, folder)


def _fresh_temp_name(final):
    """An unused temporary name beside ``final``, not created (so that its
    existence tells whether the rename to it happened)."""
    while True:
        path = os.path.join(os.path.dirname(final), '.{}{}{}'.format(
            os.path.basename(final), TMP_TAG, ''.join(
                random.choice(_TMP_CHARS) for _ in range(8))))
        if not os.path.lexists(path):
            return path


def _roll_back(folder, plan):
    """Undo the renames of a commit plan that did not finish."""
    for step in reversed(plan):
        final = os.path.join(folder, step['final'])
        if step['backup'] and os.path.lexists(os.path.join(folder,
                                                           step['backup'])):
            os.replace(os.path.join(folder, step['backup']), final)
        elif not step['backup'] and step['new'] and \
                not os.path.lexists(os.path.join(folder, step['new'])) and \
                os.path.lexists(final):
            os.unlink(final)   # the new file had been renamed into place


def recover(folder):
    """Roll back a commit that a killed command left half done (its journal
    is still there); returns True if there was one. Call it holding the
    folder's lock, before :func:`clean_leftovers`."""
    path = os.path.join(folder, JOURNAL)
    if not os.path.lexists(path):
        return False
    plan = read_json(path, 'delete it if no command is running')
    ok = isinstance(plan, list) and all(
        isinstance(s, dict) and set(s) == {'final', 'new', 'backup'}
        for s in plan)
    for step in plan if ok else []:
        inside(folder, step['final'], path)
        for key in ('new', 'backup'):
            ok = ok and (step[key] is None or (
                isinstance(step[key], str) and _LEFTOVER.match(
                    os.path.basename(step[key])) is not None and
                inside(folder, step[key], path) is not None))
    if not ok:
        raise UserError('{}: not a commit journal of this tool; delete it if '
                        'no command is running'.format(path))
    _roll_back(folder, plan)
    os.unlink(path)
    return True


class Discard:
    """An :class:`OutputSet` that writes nothing: for the MPI ranks that
    compute beside rank 0, which alone writes."""

    folder = None

    def write(self, name, write, mode='wb'):
        return None

    def write_json(self, name, obj):
        return None

    def discard(self, name):
        pass

    def reserve(self, name):
        raise RuntimeError('a read-only command cannot reserve files')

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def writable(folder):
    """True when ``folder`` may be written: the OS allows it and, so that
    ``chmod a-w`` is honoured even for root, some write bit is set."""
    try:
        mode = os.stat(folder).st_mode
    except OSError:
        return False
    return os.access(folder, os.W_OK) and bool(mode & 0o222)


def require_writable(folder, what='the result folder'):
    if not os.path.isdir(folder):
        raise UserError('{}: {} is not a folder'.format(folder, what))
    if not writable(folder):
        raise UserError('{}: {} is read-only; make it writable (chmod u+w) '
                        'or copy the run elsewhere'.format(folder, what))


class FolderLock:
    """One writer at a time: an exclusive ``flock`` on a hidden lock file
    (the OS drops it if the process dies). A second command gets a
    :class:`UserError` at once, naming the process that holds the lock.
    The lock file is removed on release.

    Args:
        path (str): the lock file, e.g. ``RUN/.lock``.
        what (str): the folder it guards, for the message.
    """

    def __init__(self, path, what):
        self.path, self.what, self.fd = path, what, None

    def __enter__(self):
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = os.read(fd, 64).decode('ascii', 'replace').strip()
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise UserError(
                    '{} is being written by another command (process {}); '
                    'wait for it to finish, or write elsewhere'.format(
                        self.what, holder or '?')) from None
            # the holder before us may have removed the file meanwhile
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def _open(self):
        """The lock file, refusing a link (which could point anywhere)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
                         0o666 & ~_umask())
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            fd = None
        st = os.fstat(fd) if fd is not None else None
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            if fd is not None:
                os.close(fd)
            raise UserError('{} is a link, not a lock file of this tool; '
                            'remove it and run again'.format(self.path))
        return fd

    def __exit__(self, *exc):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None
        return False


# ------------------------------------------------------------------ reading

def inside(folder, relpath, what):
    """``folder/relpath``, refusing a path that leaves ``folder``: an
    absolute path, ``..``, or a symbolic link pointing outside."""
    if not isinstance(relpath, str) or not relpath or \
            os.path.isabs(relpath) or '..' in re.split(r'[\\/]', relpath):
        raise UserError('{}: {} must be a file name inside {}, got {!r}'
                        .format(what, relpath if isinstance(relpath, str)
                                else 'the path', folder, relpath))
    path = os.path.join(folder, relpath)
    real, root = os.path.realpath(path), os.path.realpath(folder)
    if os.path.commonpath([real, root]) != root:
        raise UserError('{}: {} is a link to {}, outside the run folder {}; '
                        'refusing to read it'.format(what, path, real, folder))
    return path


_NUMERIC_KINDS = 'biufU'  # bool, ints, floats, unicode stamps


def load_npz(path, fix):
    """Every array of an ``.npz``, read with ``allow_pickle=False``.

    Args:
        path (str): the archive.
        fix (str): what the user should do if it is unreadable.

    Returns:
        dict: name -> array (only bool, int, float or unicode arrays).

    Raises:
        UserError: naming the file, for a missing file, a file that is not a
            zip archive, a truncated one, a pickle or an object array.
    """
    if not os.path.isfile(path):
        raise UserError('{}: {}; {}'.format(
            path, 'is a folder' if os.path.isdir(path) else 'missing', fix))
    try:
        archive = numpy.load(path, allow_pickle=False)
        if not isinstance(archive, numpy.lib.npyio.NpzFile):
            raise UserError('{}: a single .npy array, not an .npz archive; {}'
                            .format(path, fix))
        with archive:
            arrays = {name: archive[name] for name in archive.files}
        odd = [n for n, a in arrays.items()
               if not isinstance(a, numpy.ndarray)]
        if odd:
            raise UserError('{}: member {!r} is not an array; {}'.format(
                path, odd[0], fix))
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error,
            KeyError) as e:
        raise UserError('{}: not a valid .npz archive ({}); {}'.format(
            path, str(e).split('\n')[0][:120], fix)) from None
    bad = [n for n, a in arrays.items() if a.dtype.kind not in _NUMERIC_KINDS]
    if bad:
        raise UserError('{}: array {!r} has dtype {}, not numbers; {}'.format(
            path, bad[0], arrays[bad[0]].dtype, fix))
    return arrays


def read_json(path, fix):
    """A JSON file's content; a missing, unreadable or invalid file gets one
    :class:`UserError` naming it and ``fix``."""
    if not os.path.isfile(path):
        raise UserError('{}: {}; {}'.format(
            path, 'is a folder' if os.path.isdir(path) else 'no such file',
            fix))
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError('{}: not valid JSON ({}); {}'.format(
            path, str(e)[:120], fix)) from None
