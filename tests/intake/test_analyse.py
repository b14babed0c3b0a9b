"""The analysis pool: the same results as in-process analysis, in order, and a broken pool
falls back to analysing in-process (nothing lost)."""

from __future__ import annotations

import os
import signal

from bench.corpus import generate
from config.settings import Settings
from intake.analyse import Analyser, AnalysisPool, analyse_many
from intake.types import RawMessage


def _raws(count: int) -> list[RawMessage]:
    raws = [RawMessage(data=d, source=f"t{i}") for i, d in enumerate(generate(count, seed=3))]
    return [*raws, RawMessage(data=b"\x00 not mail", source="garbage")]


def test_pool_results_equal_in_process_results(make_settings) -> None:
    settings: Settings = make_settings()
    analyser = Analyser(settings)
    pool = AnalysisPool(settings, processes=2)
    try:
        raws = _raws(30)
        pooled = analyse_many(raws, analyser, pool)
        assert pooled == [analyser(raw) for raw in raws]
        assert pooled[-1].failure is not None and pooled[-1].failure[0] == "parse"
    finally:
        pool.close()


def test_a_broken_pool_falls_back_to_in_process(make_settings) -> None:
    settings: Settings = make_settings()
    analyser = Analyser(settings)
    pool = AnalysisPool(settings, processes=2)
    try:
        raws = _raws(12)
        pool.map(raws)  # start the workers
        executor = pool._executor
        assert executor is not None
        victim = next(iter(executor._processes))  # type: ignore[attr-defined]
        os.kill(victim, signal.SIGKILL)
        results = analyse_many(raws, analyser, pool)
        assert results == [analyser(raw) for raw in raws]
    finally:
        pool.close()


def test_small_batches_stay_in_process(make_settings) -> None:
    settings: Settings = make_settings()
    pool = AnalysisPool(settings, processes=2)
    analyse_many(_raws(3), Analyser(settings), pool)
    assert pool._executor is None


def test_after_a_break_the_pool_rests_instead_of_restarting_for_every_batch(
    make_settings,
) -> None:
    settings: Settings = make_settings()
    analyser = Analyser(settings)
    pool = AnalysisPool(settings, processes=2)
    raws = _raws(12)
    pool.map(raws)
    pool.broke()  # what analyse_many does on BrokenProcessPool
    assert not pool.enabled
    assert analyse_many(raws, analyser, pool) == [analyser(raw) for raw in raws]
    assert pool._executor is None  # analysed here: no pool was started again
