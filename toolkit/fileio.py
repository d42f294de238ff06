"""The one floor every file the tool reads or writes goes through.

A data file may be hostile, a result folder may come from a stranger, and a
command may be killed or meet a full disk at any moment. The rules, stated
once in docs/robustness.md and kept here alone:

* **reading** (:func:`open_regular`): a path with a control character is
  refused; anything but a regular file (a folder, a FIFO, a device) is
  refused after ``os.stat`` and before it is opened; each kind of file has
  a size cap (:data:`LIMITS`). JSON refuses a key given twice
  (:func:`read_json`), data files are strict UTF-8 a line at a time
  (:func:`read_lines`), ``.npz`` archives go through
  ``numpy.load(allow_pickle=False)`` with every member's declared size
  checked against the expected shapes before it is read
  (:func:`load_npz`), arrays are memory-mapped after their header and size
  are checked (:func:`load_array`). A file named in a run folder stays
  inside it (:func:`inside`); a data set a run folder names is a plain name
  (:func:`plain_name`).
* **writing** (:class:`Outputs`): every file goes to a hidden temporary
  file beside it and is renamed into place, never over anything but a
  regular file; a command writes the file that records completion last,
  with the sha256 of the others; one command at a time holds a folder
  (:func:`writing`, an ``flock`` on the folder itself: no lock file).

This module imports only the standard library, numpy and :mod:`errors`, so
every other module may use it.
"""
import contextlib
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

from errors import UserError

# kind of file -> (what it is, the variable that raises its cap, the cap)
LIMITS = {
    'json': ('a JSON file', 'DKNN_MAX_JSON_BYTES', 64 << 20),
    'model': ('a model archive', 'DKNN_MAX_MODEL_BYTES', 4 << 30),
    'vectors': ('a word-vector file', 'DKNN_MAX_VECTORS_BYTES', 16 << 30),
    'data': ('a data file', 'DKNN_MAX_DATA_BYTES', 2 << 30),
    'array': ('an array file', 'DKNN_MAX_ARRAY_BYTES', 256 << 30),
}
TMP_TAG = '.tmp-'
_LEFTOVER = re.compile(r'^\..+\.tmp-[a-z0-9_]{8}$')   # our temporary files
_CONTROL = re.compile('[\x00-\x1f\x7f]')
_KINDS = ((stat.S_ISDIR, 'a folder'), (stat.S_ISFIFO, 'a named pipe (FIFO)'),
          (stat.S_ISCHR, 'a character device'),
          (stat.S_ISBLK, 'a block device'), (stat.S_ISSOCK, 'a socket'),
          (stat.S_ISLNK, 'a link'))
_fallocate = os.posix_fallocate   # tests swap it to simulate a full disk


def _with_fix(message, fix):
    return message + ('; ' + fix if fix else '')


def is_int(v):
    """True for an int that is not a bool (JSON integers)."""
    return isinstance(v, int) and not isinstance(v, bool)


# ------------------------------------------------------------------ reading

def max_bytes(kind, error=UserError):
    """The size cap on a file of ``kind`` (a key of :data:`LIMITS`): its
    environment variable when set, else the default."""
    _, env, default = LIMITS[kind]
    value = os.environ.get(env, '').strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise error('{} is not a number of bytes; set it to a positive '
                    'integer such as {}'.format(env, default))
    return int(value)


def size_error(path, kind, cap, error=UserError):
    """The error for a file of ``kind`` over its cap of ``cap`` bytes."""
    what, env, _ = LIMITS[kind]
    return error('{}: larger than the {}-byte cap on {}; to read it, set {} '
                 'to a larger number of bytes'.format(path, cap, what, env))


def check_path(path, error=UserError):
    """``path`` as a string, refusing an empty path and NUL or control
    characters (a line break in a path is a mistake, or an attempt to forge
    a message)."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise error('expected a path, got {}'.format(type(path).__name__)) \
            from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise error('an empty path was given; name a file or folder')
    bad = _CONTROL.search(path)
    if bad:
        raise error('a path may not hold control characters (found {!r}); '
                    'rename it'.format(bad.group()))
    return path


def file_kind(mode):
    """'a folder', 'a named pipe (FIFO)' ... of a non-regular ``st_mode``."""
    return next((k for test, k in _KINDS if test(mode)), 'a special file')


def open_regular(path, kind, fix='', error=UserError, missing='no such file'):
    """Open a regular file for reading in binary, after checking it.

    The path is checked for control characters, then ``os.stat``-ed: a
    folder, FIFO, device or socket is refused before anything is opened,
    and so is a file over the cap of ``kind``. It is opened non-blocking
    and must still be the file that was checked.

    Args:
        kind (str): a key of :data:`LIMITS`.
        fix (str): what the user should do, added to the message.
        error: the :class:`UserError` subclass to raise.
        missing (str): the words for a file that is not there.

    Returns:
        a binary file object; close it (``with``).
    """
    path = check_path(path, error)
    cap = max_bytes(kind, error)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(_with_fix('{}: {}'.format(path, missing), fix)) from None
    except OSError as e:
        raise error(_with_fix('{}: cannot read it ({})'.format(
            path, e.strerror), fix)) from None
    if not stat.S_ISREG(st.st_mode):
        raise error(_with_fix('{}: is {}, not a regular file'.format(
            path, file_kind(st.st_mode)), fix))
    if st.st_size > cap:
        raise size_error(path, kind, cap, error)
    try:   # O_NONBLOCK: a file swapped for a FIFO since the stat cannot hang
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY |
                     os.O_CLOEXEC)
    except OSError as e:
        raise error(_with_fix('{}: cannot read it ({})'.format(
            path, e.strerror), fix)) from None
    now = os.fstat(fd)
    if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (
            st.st_dev, st.st_ino):
        os.close(fd)
        raise error('{}: changed while it was being opened; run again'
                    .format(path))
    return os.fdopen(fd, 'rb')


def read_bytes(path, kind, fix='', error=UserError, missing='no such file'):
    """The whole content of a checked file (:func:`open_regular`), never
    more than its cap even if it grows while read."""
    cap = max_bytes(kind, error)
    with open_regular(path, kind, fix, error, missing) as f:
        data = f.read(cap + 1)
    if len(data) > cap:
        raise size_error(path, kind, cap, error)
    return data


def _unique_keys(path, error):
    def hook(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) < len(keys):
            raise error('{}: a key appears twice in one object; a file of '
                        'this tool never repeats a key'.format(path))
        return dict(pairs)
    return hook


def parse_json(text, path, fix='', error=UserError):
    """JSON ``text`` read from ``path``, a repeated key refused; any problem
    (invalid, too deeply nested) is one ``error`` naming the file."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys(path, error))
    except RecursionError:
        raise error(_with_fix('{}: JSON nested too deeply'.format(path),
                              fix)) from None
    except ValueError as e:
        where = 'line {} column {}'.format(e.lineno, e.colno) \
            if isinstance(e, json.JSONDecodeError) else 'its text'
        raise error(_with_fix('{}: not valid JSON ({})'.format(path, where),
                              fix)) from None


def read_json(path, fix='', error=UserError):
    """A JSON file's content: a regular file under the JSON cap, strict
    UTF-8 (a byte-order mark is dropped), no key twice."""
    data = read_bytes(path, 'json', fix, error)
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        raise error(_with_fix('{}: not valid UTF-8 (byte {})'.format(
            path, e.start + 1), fix)) from None
    return parse_json(text, path, fix, error)


def read_lines(path, fix='', error=UserError):
    """Yield ``(line number, text)`` of a data file: strict UTF-8 a line at
    a time (a leading byte-order mark dropped), a NUL byte refused, never
    more than the data cap in all.

    Raises:
        ``error``: ``PATH:LINE: what is wrong`` (never the line itself).
    """
    cap = max_bytes('data', error)
    with open_regular(path, 'data', fix, error) as f:
        total = 0
        for lineno, raw in enumerate(iter(lambda: f.readline(
                cap - total + 1), b''), 1):
            total += len(raw)
            if total > cap:
                raise size_error(path, 'data', cap, error)
            if lineno == 1 and raw.startswith(b'\xef\xbb\xbf'):
                raw = raw[3:]
            if b'\0' in raw:
                raise error('{}:{}: holds a NUL byte; a data file is plain '
                            'UTF-8 text'.format(path, lineno))
            try:
                yield lineno, raw.decode('utf-8')
            except UnicodeDecodeError as e:
                raise error('{}:{}: not valid UTF-8 (byte {} of the line); '
                            'save the file as UTF-8'.format(
                                path, lineno, e.start + 1)) from None


def text_file(path, error=UserError):
    """A built-in data file opened as text (checked as by
    :func:`open_regular`); undecodable bytes are ignored, as the original
    project read them."""
    return io.TextIOWrapper(open_regular(path, 'data', error=error),
                            encoding='utf-8', errors='ignore')


def inside(folder, relpath, what):
    """``folder/relpath``, refusing a path that leaves ``folder``: an
    absolute path, ``..``, or a symbolic link pointing outside."""
    if not isinstance(relpath, str) or not relpath or \
            os.path.isabs(relpath) or '..' in re.split(r'[\\/]', relpath) \
            or _CONTROL.search(relpath):
        raise UserError('{}: must be a file name inside {}'.format(
            what, folder))
    path = os.path.join(folder, relpath)
    real, root = os.path.realpath(path), os.path.realpath(folder)
    if os.path.commonpath([real, root]) != root:
        raise UserError('{}: {} is a link leading outside the run folder {}; '
                        'refusing to read it'.format(what, path, folder))
    return path


def plain_name(name, what):
    """``name`` if it is a plain file name: no folder part, not ``.`` or
    ``..``, no control character, at most 255 characters."""
    if not isinstance(name, str) or not name or name in ('.', '..') or \
            '/' in name or '\\' in name or _CONTROL.search(name) or \
            len(name) > 255:
        raise UserError('{} must be a plain file name, not a path'.format(
            what))
    return name


# what numpy and zipfile raise on a damaged archive or .npy header
_ZIP_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error,
               KeyError, NotImplementedError, RuntimeError, MemoryError,
               SyntaxError, TypeError, UnicodeDecodeError, RecursionError,
               tokenize.TokenError)
HEADER_BYTES = 64 << 10   # more than any .npy header numpy writes


def load_npz(path, expected, fix, kind='model', error=UserError,
             what='the arrays expected'):
    """Every array of an ``.npz`` archive, through
    ``numpy.load(allow_pickle=False)``, never inflating more than the
    expected arrays take.

    Before a member is read, the zip directory must list exactly the
    expected names, once each, and each member's declared size
    (``ZipInfo.file_size``, which also caps what zipfile inflates) must fit
    its array; after, each array must have its shape and kind of dtype.

    Args:
        expected (dict): name -> (shape, dtype kinds such as ``'f'``).
        kind (str): the kind of file whose size cap applies.
        what (str): what the archive should hold, for messages.

    Returns:
        dict: name -> array.
    """
    out = {}
    with open_regular(path, kind, fix, error, missing='missing') as f:
        try:
            with numpy.load(f, allow_pickle=False) as archive:
                _check_members(archive.zip, expected, path, fix,
                               error, what)
                for name in expected:
                    array = archive[name]
                    _check_array(array, expected[name], path, name, fix,
                                 error, what)
                    out[name] = array
        except UserError:
            raise
        except _ZIP_ERRORS as e:
            raise error('{}: not a valid .npz archive ({}); {}'.format(
                path, type(e).__name__, fix)) from None
    return out


def _check_members(archive, expected, path, fix, error, what):
    """The zip directory, then each member's ``.npy`` header (numpy's own
    reader), against the expected arrays, before any data is read."""
    infos = archive.infolist()
    arrays = [i.filename[:-4] for i in infos if i.filename.endswith('.npy')]
    if len(arrays) != len(infos) or len(set(arrays)) != len(arrays) or \
            set(arrays) != set(expected):
        missing = sorted(set(expected) - set(arrays))
        raise error('{} does not hold {} ({}); {}'.format(
            path, what, 'an array is missing' if missing else
            'an extra, repeated or non-array member', fix))
    for info in infos:
        name = info.filename[:-4]
        shape, kinds = expected[name]
        need = int(numpy.prod(shape, dtype=numpy.int64)) * 8 + HEADER_BYTES
        if info.file_size > need:
            raise error('{}: member {} inflates to {} bytes, more than its '
                        'array can hold; {}'.format(
                            path, name, info.file_size, fix))
        with archive.open(info) as member:
            version = numpy.lib.format.read_magic(member)
            read = {(1, 0): numpy.lib.format.read_array_header_1_0,
                    (2, 0): numpy.lib.format.read_array_header_2_0}.get(
                        version)
            if read is None:
                raise ValueError('unknown .npy version')
            found, _, dtype = read(member)
        _check_array(numpy.empty(0, dtype), (found, kinds), path, name,
                     fix, error, what, shape)


def _check_array(array, want, path, name, fix, error, what, shape=None):
    """Refuse an array (or, with ``shape``, an empty one of the dtype a
    header announced) of another dtype kind or shape."""
    found, kinds = (tuple(want[0]), want[1]) if shape is not None else \
        (tuple(array.shape), want[1])
    shape = tuple(want[0] if shape is None else shape)
    if array.dtype.hasobject or array.dtype.kind not in kinds or \
            found != shape:
        raise error('{} does not hold {}: array {} is {} {}, where {} was '
                    'expected; {}'.format(path, what, name, array.dtype,
                                          found, shape, fix))


def load_array(path, shape, dtype_ok, fix, error=UserError):
    """An ``.npy`` file memory-mapped read-only (``numpy.load(mmap_mode='r',
    allow_pickle=False)``) once it is a regular file under the array cap,
    whose header numpy parses, with ``shape`` and a dtype ``dtype_ok``
    accepts and exactly the size they take."""
    with open_regular(path, 'array', fix, error, missing='missing') as f:
        size = os.fstat(f.fileno()).st_size
    try:
        array = numpy.load(path, mmap_mode='r', allow_pickle=False)
    except _ZIP_ERRORS as e:
        raise error('{}: unreadable ({}); {}'.format(
            path, type(e).__name__, fix)) from None
    if not isinstance(array, numpy.memmap) or \
            tuple(array.shape) != tuple(shape) or \
            array.dtype.hasobject or not dtype_ok(array.dtype) or \
            array.offset + array.nbytes != size:
        raise error('{}: not the array its stamp describes ({} {}); {}'
                    .format(path, getattr(array, 'dtype', '?'),
                            getattr(array, 'shape', '?'), fix))
    return array


def file_sha256(path, kind='array'):
    """sha256 of a regular file (:func:`open_regular`), read in blocks."""
    h = hashlib.sha256()
    with open_regular(path, kind) as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------ writing

def check_target(path):
    """Refuse to write ``path`` when something other than a regular file
    stands there (a folder, a link, a FIFO): it is not ours to replace."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise UserError('{}: {} stands where this command writes a file; '
                        'move it away and run again (nothing was changed)'
                        .format(path, file_kind(mode)))


def temp_path(final_path):
    """A new hidden temporary file beside ``final_path``, with the usual
    permissions (mkstemp's are private)."""
    parent = os.path.dirname(os.path.abspath(final_path))
    fd, path = tempfile.mkstemp(
        prefix='.' + os.path.basename(final_path) + TMP_TAG, dir=parent)
    os.close(fd)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
    return path


def remove_quietly(path):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def save_atomic(path, write, mode='wb'):
    """Write a file through ``write(fileobj)`` into a temporary file beside
    it, then rename: an interrupted run or a full disk leaves the old file
    (or none), never half of one. An OS error names ``path``."""
    check_target(path)
    tmp = temp_path(path)
    try:
        try:
            with open(tmp, mode) as f:
                write(f)
            os.replace(tmp, path)
        except OSError as e:
            e.filename = path
            raise
    except BaseException:
        remove_quietly(tmp)
        raise


def save_json(path, obj):
    """Atomically write ``obj`` as indented JSON."""
    save_atomic(path, lambda f: json.dump(obj, f, indent=2), mode='w')


def npz_writer(arrays):
    """A ``write(fileobj)`` that saves an ``.npz``, built in memory first
    so that a full disk fails cleanly."""
    buf = io.BytesIO()
    numpy.savez(buf, **arrays)
    return lambda f: f.write(buf.getvalue())


class Outputs:
    """The files one command writes into a folder, each atomically.

    ``expect`` checks every target before anything is written; ``write``
    puts a file in place; ``finish`` writes, last, the JSON that records
    completion, with the sha256 of every file written before it (``files``).

    Example::

        out = Outputs(run_dir)
        out.expect('figure.png', 'results.json')
        out.write('figure.png', fig.savefig)
        out.finish('results.json', results)
    """

    def __init__(self, folder):
        self.folder = folder
        self.written = []

    def path(self, name):
        return os.path.join(self.folder, name)

    def expect(self, *names):
        """Refuse, before anything is written, when something other than a
        regular file stands where one of ``names`` goes."""
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
        """Write the completion record ``name``: the dict ``record``, with
        the sha256 of the files written so far added (``files``)."""
        record['files'] = {n: file_sha256(self.path(n))
                           for n in self.written}
        return self.write_json(name, record)


class Discard(Outputs):
    """Outputs that write nothing: the MPI ranks beside rank 0, which alone
    writes."""

    def __init__(self):
        super().__init__(None)

    def write(self, name, write, mode='wb'):
        return None

    def finish(self, name, record):
        return None

    def expect(self, *names):
        return None


FS_IOC_GETFLAGS = 0x80086601
FS_FLAGS = {0x10: 'immutable', 0x20: 'append-only'}


def require_writable(folder, what='the result folder'):
    """Refuse a folder this command could not write whole: missing,
    read-only (``chmod a-w`` honoured even for root), or marked immutable
    or append-only (``chattr``), where a temporary file could be made but
    never renamed or removed."""
    if not os.path.isdir(folder):
        raise UserError('{}: {} is not a folder'.format(folder, what))
    mode = os.stat(folder).st_mode
    if not os.access(folder, os.W_OK) or not mode & 0o222:
        raise UserError('{}: {} is read-only; make it writable (chmod u+w) '
                        'or write elsewhere'.format(folder, what))
    flag = _fs_flag(folder)
    if flag:
        raise UserError('{}: {} is {} (chattr); a command could not replace '
                        'or remove its files there; write elsewhere'.format(
                            folder, what, flag))


def _fs_flag(folder):
    """'immutable' or 'append-only' when the folder is marked so."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        flags = int.from_bytes(fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))[:4],
                               'little')
    except OSError:   # a file system without these flags
        return None
    finally:
        os.close(fd)
    return next((name for bit, name in FS_FLAGS.items() if flags & bit),
                None)


@contextlib.contextmanager
def folder_lock(folder):
    """One writer at a time: an exclusive ``flock`` on the folder itself
    (no lock file: nothing to leave, plant or link). The OS drops it when
    the process dies; a second command is refused at once."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError('{} is being written by another command; wait for '
                            'it to finish, or write elsewhere'.format(
                                folder)) from None
        yield
    finally:
        os.close(fd)


def clean_leftovers(folder):
    """Remove the temporary files (``.NAME.tmp-XXXXXXXX``) a killed command
    left in ``folder``; call it holding the folder's lock. Returns how many
    were removed."""
    removed = 0
    for entry in os.listdir(folder) if os.path.isdir(folder) else ():
        path = os.path.join(folder, entry)
        if _LEFTOVER.match(entry) and not os.path.isdir(path):
            os.unlink(path)
            removed += 1
    return removed


def is_leftover(name):
    """True for the name of a temporary file of this module."""
    return _LEFTOVER.match(name) is not None


@contextlib.contextmanager
def writing(folder, comm=None, also=()):
    """Hold ``folder`` for a command that writes into it: check that it can
    be written, lock it, remove a killed command's temporary files (there
    and in the sub-folders ``also``, said in one line), and yield an
    :class:`Outputs`. On an MPI rank other than 0 (``comm``), yield a
    :class:`Discard`."""
    if comm is not None and comm.rank != 0:
        yield Discard()
        return
    require_writable(folder)
    with folder_lock(folder):
        removed = sum(clean_leftovers(sub) for sub in [folder] + list(also))
        if removed:
            print('note: removed {} temporary file(s) a killed command left '
                  'in {}'.format(removed, folder))
        yield Outputs(folder)
