"""Images in, batches out: the data package's public names, one job per module.

    images         decoding files (EXIF, banner, bad files named)
    layout         FGVC-Aircraft's folder and file names; reading and checking its annotation files
    prepare        the download, and ``fgvc prepare``'s smaller copy
    datasets       FGVC-Aircraft, a user's ImageFolder, the augmented training split
    transforms     every train and eval preprocessing decision (like torchvision's ``presets.py``)
    normalization  what the weights expect of an input (a leaf that ``model`` and ``plots`` import)
    checks         nothing bad reaches training
    hierarchy      each class's family and manufacturer (FGVC-Aircraft's, or an imagefolder's hierarchy.csv)
    loaders        the training and evaluation DataLoaders

    train_set = build_dataset("data", "trainval")          # FGVC-Aircraft, banner cropped
    loaders = build_loaders(cfg, spec.norm)                # augmented train, plain eval

FGVC-Aircraft's 20-px copyright banner is cropped off when an image is loaded, before any transform,
as the dataset's README asks. A user's own photos use the ImageFolder layout ``root/<split>/<class>/*.jpg``.
"""

from fgvc.data.checks import check_data, drop_bad_images
from fgvc.data.datasets import (
    AugmentedSplit,
    FgvcAircraft,
    augmented,
    build_dataset,
    build_imagefolder,
    build_split,
    dataset_labels,
    image_files,
    training_split,
)
from fgvc.data.hierarchy import HIERARCHY_FILE, Hierarchy, dataset_hierarchy, hierarchy_names, read_hierarchy_csv
from fgvc.data.images import find_bad_images, fit_short_side, load_image, to_rgb
from fgvc.data.layout import FGVC_FOLDER, FGVC_URL, LEVEL_FILES, PREPARED_MARKER, prepared_info, read_hierarchy
from fgvc.data.loaders import EpochSampler, Loaders, build_loaders, eval_loader
from fgvc.data.normalization import Normalization
from fgvc.data.prepare import download_fgvc, prepare_fgvc
from fgvc.data.transforms import (
    AFFINE_SCALE,
    AFFINE_TRANSLATE,
    Augment,
    Augmentation,
    BatchAugment,
    augmentation_matrix,
    batch_augmentation,
    draw_augmentation,
    eval_transform,
    normalize,
    prepared_short_side,
    visible_box,
    visible_part,
)

__all__ = [
    "AFFINE_SCALE",
    "AFFINE_TRANSLATE",
    "FGVC_FOLDER",
    "FGVC_URL",
    "HIERARCHY_FILE",
    "LEVEL_FILES",
    "PREPARED_MARKER",
    "Augment",
    "Augmentation",
    "AugmentedSplit",
    "BatchAugment",
    "EpochSampler",
    "FgvcAircraft",
    "Hierarchy",
    "Loaders",
    "Normalization",
    "augmentation_matrix",
    "augmented",
    "batch_augmentation",
    "build_dataset",
    "build_imagefolder",
    "build_loaders",
    "build_split",
    "check_data",
    "dataset_hierarchy",
    "dataset_labels",
    "download_fgvc",
    "draw_augmentation",
    "drop_bad_images",
    "eval_loader",
    "eval_transform",
    "find_bad_images",
    "fit_short_side",
    "hierarchy_names",
    "image_files",
    "load_image",
    "normalize",
    "prepare_fgvc",
    "prepared_info",
    "prepared_short_side",
    "read_hierarchy",
    "read_hierarchy_csv",
    "to_rgb",
    "training_split",
    "visible_box",
    "visible_part",
]
