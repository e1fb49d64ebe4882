"""fgvc.evaluation.evaluate."""
