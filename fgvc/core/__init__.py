"""fgvc.core."""
