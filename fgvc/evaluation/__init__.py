"""How good is a model, and is one better than another? Measures, reports, comparisons and figures.

    metrics      numpy measures: top-k, confusion, per-class accuracy, calibration error, Brier score
    statistics   bootstrap intervals, McNemar's exact test, paired comparisons within and across seeds
    analysis     the report of one evaluation: metrics with intervals, per-class accuracy, confusions, files
    evaluate     evaluating a checkpoint on a whole split (``fgvc evaluate``), and fitting its calibration
    compare      ``fgvc compare``: two evaluations of the same images, image by image
    plots        figures from a run folder: curves, samples, confusions, reliability, CAM overlays
"""
