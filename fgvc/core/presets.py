"""The named presets (``--preset``): each a set of config fields, with the measurement behind each choice."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # The FGVC-Aircraft recipe: train on trainval, report on test (the last epoch, never the
    # best-on-test one), B4 from ImageNet at 448 px, SGD + nesterov, warmup + cosine,
    # label smoothing 0.1 (after the published ResNet-50 448-px recipe, see README).
    "b4": {},
    # Minutes on a CPU, offline: the synthetic set that `fgvc synth` writes, Lite0 fine-tuned
    # from the ImageNet weights its pip package installs (no download), at 96 px; PyTorch's usual
    # BN momentum so eval statistics catch up within a few epochs, and milder crops and rotations
    # (they were tuned for B0 from random weights; fine-tuned Lite0 needs no more). fp32: bf16
    # autocast is 2-4x faster on CPUs with native bf16, but far slower on many laptops without.
    "demo": {
        "data_root": "data/synthetic",
        "download": False,
        "arch": "efficientnet-lite0",
        "pretrained": True,
        "bn_momentum": 0.1,
        "img_size": 96,
        "epochs": 6,
        "batch_size": 16,
        "lr": 1e-3,
        "optimizer": "adamw",
        "weight_decay": 0.05,
        "warmup_epochs": 1,
        "min_crop_scale": 0.8,
        "affine_degrees": 5.0,
        "precision": "fp32",
        "channels_last": False,
        "device": "cpu",
        "workers": 0,  # in-process loading: the images are small
    },
    # Your own photos or FGVC-Aircraft without a GPU. Each field and the measurement behind it, on real photos
    # (README, "Results on real photos": warbirds20 val, rows of studies/warbirds20.yaml unless named otherwise):
    # - arch, pretrained: Lite0 from the ImageNet weights its pip package installs (no squeeze-and-excitation,
    #   ReLU6: cheap on CPUs; no download). Within the 15-minute budget on 2 AVX2 cores Lite1 trains 3 epochs to
    #   Lite0's 5 and loses: 70.2 against 76.8 % val, -6.6 (-10.4 to -2.6, p = 0.002; studies/results/
    #   warbirds20-cpu-shipped-avx2-lite1); Lite2 trains 3 and loses more: 67.6 %, -9.2 (-13.0 to -5.6, p < 0.001;
    #   studies/results/warbirds20-cpu-shipped-avx2-lite2).
    # - img_size 224: row 224px, +6.8 points over 160 px at equal epochs (p < 0.001); 192 px matched it.
    # - eval_img_size 256: row 224px-eval-256px, +3.0 over evaluating at 224 (FixRes); over 3 seeds at 25 photos per
    #   type (studies/warbirds20-small-eval.yaml) row eval-224px -2.2 (-3.8 to -0.7, p = 0.008), row eval-288px -0.4.
    # - eval_zoom off (its default): row zoom of that study, +0.6 (-0.7 to +2.0, p = 0.44); on all 2,000 photos (val)
    #   -0.4 (p = 0.87).
    # - epochs None, schedule_steps 400 in [5, 40] epochs (their defaults), time_budget 15: the length follows the
    #   data (studies/warbirds20-small.yaml, 25 photos per type, 3 seeds: the rule's 27 epochs beat the old fixed
    #   6 by +17.7 points val, +13.5 test, p < 0.001, in 14.7 minutes; on all 2,000 photos it gives 7 epochs, 14
    #   minutes; 20 epochs beat 6 on 476 airliner photos), and the promise is 15 minutes on a laptop. The first
    #   epoch fits the length again (studies/results/warbirds20-cpu-shipped-avx2-refit: 5 epochs where the probe
    #   projected 4 on 2 AVX2 cores, val +2.0, p = 0.18, in 15.2 minutes).
    # - lr 1e-3 (AdamW, one rate for the whole network): rows lr-3e-4 (-9.0), lr-3e-3 (-13.4), head-lr-x10 (-3.4); on
    #   the preset as shipped over seeds 0-2 (studies/warbirds20-whole-levers.yaml) head-lr-x10 -0.4 (-2.3 to +1.5).
    # - random_erasing 0 (its default): row erasing-0.25 -2.4 (p = 0.25); on the preset over seeds 0-2 +0.5 (-1.1 to
    #   +2.1, p = 0.59): no gain.
    # - mixup_alpha, cutmix_alpha 0 (their defaults): row mixup-cutmix -5.0 (p = 0.020); on the preset's longest
    #   schedule (25 photos per type, 27 epochs: studies/warbirds20-small-mixup.yaml) -4.0 (-7.6 to -0.6, p = 0.042).
    # - precision auto, channels_last: bf16 autocast where the CPU has bf16 arithmetic (AVX512-BF16, AMX: B0's step
    #   1.53x with channels_last, BENCHMARKS.md), fp32 elsewhere (on an AVX2-only CPU bf16 is emulated: Lite0's step
    #   0.54x, while channels_last makes fp32 2.09x faster; fgvc bench train). Row eval-fp32 shows bf16 costs
    #   nothing measurable at inference; in training, the same seed in fp32 (studies/warbirds20-whole.yaml, row
    #   preset) and in bf16 (the learning curve's run) differ by 0.4 points val (-2.6 to +3.0, p = 0.89).
    # - ema_decay 0 (off, its default): row ema-0.99 of studies/warbirds20-whole.yaml, +0.2 (-1.4 to +1.8, p = 1.0).
    # - min_crop_scale 0.35: row crop-0.6 of studies/warbirds20-whole.yaml, +0.0 (-3.0 to +3.2, p = 1.0): kept.
    # - frozen_stages 4 (the stem and the first 3 blocks keep their ImageNet weights): row frozen-4 of
    #   studies/warbirds20-whole.yaml, 78.2 against 78.8 at the rule's 7 epochs, -0.6 (-3.8 to +2.6, p = 0.81), for a
    #   step 0.69x as long (fgvc bench recipe, 2 AVX2 cores), so a slow CPU fits more of the rule's epochs in the
    #   budget. Row 192px trades the other way and loses: -3.4 (-6.6 to -0.2, p = 0.057) evaluated at 256 px.
    # - label smoothing 0.1 and the random affine (10 degrees), their defaults: over seeds 0-2 at the rule's 7 epochs
    #   (studies/warbirds20-whole-seeds.yaml) rows no-label-smoothing +1.0 (-0.5 to +2.5, p = 0.23) and no-affine
    #   +0.1 (-1.6 to +1.9, p = 0.94): no evidence against either, so both stay. Without label smoothing the raw
    #   probabilities are better calibrated (ECE 5-6 % against 19-21 %), but after the temperature each run fits both
    #   reach 3.5-6.2 % (docs/real-photos.md).
    # - bn_momentum None (the library's 0.01): row bn-momentum-0.1 of studies/warbirds20-whole-frozen.yaml, +0.4 (-1.0
    #   to +2.0, p = 0.79). weight_decay 0.05 and warmup_epochs 1: not measured.
    # Add --dataset imagefolder --data-root ROOT --train-split train --eval-split val for your photos (fgvc split ROOT).
    "cpu": {
        "arch": "efficientnet-lite0",
        "pretrained": True,
        "img_size": 224,
        "eval_img_size": 256,
        "epochs": None,  # chosen from the data: schedule_steps, within the time budget
        "time_budget": 15.0,
        "batch_size": 32,
        "lr": 1e-3,
        "optimizer": "adamw",
        "weight_decay": 0.05,
        "warmup_epochs": 1,
        "min_crop_scale": 0.35,
        "frozen_stages": 4,
        "precision": "auto",
        "channels_last": True,
        "device": "cpu",
        "workers": 2,
    },
}
