"""The error a user can fix, and the one gate every input file passes.

:class:`UserError` is a bad flag, a bad file, a folder that is not a run.
Scripts print it as one ``error: ...`` line with no traceback (see
:func:`toolkit.cli.script`).

Every file the tool reads goes through :func:`open_regular` (or
:func:`read_bytes`, :func:`read_text`, :func:`load_json` on top of it),
because a file may come from a stranger:

* a path holding NUL or another control character is refused;
* anything but a regular file (a folder, a FIFO, a device, a socket) is
  refused after ``os.stat`` and before it is opened: a FIFO is never
  opened, so a read never hangs;
* its size is capped per kind of file (:data:`LIMITS`), the cap and the
  environment variable that raises it named in the message;
* JSON is parsed with duplicate keys refused and nesting bounded
  (:data:`MAX_JSON_DEPTH`), so a hostile file ends in a ``UserError``,
  never in a ``RecursionError``.

Every module may import this one; it imports only the standard library.
"""
import json
import os
import re
import stat


class UserError(Exception):
    """Bad input a user can fix; scripts print it as one line, no traceback.
    """


# kind of file -> (what it is, the variable that raises its cap, the cap)
LIMITS = {
    'json': ('a JSON file', 'DKNN_MAX_JSON_BYTES', 64 << 20),
    'model': ('a model archive', 'DKNN_MAX_MODEL_BYTES', 4 << 30),
    'vectors': ('a word-vector file', 'DKNN_MAX_VECTORS_BYTES', 16 << 30),
    'data': ('a data file', 'DKNN_MAX_DATA_BYTES', 2 << 30),
    'array': ('an array file', 'DKNN_MAX_ARRAY_BYTES', 256 << 30),
}
MAX_JSON_DEPTH = 32    # brackets inside brackets; the tool writes at most 6
SHOWN = 50             # characters of a file's content a message may show

_KINDS = ((stat.S_ISDIR, 'a folder'), (stat.S_ISFIFO, 'a named pipe (FIFO)'),
          (stat.S_ISCHR, 'a character device'),
          (stat.S_ISBLK, 'a block device'), (stat.S_ISSOCK, 'a socket'))
_CONTROL = re.compile('[\x00-\x1f\x7f]')


def clip(text, n=SHOWN):
    """``text`` quoted (``repr``: control characters escaped) and cut to
    ``n`` characters, for messages that show what a file holds."""
    text = str(text)
    return repr(text[:n] + ('...' if len(text) > n else ''))


def _with_fix(message, fix):
    return message + ('; ' + fix if fix else '')


def max_bytes(kind, error=UserError):
    """The size cap on a file of ``kind`` (a key of :data:`LIMITS`): its
    environment variable when set, else the default."""
    _, env, default = LIMITS[kind]
    value = os.environ.get(env)
    if not value:
        return default
    if not re.fullmatch('[0-9]+', value.strip()) or int(value) < 1:
        raise error('{}={} is not a number of bytes; set it to a positive '
                    'integer such as {}'.format(env, clip(value), default))
    return int(value)


def size_error(path, kind, cap, error=UserError):
    """The error for a file of ``kind`` over its cap of ``cap`` bytes."""
    what, env, _ = LIMITS[kind]
    return error('{}: larger than the {}-byte cap on {}; to read it, set {} '
                 'to a larger number of bytes'.format(path, cap, what, env))


def check_path(path, error=UserError):
    """``path`` as a string, refusing NUL and control characters (a line
    break in a path is a mistake, or an attempt to forge a message)."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise error('expected a path, got {}'.format(clip(path))) from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    bad = _CONTROL.search(path)
    if bad:
        raise error('{}: a path may not hold control characters (found {!r}); '
                    'rename it'.format(clip(path, 200), bad.group()))
    return path


def file_kind(mode):
    """'a folder', 'a named pipe (FIFO)' ... of a non-regular ``st_mode``."""
    return next((k for test, k in _KINDS if test(mode)), 'a special file')


def _refuse_special(st, path, fix, error):
    if stat.S_ISDIR(st.st_mode):
        raise error(_with_fix('{}: is a folder, not a file'.format(path),
                              fix))
    if not stat.S_ISREG(st.st_mode):
        raise error(_with_fix('{}: is {}, not a regular file'.format(
            path, file_kind(st.st_mode)), fix))


def open_regular(path, kind, fix='', error=UserError,
                 missing='no such file'):
    """Open a regular file for reading in binary, after checking it.

    The path is checked for control characters, then ``os.stat``-ed: a
    folder, FIFO, device or socket is refused before anything is opened,
    and so is a file over the cap of ``kind``. The file is opened
    non-blocking and checked again (it must be the file that was checked).

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
    _refuse_special(st, path, fix, error)
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
    chunks, total = [], 0
    with open_regular(path, kind, fix, error, missing) as f:
        while total <= cap:   # in blocks: no buffer of the cap's size
            chunk = f.read(min(1 << 20, cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    if total > cap:
        raise size_error(path, kind, cap, error)
    return b''.join(chunks)


def read_text(path, kind, fix='', error=UserError):
    """A checked file decoded as UTF-8 (a byte-order mark is dropped)."""
    data = read_bytes(path, kind, fix, error)
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        raise error(_with_fix('{}: not valid UTF-8 (byte {})'.format(
            path, e.start + 1), fix)) from None


def json_depth(text, stop=None):
    """How deeply the arrays and objects of JSON ``text`` nest (0 for a
    bare value), counting no further than ``stop``; strings are skipped,
    so brackets inside them do not count."""
    # an unclosed string runs to the end: no retries, linear time
    brackets = re.sub(r'[^\[\]{}]', '', re.sub(r'"(?:[^"\\]|\\.)*"?', '',
                                                text))
    depth = deepest = 0
    for c in brackets:
        depth += 1 if c in '[{' else -1
        deepest = max(deepest, depth)
        if stop is not None and deepest > stop:
            break
    return deepest


def _unique_keys(path, error):
    def hook(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise error('{}: key {} appears twice in one object; a '
                            'file of this tool never repeats a key'.format(
                                path, clip(key)))
            seen.add(key)
        return dict(pairs)
    return hook


def parse_json(text, path, fix='', error=UserError,
               max_depth=MAX_JSON_DEPTH):
    """JSON ``text`` read from ``path``: duplicate keys refused, nesting
    bounded by ``max_depth``; any problem is one ``error`` naming the file.
    """
    if json_depth(text, max_depth) > max_depth:
        raise error(_with_fix('{}: JSON nested more than {} levels deep'
                              .format(path, max_depth), fix))
    try:
        return json.loads(text, object_pairs_hook=_unique_keys(path, error))
    except RecursionError:
        raise error(_with_fix('{}: JSON nested too deeply'.format(path),
                              fix)) from None
    except ValueError as e:
        raise error(_with_fix('{}: not valid JSON ({})'.format(
            path, str(e).split('\n')[0][:120]), fix)) from None


def load_json(path, fix='', error=UserError, max_depth=MAX_JSON_DEPTH):
    """A JSON file's content, read through :func:`read_text` and
    :func:`parse_json`: one ``error`` naming the file for a missing,
    special, oversized, undecodable, invalid, repetitive or too deeply
    nested file."""
    text = read_text(path, 'json', fix, error)
    return parse_json(text, path, fix, error, max_depth)
