"""fgvc.models."""
