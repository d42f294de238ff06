"""Hostile files and killed runs (issue 20), beyond the one-line battery of
test_bad_input.py: the one reader, sizes checked before allocating (and
the memory a decompression bomb gets), the data named by the user only,
stamps, non-finite numbers in training, the bench scripts' reports."""
import errno
import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib

import numpy
import pytest

import nets
import nlp_utils
import train_text_classifier
from conftest import ROOT, TINY_TRAIN, copy_run, write_tiny_sst
from errors import UserError
from toolkit import fileio
from toolkit import runfiles
from toolkit import runs

sys.path.insert(0, os.path.join(ROOT, 'bench'))
import compare_runs  # NOQA
import report  # NOQA


# ------------------------------------------------------------ the reader

def test_a_fifo_is_never_opened_and_json_is_bounded(tmp_path, monkeypatch):
    opened, os_open = [], os.open

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return os_open(path, *args, **kwargs)
    monkeypatch.setattr(os, 'open', spy)
    fifo = str(tmp_path / 'f.json')
    os.mkfifo(fifo)
    with pytest.raises(UserError, match='f.json: is a named pipe'):
        fileio.read_json(fifo)
    assert fifo not in opened
    deep = tmp_path / 'deep.json'
    deep.write_text('[' * 10 ** 6 + ']' * 10 ** 6)
    start = time.time()
    with pytest.raises(UserError, match='nested too deeply'):
        fileio.read_json(str(deep))
    assert time.time() - start < 5
    (tmp_path / 'd.json').write_text('{"a": 1, "b": {"a": 2, "a": 3}}')
    with pytest.raises(UserError, match='a key appears twice'):
        fileio.read_json(str(tmp_path / 'd.json'))
    monkeypatch.setenv('DKNN_MAX_JSON_BYTES', '10')
    with pytest.raises(UserError, match='10-byte cap.*DKNN_MAX_JSON_BYTES'):
        fileio.read_json(str(tmp_path / 'd.json'))


@pytest.mark.parametrize('model', list(nets.ENCODERS))
@pytest.mark.parametrize('pair', [False, True])
def test_the_parameter_count_is_the_built_models(model, pair):
    """The bound on args.json sizes is computed without building; it must
    be exactly what build_model allocates."""
    for layer in (0, 2) if model in ('cnn', 'bow') else (1, 2):
        setup = dict(model=model, n_vocab=11, n_embed=5, unit=7, layer=layer,
                     dropout=0.1, n_class=3, pair=pair, widths=[2, 4, 5])
        built = nets.build_model(setup)
        assert nets.n_parameters(setup) == sum(
            p.size for _, p in built.namedparams())


# -------------------------------------------------- a decompression bomb

def zip_member(name, chunks, crc, size):
    """A zip archive of one deflated member from raw deflate ``chunks``
    (written by hand: zipfile cannot store compressed data as it is)."""
    data = b''.join(chunks)
    name = name.encode()
    local = struct.pack('<4s5H3L2H', b'PK\x03\x04', 20, 0, 8, 0, 0, crc,
                        len(data), size, len(name), 0) + name
    central = struct.pack('<4s6H3L5H2L', b'PK\x01\x02', 20, 20, 0, 8, 0, 0,
                          crc, len(data), size, len(name), 0, 0, 0, 0, 0,
                          0) + name
    end = struct.pack('<4s4H2LH', b'PK\x05\x06', 0, 0, 1, 1, len(central),
                      len(local) + len(data), 0)
    return local + data + central + end


@pytest.fixture(scope='module')
def bomb():
    """A 2 MB archive whose one member inflates to 2 GiB of zeros behind an
    .npy header that says so."""
    header = io.BytesIO()
    numpy.lib.format.write_array_header_1_0(header, {
        'descr': '<f4', 'fortran_order': False, 'shape': (2 ** 29,)})
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = comp.compress(header.getvalue()) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(bytes(1 << 24)) + comp.flush(zlib.Z_FULL_FLUSH)
    chunks = [head] + [block] * 128 + [comp.flush()]
    header = header.getvalue()
    honest = zip_member('encoder/embed/W.npy', chunks, 0,
                        len(header) + (1 << 31))
    # the zip says the member is its header alone (with its CRC)
    lying = zip_member('encoder/embed/W.npy', chunks, zlib.crc32(header),
                       len(header))
    return honest, lying


def peak_of(fn):
    """(peak bytes traced, seconds) of ``fn()``."""
    tracemalloc.start()
    start = time.time()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, time.time() - start


def test_an_inflating_archive_fails_fast_with_little_memory(run_copy, bomb):
    """A 2 MB best_model.npz whose member inflates to 2 GiB: refused in
    well under a second, with the memory an honest load takes (2x)."""
    honest, _ = peak_of(lambda: runs.load(run_copy))
    for data in bomb:
        assert len(data) < 4 << 20
        with open(os.path.join(os.path.dirname(run_copy),
                               'best_model.npz'), 'wb') as f:
            f.write(data)

        def load():
            with pytest.raises(runs.RunError, match='best_model.npz'):
                runs.load(run_copy)
        peak, seconds = peak_of(load)
        assert seconds < 5 and peak < 2 * honest


def test_the_header_is_checked_before_inflating(tmp_path, bomb):
    """Whether the zip directory tells the truth about the member's size
    (2 GiB) or lies (its header alone), the member is refused before its
    data is inflated: by its declared size, or by the shape its ``.npy``
    header announces, against the shape expected."""
    path = str(tmp_path / 'b.npz')
    honest, lying = bomb
    want = {'encoder/embed/W': ((4, 4), 'f')}

    def refused():
        with open(path, 'wb') as f:
            f.write(honest)
        with pytest.raises(UserError, match='inflates to 2147483776 bytes'):
            fileio.load_npz(path, want, 'fix')
        with open(path, 'wb') as f:
            f.write(lying)
        with pytest.raises(UserError, match=r'is float32 \(536870912,\), '
                                            r'where \(4, 4\) was'):
            fileio.load_npz(path, want, 'fix')
    peak, seconds = peak_of(refused)
    assert peak < 16 << 20 and seconds < 5


# ------------------------------------------------ the data the user names

def test_the_data_comes_from_the_user_and_is_checked(tiny_run, tmp_path,
                                                     monkeypatch):
    """A built-in data set is looked up where the user says, never where
    args.json says; a changed file is named."""
    setup = copy_run(tiny_run, tmp_path / 'run')
    monkeypatch.delenv('DKNN_DATA_DIR')
    run = runs.load(setup)          # the model needs no data
    with pytest.raises(UserError, match='stsa.binary.train not found'):
        run.splits
    other = write_tiny_sst(tmp_path / 'other')
    assert runs.load(setup, data_dir=other).splits.pool_size == 60
    with open(os.path.join(other, 'stsa.binary.test'), 'a') as f:
        f.write('1 good fun\n')
    with pytest.raises(UserError, match=r'other/stsa\.binary\.test '
                                        r'changed since training'):
        runs.load(setup, data_dir=other).splits


@pytest.fixture
def own_run(tmp_path):
    """A run trained on a CSV of one's own; (args.json, the CSV)."""
    data = tmp_path / 'mine' / 'reviews.csv'
    data.parent.mkdir()
    data.write_text('text,label\n' + ''.join(
        '{} film,{}\n'.format(w, y) for w, y in [('good', 'pos'),
                                                 ('bad', 'neg')] * 10))
    train_text_classifier.main(['--dataset', str(data), '--out',
                                str(tmp_path / 'r'), '--unit', '9',
                                '--layer', '1', '--epoch', '1',
                                '--n-calib', '4'])
    return str(tmp_path / 'r' / 'reviews_cnn' / 'args.json'), data


def test_own_data_is_found_again_where_training_read_it(own_run, tmp_path,
                                                        monkeypatch):
    setup, data = own_run
    monkeypatch.delenv('DKNN_DATA_DIR')
    monkeypatch.chdir(tmp_path)
    assert runs.load(setup).splits.pool_size == 16     # no --data-dir
    for where in (data, data.parent):                  # or named
        assert runs.load(setup, data_dir=str(where)).splits.pool_size == 16
    moved = tmp_path / 'copy'
    moved.mkdir()
    shutil.copy(str(data), str(moved / 'reviews.csv'))
    assert runs.load(setup, data_dir=str(moved)).splits.pool_size == 16
    data.write_text(data.read_text().replace('good film', 'SECRET film'))
    with pytest.raises(UserError) as e:
        runs.load(setup).splits
    assert 'reviews.csv: is not the file the run was trained on' in \
        str(e.value) and '--data-dir' in str(e.value)
    assert 'SECRET' not in str(e.value)


@pytest.mark.parametrize('plant', ['system file', 'fifo', 'dotdot'])
def test_a_strangers_args_json_can_only_make_it_hash_and_refuse(
        own_run, tmp_path, monkeypatch, plant):
    """``dataset`` in a stranger's args.json pointing at a link to a system
    file, a FIFO or ``..``: the file is hashed (a FIFO not even opened) and
    refused, and nothing of it is shown."""
    setup, _ = own_run
    monkeypatch.delenv('DKNN_DATA_DIR')
    target = tmp_path / 'evil' / 'reviews.csv'
    target.parent.mkdir()
    if plant == 'system file':
        os.symlink('/etc/passwd', str(target))
    elif plant == 'fifo':
        os.mkfifo(str(target))
    args = json.load(open(setup))
    args['dataset'] = '..' if plant == 'dotdot' else str(target)
    json.dump(args, open(setup, 'w'))
    if plant == 'dotdot':
        with pytest.raises(UserError, match='must be a built-in data set or '
                                            'the absolute path'):
            runs.load(setup)
        args['dataset'] = str(tmp_path / 'evil' / '..')
        json.dump(args, open(setup, 'w'))
    start = time.time()
    with pytest.raises(UserError) as e:
        runs.load(setup, data_dir=str(tmp_path / 'evil')
                  if plant == 'dotdot' else None).splits
    assert time.time() - start < 10
    assert 'root:' not in str(e.value)
    assert 'is not the file' in str(e.value) or 'named pipe' in \
        str(e.value) or 'no train file' in str(e.value), str(e.value)


def test_an_unstamped_run_is_refused(run_copy):
    setup = json.load(open(run_copy))
    setup.pop('data_sha256'), setup.pop('vocab_sha256')
    with open(run_copy, 'w') as f:
        json.dump(setup, f)
    with pytest.raises(UserError, match='missing data_sha256, vocab_sha256'
                                        '.*train the model again'):
        runs.load(run_copy)


def test_an_unfinished_run_is_refused(run_copy):
    os.unlink(os.path.join(os.path.dirname(run_copy), 'train_results.json'))
    with pytest.raises(UserError, match='training did not finish.*train it '
                                        'again'):
        runs.load(run_copy)


def test_the_token_limit_travels_with_the_run(tmp_path, monkeypatch):
    data = write_tiny_sst(tmp_path / 'data')
    with open(os.path.join(data, 'stsa.binary.train'), 'a') as f:
        f.write('1 ' + ' '.join(['good'] * 600) + '\n')
    argv = TINY_TRAIN + ['--data-dir', data, '--out', str(tmp_path / 'r')]
    with pytest.raises(SystemExit, match='600 tokens, more than the limit'):
        train_text_classifier.main(argv)
    train_text_classifier.main(argv + ['--max-tokens', '700'])
    setup = str(tmp_path / 'r' / 'stsa.binary_cnn' / 'args.json')
    assert json.load(open(setup))['max_tokens'] == 700
    assert len(runs.load(setup, data_dir=data).splits.train) == 51


# ------------------------------------------------------------- numbers

def nan_after(n_updates):
    """A Classifier.forward whose training loss turns nan after
    ``n_updates`` updates."""
    import chainer
    forward, calls = nets.Classifier.forward, [0]

    def poisoned(self, xs, ys):
        loss = forward(self, xs, ys)
        if chainer.config.train:
            calls[0] += 1
            if calls[0] > n_updates:
                return loss * float('nan')
        return loss
    return poisoned


def test_training_stops_at_the_first_nan_keeping_the_best_model(
        tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(nets.Classifier, 'forward', nan_after(9))
    out = tmp_path / 'r'
    with pytest.raises(SystemExit) as e:
        train_text_classifier.main(TINY_TRAIN[:-6] + [
            '--epoch', '3', '--batchsize', '8', '--n-calib', '10',
            '--data-dir', tiny_data, '--out', str(out)])
    line = str(e.value)
    assert re.match(r'error: training stopped at epoch 2, iteration 10: '
                    r'the (loss|weight \S+) became nan or inf', line) and \
        '\n' not in line and 'best model so far is kept' in line
    folder = out / 'stsa.binary_cnn'
    assert not (folder / 'train_results.json').exists()
    model = nets.build_model(json.load(open(str(folder / 'args.json'))))
    runfiles.read_weights(model, str(folder / 'best_model.npz'))  # finite
    monkeypatch.setattr(nets.Classifier, 'forward', nan_after(2))
    with pytest.raises(SystemExit, match='before any model was saved'):
        train_text_classifier.main(TINY_TRAIN + [
            '--data-dir', tiny_data, '--out', str(tmp_path / 'q')])
    assert not (tmp_path / 'q').exists()


def test_word_vectors_bom_and_first_line(tmp_path):
    vocab = {'<eos>': 0, '<unk>': 1, 'good': 2, 'bad': 3}
    path = tmp_path / 'v.txt'
    path.write_bytes(b'\xef\xbb\xbfgood 1 2\nbad 3 4\n')
    vectors = nlp_utils.load_word_vectors(str(path), vocab)
    assert vectors.covered.tolist() == [False, False, True, True]
    path.write_text('good 1\nbad 1 2 3\nplot 1 2 3\n')
    with pytest.raises(nlp_utils.VectorsFormatError,
                       match=r'v\.txt:1: expected 3 values .*as on line 2'):
        nlp_utils.load_word_vectors(str(path), vocab)


# ----------------------------------------------------- killed runs

HOLDER = """
import os, sys, time
sys.path.insert(0, sys.argv[3])
from toolkit import fileio
folder, fifo = sys.argv[1], sys.argv[2]
lock = fileio.folder_lock(folder).__enter__()
open(fileio.temp_path(os.path.join(folder, 'dknn_results.json')), 'w').close()
print('holding', flush=True)
open(fifo).read()          # blocks: an older reader stuck on a FIFO
"""


def test_a_run_killed_while_reading_a_special_file(run_copy, tmp_path,
                                                   capsys):
    """A command killed (SIGKILL) while blocked on a FIFO, holding the run's
    lock with a temporary file written, blocks nothing: the next command
    clears both, says so in one line, and leaves nothing behind. Ours never
    blocks on that FIFO: it is refused before being opened."""
    import run_dknn
    folder = os.path.dirname(run_copy)
    data = write_tiny_sst(tmp_path / 'data')
    fifo = os.path.join(data, 'stsa.binary.test')
    os.remove(fifo)
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, '-c', HOLDER, folder, fifo,
                             ROOT], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'holding'
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    capsys.readouterr()
    with pytest.raises(SystemExit, match=r'stsa\.binary\.test: is a named '
                                         r'pipe'):
        run_dknn.main(['--model-setup', run_copy, '--k', '5',
                       '--data-dir', data])
    notes = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith('note:')]
    assert len(notes) == 1 and 'removed 1 temporary file(s)' in notes[0]
    run_dknn.main(['--model-setup', run_copy, '--k', '5'])
    assert [n for n in os.listdir(folder) if '.tmp-' in n or
            n == '.lock'] == []


# ------------------------------------------------------ bench reports

def test_compare_runs_counts_nan_and_missing_files(tmp_path, capsys):
    a, b = tmp_path / 'a', tmp_path / 'b'
    a.mkdir(), b.mkdir()
    (a / 'dknn_results.json').write_text('{"x": NaN, "y": 1, "z": NaN}')
    (b / 'dknn_results.json').write_text('{"x": 0.5, "y": 1, "z": NaN}')
    assert compare_runs.main([str(a), str(b)]) == 1
    assert 'the folders differ' in capsys.readouterr().out
    (b / 'dknn_results.json').write_text('{"x": NaN, "y": 1, "z": NaN}')
    assert compare_runs.main([str(a), str(b)]) == 0
    (b / 'dknn_results.json').write_text('{"x": NaN, "y": 1}')
    assert compare_runs.main([str(a), str(b)]) == 1      # z only in one
    with pytest.raises(SystemExit, match='no such folder'):
        compare_runs.main([str(a), str(tmp_path / 'c')])


def test_a_full_disk_never_leaves_a_half_written_results_file(
        tmp_path, monkeypatch):
    path = str(tmp_path / 'RESULTS.md')
    monkeypatch.setitem(report.HEADERS, path, '# R\n')
    report.write_section('grid', 'old table', path)
    before = open(path).read()

    class Full(io.StringIO):
        def __init__(self, *a, **k):
            super().__init__()

        def write(self, text):
            raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(fileio, 'open', Full, raising=False)
    with pytest.raises(OSError):
        report.write_section('grid', 'new table ' * 1000, path)
    assert open(path).read() == before
    assert os.listdir(str(tmp_path)) == ['RESULTS.md']
