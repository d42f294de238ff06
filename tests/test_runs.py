"""Opening a run folder safely: checked files, no pickles, no paths outside,
and outputs written whole."""
import hashlib
import json
import os
import pickle
import shutil
import signal
import stat
import subprocess
import sys

import numpy
import pytest

import nets
from toolkit import runfiles
from toolkit import runs
from toolkit import fileio
from errors import UserError
from conftest import RUN_FILES, copy_run


def test_load_round_trip_and_moved_folder(tiny_run, tmp_path):
    run = runs.load(tiny_run)
    assert run.setup['model'] == 'cnn' and run.vocab['<eos>'] == 0
    assert run.model.encoder.embed.W.shape == (len(run.vocab),
                                               run.setup['n_embed'])
    assert run.path('temperature') == os.path.join(run.folder,
                                                   'temperature.json')
    # the folder can be moved: paths in args.json are relative
    moved = runs.load(copy_run(tiny_run, tmp_path / 'moved'))
    numpy.testing.assert_array_equal(moved.model.encoder.embed.W.array,
                                     run.model.encoder.embed.W.array)
    assert moved.splits.calib_indices == run.splits.calib_indices


def edit_setup(setup_path, **changes):
    setup = json.load(open(setup_path))
    setup.update(changes)
    with open(setup_path, 'w') as f:
        json.dump(setup, f)


def test_model_that_does_not_match_args_json(run_copy):
    edit_setup(run_copy, unit=30)
    with pytest.raises(runs.RunError, match='does not hold the model'):
        runs.load(run_copy)


class Boom:
    """Unpickling this writes a file: proof that a pickle was executed."""
    target = None

    def __reduce__(self):
        return (open, (Boom.target, 'w'))


def test_a_pickled_model_is_refused_before_unpickling(run_copy, tiny_run,
                                                      tmp_path):
    Boom.target = str(tmp_path / 'pwned')
    model = os.path.join(os.path.dirname(run_copy), 'best_model.npz')
    with open(model, 'wb') as f:          # a bare pickle named .npz
        pickle.dump(Boom(), f)
    with pytest.raises(UserError, match='best_model.npz: not a valid .npz'):
        runs.load(run_copy)
    numpy.savez(model, W=numpy.array([Boom()], dtype=object))  # inside
    with pytest.raises(UserError, match='best_model.npz does not hold the '
                                        'model'):
        runs.load(run_copy)
    honest = runs.load(tiny_run)
    arrays = {n: p.array for n, p in runfiles.model_arrays(
        honest.model).items()}
    first = sorted(arrays)[0]
    arrays[first] = numpy.array([Boom()] * arrays[first].size,
                                dtype=object).reshape(arrays[first].shape)
    numpy.savez(model, **arrays)   # every name right, one array pickled
    with pytest.raises(UserError, match='best_model.npz does not hold the '
                                        'model.*is object'):
        runs.load(run_copy)
    assert not os.path.exists(Boom.target)


@pytest.mark.parametrize('key,value', [
    ('model_path', '../../../../etc/passwd'),
    ('vocab_path', '/etc/passwd'),
    ('calib_path', 'sub/../../calib.json')])
def test_paths_in_args_json_stay_inside_the_folder(run_copy, key, value):
    edit_setup(run_copy, **{key: value})
    with pytest.raises(UserError, match='must be a file name inside'):
        run = runs.load(run_copy)
        run.splits


def test_a_symlink_leaving_the_folder_is_refused(run_copy, tmp_path):
    outside = tmp_path / 'elsewhere.npz'
    folder = os.path.dirname(run_copy)
    shutil.move(os.path.join(folder, 'best_model.npz'), str(outside))
    os.symlink(str(outside), os.path.join(folder, 'best_model.npz'))
    with pytest.raises(UserError, match='outside the run folder'):
        runs.load(run_copy)


@pytest.mark.parametrize('content,match', [
    ('{"k": 5, "layers": ["mlp1"]}', 'not the args.json of a finished '
                                     'training run'),
    ('[1, 2]', 'expected a JSON object'),
    ('{"dataset": ', 'not valid JSON'),
])
def test_foreign_or_truncated_args_json(run_copy, content, match):
    with open(run_copy, 'w') as f:
        f.write(content)
    with pytest.raises(UserError, match=match):
        runs.load(run_copy)


@pytest.mark.parametrize('key,value', [
    ('unit', 'many'), ('unit', True), ('dropout', 1.5), ('n_class', 7),
    ('dataset', 'sst9'), ('label_names', 'ab')])
def test_args_json_values_are_checked(run_copy, key, value):
    edit_setup(run_copy, **{key: value})
    with pytest.raises(runs.RunError, match='args.json'):
        runs.load(run_copy)


def test_vocab_and_calib_are_checked(run_copy):
    folder = os.path.dirname(run_copy)
    vocab_path = os.path.join(folder, 'vocab.json')
    vocab = json.load(open(vocab_path))
    word = next(w for w in vocab if vocab[w] > 1)
    json.dump(dict(vocab, **{word: 10 ** 6}), open(vocab_path, 'w'))
    with pytest.raises(runs.RunError, match='distinct ids'):
        runs.load(run_copy)
    json.dump(vocab, open(vocab_path, 'w'))
    calib_path = os.path.join(folder, 'calib.json')
    for bad in ([10 ** 6], [3, 1], {'a': 1}, [1.5]):
        json.dump(bad, open(calib_path, 'w'))
        with pytest.raises(runs.RunError, match='sorted distinct indices'):
            runs.load(run_copy).splits


def test_temperature_file_is_checked(run_copy):
    run = runs.load(run_copy)
    with pytest.raises(UserError, match='python scaling.py --model-setup'):
        run.temperature
    for bad in ('{"temperature": -1}', '{"temperature": "2"}', '[2]',
                '{"temperature": 1e-320}'):
        with open(run.path('temperature'), 'w') as f:
            f.write(bad)
        with pytest.raises(UserError, match='must be a number in'):
            runfiles.read_temperature(run.folder)


# -------------------------------------------------------- the forward cache

def test_forward_passes_are_cached_and_stamped(run_copy):
    run = runs.load(run_copy)
    with run.writing() as out:
        test = run.forward('test', out=out)
    fresh = nets.predict_dataset(run.model, run.splits.test, None)
    numpy.testing.assert_array_equal(test.logits, fresh.logits)
    folder = os.path.join(run.folder, 'activations')
    assert sorted(os.listdir(folder)) == [
        'test.json', 'test.labels.npy', 'test.layer.cnn.npy',
        'test.layer.mlp1.npy', 'test.logits.npy']
    again = runs.load(run_copy).forward('test')     # read back, mapped
    assert isinstance(again.logits, numpy.memmap)
    numpy.testing.assert_array_equal(again.layers['mlp1'],
                                     fresh.layers['mlp1'])
    numpy.testing.assert_array_equal(again.labels, fresh.labels)
    # another model file: the stamp no longer matches, so it is recomputed
    # (in memory: no Outputs, so the stale cache is left as it was)
    cached = tree(folder)
    model = os.path.join(run.folder, 'best_model.npz')
    arrays = dict(numpy.load(model))
    arrays['output/b'] = arrays['output/b'] + 1.0
    numpy.savez(model, **arrays)
    changed = runs.load(run_copy).forward('test')
    assert not isinstance(changed.logits, numpy.memmap)
    numpy.testing.assert_allclose(changed.logits, fresh.logits + 1.0,
                                  rtol=1e-5)
    assert tree(folder) == cached


def test_forward_without_outputs_writes_nothing(run_copy):
    run = runs.load(run_copy)
    with run.writing():
        calib = run.forward('calib')
    assert not isinstance(calib.logits, numpy.memmap)
    assert sorted(os.listdir(run.folder)) == sorted(RUN_FILES)


def test_a_command_that_fails_later_keeps_a_whole_cache(run_copy):
    """Files are put in place as they come: a failure after the forward
    pass leaves its cache whole (stamped last, so read back) and no
    completion record."""
    run = runs.load(run_copy)
    with pytest.raises(RuntimeError):
        with run.writing() as out:
            run.forward('calib', out=out)
            raise RuntimeError('later failure')
    assert sorted(os.listdir(run.folder)) == sorted(RUN_FILES +
                                                    ('activations',))
    assert temporaries(run.folder) == []
    again = runs.load(run_copy).forward('calib')
    assert isinstance(again.logits, numpy.memmap)


def test_the_cache_stamp_is_written_last(run_copy, monkeypatch):
    run = runs.load(run_copy)
    real, order = os.replace, []

    def replace(src, dst):
        order.append(os.path.basename(dst))
        return real(src, dst)
    monkeypatch.setattr(os, 'replace', replace)
    with run.writing() as out:
        run.forward('test', out=out)
    assert sorted(order[:-2]) == ['test.layer.cnn.npy', 'test.layer.mlp1.npy',
                                  'test.logits.npy']
    assert order[-2:] == ['test.labels.npy', 'test.json']


def test_a_forward_pass_that_fails_leaves_no_temporary_file(run_copy):
    run = runs.load(run_copy)
    with run.writing() as out:
        run.forward('train', batchsize=7, out=out)
    folder = run.path('activations')
    arrays = {n: b for n, b in listing(folder).items() if n.endswith('.npy')}
    again = runs.load(run_copy, cached=False)   # as with --rebuild
    real, calls = again.model.predict, []

    def predict(xs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError('out of memory on the third batch')
        return real(xs)
    again.model.predict = predict
    with pytest.raises(RuntimeError):
        with again.writing() as out:
            again.forward('train', batchsize=7, out=out)
    assert temporaries(run.folder) == []
    # the old cache is as it was, stamp included, and still read
    assert {n: b for n, b in listing(folder).items()
            if n.endswith('.npy')} == arrays
    assert 'train.json' in os.listdir(folder)
    assert isinstance(runs.load(run_copy).forward('train').logits,
                      numpy.memmap)


def test_forward_passes_are_written_batch_by_batch_and_float16(run_copy):
    run = runs.load(run_copy, float16=True)
    with run.writing() as out:
        train = run.forward('train', batchsize=7, out=out)  # several batches
    fresh = nets.predict_dataset(run.model, run.splits.train, None)
    assert train.layers['mlp1'].dtype == numpy.float16
    assert train.logits.dtype == numpy.float32
    numpy.testing.assert_allclose(train.logits, fresh.logits, atol=1e-6)
    numpy.testing.assert_allclose(train.layers['mlp1'], fresh.layers['mlp1'],
                                  rtol=1e-3, atol=1e-3)
    # a float32 run reads the float16 cache rather than replacing it
    again = runs.load(run_copy).forward('train')
    assert isinstance(again.logits, numpy.memmap)
    assert again.layers['mlp1'].dtype == numpy.float16


# ------------------------------------------------------------ writing whole

def listing(folder):
    """name -> bytes of the regular files of ``folder`` (not recursive)."""
    return {p: open(os.path.join(folder, p), 'rb').read()
            for p in os.listdir(folder)
            if os.path.isfile(os.path.join(folder, p))}


def tree(folder):
    """Everything under ``folder``: files by sha256, links by target,
    folders and special files by kind (a FIFO is never opened)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            mode = os.lstat(path).st_mode
            out[rel] = ('link:' + os.readlink(path) if stat.S_ISLNK(mode)
                        else 'folder' if stat.S_ISDIR(mode)
                        else fileio.file_sha256(path) if stat.S_ISREG(mode)
                        else 'special')
    return out


def temporaries(folder):
    """The temporary files of fileio anywhere under ``folder``."""
    return sorted(rel for rel in tree(folder)
                  if fileio._LEFTOVER.match(os.path.basename(rel)))


def record_state(folder, name):
    """``'absent'``, ``'whole'`` (every sha256 of the completion record
    ``name`` agrees with its file) or ``'partial'``."""
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        return 'absent'
    files = json.load(open(path))['files']
    whole = all(os.path.isfile(os.path.join(folder, n)) and
                fileio.file_sha256(os.path.join(folder, n)) == h
                for n, h in files.items())
    return 'whole' if whole else 'partial'


def test_each_file_is_written_atomically(tmp_path, monkeypatch):
    folder = str(tmp_path)
    with open(os.path.join(folder, 'a.json'), 'w') as f:
        f.write('old')
    out = fileio.Outputs(folder)

    def half(f):
        f.write('{"half": ')
        raise RuntimeError('a renderer failed')
    for name in ('a.json', 'new.json'):
        with pytest.raises(RuntimeError):
            out.write(name, half, 'w')
    assert listing(folder) == {'a.json': b'old'}
    assert os.listdir(folder) == ['a.json']       # no temporary file

    def full(src, dst):     # the rename into place fails
        raise OSError(28, 'No space left on device', dst)
    monkeypatch.setattr(os, 'replace', full)
    with pytest.raises(OSError):
        out.write('a.json', lambda f: f.write('new'), 'w')
    monkeypatch.undo()
    assert os.listdir(folder) == ['a.json']
    assert listing(folder) == {'a.json': b'old'}
    assert out.written == []                      # nothing was written
    out.write('a.json', lambda f: f.write('new'), 'w')
    assert listing(folder) == {'a.json': b'new'}
    assert out.written == ['a.json']


def test_the_completion_record_comes_last_with_every_sha256(tmp_path,
                                                            monkeypatch):
    folder = str(tmp_path)
    real, order = os.replace, []

    def replace(src, dst):
        order.append(os.path.relpath(dst, folder))
        return real(src, dst)
    monkeypatch.setattr(os, 'replace', replace)
    out = fileio.Outputs(folder)
    out.write('a.bin', lambda f: f.write(b'\x00\x01'))
    out.write(os.path.join('sub', 'b.txt'), lambda f: f.write('b'), 'w')
    out.finish('done.json', {'score': 1})
    assert order == ['a.bin', os.path.join('sub', 'b.txt'), 'done.json']
    assert json.load(open(os.path.join(folder, 'done.json'))) == {
        'score': 1, 'files': {
            'a.bin': hashlib.sha256(b'\x00\x01').hexdigest(),
            os.path.join('sub', 'b.txt'): hashlib.sha256(b'b').hexdigest()}}
    assert record_state(folder, 'done.json') == 'whole'
    with open(os.path.join(folder, 'a.bin'), 'wb') as f:
        f.write(b'\x00\x02')
    assert record_state(folder, 'done.json') == 'partial'


def test_leftovers_of_a_killed_run_are_cleaned(run_copy, tmp_path, capsys):
    folder = os.path.dirname(run_copy)
    for name in ('.dknn_results.json.tmp-ab12cd34', '.x.png.tmp-zz99yy88'):
        open(os.path.join(folder, name), 'w').close()
    target = tmp_path / 'target.txt'
    target.write_text('kept')
    os.symlink(str(target), os.path.join(folder, '.y.json.tmp-abcd1234'))
    os.mkdir(os.path.join(folder, 'activations'))
    open(os.path.join(folder, 'activations', '.test.json.tmp-0a1b2c3d'),
         'w').close()
    user = ('.keepme', '.log.original', '.vocab.json.2024_bak',
            '.a.tmp-UPPERCAS')   # the user's own hidden files stay
    for name in user:
        open(os.path.join(folder, name), 'w').close()
    os.mkdir(os.path.join(folder, '.foo.tmp-abcdefgh'))  # only files go
    capsys.readouterr()
    with runs.load(run_copy).writing():
        pass
    assert sorted(p for p in os.listdir(folder) if p.startswith('.')) == \
        sorted(user + ('.foo.tmp-abcdefgh',))
    assert os.listdir(os.path.join(folder, 'activations')) == []
    assert target.read_text() == 'kept'        # the link went, not its file
    notes = capsys.readouterr().out.splitlines()
    assert notes and all(n.startswith('note: removed') for n in notes)


KILLED = """
import os, signal, sys
kill, setup = sys.argv[1], sys.argv[2]
sys.path.insert(0, sys.argv[3])
from toolkit import runfiles
from toolkit import runs


def die():
    os.kill(os.getpid(), signal.SIGKILL)


real, calls = os.replace, []


def replace(src, dst):
    calls.append(dst)
    if kill.split(', ')[-1] == 'rename %d' % len(calls):
        die()                    # killed before this rename
    return real(src, dst)


def writer(name):
    def write(f):
        f.write('new ')
        if kill == 'writing ' + name:
            f.flush()
            die()                # killed halfway through a file
        f.write(name)
    return write


run = runs.load(setup)
with run.writing() as out:
    os.replace = replace
    if kill.startswith('forward'):
        run.forward('train', 7, out)
    for name in ('a.json', 'b.json'):
        out.write(name, writer(name), 'w')
    out.finish('done.json', {'ok': True})
"""


def killed(setup, kill):
    """Run KILLED as a separate process, SIGKILLed at ``kill``."""
    from conftest import ROOT
    proc = subprocess.run([sys.executable, '-c', KILLED, kill, setup, ROOT],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def write_set(setup, text):
    with runs.load(setup).writing() as out:
        for name in ('a.json', 'b.json'):
            out.write(name, lambda f, n=name: f.write(text + n), 'w')
        out.finish('done.json', {'ok': True})


@pytest.mark.parametrize('previous', [False, True],
                         ids=['first run', 'over a finished run'])
@pytest.mark.parametrize('kill', ['rename 1', 'writing b.json', 'rename 2',
                                  'rename 3'])
def test_a_command_killed_between_writes(run_copy, kill, previous, capsys):
    """A kill leaves every file old or new, never half written, and a
    completion record that is absent or disagrees with the files; the next
    command removes the temporary file, says so once, and completes."""
    folder = os.path.dirname(run_copy)
    if previous:
        write_set(run_copy, 'old ')
    before = listing(folder)
    killed(run_copy, kill)
    after = listing(folder)
    assert len(temporaries(folder)) == 1
    for name in ('a.json', 'b.json'):
        assert after.get(name) in (before.get(name),
                                   ('new ' + name).encode())
    state = record_state(folder, 'done.json')
    if not previous:
        assert state == 'absent'
    elif kill == 'rename 1':     # nothing replaced yet: the old set, whole
        assert state == 'whole'
        assert {n: after[n] for n in before} == before
    else:
        assert state == 'partial'
    capsys.readouterr()
    write_set(run_copy, 'again ')
    notes = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith('note:')]
    # one line, for the temporary file the killed run left
    assert notes == ['note: removed 1 temporary file(s) a killed command '
                     'left in {}'.format(folder)]
    assert temporaries(folder) == []
    assert record_state(folder, 'done.json') == 'whole'
    assert listing(folder)['a.json'] == b'again a.json'


def test_a_forward_pass_killed_leaves_no_cache_to_read(run_copy, capsys):
    """Killed after the first array of the cache was renamed into place:
    without its stamp the cache is never read; the next command writing
    the run removes the temporary arrays, says so once, and writes a whole
    cache."""
    folder = os.path.dirname(run_copy)
    acts = os.path.join(folder, 'activations')
    killed(run_copy, 'forward, rename 2')
    assert len(temporaries(acts)) == 2     # the arrays not renamed yet
    assert 'train.json' not in os.listdir(acts)
    run = runs.load(run_copy)
    fresh = nets.predict_dataset(run.model, run.splits.train, None)
    train = run.forward('train')           # no stamp: computed, not read
    assert not isinstance(train.logits, numpy.memmap)
    numpy.testing.assert_allclose(train.logits, fresh.logits, atol=1e-6)
    capsys.readouterr()
    with run.writing() as out:
        runs.load(run_copy).forward('train', out=out)
    notes = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith('note:')]
    assert notes == ['note: removed 2 temporary file(s) a killed command '
                     'left in {}'.format(folder)]
    assert temporaries(folder) == []
    again = runs.load(run_copy).forward('train')
    assert isinstance(again.logits, numpy.memmap)
    numpy.testing.assert_allclose(again.logits, fresh.logits, atol=1e-6)


# ------------------------------------------------------------- one writer

def test_the_lock_is_the_folder_itself(run_copy, tmp_path):
    """No lock file: a planted ``.lock`` (a link to a victim, or a FIFO) is
    neither followed, opened nor removed."""
    folder = os.path.dirname(run_copy)
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious')
    os.symlink(str(victim), os.path.join(folder, '.lock'))
    os.mkfifo(os.path.join(folder, '.stamp.lock'))
    with runs.load(run_copy).writing() as out:
        out.write('a.json', lambda f: f.write('{}'), 'w')
    assert victim.read_text() == 'precious'
    assert os.path.islink(os.path.join(folder, '.lock'))


def test_a_second_writer_is_refused(run_copy):
    run = runs.load(run_copy)
    with run.writing():
        with pytest.raises(UserError, match='being written by another '
                                            'command'):
            with runs.load(run_copy).writing():
                pass
    with run.writing():   # released
        pass
    assert os.listdir(run.folder) == os.listdir(run.folder)


HOLDER = """
import sys
sys.path.insert(0, sys.argv[2])
from toolkit import fileio
with fileio.writing(sys.argv[1]):
    print('held', flush=True)
    sys.stdin.read()
"""


def test_a_writer_in_another_process_is_refused_until_it_dies(run_copy):
    from conftest import ROOT
    folder = os.path.dirname(run_copy)
    proc = subprocess.Popen([sys.executable, '-c', HOLDER, folder, ROOT],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == 'held'
        with pytest.raises(UserError, match=r'run is being written by '
                           r'another command'):
            with runs.load(run_copy).writing():
                pass
    finally:
        proc.kill()           # SIGKILL: the OS drops its lock
        proc.wait(timeout=60)
    before = sorted(os.listdir(folder))
    with runs.load(run_copy).writing():
        pass
    assert sorted(os.listdir(folder)) == before   # nothing was left


def test_a_read_only_folder_is_refused_even_for_root(run_copy):
    folder = os.path.dirname(run_copy)
    os.chmod(folder, 0o555)
    try:
        with pytest.raises(UserError, match='read-only'):
            with runs.load(run_copy).writing():
                pass
    finally:
        os.chmod(folder, 0o755)


# ------------------------------------------- what stands where a file goes

STANDING = {
    'folder': lambda path, victim: (os.mkdir(path), open(os.path.join(
        path, 'inside.txt'), 'w').close()),
    'named pipe \\(FIFO\\)': lambda path, victim: os.mkfifo(path),
    'link': lambda path, victim: os.symlink(victim, path),
}


@pytest.mark.parametrize('kind', sorted(STANDING))
def test_what_stands_where_a_file_goes_is_never_removed(run_copy, tmp_path,
                                                        kind):
    folder = os.path.dirname(run_copy)
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious')
    os.mkdir(os.path.join(folder, 'activations'))
    for name in ('a.json', os.path.join('activations', 'test.logits.npy')):
        STANDING[kind](os.path.join(folder, name), str(victim))
    before = tree(folder)
    run = runs.load(run_copy)
    with run.writing() as out:
        with pytest.raises(UserError, match=r'a\.json: a {} stands where'
                           .format(kind)):
            out.write('a.json', lambda f: f.write('new'), 'w')
        with pytest.raises(UserError, match=r'test\.logits\.npy: a {} stands '
                           'where'.format(kind)):
            run.forward('test', out=out)
    assert tree(folder) == before
    assert victim.read_text() == 'precious'
