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
import tokenize
import zipfile
import zlib

import numpy

import errors
from errors import UserError, clip, max_bytes

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


def stream_sha256(f):
    """sha256 of an open binary file from where it stands, read in blocks.
    """
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b''):
        h.update(block)
    return h.hexdigest()


def file_sha256(path, kind='array'):
    """sha256 of a regular file (:func:`errors.open_regular`)."""
    with errors.open_regular(path, kind) as f:
        return stream_sha256(f)


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

    def expect(self, *names):
        """Check, before anything is written, that nothing but a regular
        file stands where each of ``names`` goes (:func:`check_target`):
        a command that would fail at its last file changes nothing."""
        for name in names:
            check_target(self.path(name))

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

    def expect(self, *names):
        return None


def is_leftover(name):
    """True for the name of a temporary file of this module."""
    return _LEFTOVER.match(name) is not None


def clean_leftovers(folder):
    """Remove the temporary files (``.NAME.tmp-XXXXXXXX``) a killed run left
    in ``folder``; call it holding the folder's lock. Returns their names
    (:func:`writing` says what was removed, in one line)."""
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
    return removed


def say_cleared(removed, lock):
    """One line for what a killed run left and this command cleared:
    ``removed`` maps folders to the temporary files removed there, ``lock``
    is the :class:`FolderLock` (its ``stale`` names the dead holder)."""
    counts = [(len(names), folder) for folder, names in removed.items()
              if names]
    if counts:
        line = 'note: removed {} temporary file(s) a killed run left in ' \
            '{}'.format(*counts[0])
        if counts[1:]:
            line += ', and ' + ' and '.join('{} in {}'.format(*c)
                                           for c in counts[1:])
        if lock.stale:
            line += '; took over the lock it left (process {})'.format(
                lock.stale)
        print(line)
    elif lock.stale:
        print('note: took over the lock a killed run left in {} (process {})'
              .format(os.path.dirname(lock.path), lock.stale))


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
        self.stale = None   # the process a killed command's lock names

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
                        self.what, holder if holder.isdigit() else '?')
                ) from None
            if self._still_there(fd):   # not removed by the holder before
                break
            os.close(fd)
        self._note_stale(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def _note_stale(self, fd):
        """A lock file that names a process, yet is not locked, was left by
        a command that was killed: ``stale`` names it (see
        :func:`say_cleared`)."""
        old = os.read(fd, 64).decode('ascii', 'replace').strip()
        self.stale = (old if old.isdigit() else '?') if old else None

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
    with FolderLock(os.path.join(folder, lock_name), folder) as lock:
        say_cleared({sub: clean_leftovers(sub)
                     for sub in [folder] + list(also)}, lock)
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
_CHUNK = 16 << 20          # bytes of an array member inflated at a time
_ZIP_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error,
               KeyError, NotImplementedError, RuntimeError)


def npy_header(stream):
    """(shape, fortran order, dtype) of an ``.npy`` stream, its position
    left at the data; the header itself is bounded (numpy's 10 kB). Any
    header numpy cannot parse is a ``ValueError``."""
    version = numpy.lib.format.read_magic(stream)
    read = {(1, 0): numpy.lib.format.read_array_header_1_0,
            (2, 0): numpy.lib.format.read_array_header_2_0}.get(version)
    if read is None:
        raise ValueError('unsupported .npy version {}'.format(version))
    try:
        shape, fortran, dtype = read(stream)
    except (SyntaxError, tokenize.TokenError, TypeError, KeyError,
            UnicodeDecodeError, RecursionError, MemoryError) as e:
        raise ValueError('cannot parse the .npy header ({})'.format(
            type(e).__name__)) from None
    if not isinstance(shape, tuple) or not all(
            isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError('the .npy header holds no valid shape')
    return shape, fortran, dtype


def _read_data(stream, shape, fortran, dtype):
    """The array an ``.npy`` header announced, inflated into one buffer a
    chunk at a time (never more than the header said)."""
    count = int(numpy.prod(shape, dtype=numpy.int64))
    out = numpy.empty(count, dtype)
    raw = out.view(numpy.uint8).reshape(-1)
    done = 0
    while done < raw.size:
        chunk = stream.read(min(_CHUNK, raw.size - done))
        if not chunk:
            raise EOFError('the data ends after {} of {} bytes'.format(
                done, raw.size))
        raw[done:done + len(chunk)] = numpy.frombuffer(chunk, numpy.uint8)
        done += len(chunk)
    return out.reshape(shape, order='F' if fortran else 'C')


def _members(archive, path, fix):
    """Array name -> ZipInfo of an archive's ``.npy`` members; a repeated
    name or a member that is not ``.npy`` is refused."""
    members = {}
    for info in archive.infolist():
        name = info.filename[:-4] if info.filename.endswith('.npy') else None
        if name is None:
            raise UserError('{}: member {} is not an array; {}'.format(
                path, clip(info.filename), fix))
        if name in members:
            raise UserError('{}: member {} appears twice; {}'.format(
                path, clip(info.filename), fix))
        members[name] = info
    return members


def iter_npz(f, path, fix, expected=None, cap=None,
             what='the arrays expected'):
    """Yield ``(name, array)`` of an ``.npz`` archive's members, each one's
    header checked before its data is inflated.

    Args:
        f: the archive, a binary file object (:func:`errors.open_regular`).
        expected (dict): name -> (shape, dtype kinds) every member must
            have, no member missing or extra; None: any names.
        what (str): what the archive should hold, for messages.
        cap (int): without ``expected``, the most bytes one array may hold.

    Raises:
        UserError: naming the file and the member: a member whose header
            promises other shapes or more bytes than allowed is refused
            before it is inflated (``ZipInfo.file_size`` is checked first).
    """
    try:
        with zipfile.ZipFile(f) as archive:
            members = _members(archive, path, fix)
            for name, info in members.items():   # no pickle, whatever else
                with archive.open(info) as stream:
                    _check_numbers(npy_header(stream)[2], path, name, fix)
            _check_names(members, expected, path, fix, what)
            for name, info in members.items():
                want = expected[name] if expected else None
                limit = _member_bytes(want, cap)
                if info.file_size > limit + (64 << 10):
                    raise UserError('{}: member {} inflates to {} bytes, more '
                                    'than its array can hold; {}'.format(
                                        path, clip(name), info.file_size,
                                        fix))
                with archive.open(info) as stream:
                    header = npy_header(stream)
                    _check_header(header, want, limit, path, name,
                                  fix, what)
                    array = _read_data(stream, *header)
                    if stream.read(1):   # and the end checks the CRC
                        raise ValueError('member {} holds more than its '
                                         'header says'.format(clip(name)))
                yield name, array
    except _ZIP_ERRORS as e:
        raise UserError('{}: not a valid .npz archive ({}); {}'.format(
            path, one_line(e)[:120], fix)) from None


def one_line(exc):
    return ' '.join(str(exc).split())


def _member_bytes(want, cap):
    """The most bytes a member's array may hold."""
    if want is None:
        return cap if cap is not None else max_bytes('array')
    return int(numpy.prod(want[0], dtype=numpy.int64)) * 8


def _check_names(members, expected, path, fix, what):
    if expected is None:
        return
    missing = sorted(set(expected) - set(members))
    extra = sorted(set(members) - set(expected))
    if missing or extra:
        raise UserError('{} does not hold {}: {} {}; {}'.format(
            path, what, 'no array' if missing else 'an extra array',
            clip(missing[0] if missing else extra[0]), fix))


def _check_numbers(dtype, path, name, fix):
    if dtype.hasobject:
        raise UserError('{}: not a valid .npz archive (array {} holds '
                        'pickled objects, which are never loaded); {}'.format(
                            path, clip(name), fix))
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        raise UserError('{}: array {} has dtype {}, not numbers; {}'.format(
            path, clip(name), dtype, fix))


def _check_header(header, want, limit, path, name, fix, what):
    shape, _, dtype = header
    _check_numbers(dtype, path, name, fix)
    if want is not None and (tuple(shape) != tuple(want[0]) or
                             dtype.kind not in want[1]):
        raise UserError('{} does not hold {}: array {} is {} {}, where {} {} '
                        'was expected; {}'.format(
                            path, what, clip(name), dtype.name, tuple(shape),
                            _KIND_NAMES.get(want[1], want[1]),
                            tuple(want[0]), fix))
    size = int(numpy.prod(shape, dtype=numpy.float64)) * dtype.itemsize
    if size > limit:
        raise UserError('{}: array {} would take {} bytes, more than the {} '
                        'allowed; {}'.format(path, clip(name), size, limit,
                                             fix))


_KIND_NAMES = {'f': 'floats', 'iu': 'integers', 'b': 'booleans'}


def load_npz(path, fix, expected=None, kind='array'):
    """Every array of an ``.npz``, never unpickling, never inflating more
    than the headers (checked against ``expected``) allow.

    Args:
        path (str): the archive, read through :func:`errors.open_regular`.
        fix (str): what the user should do if it is unreadable.
        expected (dict): name -> (shape, dtype kinds); see :func:`iter_npz`.
        kind (str): the kind of file whose size cap applies
            (:data:`errors.LIMITS`).

    Returns:
        dict: name -> array (only bool, int, float or unicode arrays).

    Raises:
        UserError: naming the file, for a missing or special file, a file
            that is not a zip archive, a truncated one, a pickle, an object
            array, or an array of another shape than expected.
    """
    with errors.open_regular(path, kind, fix, missing='missing') as f:
        return dict(iter_npz(f, path, fix, expected, max_bytes(kind)))


def is_int(v):
    """True for an int that is not a bool (JSON integers)."""
    return isinstance(v, int) and not isinstance(v, bool)


def read_json(path, fix):
    """A JSON file's content through :func:`errors.load_json`: a missing,
    special, oversized, invalid, repetitive or too deeply nested file gets
    one :class:`UserError` naming it and ``fix``."""
    return errors.load_json(path, fix)
