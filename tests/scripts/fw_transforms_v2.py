"""An image classifier fed through transforms written the way torchvision's
``transforms.v2`` writes them: every transform, ``Compose`` included, is an
``nn.Module`` (called through ``nn.Module.__call__``, applied in ``forward``), and the
dataset is ``ImageFolder``-like (``samples`` and ``targets`` sorted by class, a
``transform`` attribute). The loader works in the main process.

Options: --epochs E (default 2) --jitter-cost S --normalize-cost S (per image, the
sleeps of ``ColorJitter`` and ``Normalize``).

Ground truth: 8 batches of 4 per epoch, each a train step with exactly one model
forward (the transforms are loader work, never the model's); per batch the transforms
take 4 x (jitter + normalize) seconds, ColorJitter 4 x jitter of it; the random
augmentation is ``RandomHorizontalFlip``. Prints ``loss <i> <repr>`` per step.
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--jitter-cost", type=float, default=0.0)
ap.add_argument("--normalize-cost", type=float, default=0.0)
args = ap.parse_args()


class Transform(nn.Module):
    """The v2 base class: a module whose forward transforms one image."""


class Compose(Transform):
    def __init__(self, transforms):
        super().__init__()
        self.transforms = transforms

    def forward(self, img):
        for t in self.transforms:
            img = t(img)
        return img


class RandomHorizontalFlip(Transform):
    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    def forward(self, img):
        return img.flip(-1) if torch.rand(1).item() < self.p else img


class ColorJitter(Transform):
    def __init__(self, brightness=0.2):
        super().__init__()
        self.brightness = brightness

    def forward(self, img):
        time.sleep(args.jitter_cost)
        factor = 1.0 + (torch.rand(1).item() * 2 - 1) * self.brightness
        return (img * factor).clamp(0, 1)


class Normalize(Transform):
    def __init__(self, mean, std):
        super().__init__()
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def forward(self, img):
        time.sleep(args.normalize_cost)
        return (img - self.mean) / self.std


class SyntheticImageFolder(Dataset):
    """Like ImageFolder: (image, class) pairs listed class by class."""

    def __init__(self, n_per_class, classes, transform=None):
        g = torch.Generator().manual_seed(0)
        self.classes = [f"class{c}" for c in range(classes)]
        self.samples = [(torch.rand(3, 8, 8, generator=g) * 0.5 + 0.5 * (c / classes), c)
                        for c in range(classes) for _ in range(n_per_class)]
        self.targets = [c for _, c in self.samples]
        self.transform = transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        img, target = self.samples[i]
        if self.transform is not None:
            img = self.transform(img)
        return img, target


class SmallCNN(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8 * 4 * 4, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return self.head(x.flatten(1))


def main():
    torch.manual_seed(0)
    transform = Compose([RandomHorizontalFlip(), ColorJitter(0.2),
                         Normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])])
    dataset = SyntheticImageFolder(8, 4, transform=transform)
    loader = DataLoader(dataset, batch_size=4, shuffle=True, num_workers=0)
    model = SmallCNN(len(dataset.classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    step = 0
    for epoch in range(args.epochs):
        for images, targets in loader:
            loss = F.cross_entropy(model(images), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            print(f"loss {step} {loss.item()!r}")
            step += 1
    print(f"done {step}")


if __name__ == "__main__":
    main()
