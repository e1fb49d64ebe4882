"""Training a run: ``fit`` from a config to a run folder, with every piece it turns.

    engine       ``fit``: build (or take the caller's loaders), restore, loop, finish; rank 0 writes the run folder
    loop         ``train_one_epoch``, ``evaluate``, the run's progress bar and projected end
    optim        the optimizer and learning-rate schedule factories
    schedule     how long a run trains: epochs from the data, shortened to a time budget
    budget       a new run's length on this machine: the probe, the records, the refit after the first epoch
    ema          the moving average of the weights (PyTorch's ``AveragedModel``)
    memory       will a step fit in memory; an out-of-memory error explained in one line
    preemption   SIGTERM and SIGUSR1 as a clean stop at the end of an epoch
    report       the end-of-run report: the final analysis, its figure in TensorBoard, calibration
"""
