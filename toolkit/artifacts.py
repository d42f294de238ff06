"""Annotation artifacts (SNLI): which hypothesis words carry the decision.

Gururangan et al. (2018) and Poliak et al. (2018) showed that SNLI
hypotheses alone predict the label: "sleeping" or "nobody" for
contradiction, "outdoors" for entailment. Wallace et al. (2018) read the
same artifacts off conformity leave-one-out: per predicted class, count
the words that most often carry an example's largest importance.
"""
import collections

import numpy

from toolkit import render


def artifact_words(records, method, n_class, top=10):
    """Per predicted class, the words that most often carry the largest
    importance of their example.

    Args:
        records (list of dict): from ``interpretations.interpret``.

    Returns:
        dict: class -> list of ``(word, count, mean importance)``, most
        frequent first (ties: larger mean importance first).
    """
    hits = [collections.defaultdict(list) for _ in range(n_class)]
    for rec in records:
        att = rec['results'][method]
        if len(att.importance):
            j = int(numpy.argmax(att.importance))
            hits[att.prediction][[t for p in rec['explained'] for t in rec['parts'][p]][j]].append(
                float(att.importance[j]))
    return {c: sorted(((w, len(v), float(numpy.mean(v)))
                       for w, v in hits[c].items()),
                      key=lambda r: (-r[1], -r[2], r[0]))[:top]
            for c in range(n_class)}


def artifact_table(words, label_names):
    """Markdown: for each class, its top words with counts and mean
    importance; every word escaped."""
    lines = ['| predicted class | word | times most important | mean '
             'importance |', '|---|---|---|---|']
    for c, rows in words.items():
        for w, n, m in rows:
            lines.append('| {} | {} | {} | {:.3f} |'.format(
                render.md_escape(label_names[c]), render.md_escape(w), n, m))
    return '\n'.join(lines) + '\n'


def plot_artifacts(words, label_names):
    """A bar chart per class of how often each word was the most important.
    """
    fig = render.figure(4 * len(words), 4)
    axes = fig.subplots(1, len(words), squeeze=False)[0]
    for ax, (c, rows) in zip(axes, words.items()):
        rows = rows[::-1]
        ax.barh(range(len(rows)), [n for _, n, _ in rows], color='#4d9221')
        ax.set_yticks(range(len(rows)), [w for w, _, _ in rows],
                      parse_math=False)
        ax.set_title('predicted: {}'.format(label_names[c]),
                     parse_math=False)
        ax.set_xlabel('examples where the word is most important')
    fig.tight_layout()
    return fig
