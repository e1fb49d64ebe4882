"""fgvc.training."""
