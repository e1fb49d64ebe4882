"""The ground every layer stands on: what a run is asked to do, and where and how it computes.

    config       ``TrainConfig`` (validated when made): its fields with their help, ``make_config``, config files
    presets      the named presets (``--preset``) and the measurements behind their fields
    defaults     what a command shares with the module behind it (web demo, Grad-CAM, audit, split, zoom, unknown)
    errors       ``FgvcError`` and its kinds: every deliberate message (the CLI catches nothing else)
    labels       class indices checked, and ``top_classes``: the one tie rule (the lower index wins)
    runtime      ``Runtime``: device, autocast precision, memory layout, shared by training and inference
    distributed  torchrun: rank and world size, each rank's device, the DDP wrapper, evaluation gathered

The package's layers, each a folder, import only the layers below them (tests/test_layers.py):
core < data < models < runs < evaluation < training < studies < apps.
"""
