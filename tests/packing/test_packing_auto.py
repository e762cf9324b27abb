"""`search.pack: auto`: the population size from a memory probe, 1 without a GPU or a packable model."""

from __future__ import annotations

import textwrap
from pathlib import Path

import optuna
import pytest
import torch

from droptune.cli import main
from droptune.config import StudySpec, spec_from_dict
from droptune.exceptions import ConfigError
from droptune.packing import resolve_pack
from droptune.packing._auto import MAX_AUTO_PACK, pack_from_memory
from droptune.record import PACK_ATTR, PACK_AUTO_ATTR
from droptune.tuning._build import build, model_sites

MIB = 2**20


def _spec(model: str = "droptune.testing.TinyModule", accelerator: str = "auto", **search: object) -> StudySpec:
    return spec_from_dict(
        {
            "name": "auto",
            "model": model,
            "data": "droptune.testing.TinyDataModule",
            "search": {"pack": "auto", **search},
            "trainer": {"accelerator": accelerator},
        }
    )


def _resolve(spec: StudySpec, **kwargs: object) -> tuple[int, str]:
    model, data = build(spec)
    return resolve_pack(spec, model, data, model_sites(spec, model, data), **kwargs)  # type: ignore[arg-type]


def _linear_probe(n: int) -> int:
    """A fake GPU: 100 MiB fixed, 10 MiB per member."""
    return (100 + 10 * n) * MIB


def test_the_study_file_takes_an_integer_or_auto() -> None:
    assert _spec().search.pack == "auto"
    assert _spec(pack=8).search.pack == 8
    for bad in (0, "big", True, 2.5):
        with pytest.raises(ConfigError, match=r'search.pack must be an integer >= 1 or "auto"; got'):
            _spec(pack=bad)


def test_without_a_gpu_auto_is_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _resolve(_spec()) == (1, "no GPU")


def test_a_model_that_cannot_pack_is_1_with_its_reason() -> None:
    pack, reason = _resolve(_spec(model="_packing_kit.BatchNormModule"), probe=_linear_probe, free_bytes=80_000 * MIB)
    assert pack == 1
    assert reason.startswith("the study does not pack") and "running statistics" in reason


def test_a_metric_packed_training_does_not_measure_is_1() -> None:
    spec = spec_from_dict(
        {"name": "x", "model": "droptune.testing.TinyModule", "data": "droptune.testing.TinyDataModule",
         "search": {"pack": "auto"}, "objective": {"metric": "val_f1", "direction": "maximize"}}
    )
    pack, reason = _resolve(spec, probe=_linear_probe, free_bytes=80_000 * MIB)
    assert pack == 1 and "val_f1" in reason


def test_a_cpu_accelerator_is_1_even_with_a_gpu() -> None:
    assert _resolve(_spec(accelerator="cpu"), probe=_linear_probe, free_bytes=80_000 * MIB) == (
        1,
        "trainer.accelerator is 'cpu', not a GPU",
    )


def test_the_probe_sizes_the_population_from_free_memory() -> None:
    # 80% of 1000 MiB = 800 MiB; minus 100 MiB fixed, at 10 MiB a member: 70.
    pack, reason = _resolve(_spec(), probe=_linear_probe, free_bytes=1000 * MIB)
    assert pack == 70
    assert "10.0 MiB per member" in reason and "100.0 MiB fixed" in reason


def test_workers_sharing_a_gpu_share_its_memory() -> None:
    # 800 MiB / 2 workers = 400; minus 100 fixed, 10 a member: 30.
    assert _resolve(_spec(workers=2, workers_per_gpu=2), probe=_linear_probe, free_bytes=1000 * MIB)[0] == 30


@pytest.mark.parametrize(
    ("free_mib", "expected", "says"),
    [(10**7, MAX_AUTO_PACK, "capped at 512"), (50, 1, "not even one more"), (1000, 70, "70 members fit")],
    ids=["cap", "too-small", "fits"],
)
def test_memory_arithmetic(free_mib: int, expected: int, says: str) -> None:
    pack, reason = pack_from_memory(_linear_probe(2), _linear_probe(4), free_mib * MIB)
    assert pack == expected
    assert says in reason


def test_a_probe_that_grows_no_memory_per_member_is_capped_not_infinite() -> None:
    assert pack_from_memory(100 * MIB, 100 * MIB, 1000 * MIB)[0] == MAX_AUTO_PACK


def test_the_cli_takes_pack_auto_and_says_what_it_chose(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = in_tmp / "auto.yaml"
    path.write_text(
        textwrap.dedent(
            """
            name: auto
            model: droptune.testing.TinyModule
            data: droptune.testing.TinyDataModule
            search: {n_trials: 2, sampler: random, pruner: none, heartbeat_interval: null}
            trainer: {max_epochs: 1, early_stopping_patience: null}
            """
        )
    )
    assert main(["tune", str(path), "--pack", "auto", "--no-confirm"]) == 0
    assert "search.pack auto: 1 trial at once (no GPU)" in capsys.readouterr().err  # the CLI's log
    study = optuna.load_study(study_name="auto", storage="sqlite:///studies/droptune.db")
    assert study.user_attrs[PACK_AUTO_ATTR]["pack"] == 1
    assert study.user_attrs[PACK_AUTO_ATTR]["reason"] == "no GPU"
    assert all(PACK_ATTR not in t.user_attrs for t in study.trials)  # trained unpacked


def test_the_cli_refuses_a_pack_that_is_neither(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["tune", "study.yaml", "--pack", "lots"])
    assert info.value.code == 2
    assert "expected an integer >= 1 or auto; got 'lots'" in capsys.readouterr().err


@pytest.mark.gpu
def test_the_real_probe_packs_a_tiny_model_on_the_gpu() -> None:
    pack, reason = _resolve(_spec(accelerator="gpu"))
    assert 2 <= pack <= MAX_AUTO_PACK
    assert "measured with 2 and 4 members" in reason
