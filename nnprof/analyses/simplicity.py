"""Simplicity: "start with a small, plain model", checked against what the run built."""
from __future__ import annotations

import re
from typing import Optional

from . import Finding

MAX_PARAMETERS = 1_000_000
RANDOM_TRANSFORMS = frozenset({
    "ColorJitter", "RandAugment", "AutoAugment", "TrivialAugmentWide", "AugMix",
    "GaussianBlur", "GaussianNoise", "RandomErasing", "MixUp", "CutMix",
    "ElasticTransform", "ScaleJitter", "JPEG",
})
MAX_NAMED = 5

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _names(items: list) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def random_transforms(spec: str) -> list:
    """Names in a transform description that draw random numbers: names starting
    with ``Random`` (RandomCrop, RandomApply, ...) or in :data:`RANDOM_TRANSFORMS`."""
    # only what follows "=" describes the transform ("MyDataset.transform=Compose(...)")
    body = spec.split("=", 1)[1] if "=" in spec.split("(", 1)[0] else spec
    found = []
    for tok in _IDENT.findall(body):
        if (tok.startswith("Random") or tok in RANDOM_TRANSFORMS) and tok not in found:
            found.append(tok)
    return found


def simplicity(probe: Optional[dict], loaders: Optional[list] = None) -> Finding:
    """Checks (each one a reason to simplify first, never a failure):

    - ``parameters``: the models' total parameters (or the optimizers', when more) >
      ``MAX_PARAMETERS`` (1,000,000);
    - ``dropout``: a dropout module with p > 0;
    - ``normalization``: batch/layer/group/instance normalisation layers
      (``norms`` in ``probe.json``);
    - ``weight_decay``: weight_decay > 0 in any optimizer param group;
    - ``scheduler``: a learning-rate scheduler was constructed;
    - ``augmentation``: random transforms in a dataset's transforms
      (``loaders[i]["transforms"]``, strings like
      ``"MyDataset.transform=Compose(RandomCrop, ToTensor)"``), see
      :func:`random_transforms`.

    Verdict ``warn`` (severity ``warn``) when any check triggers, ``pass``
    otherwise; ``skip`` when there is no probe. Evidence: ``triggered`` (the
    checks, in the order above) and, for each, what triggered it.
    """
    if probe is None:
        return Finding("simplicity", "skip", {"reason": "no probe was recorded"},
                       ("Simplicity not checked: no probe was recorded.",), "info")
    models = probe.get("models") or []
    evidence: dict = {"triggered": []}
    advice: list = []

    def hit(check: str, detail, line: str):
        evidence["triggered"].append(check)
        evidence[check] = detail
        advice.append(line)

    total = sum(int(m.get("parameters") or 0) for m in models)
    # the optimizers' parameters, when more: a model whose own call was not seen (its
    # forward called directly) is known by what its optimizer trains
    trained = sum(int(g.get("numel") or 0) for o in probe.get("optimizers") or []
                  for g in o.get("groups") or [])
    total = max(total, trained)
    evidence["total_parameters"] = total
    if total > MAX_PARAMETERS:
        hit("parameters", {"total": total, "limit": MAX_PARAMETERS,
                           "by_model": {m.get("name", "?"): m.get("parameters") for m in models}},
            f"The model has {total:,} parameters (more than {MAX_PARAMETERS:,}): a small model "
            "trains in seconds and shows whether data, loss and wiring are right before "
            "scale hides bugs.")

    drops = [dict(d, model=m.get("name")) for m in models for d in (m.get("dropout") or [])
             if (d.get("p") or 0) > 0]
    if drops:
        hit("dropout", drops,
            f"Dropout in {_names(['%s.%s (p=%g)' % (d['model'], d['module'], d['p']) for d in drops])}"
            ": it adds noise that hides whether the model can fit; set p=0 until it "
            "overfits a few examples.")

    norms = [dict(n, model=m.get("name")) for m in models for n in (m.get("norms") or [])]
    if norms:
        hit("normalization", norms,
            "Normalisation layers "
            f"{_names(['%s.%s (%s)' % (n['model'], n['module'], n.get('class')) for n in norms])}"
            ": they "
            "add state and couple the examples of a batch (and behave differently in "
            "eval); start without them and add them once a plain model trains.")

    decays = [{"optimizer": o.get("class"), "group": g, "weight_decay": grp.get("weight_decay")}
              for o in (probe.get("optimizers") or [])
              for g, grp in enumerate(o.get("groups") or [])
              if (grp.get("weight_decay") or 0) > 0]
    if decays:
        hit("weight_decay", decays,
            "Weight decay "
            f"{_names(['%g (%s group %d)' % (d['weight_decay'], d['optimizer'], d['group']) for d in decays])}"
            ": regularisation works against fitting; start with weight_decay=0.")

    scheds = [s.get("class") for s in (probe.get("schedulers") or [])]
    if scheds:
        hit("scheduler", scheds,
            f"LR scheduler {_names([str(s) for s in scheds])}: a changing learning rate "
            "makes the loss curve harder to read; start with a constant one.")

    augs = []
    for ld in loaders or []:
        for spec in ld.get("transforms") or []:
            found = random_transforms(str(spec))
            if found:
                augs.append({"loader": ld.get("id"), "transform": spec, "random": found})
    if augs:
        names = []
        for a in augs:
            names += [n for n in a["random"] if n not in names]
        hit("augmentation", augs,
            f"Random augmentations ({_names(names)}): the model sees different inputs "
            "every epoch and cannot memorise them; start without augmentation.")

    if not advice:
        advice.append("The setup is small and plain: no dropout, normalisation, weight "
                      "decay, scheduler or random augmentation, and at most "
                      f"{MAX_PARAMETERS:,} parameters.")
    triggered = bool(evidence["triggered"])
    return Finding("simplicity", "warn" if triggered else "pass", evidence, tuple(advice),
                   "warn" if triggered else "info")
