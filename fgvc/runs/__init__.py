"""fgvc.runs."""
