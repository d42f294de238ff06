"""Everything behind the paper's scripts: the run folder and its cache,
safe file I/O, the command-line helpers, metrics, temperature scaling,
conformal prediction and uncertainty, input reduction, faithfulness and
artifact measures, and rendering. See docs/layout.md."""
