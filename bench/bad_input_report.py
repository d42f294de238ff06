#!/usr/bin/env python
"""Run the bad-input battery and tabulate it in RESULTS.md.

    python bench/bad_input_report.py

Runs ``tests/test_bad_input.py`` (every case on a fresh copy of a tiny
trained run) with ``$DKNN_BATTERY_REPORT`` set, so that each case appends
its outcome; then counts, per class of input, the cases, the tracebacks
(an exception other than the one-line exit) and the cases that changed a
file of the run, out or data folders (partial or stray files).
"""
import collections
import json
import os
import subprocess
import sys
import tempfile

from report import RESULTS, ROOT, write_section  # NOQA (first: sets sys.path)
from toolkit import cli  # NOQA
def run_battery():
    """Outcome dicts of every case, and pytest's exit status."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'battery.jsonl')
        proc = subprocess.run(
            [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
             os.path.join(ROOT, 'tests', 'test_bad_input.py')], cwd=ROOT,
            env=dict(os.environ, DKNN_BATTERY_REPORT=path))
        with open(path) as f:
            return [json.loads(line) for line in f], proc.returncode


def table(outcomes):
    rows, slowest = collections.OrderedDict(), {}
    for o in outcomes:
        r = rows.setdefault(o['kind'], collections.Counter())
        r['cases'] += 1
        r['one line'] += len(o['lines']) == 1
        r['tracebacks'] += o['traceback'] is not None
        r['changed'] += o['changed']
        slowest[o['kind']] = max(slowest.get(o['kind'], 0), o['seconds'])
    lines = ['| case class | cases | one `error:` line | tracebacks | '
             'partial or changed files | slowest (s) |',
             '|---|---|---|---|---|---|']
    for kind, r in rows.items():
        lines.append('| {} | {} | {} | {} | {} | {:.1f} |'.format(
            kind, r['cases'], r['one line'], r['tracebacks'], r['changed'],
            slowest[kind]))
    total = sum(rows.values(), collections.Counter())
    lines.append('| **all** | **{}** | **{}** | **{}** | **{}** | **{:.1f}** '
                 '|'.format(total['cases'], total['one line'],
                            total['tracebacks'], total['changed'],
                            max(slowest.values())))
    return '\n'.join(lines)


@cli.script
def main(argv=None):
    outcomes, status = run_battery()
    body = '\n'.join([
        '## Bad input (`bench/bad_input_report.py`)', '',
        'Command: `python bench/bad_input_report.py` (runs '
        '`tests/test_bad_input.py`). Each case runs one script on a fresh '
        'copy of a tiny trained run and data folder, and checks the exit '
        'status, that exactly one `error:` line names the file or flag, that '
        'no traceback appears, that the sha256 of every file in the run, '
        '`--out` and data folders is unchanged with no new files, and that '
        'it ends within the time bound (`MAX_SECONDS`). The cases are listed '
        'in `CASES` in the test file; issue 27 added the classes from '
        '"stranger paths" on, and 12 bench-script cases.', '', table(outcomes), '',
        'pytest exit status: {} ({}).'.format(
            status, 'all cases pass' if status == 0 else 'some cases FAIL')])
    write_section('bad-input', body, RESULTS)
    return status


if __name__ == '__main__':
    sys.exit(main())
