"""fgvc: fine-grained aircraft classification with EfficientNet, Grad-CAM and honest metrics."""

__version__ = "0.1.0"
