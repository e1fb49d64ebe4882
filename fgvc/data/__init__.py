"""Images in, batches out: the data package's public names, one job per module.

    images         finding image files; decoding them (EXIF, banner, bad files named)
    layout         FGVC-Aircraft's folder and file names; reading and checking its annotation files
    prepare        the download, and ``fgvc prepare``'s smaller copy
    datasets       FGVC-Aircraft, a user's ImageFolder (split folders or a split file), the augmented training split
    split          a flat folder of photos split into a split file (fgvc split), exclusion lists
    transforms     every train and eval preprocessing decision (like torchvision's ``presets.py``)
    normalization  what each architecture's weights expect of an input (the loaders', ``model``'s and ``plots``')
    checks         nothing bad reaches training
    duplicates     exact (sha256) and near (64-bit dHash) copies among photos
    hierarchy      each class's family and manufacturer (FGVC-Aircraft's, or an imagefolder's hierarchy.csv)
    kinds          each kind of dataset (fgvc-aircraft, imagefolder) as one object, found by name; the splits cfg names
    loaders        the training and evaluation DataLoaders
    synthetic      the offline dataset in FGVC-Aircraft's layout (``fgvc synth``), from
    synthetic_aircraft  its classes and the shapes of their aircraft, and
    synthetic_render    one image of an aircraft drawn

    train_set = build_dataset("data", "trainval")          # FGVC-Aircraft, banner cropped
    loaders = build_loaders(cfg)                           # augmented train, plain eval

FGVC-Aircraft's 20-px copyright banner is cropped off when an image is loaded, before any transform,
as the dataset's README asks. A user's own photos lie in a flat folder ``root/<class>/*.jpg`` with the split file
``root/splits.csv`` that ``fgvc split`` writes, or in split folders ``root/<split>/<class>/*.jpg``.

Each name below is imported from its module when first asked for, so importing one module of the package (the
layout, for ``fgvc synth``) does not import torch with the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {  # module -> the names the package gives
    "checks": ("check_data", "drop_bad_images"),
    "datasets": ("AugmentedSplit", "FgvcAircraft", "ListedImageFolder", "augmented", "build_dataset",
                 "build_imagefolder", "dataset_labels", "dataset_sources", "image_files", "keep_samples", "leave_out",
                 "per_class_subset"),
    "duplicates": ("NEAR_BITS", "PhotoHashes", "content_hash", "duplicate_labels", "hash_photos",
                   "near_duplicate_groups", "near_pairs", "perceptual_hash"),
    "hierarchy": ("HIERARCHY_FILE", "Hierarchy", "ParentLevel", "hierarchy_names", "hierarchy_problems",
                  "parent_index", "read_hierarchy", "read_hierarchy_csv"),
    "split": ("EXCLUDED", "imagefolder_classes", "imagefolder_splits", "read_exclusions", "read_split_file",
              "split_file_of", "split_folder"),
    "kinds": ("KINDS", "DatasetKind", "build_split", "dataset_hierarchy", "dataset_kind", "training_split"),
    "images": ("IMAGE_SUFFIXES", "expand_images", "find_bad_images", "fit_short_side", "load_image", "to_rgb"),
    "layout": ("FGVC_FOLDER", "FGVC_URL", "LEVEL_FILES", "PREPARED_MARKER", "prepared_info"),
    "loaders": ("EpochSampler", "Loaders", "build_loaders", "eval_loader"),
    "normalization": ("IMAGENET", "TF_LITE", "Normalization", "arch_normalization"),
    "prepare": ("download_fgvc", "prepare_fgvc"),
    "transforms": ("AFFINE_SCALE", "AFFINE_TRANSLATE", "Augment", "Augmentation", "BatchAugment",
                   "augmentation_matrix", "batch_augmentation", "draw_augmentation", "eval_transform", "normalize",
                   "prepared_short_side", "visible_box", "visible_part"),
}
_MODULE_OF = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'fgvc.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fgvc.data.{_MODULE_OF[name]}"), name)
    globals()[name] = value
    return value
