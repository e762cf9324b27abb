"""`search.pack: auto`: the population size from a memory probe (GPU) or a timing probe (CPU)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from unittest.mock import ANY

import optuna
import pytest
import torch

from droptune.cli import main
from droptune.config import StudySpec, spec_from_dict
from droptune.exceptions import ConfigError
from droptune.packing import resolve_pack
from droptune.packing._auto import MAX_AUTO_PACK, pack_from_memory
from droptune.packing._cpu_probe import StepTimeFn, memory_cap, pack_from_step_times
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


def _step_times(alone_ms: float, per_member_ms: dict[int, float]) -> StepTimeFn:
    """A fake CPU: seconds of one step alone (n=1) and of populations (ms per member by size)."""
    calls: list[int] = []

    def step_time(n: int) -> float:
        calls.append(n)
        return alone_ms / 1e3 if n == 1 else n * per_member_ms[n] / 1e3

    step_time.calls = calls  # type: ignore[attr-defined]
    return step_time


# Per member, a population gets cheaper up to 16 members, then dearer (the cache is full).
CURVE = {2: 6.0, 4: 3.0, 8: 2.0, 16: 1.9, 32: 2.5, 64: 3.0, 128: 4.0, 256: 5.0, 512: 6.0}


def test_without_a_gpu_auto_follows_the_cpu_timing_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    timer = _step_times(10.0, CURVE)
    pack, reason = _resolve(_spec(n_trials=400), step_time=timer)
    assert pack == 16  # 32 members cost more per member than 16
    assert timer.calls == [1, 2, 4, 8, 16, 32]  # type: ignore[attr-defined]
    assert reason.startswith("CPU timing probe") and "10.00 ms alone" in reason and "16 members" in reason


def test_the_cpu_probe_trains_unpacked_when_packing_is_not_faster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    pack, reason = _resolve(_spec(n_trials=400), step_time=_step_times(2.5, CURVE))  # 2.5 / 1.9: 1.3x
    assert pack == 1 and "would gain less than 1.5x" in reason


def test_the_cpu_probe_is_capped_by_the_study_and_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    timer = _step_times(10.0, CURVE)
    assert _resolve(_spec(n_trials=6), step_time=timer)[0] == 4  # never past the study's 6 trials
    assert max(timer.calls) == 4  # type: ignore[attr-defined]
    monkeypatch.setattr("droptune.packing._cpu_probe._available_ram", lambda: 0)
    assert _resolve(_spec(n_trials=400), step_time=timer)[0] == 1


def test_the_cpu_probe_takes_a_larger_population_at_about_the_same_cost() -> None:
    flat = {2: 5.0, 4: 2.0, 8: 2.1, 16: 2.15, 32: 2.6}  # 8 and 16 within 10% of the best (2.0)
    assert pack_from_step_times(_step_times(10.0, flat), cap=512) == (16, ANY)


def test_the_cpu_probe_stops_when_its_budget_is_spent() -> None:
    ticks = iter(range(100))  # one second per call of the clock
    pack, reason = pack_from_step_times(_step_times(10.0, CURVE), cap=512, budget_s=2.5, clock=lambda: next(ticks))
    assert pack == 8 and "probe budget of 2.5 s spent" in reason  # measured at t = 1, 2, 3 s


def test_memory_caps_the_cpu_population() -> None:
    model = torch.nn.Linear(1000, 1000)  # ~1M parameters: 16 MB a member (weight, grad, two moments)
    assert memory_cap(model, available_bytes=4 * 16_016_000 * 10) == 10  # a quarter of the RAM


def test_the_real_cpu_probe_is_short_and_says_what_it_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    pack, reason = _resolve(_spec(n_trials=64))
    assert 1 <= pack <= 64
    assert reason.startswith("CPU timing probe") and "ms alone" in reason


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


def test_a_cpu_accelerator_takes_the_cpu_probe_even_with_a_gpu() -> None:
    pack, reason = _resolve(
        _spec(accelerator="cpu", n_trials=400), probe=_linear_probe, free_bytes=80_000 * MIB,
        step_time=_step_times(10.0, CURVE),
    )
    assert pack == 16 and reason.startswith("CPU timing probe")


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
    study = optuna.load_study(study_name="auto", storage="sqlite:///studies/droptune.db")
    chosen = study.user_attrs[PACK_AUTO_ATTR]
    assert chosen["reason"].startswith("CPU timing probe")
    pack = chosen["pack"]
    line = f"search.pack auto: {pack} trial{'' if pack == 1 else 's'} at once ({chosen['reason']})"
    assert line in capsys.readouterr().err  # the CLI's log
    assert all((PACK_ATTR in t.user_attrs) == (pack > 1) for t in study.trials)  # trained as chosen


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
