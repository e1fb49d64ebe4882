"""fgvc.apps."""
