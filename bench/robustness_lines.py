#!/usr/bin/env python
"""Count the code lines that defend against bad input, against the lines of
the algorithm, in this tree or another checkout.

    python bench/robustness_lines.py                 # this tree
    python bench/robustness_lines.py --tree OLD      # e.g. a git worktree

A code line is a line of source that is neither blank, a comment nor part
of a docstring. *Robustness* is the issue's categories (readers, caps,
stamps, locks, atomic writes, bound and schema checks, MPI abort): every
line of the file-I/O and error modules (:data:`WHOLE`), the schema tables
(:data:`SCHEMA`, module-level lines) and the functions :data:`GUARDS`
names, in whichever tree they exist. *Algorithm* is the DkNN, conformal,
leave-one-out, gradient and temperature code (:data:`ALGORITHM`). Tests
and bench scripts are not counted.
"""
import argparse
import ast
import io
import os
import tokenize

from report import ROOT  # NOQA (first: sets sys.path)
from toolkit import cli  # NOQA

WHOLE = ('errors.py', 'toolkit/fileio.py', 'toolkit/safeio.py')
SCHEMA = ('toolkit/runs.py', 'toolkit/settings.py')   # before 28: runs.py
GUARDS = {
    'toolkit/runs.py': (
        '_is_int', '_is_number', '_int_in', '_name', '_is_sha',
        '_check_values', 'check_setup', 'model_bytes', 'check_model_size',
        'read_setup', 'read_vocab', 'vocab_sha256', 'read_calib',
        'read_weights', '_copy_arrays', 'read_temperature', '_check_stamped',
        '_check_data', '_restamp', 'examples_sha256', 'check_tool_entry',
        'data_folder', '_check_finished', 'data_source', '_inside_or_is',
        'clear_run', 'prepare_out', 'remove_made'),
    'toolkit/runfiles.py': (
        'read_setup', 'read_vocab', 'vocab_sha256', 'read_calib',
        'read_weights', 'read_temperature', 'examples_sha256', 'data_files',
        'stamp_data_files', 'check_data_files', 'is_data_stamp',
        'check_tool_entry'),
    'toolkit/settings.py': (
        'is_int', 'ints', 'number', 'one_of', 'optional', 'is_name',
        '__post_init__', 'check', 'check_rules', 'is_sha', 'is_label',
        'check_labels', 'check_setup', 'model_bytes'),
    'toolkit/cache.py': ('_saved_stamp', '_load', '_record'),
    'toolkit/cli.py': (
        '_sigterm_as_exit', '_close_progress_bars', '_abort_others',
        '_tell_others', '_told', '_exit_line', '_mpi_job', 'script',
        '_watch_signals', '_parsed', 'int_in', 'int_at_least', 'float_in',
        'path_arg', 'folder_arg', 'tag_arg', 'once', 'launcher_rank', 'agree',
        'fingerprint', 'printable', 'one_line'),
    'text_datasets.py': (
        '_refuse_non_regular', 'max_data_bytes', '_check_regular',
        '_check_size', '_first_twice', '_json_object_pairs',
        '_check_columns', '_check_header', 'check_tokens', 'overlap',
        'overlap_warning'),
    'toolkit/user_data.py': ('check_share',),
    'train_text_classifier.py': (
        'check_finite', 'check_settings', 'prepare_out', 'run_state',
        'clear_run', 'remove_made'),
    'nets.py': ('_mlp_size', '_lstm_size', '_encoder_size', 'n_parameters'),
    'nlp_utils.py': ('max_tokens', 'check_length', 'check_explainable'),
    'toolkit/explore.py': ('check_epsilon', 'check_metric', '_too_long',
                           'in_time', 'read_audit'),
    'toolkit/explore_api.py': (
        'parse_query', 'number', 'is_loopback', 'check_host', 'split_host',
        'host_ok', 'token_of', 'refuse', '_without_token', 'late',
        'new_token'),
}
ALGORITHM = {
    'dknn.py': None,
    'toolkit/conformal.py': None,
    'toolkit/temperature.py': None,
    'toolkit/attribution.py': ('leave_one_out', 'gradient', 'explain',
                               'conformity_scores', 'softmax_scores',
                               'calibrated_scores'),
    'interpretations.py': ('leave_one_out', 'gradient', 'explain',
                           'conformity_scores', 'softmax_scores',
                           'calibrated_scores'),
}
SKIP_DIRS = {'tests', 'bench', '.venv', '.git', 'result', 'data', 'docs'}


def code_lines(source):
    """Line numbers of a source that hold code (no comment, blank or
    docstring line)."""
    docs = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, 'body', None)
        if isinstance(body, list) and body and isinstance(
                body[0], ast.Expr) and isinstance(
                    getattr(body[0], 'value', None), ast.Constant) and \
                isinstance(body[0].value.value, str):
            docs.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE,
                            tokenize.INDENT, tokenize.DEDENT,
                            tokenize.ENDMARKER):
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return lines - docs


def functions(tree):
    """(name, first line, last line) of every top-level function and
    method (a method's name alone)."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno
        elif isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield sub.name, sub.lineno, sub.end_lineno


def count_file(path, rel):
    """(robustness lines, algorithm lines, all code lines) of one file."""
    source = open(path, encoding='utf-8').read()
    lines = code_lines(source)
    if rel in WHOLE:
        return len(lines), 0, len(lines)
    guard = algo = 0
    inside = set()
    wanted = ALGORITHM.get(rel, ())
    for name, first, last in functions(ast.parse(source)):
        body = {i for i in lines if first <= i <= last}
        inside |= body
        if name in GUARDS.get(rel, ()):
            guard += len(body)
        elif rel in ALGORITHM and (wanted is None or name in wanted):
            algo += len(body)
    if rel in SCHEMA:
        guard += len(lines - inside)
    return guard, algo, len(lines)


def count_tree(root):
    """{file: (robustness, algorithm, all)} of every source file."""
    out = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and
                   not d.startswith('.')]
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, root).replace(os.sep, '/')
                out[rel] = count_file(path, rel)
    return out


@cli.script
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--tree', type=cli.folder_arg, default=ROOT,
                   help='the checkout to count (default: this one)')
    p.add_argument('--top', type=cli.int_at_least(0), default=12,
                   help='files listed, most robustness lines first')
    args = p.parse_args(argv)
    counts = count_tree(args.tree)
    guard = sum(g for g, _, _ in counts.values())
    algo = sum(a for _, a, _ in counts.values())
    total = sum(t for _, _, t in counts.values())
    print('| file | robustness lines | code lines |')
    print('|---|---|---|')
    for rel, (g, _, t) in sorted(counts.items(),
                                 key=lambda kv: -kv[1][0])[:args.top]:
        print('| {} | {} | {} |'.format(rel, g, t))
    print('robustness {} lines, algorithm {} lines ({:.1f} : 1), {} code '
          'lines in all ({:.0%} robustness)'.format(
              guard, algo, guard / max(algo, 1), total, guard / total))
    return {'robustness': guard, 'algorithm': algo, 'total': total}


if __name__ == '__main__':
    main()
