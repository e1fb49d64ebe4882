"""A run folder and its records: what a run wrote, what produced it, and where it stands.

    folders      a new run folder, held by one process at a time (its lock), ``config.json``, ``start_run``
    logs         ``train.log``: the ``fgvc`` logger on the console and in the run folder
    csvlog       ``steps.csv`` and ``epochs.csv``: their columns, rows appended and read
    runlog       ``RunLog``: each metric written once, as a CSV row and as TensorBoard events
    status       ``run_status`` (``fgvc status``) and the record of a stop by a signal
    provenance   what produced a run (code, libraries, machine, command, times, data): ``provenance.json``
"""
