"""DDP scaling: the training throughput of one torchrun launch, a few optimizer steps on random images timed
after a warm-up.

    torchrun --standalone --nproc_per_node=4 -m fgvc.apps.benchmarks.ddp --arch efficientnet-b4 --img-size 448
    python -m fgvc.apps.benchmarks.ddp --report ONE_JSON ALL_JSON      # scaling efficiency of two launches
    bash fgvc/apps/benchmarks/gpu_ddp.sh                                # both: 1 GPU, then every GPU

Rank 0 prints one JSON line: processes, device, images per second in all and per process. The
images are random: this measures the network, the optimizer and DDP's gradient all-reduce, not the
input pipeline (issue 11 benchmarks that).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from fgvc.apps.benchmarks.train import training_step
from fgvc.core import distributed
from fgvc.core.runtime import Runtime
from fgvc.models.backbones import build_model


def throughput(*, arch: str, img_size: int, batch_size: int, steps: int, warmup: int, device: str,
               precision: str) -> dict[str, object]:
    """Images per second of ``steps`` training steps (after ``warmup`` untimed ones) of ``arch`` on random
    ``img_size`` images, ``batch_size`` per process, on every process of this launch."""
    ranks = distributed.init(device)
    runtime = Runtime.create(device, precision, channels_last=device != "cpu", ranks=ranks)
    model = runtime.prepare(build_model(arch, 100, pretrained=False))
    if ranks.enabled:
        model = distributed.wrap(model, runtime.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = runtime.inputs(torch.randn(batch_size, 3, img_size, img_size))
    targets = torch.randint(0, 100, (batch_size,)).to(runtime.device)
    step = training_step(model, optimizer, runtime.grad_scaler(), runtime, images, targets)

    for _ in range(warmup):
        step()
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = distributed.mean(torch.tensor(time.perf_counter() - started), ranks).item()
    total = steps * batch_size * ranks.world_size / seconds
    name = torch.cuda.get_device_name(runtime.device) if runtime.device.type == "cuda" else "cpu"
    distributed.shutdown()
    return {"processes": ranks.world_size, "device": name, "arch": arch, "img_size": img_size,
            "batch_per_process": batch_size, "precision": runtime.precision_name,
            "images_per_s": round(total, 1), "images_per_s_per_process": round(total / ranks.world_size, 1)}


def report(one: dict[str, object], many: dict[str, object]) -> str:
    """The scaling of ``many`` processes against one: per-process throughput as a share of a lone process's."""
    efficiency = float(many["images_per_s_per_process"]) / float(one["images_per_s"])
    return (f"{many['device']}, {many['arch']} at {many['img_size']} px, batch {many['batch_per_process']} per GPU, "
            f"{many['precision']}: 1 GPU {one['images_per_s']} images/s; {many['processes']} GPUs "
            f"{many['images_per_s']} images/s ({many['images_per_s_per_process']} per GPU); "
            f"scaling efficiency {efficiency:.2f}")


def main() -> None:
    """The torchrun entry point: measure this launch (rank 0 prints its JSON line), or --report two lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="efficientnet-b4")
    parser.add_argument("--img-size", type=int, default=448)
    parser.add_argument("--batch-size", type=int, default=32, help="per process")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--report", nargs=2, metavar=("ONE", "MANY"), help="two JSON lines of this script")
    args = parser.parse_args()
    if args.report:
        print(report(*(json.loads(line) for line in args.report)))
        return
    result = throughput(arch=args.arch, img_size=args.img_size, batch_size=args.batch_size, steps=args.steps,
                        warmup=args.warmup, device=args.device, precision=args.precision)
    if distributed.from_environment().primary:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
