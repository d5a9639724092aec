"""The digits demo: an h1/h2 update on scikit-learn's handwritten digits, served as a web page.

Everything it needs ships with scikit-learn (no download). h1 is a small
multi-layer perceptron (16 hidden units); h2 a larger one that the sweep
trains with the compatibility losses. Each instance's image is the 8 x 8
digit enlarged to a PNG, and its metadata reads ``"digit 3, sample 1204"``.
"""

from __future__ import annotations

import functools
import io
import threading
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

from .loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
from .sweep_management import SweepManager

__all__ = ["DigitsData", "load_digits_data", "build_digits_sweep", "DigitsMLP", "ConsoleProgress"]


class DigitsMLP(nn.Module):
    """A one-hidden-layer perceptron for 8 x 8 digits returning logits."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DigitsData:
    """scikit-learn's digits split into training and test batches keyed by sample index.

    Parameters
    ----------
    batch_size : int
        Batch size of both sets.
    test_fraction : float
        Share of the samples held out for testing.
    seed : int
        Seed of the split.

    Attributes
    ----------
    training_set, test_set : list of (instance_ids, inputs, targets)
        Batches whose ids are the sample indices in ``load_digits()``.
    """

    def __init__(self, batch_size: int = 32, test_fraction: float = 0.2, seed: int = 0) -> None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        self.images = digits.images
        self.targets = digits.target
        features = (digits.data / 16.0).astype(np.float32)
        order = np.random.default_rng(seed).permutation(len(features))
        cut = int(round(len(order) * (1 - test_fraction)))
        self.training_set = self._batches(features, order[:cut], batch_size)
        self.test_set = self._batches(features, order[cut:], batch_size)

    def _batches(self, features: np.ndarray, indices: np.ndarray, batch_size: int) -> List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        ids = torch.as_tensor(indices, dtype=torch.long)
        x = torch.as_tensor(features[indices])
        y = torch.as_tensor(self.targets[indices], dtype=torch.long)
        return [(ids[i:i + batch_size], x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(ids), batch_size)]

    def metadata(self, instance_id: int) -> str:
        """``"digit 3, sample 1204"``."""
        return f"digit {int(self.targets[instance_id])}, sample {int(instance_id)}"

    @functools.lru_cache(maxsize=4096)
    def image_png(self, instance_id: int, scale: int = 12) -> bytes:
        """The 8 x 8 digit as a ``8 * scale`` pixel square PNG (dark ink on white)."""
        from PIL import Image

        pixels = (255 - self.images[int(instance_id)] * (255 / 16)).clip(0, 255).astype(np.uint8)
        image = Image.fromarray(pixels, mode="L").resize((8 * scale, 8 * scale), Image.NEAREST)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()


def load_digits_data(batch_size: int = 32) -> DigitsData:
    """The digits split used by the demo and the notebooks."""
    return DigitsData(batch_size=batch_size)


def train_reference_model(data: DigitsData, hidden: int = 16, epochs: int = 5, seed: int = 0) -> DigitsMLP:
    """A small h1 (one hidden layer of 16 units) trained with plain cross-entropy."""
    torch.manual_seed(seed)
    model = DigitsMLP(hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(epochs):
        for _, x, y in data.training_set:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    return model.eval()


def build_digits_sweep(folder: str, *, epochs: int = 5, stepsize: float = 0.25, batch_size: int = 32,
                       seed: int = 0, **kwargs: Any) -> Tuple[SweepManager, DigitsData]:
    """The demo's SweepManager: h1 MLP(16) trained 5 epochs, h2 MLP(64) trained by the sweep with SGD."""
    data = load_digits_data(batch_size)
    h1 = train_reference_model(data, seed=seed)
    torch.manual_seed(seed + 1)
    h2 = DigitsMLP(64)
    manager = SweepManager(
        folder, epochs, h1, h2, data.training_set, data.test_set, batch_size, batch_size,
        torch.optim.SGD, {"lr": 0.05, "momentum": 0.9},
        BCCrossEntropyLoss, StrictImitationCrossEntropyLoss,
        lambda_c_stepsize=stepsize,
        get_instance_image_by_id=data.image_png,
        get_instance_metadata=data.metadata,
        **kwargs,
    )
    return manager, data


class ConsoleProgress:
    """Shows a sweep's progress on the console with tqdm, whoever starts the sweep.

    A daemon thread polls :meth:`SweepManager.get_sweep_status` and draws one
    bar per sweep run.
    """

    def __init__(self, manager: SweepManager, interval: float = 0.25) -> None:
        self.manager = manager
        self.interval = interval
        self._stop = threading.Event()
        self._owed = threading.Event()  # a sweep started here whose final line is not printed yet
        self._thread = threading.Thread(target=self._watch, name="bcml-console-progress", daemon=True)
        self._thread.start()

    def sweep_started(self) -> None:
        """Say that a sweep was just started: its final line is printed even if it ends before the next poll."""
        self._owed.set()

    def stop(self) -> None:
        """Stop watching; a bar still open is closed with the sweep's final state."""
        self._stop.set()
        self._thread.join(5)

    def _watch(self) -> None:
        from tqdm import tqdm

        bar: Optional[Any] = None
        while True:
            stopping = self._stop.wait(self.interval)
            status: Dict[str, Any] = self.manager.get_sweep_status()
            if status["running"] and bar is None and not stopping:
                bar = tqdm(total=100, desc="sweep", unit="%", bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}]{postfix}")
            if bar is not None:
                bar.n = round(100 * status["percent_complete"], 1)
                if status["lambda_c"] is not None:
                    bar.set_postfix_str(f"lambda_c={status['lambda_c']} {status['loss_family']}", refresh=False)
                bar.refresh()
                if not status["running"] or stopping:
                    bar.close()
                    bar = None
                    self._print_final(status)
            elif stopping and self._owed.is_set() and status["state"] not in ("idle", "running"):
                self._print_final(status)  # the sweep started and ended between two polls
            if stopping:
                return

    def _print_final(self, status: Dict[str, Any]) -> None:
        self._owed.clear()
        print(f"sweep {status['state']}: {status['completed_points']} of {status['total_points']} points"
              + (f" ({status['error']})" if status["error"] else ""), flush=True)
