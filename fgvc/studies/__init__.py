"""fgvc.studies."""
