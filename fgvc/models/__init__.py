"""A network and what it answers: backbones by name, checkpoints, one inference path, and where it looks.

    backbones    EfficientNet B0-B7 and Lite0-2 behind ``ModelSpec`` (size, head, Grad-CAM layer), ImageNet weights
    checkpoint   ``TrainState`` (what a checkpoint holds, saved atomically), ``load_trained``
    calibration  a temperature and an unknown-type threshold: how sure a prediction is (stored in the checkpoint)
    scoring      ``predict_scores``: the scoring kernel that evaluation during training and ``Predictor`` share
    predictor    ``Predictor``: a checkpoint's (or ONNX file's) model with its preprocessing, runtime and batching
    zoom         the zoomed second look: the class activation map from the pooled features, its box, ``Zoom``
    export       ``fgvc export`` (ONNX) and the ONNX Runtime model behind ``Predictor`` for ``.onnx`` files
    gradcam      class activation maps through pytorch-grad-cam (``explain``, ``Explanation``)
    heatmap      drawing a map over a photo (OpenCV's JET colour map)
"""
