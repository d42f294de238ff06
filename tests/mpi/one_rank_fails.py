"""Run under mpiexec by tests/test_mpi.py: rank 1 fails with a user error
(or, with the argument ``exit``, exits early) while rank 0 waits in a
collective; the job must end, not hang."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
from toolkit import cli  # NOQA
from errors import UserError  # NOQA


@cli.script
def main(argv):
    comm = cli.communicator()
    if comm.rank == 1:
        if argv[:1] == ['exit']:
            sys.exit(3)
        raise UserError('rank 1 cannot go on')
    comm.mpi_comm.barrier()   # rank 0 would wait here forever


if __name__ == '__main__':
    main(sys.argv[1:])
