"""Write one benchmark's section of BENCHMARKS.md, keeping the others."""
import os
import re

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), 'BENCHMARKS.md')
HEADER = ('# Benchmarks\n\nWritten by the scripts in `bench/`; each section '
          'says the command that produced it. This machine is noisy, so '
          'each section compares things measured in the same run.\n')


def write_section(name, body):
    """Replace (or append) the section between ``<!-- name -->`` markers."""
    text = open(PATH).read() if os.path.exists(PATH) else HEADER
    block = '<!-- {0} -->\n{1}\n<!-- /{0} -->'.format(name, body.strip())
    pattern = re.compile(r'<!-- {0} -->.*?<!-- /{0} -->'.format(
        re.escape(name)), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) \
        else text.rstrip('\n') + '\n\n' + block + '\n'
    with open(PATH, 'w') as f:
        f.write(text)
    print('wrote section {!r} of {}'.format(name, PATH))
