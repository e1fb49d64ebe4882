"""Recipe studies: several recipes trained on one dataset, each compared with the first, over seeds.

    study_file      reading a study file and checking its recipes; each recipe's config and run folder
    study           ``fgvc study``: each recipe trained or re-evaluated (resumed where it stopped), then compared
    study_report    the rows, the Markdown tables (across seeds too), the figure, ``study.md`` and ``study.json``
    learning_curve  ``fgvc learning-curve``: accuracy against photos per class, a study over subsets
"""
