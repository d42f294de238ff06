"""Opening a run folder safely: checked files, no pickles, no paths outside,
and outputs written whole."""
import json
import os
import pickle
import shutil

import numpy
import pytest

import nets
from toolkit import runs
from toolkit import safeio
from errors import UserError
from conftest import copy_run


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


def test_a_pickled_model_is_refused_before_unpickling(run_copy, tmp_path):
    Boom.target = str(tmp_path / 'pwned')
    model = os.path.join(os.path.dirname(run_copy), 'best_model.npz')
    with open(model, 'wb') as f:          # a bare pickle named .npz
        pickle.dump(Boom(), f)
    with pytest.raises(UserError, match='best_model.npz: not a valid .npz'):
        runs.load(run_copy)
    numpy.savez(model, W=numpy.array([Boom()], dtype=object))  # inside
    with pytest.raises(UserError, match='best_model.npz: not a valid .npz'):
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
    ('{"k": 5, "layers": ["mlp1"]}', 'not the args.json of a training run'),
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
            runs.read_temperature(run.folder)


# -------------------------------------------------------- the forward cache

def test_forward_passes_are_cached_and_stamped(run_copy):
    run = runs.load(run_copy)
    with run.writing():
        test = run.forward('test')
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
    model = os.path.join(run.folder, 'best_model.npz')
    arrays = dict(numpy.load(model))
    arrays['output/b'] = arrays['output/b'] + 1.0
    numpy.savez(model, **arrays)
    changed = runs.load(run_copy).forward('test')
    assert not isinstance(changed.logits, numpy.memmap)
    numpy.testing.assert_allclose(changed.logits, fresh.logits + 1.0,
                                  rtol=1e-5)


def test_a_command_that_fails_writes_no_cache(run_copy):
    run = runs.load(run_copy)
    with pytest.raises(RuntimeError):
        with run.writing():
            run.forward('calib')
            raise RuntimeError('later failure')
    assert sorted(os.listdir(run.folder)) == sorted(
        ['args.json', 'best_model.npz', 'vocab.json', 'calib.json'])


# ------------------------------------------------------------ writing whole

def listing(folder):
    return {p: open(os.path.join(folder, p), 'rb').read()
            for p in os.listdir(folder)}


def test_output_set_commits_all_or_nothing(tmp_path):
    folder = str(tmp_path)
    for name in ('a.json', 'b.png', 'stale.md'):
        with open(os.path.join(folder, name), 'w') as f:
            f.write('old ' + name)
    before = listing(folder)
    with pytest.raises(RuntimeError):
        with safeio.OutputSet(folder) as out:
            out.write('a.json', lambda f: f.write('new'), 'w')
            out.discard('stale.md')
            raise RuntimeError('a renderer failed')
    assert listing(folder) == before
    with safeio.OutputSet(folder) as out:
        out.write('a.json', lambda f: f.write('new a'), 'w')
        out.write('c.txt', lambda f: f.write('new c'), 'w')
        out.discard('stale.md')
    assert listing(folder) == {'a.json': b'new a', 'b.png': b'old b.png',
                               'c.txt': b'new c'}


def test_output_set_rolls_back_a_failed_rename(tmp_path, monkeypatch):
    folder = str(tmp_path)
    for name in ('a', 'b'):
        with open(os.path.join(folder, name), 'w') as f:
            f.write('old')
    before = listing(folder)
    real_replace, calls = os.replace, []

    def flaky(src, dst):    # the first rename into b fails
        calls.append(dst)
        if os.path.basename(dst) == 'b' and calls.count(dst) == 1:
            raise OSError(28, 'No space left on device', dst)
        return real_replace(src, dst)
    monkeypatch.setattr(os, 'replace', flaky)
    with pytest.raises(OSError):
        with safeio.OutputSet(folder) as out:
            out.write('a', lambda f: f.write('new'), 'w')
            out.write('b', lambda f: f.write('new'), 'w')
    assert listing(folder) == before


def test_leftovers_of_a_killed_run_are_cleaned(run_copy):
    folder = os.path.dirname(run_copy)
    for name in ('.dknn_results.json.tmp-ab12cd34', '.x.png.tmp-zz99yy88'):
        open(os.path.join(folder, name), 'w').close()
    os.mkdir(os.path.join(folder, '.foo.tmp-abcdefgh'))
    os.mkdir(os.path.join(folder, 'activations'))
    open(os.path.join(folder, 'activations', '.test.json.tmp-0a1b2c3d'),
         'w').close()
    user = ('.keepme', '.log.original', '.vocab.json.2024_bak',
            '.a.tmp-UPPERCAS')   # the user's own hidden files stay
    for name in user:
        open(os.path.join(folder, name), 'w').close()
    with runs.load(run_copy).writing():
        pass
    assert sorted(p for p in os.listdir(folder) if p.startswith('.')) == \
        sorted(user)
    assert os.listdir(os.path.join(folder, 'activations')) == []


KILL_IN_COMMIT = """
import os, sys
sys.path.insert(0, {root!r})
from toolkit import runs
real, calls = os.replace, []
def replace(src, dst):
    calls.append(dst)
    if len(calls) == {n}:
        os._exit(9)          # killed between two renames of the commit
    return real(src, dst)
with runs.load({setup!r}).writing() as out:
    os.replace = replace
    for name in ('a.json', 'b.json', 'c.json'):
        out.write(name, lambda f: f.write('new'), 'w')
"""


@pytest.mark.parametrize('n', [1, 2, 3, 4, 5, 6])
def test_a_commit_killed_halfway_is_rolled_back(run_copy, n):
    """A kill between any two renames leaves a journal; the next command
    restores the old set exactly."""
    import subprocess
    import sys
    from conftest import ROOT
    folder = os.path.dirname(run_copy)
    for name in ('a.json', 'b.json'):
        with open(os.path.join(folder, name), 'w') as f:
            f.write('old ' + name)
    before = listing(folder)
    code = KILL_IN_COMMIT.format(root=ROOT, n=n, setup=run_copy)
    proc = subprocess.run([sys.executable, '-c', code])
    assert proc.returncode == 9
    assert (safeio.JOURNAL in os.listdir(folder)) == (n > 1)
    with runs.load(run_copy).writing():
        pass
    assert listing(folder) == before


def test_a_lock_file_that_is_a_link_is_refused(run_copy, tmp_path):
    folder = os.path.dirname(run_copy)
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious')
    for make in (lambda p: os.symlink(str(victim), p),
                 lambda p: os.symlink(str(tmp_path / 'nowhere'), p),
                 lambda p: os.link(str(victim), p)):
        make(os.path.join(folder, '.lock'))
        with pytest.raises(UserError, match='is a link'):
            with runs.load(run_copy).writing():
                pass
        os.unlink(os.path.join(folder, '.lock'))
    assert victim.read_text() == 'precious'
    assert not (tmp_path / 'nowhere').exists()


def test_a_second_writer_is_refused(run_copy):
    run = runs.load(run_copy)
    with run.writing():
        with pytest.raises(UserError, match='being written by another '
                                            r'command \(process \d+\)'):
            with runs.load(run_copy).writing():
                pass
    with run.writing():   # released
        pass
    assert '.lock' not in os.listdir(run.folder)


def test_a_read_only_folder_is_refused_even_for_root(run_copy):
    folder = os.path.dirname(run_copy)
    os.chmod(folder, 0o555)
    try:
        with pytest.raises(UserError, match='read-only'):
            with runs.load(run_copy).writing():
                pass
    finally:
        os.chmod(folder, 0o755)


def test_forward_passes_are_written_batch_by_batch_and_float16(run_copy):
    run = runs.load(run_copy, float16=True)
    with run.writing():
        train = run.forward('train', batchsize=7)   # several batches
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
