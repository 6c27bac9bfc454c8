import json

from nnprof.analyses.simplicity import MAX_PARAMETERS, random_transforms, simplicity


def plain_probe(**over):
    probe = {
        "models": [{"name": "Net", "class": "Net", "parameters": 1234, "trainable": 1234,
                    "dropout": [{"module": "drop", "class": "Dropout", "p": 0.0}],
                    "norms": []}],
        "losses": [{"class": "CrossEntropyLoss"}],
        "optimizers": [{"class": "SGD", "groups": [{"lr": 0.1, "weight_decay": 0.0,
                                                    "params": 4}]}],
        "schedulers": [],
    }
    probe.update(over)
    return probe


def test_plain_setup_passes():
    f = simplicity(plain_probe(), [{"transforms": ["D.transform=Compose(ToTensor, Normalize)"]}])
    assert f.name == "simplicity" and f.verdict == "pass" and f.severity == "info"
    assert f.evidence["triggered"] == []
    assert len(f.advice) == 1


def test_every_check_triggers_and_explains():
    probe = plain_probe(
        models=[{"name": "Big", "class": "Big", "parameters": MAX_PARAMETERS + 1,
                 "dropout": [{"module": "drop", "class": "Dropout", "p": 0.5},
                             {"module": "off", "class": "Dropout", "p": 0.0}],
                 "norms": [{"module": "bn1", "class": "BatchNorm2d"},
                           {"module": "ln", "class": "LayerNorm"}]}],
        optimizers=[{"class": "AdamW", "groups": [{"lr": 1e-3, "weight_decay": 0.0},
                                                   {"lr": 1e-3, "weight_decay": 0.01}]}],
        schedulers=[{"class": "StepLR"}])
    loaders = [{"id": "L0", "transforms": [
        "MyDataset.transform=Compose(RandomCrop(size=32), ColorJitter, ToTensor)"]}]
    f = simplicity(probe, loaders)
    assert f.verdict == "warn" and f.severity == "warn"
    assert f.evidence["triggered"] == ["parameters", "dropout", "normalization",
                                       "weight_decay", "scheduler", "augmentation"]
    assert len(f.advice) == 6
    assert [d["module"] for d in f.evidence["dropout"]] == ["drop"]
    assert "Big.drop" in f.advice[1] and "Big.off" not in f.advice[1]
    assert "bn1" in f.advice[2] and "BatchNorm2d" in f.advice[2]
    assert "AdamW group 1" in f.advice[3]
    assert "StepLR" in f.advice[4]
    assert "RandomCrop" in f.advice[5] and "ColorJitter" in f.advice[5]
    json.dumps(f.to_dict())


def test_parameter_limit_sums_models():
    m = {"name": "G", "parameters": MAX_PARAMETERS // 2 + 1}
    f = simplicity(plain_probe(models=[m, dict(m, name="D")]), [])
    assert f.evidence["triggered"] == ["parameters"]
    f = simplicity(plain_probe(models=[{"name": "N", "parameters": MAX_PARAMETERS}]), [])
    assert f.verdict == "pass"


def test_random_transform_names():
    assert random_transforms("D.transform=Compose(RandomResizedCrop, ToTensor)") == [
        "RandomResizedCrop"]
    assert random_transforms("Compose(v2.RandAugment(), AugMix, GaussianBlur)") == [
        "RandAugment", "AugMix", "GaussianBlur"]
    # the dataset's own name is not a transform
    assert random_transforms("RandomDataset.transform=Compose(ToTensor)") == []
    assert random_transforms("D.transform=Compose(Resize(256), CenterCrop, Normalize)") == []


def test_skip_without_probe_and_tolerates_sparse_probe():
    assert simplicity(None, []).verdict == "skip"
    assert simplicity({}, None).verdict == "pass"


def test_parameters_are_counted_from_the_optimizers_when_the_models_were_not_seen():
    """A layer trained through ``layer.forward(x)`` called directly: only its parameter-
    free submodules were seen as models; its optimizer holds its 2,000,500 parameters."""
    probe = {"models": [{"name": "ReLU", "parameters": 0, "dropout": [], "norms": []}],
             "optimizers": [{"class": "Adam", "groups": [{"lr": 0.03, "weight_decay": 0,
                                                          "params": 2, "numel": 2000500}]}]}
    f = simplicity(probe, [])
    assert f.evidence["total_parameters"] == 2000500
    assert "parameters" in f.evidence["triggered"]
