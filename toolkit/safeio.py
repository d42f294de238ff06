"""Files written whole, one writer per folder, and untrusted files read safely.

A result folder may come from a stranger, and a run may be killed or hit a
full disk at any moment. So:

* every file is written to a hidden temporary file beside it and renamed
  into place (:func:`save_atomic`); a command that writes several files
  writes the one that records completion last, with the sha256 of the
  others (:class:`Outputs`), so a reader can tell a whole set from a
  partial one. Nothing found in a folder is ever replayed: no journal;
* one command at a time writes a folder (:class:`FolderLock`, a plain
  ``flock``); the temporary files of a killed run are removed by the next
  command that holds the lock, which says so;
* ``.npz`` archives are read with ``allow_pickle=False`` and only numeric
  or string arrays are accepted (:func:`load_npz`), and a path named in a
  file must stay inside its folder (:func:`inside`).
"""
import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import stat
import tempfile
import zipfile
import zlib

import numpy

from errors import UserError

TMP_TAG = '.tmp-'
# ".NAME.tmp-XXXXXXXX": a temporary file or folder of this module
_LEFTOVER = re.compile(r'^\.(?P<name>.+)\.tmp-[a-z0-9_]{8}$')
_fallocate = os.posix_fallocate


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_path(final_path):
    """A hidden temporary file beside ``final_path``, with the usual
    permissions (mkstemp's are private)."""
    parent = os.path.dirname(os.path.abspath(final_path))
    fd, path = tempfile.mkstemp(
        prefix='.' + os.path.basename(final_path) + TMP_TAG, dir=parent)
    os.close(fd)
    os.chmod(path, 0o666 & ~_umask())
    return path


def remove_quietly(path):
    """Remove a file (or link) if it is there."""
    with contextlib.suppress(FileNotFoundError):
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


def check_target(path):
    """Refuse to write ``path`` when something other than a regular file
    stands there (a folder, a link, a FIFO): it is not ours to replace."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise UserError('{}: a {} stands where this command writes a file; '
                        'move it away and run again (nothing was changed)'
                        .format(path, 'folder' if stat.S_ISDIR(mode) else
                                'link' if stat.S_ISLNK(mode) else
                                'special file'))


def save_atomic(path, write, mode='wb'):
    """Write a file through ``write(fileobj)`` into a temporary file beside
    it, then rename: an interrupted run leaves no half-written file."""
    check_target(path)
    tmp = temp_path(path)
    try:
        with _naming(path):
            with open(tmp, mode) as f:
                write(f)
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise


def save_json(path, obj):
    """Atomically write ``obj`` as indented JSON."""
    save_atomic(path, lambda f: json.dump(obj, f, indent=2), mode='w')


def npz_writer(arrays):
    """A ``write(fileobj)`` that saves an ``.npz``: built in memory, then
    written at once, so a full disk fails cleanly instead of inside a
    half-written zip."""
    buf = io.BytesIO()
    numpy.savez(buf, **arrays)
    return lambda f: f.write(buf.getvalue())


def file_sha256(path):
    """sha256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


class Outputs:
    """The files one command writes into a folder, each atomically.

    ``write`` puts a file in place at once; ``finish`` writes the JSON
    that records completion, last, with the sha256 of every file written
    before it (key ``files``). A folder whose record is missing, or whose
    hashes disagree with its files, holds a partial set.

    Example::

        out = Outputs(run_dir)
        out.write('figure.png', fig.savefig)
        out.finish('results.json', results)
    """

    def __init__(self, folder):
        self.folder = folder
        self.written = []

    def path(self, name):
        return os.path.join(self.folder, name)

    def write(self, name, write, mode='wb'):
        """Write ``name`` (a file name, or ``sub/name``) through
        ``write(fileobj)``; returns its path."""
        final = self.path(name)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        save_atomic(final, write, mode)
        self.written.append(name)
        return final

    def write_json(self, name, obj):
        return self.write(name, lambda f: json.dump(obj, f, indent=2), 'w')

    def finish(self, name, record):
        """Write the completion record ``name``: the dict ``record``, to
        which the sha256 of the files written so far is added (``files``).
        """
        record['files'] = {n: file_sha256(self.path(n))
                           for n in self.written}
        return self.write_json(name, record)


class Discard(Outputs):
    """Outputs that write nothing: for the MPI ranks that compute beside
    rank 0, which alone writes."""

    def __init__(self):
        super().__init__(None)

    def write(self, name, write, mode='wb'):
        return None

    def finish(self, name, record):
        return None


def clean_leftovers(folder):
    """Remove the temporary files (``.NAME.tmp-XXXXXXXX``) a killed run left
    in ``folder``; call it holding the folder's lock. Returns their names.
    """
    try:
        entries = os.listdir(folder)
    except FileNotFoundError:
        return []
    removed = []
    for entry in entries:
        path = os.path.join(folder, entry)
        if _LEFTOVER.match(entry) and (os.path.islink(path) or
                                       os.path.isfile(path)):
            os.unlink(path)
            removed.append(entry)
    if removed:
        print('note: removed {} temporary file(s) a killed run left in {}'
              .format(len(removed), folder))
    return removed


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
    """One writer at a time: an exclusive ``flock`` on a hidden lock file,
    which the OS drops if the process dies. A second command gets a
    :class:`UserError` at once, naming the process that holds the lock.

    Args:
        path (str): the lock file, e.g. ``RUN/.lock``.
        what (str): the folder it guards, for the message.
    """

    def __init__(self, path, what):
        self.path, self.what, self.fd = path, what, None

    def __enter__(self):
        while True:
            try:   # O_NOFOLLOW: a planted link could point anywhere
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT |
                             os.O_NOFOLLOW, 0o666 & ~_umask())
            except OSError as e:
                if e.errno != errno.ELOOP:
                    raise
                raise UserError('{} is a link, not a lock file of this tool; '
                                'remove it and run again'.format(self.path))
            st = os.fstat(fd)   # a hard link (or a FIFO) is no lock file
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                os.close(fd)
                raise UserError('{} is a link, not a lock file of this tool; '
                                'remove it and run again'.format(self.path))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode('ascii', 'replace').strip()
                os.close(fd)
                raise UserError(
                    '{} is being written by another command (process {}); '
                    'wait for it to finish, or write elsewhere'.format(
                        self.what, holder or '?')) from None
            if self._still_there(fd):   # not removed by the holder before
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def _still_there(self, fd):
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def __exit__(self, *exc):
        remove_quietly(self.path)
        os.close(self.fd)
        self.fd = None
        return False


@contextlib.contextmanager
def writing(folder, lock_name='.lock', comm=None, also=()):
    """Hold ``folder`` for a command that writes into it: check that it is
    writable, take its lock, remove a killed run's temporary files (there
    and in the sub-folders ``also``), and
    yield an :class:`Outputs`. On an MPI rank other than 0 (``comm``), only
    yield a :class:`Discard`."""
    if comm is not None and comm.rank != 0:
        yield Discard()
        return
    require_writable(folder)
    with FolderLock(os.path.join(folder, lock_name), folder):
        for sub in [folder] + list(also):
            clean_leftovers(sub)
        yield Outputs(folder)


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
        if odd:   # a member that is not .npy comes back as bytes
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
