"""Write one section of BENCHMARKS.md or RESULTS.md, keeping the others."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, 'BENCHMARKS.md')
RESULTS = os.path.join(ROOT, 'RESULTS.md')
HEADERS = {
    BENCHMARKS: '# Benchmarks\n\nWritten by the scripts in `bench/`; each '
                'section says the command that produced it. This machine is '
                'noisy, so each section compares things measured in the same '
                'run.\n',
    RESULTS: '# Results\n\nAccuracies and calibration measured on the real '
             'data in `../shared/data`, on a 2-core CPU machine. Each section '
             'says the command that produced it.\n'}


def write_section(name, body, path=BENCHMARKS):
    """Replace (or append) the section between ``<!-- name -->`` markers."""
    text = open(path).read() if os.path.exists(path) else HEADERS[path]
    block = '<!-- {0} -->\n{1}\n<!-- /{0} -->'.format(name, body.strip())
    pattern = re.compile(r'<!-- {0} -->.*?<!-- /{0} -->'.format(
        re.escape(name)), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) \
        else text.rstrip('\n') + '\n\n' + block + '\n'
    with open(path, 'w') as f:
        f.write(text)
    print('wrote section {!r} of {}'.format(name, path))
