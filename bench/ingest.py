"""Offline ingest throughput: claimdesk's `ingest` path vs a bare prototype, in one run.

    .venv/bin/python -m bench.ingest [--count 10000] [--baseline-count 2000]

Prints messages/s for both, their ratio, and claimdesk's time split by stage (parse,
language, fields, routing, storage) from a second, instrumented pass over the same mail.
The baseline is the "bare prototype" the foundation issue names: email policy.default parse,
langdetect on the whole body, one ORM row and one commit per message.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.corpus import generate


def baseline(messages: Sequence[bytes], directory: Path) -> float:
    """The bare prototype; returns messages/s."""
    import email
    from email import policy

    from langdetect import DetectorFactory, detect_langs
    from sqlmodel import Field, Session, SQLModel, create_engine

    DetectorFactory.seed = 0

    class Row(SQLModel, table=True):
        __tablename__ = "bare_row"
        id: int | None = Field(default=None, primary_key=True)
        message_id: str
        language: str
        raw: bytes

    engine = create_engine(f"sqlite:///{directory / 'bare.db'}")
    SQLModel.metadata.create_all(engine)
    detect_langs("warm up the language profiles before timing")
    started = time.perf_counter()
    for data in messages:
        msg = email.message_from_bytes(data, policy=policy.default)
        body = msg.get_body(("plain", "html"))
        text = body.get_content() if body is not None else ""
        try:
            language = detect_langs(text)[0].lang
        except Exception:
            language = "unknown"
        with Session(engine) as session:
            session.add(Row(message_id=str(msg["Message-ID"]), language=language, raw=data))
            session.commit()
    return len(messages) / (time.perf_counter() - started)


def claimdesk_ingest(
    messages: Sequence[bytes], directory: Path, batch: int, processes: int
) -> float:
    """The real `claimdesk ingest` path: the pure stages of a batch on the analysis pool
    (`processes` of them; 1: in this process only), then process() per message in one
    transaction per batch."""
    from config.settings import build_settings
    from config.wiring import build_services
    from intake.process import NotKept, prepare, process_batch
    from intake.types import RawMessage

    settings = build_settings(
        {
            "database": {"url": f"sqlite:///{directory / f'cd{processes}.db'}"},
            "desk": {"spool_dir": str(directory / "spool")},
            "intake": {"analysis_processes": processes},
        },
        env={},
    )
    services = build_services(settings)
    if services.pool is not None and services.pool.enabled:  # start the workers before timing
        services.pool.map([RawMessage(data=d, source="warm-up") for d in messages[:16]])
    started = time.perf_counter()
    kinds: dict[str, int] = {}
    for start in range(0, len(messages), batch):
        chunk = messages[start : start + batch]
        raws = [RawMessage(data=d, source=f"bench:{start + i}") for i, d in enumerate(chunk)]
        for result in process_batch(prepare(raws, services), services):
            assert not isinstance(result, NotKept)
            kinds[result.kind] = kinds.get(result.kind, 0) + 1
    rate = len(messages) / (time.perf_counter() - started)
    print(f"  dispositions: {dict(sorted(kinds.items()))}")
    if services.pool is not None:
        services.pool.close()
    services.engine.dispose()
    return rate


def stage_split(messages: Sequence[bytes], directory: Path, batch: int) -> dict[str, float]:
    """Milliseconds per message in each stage, running the stages process() runs."""
    from config.settings import build_settings
    from config.wiring import build_services
    from intake.checks import evidence_report
    from intake.mime import parse_message
    from intake.record import Incoming, record
    from intake.types import CheckReport, RawMessage

    settings = build_settings(
        {
            "database": {"url": f"sqlite:///{directory / 'split.db'}"},
            "desk": {"spool_dir": str(directory / "spool2")},
        },
        env={},
    )
    services = build_services(settings)
    checker = services.checker
    totals = dict.fromkeys(("parse", "language", "fields", "routing", "storage"), 0.0)
    clock = time.perf_counter
    for start in range(0, len(messages), batch):
        t_store = 0.0
        with services.engine.begin() as conn:
            for data in messages[start : start + batch]:
                t0 = clock()
                parsed = parse_message(data, desk_domain=services.desk_domain)
                t1 = clock()
                language = checker._language.check(parsed.own_text)
                t2 = clock()
                fields = checker.fields(parsed)
                evidence = evidence_report(parsed.attachments, 5, 5 * 1024 * 1024)
                t3 = clock()
                route = services.router.route((), parsed, None)
                t4 = clock()
                raw = RawMessage(data=data, source="bench")
                incoming = Incoming(
                    raw,
                    parsed,
                    CheckReport(language, fields, evidence),
                    route,
                    services.clock.now(),
                )
                with conn.begin_nested():
                    record(conn, incoming, settings)
                t5 = clock()
                totals["parse"] += t1 - t0
                totals["language"] += t2 - t1
                totals["fields"] += t3 - t2
                totals["routing"] += t4 - t3
                t_store += t5 - t4
            t6 = clock()
        totals["storage"] += t_store + (clock() - t6)  # the batch commit counts as storage
    services.engine.dispose()
    return {k: v * 1000 / len(messages) for k, v in totals.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--baseline-count", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args(argv)
    messages = list(generate(args.count))
    print(f"corpus: {len(messages)} messages, mean {statistics.mean(map(len, messages)):.0f} bytes")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        base = baseline(messages[: args.baseline_count], directory)
        print(f"baseline (bare prototype, {args.baseline_count} msgs): {base:8.1f} msg/s")
        ours = claimdesk_ingest(messages, directory, args.batch, 1)
        print(f"claimdesk ingest, one core ({len(messages)} msgs): {ours:8.1f} msg/s")
        print(f"ratio claimdesk / baseline: {ours / base:.2f}x")
        pooled = claimdesk_ingest(messages, directory, args.batch, 0)
        print(f"claimdesk ingest, analysis pool on every core: {pooled:8.1f} msg/s")
        print(f"ratio claimdesk (pool) / baseline: {pooled / base:.2f}x")
        split = stage_split(messages[: min(len(messages), 3000)], directory, args.batch)
        total = sum(split.values())
        print("stage split (ms per message, instrumented pass):")
        for stage, ms in split.items():
            print(f"  {stage:<9} {ms:6.3f} ms  {100 * ms / total:5.1f}%")
        print(f"  {'total':<9} {total:6.3f} ms  (= {1000 / total:.0f} msg/s without overhead)")


if __name__ == "__main__":
    main()
