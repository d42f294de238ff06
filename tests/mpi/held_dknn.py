"""Run under mpiexec by tests/test_mpi.py: ``run_dknn.py --distributed``,
held at calibration so a test can stop one rank mid-job. Each rank writes
its pid to ``$DKNN_HELD/RANK.pid`` when it gets there; rank 0 then sleeps
(in Python), rank 1 goes on into the sharded search and blocks inside MPI,
waiting for rank 0."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
import dknn  # NOQA
import run_dknn  # NOQA
from toolkit import cli  # NOQA

calibrate = dknn.DkNN.calibrate


def held(self, calib, desc=None):
    rank = cli._COMM[0].rank
    path = os.path.join(os.environ['DKNN_HELD'], '{}.pid'.format(rank))
    with open(path + '.part', 'w') as f:
        f.write(str(os.getpid()))
    os.replace(path + '.part', path)
    if rank == 0:
        time.sleep(120)
    return calibrate(self, calib)


dknn.DkNN.calibrate = held

if __name__ == '__main__':
    run_dknn.main(sys.argv[1:])
