"""The reference on our data: Keller Jordan's airbench94 (PyTorch), run unchanged in its recipe on
this repository's CIFAR-10 copy and validation split, on the CPU.

    python -m research.reference_airbench --airbench <cifar10-airbench>/legacy/airbench94.py \\
        [--torch-python /path/to/python-with-torch] [--epochs 9.9] [--seed 0]

Why: airbench94 reaches 94.01% on the lossless CIFAR-10; the question this answers is what the
*same* recipe reaches on the data this project trains on (a JPEG copy), on this machine, so our
Keras port is compared with the reference side by side and not with a figure from other data.

How: the training/validation split is made exactly as ``training.train`` makes it (recipe seed,
10% held out) and written to an .npz; airbench94's own source is read from ``--airbench`` and
only its plumbing is changed before it runs (printed with ``--show-changes``): CUDA and half
precision → CPU float32, torchvision's download → the .npz, 25 runs → one, and the test split
evaluated once after training. Its hyper-parameters, network, optimiser, schedule, augmentation
and evaluation are untouched. Needs a Python with torch (CPU wheel:
``pip install torch --index-url https://download.pytorch.org/whl/cpu``) and numpy.
Nothing of airbench is stored in this repository.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from training import data as cifar
from training.job_types import RECIPES

ROOT = Path(__file__).resolve().parents[1]

# (what airbench94.py says, what it says here): plumbing only.
CHANGES = [
    (
        "import torchvision\nimport torchvision.transforms as T\n",
        "import numpy as np\nimport time\n",
    ),
    (
        "torch.backends.cudnn.benchmark = True",
        "torch.manual_seed(int(os.environ['REF_SEED']))",
    ),
    ("'train_epochs': 9.9", "'train_epochs': float(os.environ['REF_EPOCHS'])"),
    (
        "        data_path = os.path.join(path, 'train.pt' if train else 'test.pt')\n",
        "        split = np.load(os.environ['REF_DATA'])\n"
        "        which = 'train' if train else os.environ.get('REF_EVAL', 'val')\n"
        "        self.images = torch.tensor(split['x_' + which])\n"
        "        self.labels = torch.tensor(split['y_' + which]).long()\n"
        "        self.classes = list(range(10))\n"
        "        self.images = (self.images.float() / 255).permute(0, 3, 1, 2)"
        ".to(memory_format=torch.channels_last)\n"
        "        '''\n",
    ),
    (
        "        self.images = (self.images.half() / 255).permute(0, 3, 1, 2)"
        ".to(memory_format=torch.channels_last)\n",
        "        '''\n",
    ),
    (
        "        self.normalize = T.Normalize(CIFAR_MEAN, CIFAR_STD)",
        "        self.normalize = lambda x: (x - CIFAR_MEAN.view(1, 3, 1, 1)) "
        "/ CIFAR_STD.view(1, 3, 1, 1)",
    ),
    ("    net = net.half().cuda()\n", ""),
    ("            mod.float()", "            pass"),
    (
        "    starter = torch.cuda.Event(enable_timing=True)\n"
        "    ender = torch.cuda.Event(enable_timing=True)\n",
        "    class Clock:\n"
        "        def record(self): self.t = time.time()\n"
        "        def elapsed_time(self, other): return 1000 * (other.t - self.t)\n"
        "    starter, ender = Clock(), Clock()\n",
    ),
    ("torch.cuda.synchronize()", "pass"),  # every occurrence (EVERYWHERE)
    (
        "    accs = torch.tensor([main(run) for run in range(25)])",
        "    accs = torch.tensor([main(run) for run in range(1)])",
    ),
    (
        "    return tta_val_acc\n",
        "    os.environ['REF_EVAL'] = 'test'\n"
        "    test = CifarLoader('cifar10', train=False, batch_size=2000)\n"
        "    print('validation: one view %.4f, six views %.4f; test: one view %.4f, six views %.4f'"
        " % (val_acc, tta_val_acc, evaluate(model, test, 0), evaluate(model, test, 2)),"
        " flush=True)\n"
        "    return tta_val_acc\n",
    ),
]


EVERYWHERE = {"torch.cuda.synchronize()"}


def patched(source: str) -> str:
    for before, after in CHANGES:
        found = source.count(before)
        if found != 1 and not (before in EVERYWHERE and found):
            raise SystemExit(
                f"error: this airbench94.py differs from the one this script knows "
                f"(legacy/airbench94.py of KellerJordan/cifar10-airbench); not found once:\n"
                f"{before}"
            )
        source = source.replace(before, after)
    return source


def write_split(data: Path, seed: int, out: Path) -> None:
    dataset, _ = cifar.load(str(data))
    x_train, y_train, x_val, y_val = cifar.split_validation(
        dataset.x_train, dataset.y_train, RECIPES["default"].validation_fraction, seed
    )
    np.savez(
        out,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=dataset.x_test,
        y_test=dataset.y_test,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--airbench", type=Path, required=True, help="legacy/airbench94.py")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/cifar10-jpeg")
    parser.add_argument("--torch-python", default=sys.executable)
    parser.add_argument("--epochs", type=float, default=9.9)
    parser.add_argument("--seed", type=int, default=0, help="validation split and torch seed")
    parser.add_argument("--show-changes", action="store_true")
    args = parser.parse_args(argv)
    if args.show_changes:
        for before, after in CHANGES:
            print(f"--- airbench94.py\n{before}\n+++ here\n{after}\n")
        return
    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "split.npz"
        write_split(args.data, args.seed, split)
        script = Path(tmp) / "airbench94_here.py"
        script.write_text(patched(args.airbench.read_text()))
        env = {
            **os.environ,
            "REF_DATA": str(split),
            "REF_EPOCHS": str(args.epochs),
            "REF_SEED": str(args.seed),
        }
        subprocess.run([args.torch_python, "-u", str(script)], cwd=tmp, env=env, check=True)


if __name__ == "__main__":
    main()
