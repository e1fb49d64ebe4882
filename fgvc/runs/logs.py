"""The run's text log: the ``fgvc`` logger's lines on the console and in ``<run>/train.log``.

    setup_logging(run_dir)                     # console + run_dir/train.log
    setup_logging(None, logging.WARNING)       # console only, warnings and errors (the other ranks of torchrun)
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

LOGGER_NAME = "fgvc"
_HANDLER_MARK = "_fgvc_handler"


def setup_logging(run_dir: str | Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Log to the console and to ``run_dir/train.log``; calling again replaces the previous handlers."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if run_dir is not None:
        handlers.append(logging.FileHandler(Path(run_dir) / "train.log"))
    for handler in handlers:
        setattr(handler, _HANDLER_MARK, True)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger
