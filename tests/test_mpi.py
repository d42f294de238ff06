"""The sharded DkNN under ``mpiexec -n 2`` (ChainerMN): the same
neighbours as one process, and a failing rank stops the job. Skipped
without the MPI extra (make install-mpi)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy
import pytest

from conftest import ROOT, copy_run

MPIEXEC = shutil.which('mpiexec', path=os.path.dirname(sys.executable)) or \
    shutil.which('mpiexec')
pytestmark = [pytest.mark.mpi, pytest.mark.skipif(
    MPIEXEC is None or subprocess.run(
        [sys.executable, '-c', 'import mpi4py'],
        capture_output=True).returncode != 0,
    reason='MPI not installed: make install-mpi')]


def mpirun(n, *argv, timeout=300):
    return subprocess.run(
        [MPIEXEC, '--allow-run-as-root', '--oversubscribe', '-n', str(n),
         sys.executable] + list(argv), capture_output=True, text=True,
        timeout=timeout, cwd=ROOT)


def test_sharded_neighbours_equal_one_process(tiny_run, tmp_path):
    setup = copy_run(tiny_run, tmp_path / 'run')
    script = os.path.join(ROOT, 'tests', 'mpi', 'neighbours.py')
    one = subprocess.run([sys.executable, script, setup,
                          str(tmp_path / 'one.npz'), 'single'],
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = mpirun(2, script, setup, str(tmp_path / 'two.npz'), 'sharded')
    assert two.returncode == 0, two.stderr
    a, b = numpy.load(str(tmp_path / 'one.npz')), \
        numpy.load(str(tmp_path / 'two.npz'))
    assert sorted(a.files) == sorted(b.files) and len(a.files) == 7
    # a shard's forward pass runs other matrix sizes than the whole set's,
    # so BLAS may round the last bits differently: distances agree to
    # float32 rounding, and neighbours agree wherever no near-tie decides
    layers = {n.rsplit('_', 1)[0] for n in a.files if n != 'scores'}
    same_votes = numpy.ones(len(a['scores']), bool)
    for layer in layers:
        da, db = a[layer + '_distances'], b[layer + '_distances']
        numpy.testing.assert_allclose(da, db, rtol=1e-4, atol=1e-5)
        for row, (ia, ib, d) in enumerate(zip(a[layer + '_indices'],
                                              b[layer + '_indices'], da)):
            clear = d < d[-1] - 1e-4
            assert set(ia[clear]) == set(ib[clear])
            same_votes[row] &= sorted(a[layer + '_labels'][row]) == \
                sorted(b[layer + '_labels'][row])
    assert same_votes.mean() > 0.8
    numpy.testing.assert_array_equal(a['scores'][same_votes],
                                     b['scores'][same_votes])


def test_run_dknn_distributed_writes_what_one_process_does(tiny_run,
                                                           tmp_path):
    one = copy_run(tiny_run, tmp_path / 'one')
    two = copy_run(tiny_run, tmp_path / 'two')
    uses = ['--conformal-sets', '--selective', '--ood', 'stsa.binary']
    r = subprocess.run([sys.executable, 'run_dknn.py', '--model-setup', one,
                        '--k', '5'] + uses, capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    r = mpirun(2, 'run_dknn.py', '--model-setup', two, '--k', '5',
               '--distributed', *uses)
    assert r.returncode == 0, r.stderr
    a = json.load(open(os.path.join(os.path.dirname(one),
                                    'dknn_results.json')))
    b = json.load(open(os.path.join(os.path.dirname(two),
                                    'dknn_results.json')))
    assert b['ranks'] == 2
    for key in ('softmax', 'conformity', 'conformal', 'conformal_sets',
                'selective', 'ood'):
        assert a[key] == b[key]


@pytest.mark.parametrize('how,line', [
    ('error', 'error: rank 1 cannot go on'),
    ('exit', 'error: rank 1 exited (status 3) before the others')])
def test_one_failing_rank_stops_the_job(tmp_path, how, line):
    r = mpirun(2, os.path.join(ROOT, 'tests', 'mpi', 'one_rank_fails.py'),
               how, timeout=120)
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if 'error:' in x]
    assert len(lines) == 1 and lines[0].endswith(line), r.stderr[-2000:]



@pytest.mark.parametrize('script,argv', [
    ('run_dknn.py', ['--model-setup', 'x/args.json', '--k', '0']),
    ('train_text_classifier.py', ['--epoch', '-1']),
    ('interpretations.py', ['--model-setup', 'x/args.json', '--nosuch'])])
def test_a_flag_error_is_said_once(script, argv):
    r = mpirun(2, script, '--distributed', *argv, timeout=120)
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if 'error:' in x]
    assert len(lines) == 1, r.stderr[-2000:]
    assert r.stderr.count('usage:') == 1


def test_a_flag_error_is_said_when_rank_0_is_slower(tmp_path):
    """The quiet rank waits for rank 0 to say the error: exiting at once,
    it let the launcher stop rank 0 before it had printed (seen in CI)."""
    slow = tmp_path / 'slow_rank0.py'
    slow.write_text(
        'import os, sys, time\n'
        'sys.path.insert(0, {!r})\n'
        "if os.environ.get('OMPI_COMM_WORLD_RANK') == '0':\n"
        '    time.sleep(3)\n'
        'import run_dknn\n'
        'run_dknn.main(sys.argv[1:])\n'.format(ROOT))
    r = mpirun(2, str(slow), '--distributed', '--model-setup', 'x/args.json',
               '--k', '0', timeout=120)
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if 'error:' in x]
    assert len(lines) == 1, r.stderr[-2000:]


def mpmd(script, args, other, timeout=120):
    """Two ranks started with different arguments (Open MPI's MPMD form)."""
    cmd = [MPIEXEC, '--allow-run-as-root', '--oversubscribe', '-n', '1',
           sys.executable, script] + args + [':', '-n', '1', sys.executable,
                                             script] + other
    return subprocess.run(cmd, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize('change', ['layers', 'run'])
def test_ranks_that_disagree_stop_in_seconds(tiny_run, tmp_path, change):
    """Ranks given other --layers (which deadlocked) or another run (which
    gave a wrong result) end the job with one error line, writing
    nothing."""
    one = copy_run(tiny_run, tmp_path / 'one')
    args = ['--model-setup', one, '--k', '5', '--distributed']
    if change == 'layers':
        other = args + ['--layers', 'cnn']
    else:
        other = ['--model-setup', copy_run(tiny_run, tmp_path / 'two'),
                 '--k', '5', '--distributed']
        import json
        setup = json.load(open(other[1]))
        setup['dropout'] = 0.3
        json.dump(setup, open(other[1], 'w'))
    start = time.time()
    r = mpmd('run_dknn.py', args, other)
    assert time.time() - start < 60
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if 'error:' in x]
    assert len(lines) == 1 and 'not given the same settings' in lines[0], \
        r.stderr[-2000:]
    assert not os.path.exists(os.path.join(os.path.dirname(one),
                                           'dknn_results.json'))


def test_data_parallel_training_writes_one_run(tiny_data, tmp_path):
    from conftest import TINY_TRAIN
    out = tmp_path / 'r'
    r = mpirun(2, 'train_text_classifier.py', *TINY_TRAIN, '--model', 'bow',
               '--data-dir', tiny_data, '--out', str(out),
               '--communicator', 'naive')
    assert r.returncode == 0, r.stderr
    assert os.listdir(str(out)) == ['stsa.binary_bow']   # rank 0 only
    from toolkit import runs
    import nets
    run = runs.load(str(out / 'stsa.binary_bow' / 'args.json'))
    test = nets.predict_dataset(run.model, run.splits.test, None)
    saved = json.load(open(run.path('train_results')))
    assert saved['test_accuracy'] == pytest.approx(
        (test.logits.argmax(1) == test.labels).mean())
    assert run.setup['communicator'] == 'naive'


def test_leave_one_out_distributed_equals_one_process(tiny_run, tmp_path):
    one = copy_run(tiny_run, tmp_path / 'one')
    two = copy_run(tiny_run, tmp_path / 'two')
    argv = ['interpretations.py', '--interp_method', 'dknn', '--all', '--k',
            '5', '--quiet', '--model-setup']
    r = subprocess.run([sys.executable] + argv + [one], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    r = mpirun(2, *argv, two, '--distributed')
    assert r.returncode == 0, r.stderr
    a, b = (json.load(open(os.path.join(os.path.dirname(s),
                                        'interpretations_dknn.json')))
            for s in (one, two))
    for payload in (a, b):   # the settings name the folder and the flags
        del payload['settings'], payload['files']
    assert a == b


def _wait_for(paths, proc, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        if all(os.path.exists(p) for p in paths):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize('signum,rank', [
    (signal.SIGTERM, 1),    # blocked inside an MPI collective
    (signal.SIGKILL, 0),    # no chance to say anything itself
])
def test_a_rank_stopped_mid_job_ends_the_job(tiny_run, tmp_path, signum,
                                             rank, capsys):
    """One rank of ``mpiexec -n 2 run_dknn.py --distributed`` stopped by a
    signal: the other ends within seconds, the job shows one ``error:``
    line and no traceback, and the next run clears what the job left (its
    lock, temporary files) and says so."""
    setup = copy_run(tiny_run, tmp_path / 'run')
    held = tmp_path / 'held'
    held.mkdir()
    proc = subprocess.Popen(
        [MPIEXEC, '--allow-run-as-root', '--oversubscribe', '-n', '2',
         sys.executable, os.path.join(ROOT, 'tests', 'mpi', 'held_dknn.py'),
         '--model-setup', setup, '--k', '5', '--distributed'],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, DKNN_HELD=str(held)))
    try:
        assert _wait_for([held / '0.pid', held / '1.pid'], proc), \
            proc.communicate()[1][-2000:]
        time.sleep(0.5)   # rank 1 enters the collective
        os.kill(int((held / '{}.pid'.format(rank)).read_text()), signum)
        start = time.time()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.time() - start < 15
    assert proc.returncode != 0
    assert 'Traceback' not in err
    lines = [line for line in err.splitlines() if 'error:' in line]
    assert len(lines) == 1 and 'signal' in lines[0], err[-2000:]
    import run_dknn
    run_dknn.main(['--model-setup', setup, '--k', '5'])
    folder = os.path.dirname(setup)
    left = [n for n in os.listdir(folder) + os.listdir(
        os.path.join(folder, 'activations')) if '.tmp-' in n]
    assert left == [] and not os.path.exists(os.path.join(folder, '.lock'))
    notes = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith('note:')]
    assert len(notes) <= 1 and all('a killed command left' in n
                                   for n in notes)
