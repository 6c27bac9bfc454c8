"""Parameter specs, their distributions, and the arguments a trial's values become."""
import pytest

from nnprof.sweep.space import Space, SpecError, parse_param


@pytest.mark.parametrize("text,kind,low,high,log,choices", [
    ("lr=loguniform:1e-4:1", "float", 1e-4, 1.0, True, None),
    ("dropout=uniform:0:0.5", "float", 0.0, 0.5, False, None),
    ("hidden=int:16:256:log", "int", 16, 256, True, None),
    ("layers=int:1:4", "int", 1, 4, False, None),
    ("optimizer=choice:sgd,adam", "choice", None, None, False, ("sgd", "adam")),
    ("--batch-size=int:8:64", "int", 8, 64, False, None),
])
def test_parse_good_specs(text, kind, low, high, log, choices):
    p = parse_param(text)
    assert (p.kind, p.low, p.high, p.log, p.choices) == (kind, low, high, log, choices)
    assert p.name == text.split("=")[0].lstrip("-")


@pytest.mark.parametrize("text,says", [
    ("lr", "NAME=SPEC"), ("lr=loguniform:0:1", "LO > 0"), ("lr=uniform:1:0", "below"),
    ("lr=uniform:a:1", "not a number"), ("lr=uniform:0:inf", "finite"),
    ("n=int:1.5:3", "integers"), ("n=int:0:8:log", ">= 1"), ("n=int:1:8:lin", "LO:HI:log"),
    ("o=choice:", "A,B"), ("o=choice:a,,b", "no empty"), ("o=choice:a,a", "twice"),
    ("x=normal:0:1", "unknown kind"), ("9x=uniform:0:1", "not a usable"),
])
def test_bad_specs_say_why_in_one_line(text, says):
    with pytest.raises(SpecError) as err:
        parse_param(text)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_values_are_appended_as_options_as_written():
    space = Space([parse_param("lr=loguniform:1e-4:1"), parse_param("batch-size=int:8:64"),
                   parse_param("opt=choice:sgd,adam")], ["--epochs", "3"])
    assert not space.placeholders
    raw = {"lr": 0.0031622776601683794, "batch-size": 32, "opt": "adam"}
    assert space.args(raw) == ["--epochs", "3", "--lr", "0.00316228", "--batch-size", "32",
                               "--opt", "adam"]
    # what is recorded is what the script received
    assert space.values(raw) == {"lr": 0.00316228, "batch-size": 32, "opt": "adam"}


def test_numeric_choices_are_recorded_as_numbers():
    space = Space([parse_param("width=choice:16,32,64"), parse_param("p=choice:0.1,0.5"),
                   parse_param("act=choice:relu,1")], [])
    assert space.values({"width": "32", "p": "0.5", "act": "1"}) == \
        {"width": 32, "p": 0.5, "act": "1"}
    assert space.args({"width": "32", "p": "0.5", "act": "1"})[1::2] == ["32", "0.5", "1"]


def test_placeholders_are_substituted_everywhere():
    space = Space([parse_param("lr=uniform:0:1"), parse_param("w=int:1:9")],
                  ["--lr", "{lr}", "--name=run-{w}-{lr}", "{literal}"])
    assert space.placeholders
    assert space.args({"lr": 0.5, "w": 3}) == ["--lr", "0.5", "--name=run-3-0.5", "{literal}"]


def test_placeholders_must_cover_every_parameter():
    with pytest.raises(SpecError, match=r"none for w"):
        Space([parse_param("lr=uniform:0:1"), parse_param("w=int:1:9")], ["--lr", "{lr}"])


def test_space_needs_distinct_parameters():
    with pytest.raises(SpecError, match="twice"):
        Space([parse_param("lr=uniform:0:1"), parse_param("lr=uniform:0:2")], [])
    with pytest.raises(SpecError, match="no parameters"):
        Space([], [])


def test_distributions_sample_inside_the_bounds():
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = Space([parse_param("lr=loguniform:1e-4:1"), parse_param("h=int:16:256:log"),
                   parse_param("o=choice:a,b")], [])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        t = study.ask(fixed_distributions=space.distributions())
        v = space.values(t.params)
        assert 1e-4 <= v["lr"] <= 1 and 16 <= v["h"] <= 256 and v["o"] in ("a", "b")
        study.tell(t, 0.0)


@pytest.mark.parametrize("error,named", [
    ("train.py: error: unrecognized arguments: --width 37", "--width"),
    ("train.py: error: unrecognized arguments: --epochs=3 --width=37", "--width"),
    ("train.py: error: argument --lr: invalid float value: 'x'", "--lr"),
    ("train.py: error: argument -l/--lr: invalid choice: 'x'", "--lr"),
    ("RuntimeError: CUDA out of memory", None),
])
def test_the_rejected_argument_is_named(error, named):
    space = Space([parse_param("lr=uniform:0:1"), parse_param("width=int:1:64")], [])
    text = space.rejection(error, 3, "trial-2")
    assert text.startswith("the first 3 trials failed and none succeeded")
    assert "trial-2/output.log" in text and error in text
    if named:
        assert f"the script rejects {named} (" in text
    else:
        assert "rejects" not in text
