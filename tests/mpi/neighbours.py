"""Run under mpiexec by tests/test_mpi.py: the DkNN neighbours of the test
set, sharded over the ranks (or in one process), saved by rank 0."""
import os
import sys

import numpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
from toolkit import cli  # NOQA
import dknn  # NOQA
from toolkit import runs  # NOQA


@cli.script
def main(argv):
    setup, out, mode = argv
    comm = cli.communicator() if mode == 'sharded' else None
    run = runs.load(setup)
    head, _ = dknn.for_run(run, dknn.Settings(k=5, layers='all', scoring='conformal'),
                            comm)
    found = head.predict_activations(run.forward('test'))
    if comm is None or comm.rank == 0:
        numpy.savez(out, scores=found.scores, **{
            name + '_' + part: getattr(n, part)
            for name, n in found.neighbours.items()
            for part in ('indices', 'distances', 'labels')})


if __name__ == '__main__':
    main(sys.argv[1:])
