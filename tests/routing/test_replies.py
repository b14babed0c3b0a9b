"""Which auto-reply is due, and the RFC 3834 guards (pure: no database, no network)."""

from __future__ import annotations

import pytest

from intake.mime import parse_message
from intake.types import EvidenceReport, ParsedMessage
from routing.replies import (
    ReplyDue,
    Requests,
    TicketChange,
    due_reply,
    header_guard,
    history_guard,
    is_robot_address,
)
from tests.mail import claim

DESK = frozenset({"claims@desk.example", "disputes@desk.example", "support@desk.example"})
NO_EVIDENCE = EvidenceReport(files=0, photos=0, too_many_files=False)


def parsed(data: bytes) -> ParsedMessage:
    result = parse_message(data)
    assert isinstance(result, ParsedMessage)
    return result


def change(**kw: object) -> TicketChange:
    values: dict[str, object] = {
        "missing_fields": (),
        "language_ok": True,
        "language": "en",
        "invalid_tracking_numbers": (),
        "evidence": NO_EVIDENCE,
    }
    values.update(kw)
    return TicketChange(**values)  # type: ignore[arg-type]


# -- which reply is due -------------------------------------------------------------------


def test_new_ticket_gets_one_acknowledgement_with_every_request() -> None:
    due = due_reply(
        change(
            missing_fields=("order_number", "photo"),
            language_ok=False,
            language="ru",
            invalid_tracking_numbers=("RR123456784CN",),
            evidence=EvidenceReport(files=7, photos=7, too_many_files=True, oversized=("a.png",)),
        )
    )
    assert due == ReplyDue(
        "ack",
        Requests(
            language="ru",
            missing_fields=("order_number", "photo"),
            invalid_tracking_numbers=("RR123456784CN",),
            too_many_files=7,
            oversized_files=("a.png",),
        ),
    )
    assert due.requests.names() == [
        "language_request",
        "missing_fields",
        "invalid_tracking_numbers",
        "evidence",
    ]


def test_complete_new_ticket_gets_a_plain_acknowledgement() -> None:
    due = due_reply(change())
    assert due == ReplyDue("ack", Requests()) and not due.requests.any


def test_follow_up_on_a_complete_ticket_gets_nothing() -> None:
    assert due_reply(change(before_missing=(), before_language_ok=True)) is None


def test_follow_up_that_completes_the_claim_gets_nothing() -> None:
    assert due_reply(change(before_missing=("order_number",), before_language_ok=True)) is None


def test_follow_up_with_progress_gets_a_request_for_the_rest() -> None:
    due = due_reply(
        change(
            missing_fields=("tracking_number",),
            before_missing=("order_number", "tracking_number"),
            before_language_ok=True,
        )
    )
    assert due == ReplyDue("request", Requests(missing_fields=("tracking_number",)))


def test_follow_up_without_progress_gets_nothing() -> None:
    """A vacation notice or "any news?" changes nothing: silence ends most loops."""
    still = change(missing_fields=("order_number",), before_missing=("order_number",))
    assert due_reply(TicketChange(**{**still.__dict__, "before_language_ok": True})) is None


def test_follow_up_in_another_language_gets_the_language_request() -> None:
    due = due_reply(
        change(language_ok=False, language="de", before_missing=(), before_language_ok=True)
    )
    assert due == ReplyDue("request", Requests(language="de"))


def test_follow_up_with_a_mistyped_tracking_number_gets_the_hint() -> None:
    due = due_reply(
        change(
            missing_fields=("tracking_number",),
            invalid_tracking_numbers=("RR123456784CN",),
            before_missing=("tracking_number",),
            before_language_ok=True,
        )
    )
    assert due is not None and due.requests.invalid_tracking_numbers == ("RR123456784CN",)


def test_mistyped_number_beside_a_valid_one_on_a_follow_up_is_not_nagged() -> None:
    due = due_reply(
        change(
            invalid_tracking_numbers=("RR123456784CN",),
            before_missing=(),
            before_language_ok=True,
        )
    )
    assert due is None


# -- RFC 3834 guards ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Auto-Submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
        ({"Auto-Submitted": "auto-generated"}, "Auto-Submitted: auto-generated"),
        ({"Auto-Submitted": "auto-notified; owner-email=x@y"}, "Auto-Submitted: auto-notified"),
        ({"Precedence": "bulk"}, "Precedence: bulk"),
        ({"Precedence": "junk"}, "Precedence: junk"),
        ({"Precedence": "List"}, "Precedence: list"),
        ({"List-Id": "<buyers.lists.example.org>"}, "List-Id present"),
        ({"List-Unsubscribe": "<mailto:leave@example.org>"}, "List-Unsubscribe present"),
        ({"X-Auto-Response-Suppress": "All"}, "X-Auto-Response-Suppress: All"),
        ({"X-Auto-Response-Suppress": "DR, OOF"}, "X-Auto-Response-Suppress: DR, OOF"),
        ({"X-Auto-Response-Suppress": "AutoReply"}, "X-Auto-Response-Suppress: AutoReply"),
        ({"X-Autoreply": "yes"}, "X-Autoreply present"),
        ({"X-Loop": "vacation@example.org"}, "X-Loop present"),
        ({"Return-Path": "<>"}, "null sender"),
    ],
)
def test_automatic_mail_gets_no_reply(headers: dict[str, str], reason: str) -> None:
    found = header_guard(parsed(claim(extra_headers=headers)), None, DESK)
    assert found is not None and reason in found


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Auto-Submitted": "no"},
        {"Auto-Submitted": "No"},
        {"Precedence": "first-class"},
        {"X-Auto-Response-Suppress": "DR, RN, NRN"},
        {"X-Auto-Response-Suppress": "None"},
        {"Return-Path": "<buyer@example.org>"},
    ],
)
def test_a_person_s_mail_gets_a_reply(headers: dict[str, str]) -> None:
    assert header_guard(parsed(claim(extra_headers=headers)), None, DESK) is None


@pytest.mark.parametrize(
    "sender",
    [
        "MAILER-DAEMON@mx.example.org",
        "Mail Delivery System <mailer-daemon@example.org>",
        "postmaster@example.org",
        "noreply@shop.example",
        "no-reply@shop.example",
        "DoNotReply@shop.example",
        "owner-buyers@lists.example.org",
        "buyers-request@lists.example.org",
        "buyers-bounces@lists.example.org",
    ],
)
def test_robot_senders_get_no_reply(sender: str) -> None:
    reason = header_guard(parsed(claim(sender=sender)), None, DESK)
    assert reason is not None and reason.startswith("robot sender")


def test_null_envelope_sender_gets_no_reply() -> None:
    assert header_guard(parsed(claim()), "", DESK) == "null sender"
    assert header_guard(parsed(claim()), "<>", DESK) == "null sender"
    assert header_guard(parsed(claim()), "buyer@example.org", DESK) is None


def test_our_own_addresses_get_no_reply() -> None:
    assert header_guard(parsed(claim(sender="Desk <Claims@desk.example>")), None, DESK) == (
        "own address claims@desk.example"
    )
    assert header_guard(parsed(claim()), "support@desk.example", DESK) == (
        "own address support@desk.example"
    )


def test_a_verp_envelope_does_not_silence_a_buyer() -> None:
    """Forwarders and form services send a buyer's letter with envelopes like these."""
    assert header_guard(parsed(claim()), "bounces+123@forms.example", DESK) is None


def test_reports_get_no_reply() -> None:
    report = (
        b"From: buyer@example.org\r\nTo: claims@desk.example\r\nSubject: Read: your mail\r\n"
        b'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"\r\n'
        b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nDisplayed.\r\n--b--\r\n"
    )
    assert header_guard(parsed(report), None, DESK) == "a report (delivery or read notification)"


def test_robot_address_rules() -> None:
    assert is_robot_address("MAILER-DAEMON")
    assert not is_robot_address("reply@example.org")
    assert not is_robot_address("bob.noreplyfan@example.org")


def test_history_guard_counts_and_undeliverable() -> None:
    assert history_guard(4, 5, False) is None
    assert history_guard(5, 5, False) == "rate limit: 5 auto-replies in 24 h (max 5)"
    assert history_guard(0, 0, False) is not None  # 0 switches auto-replies off
    assert history_guard(0, 5, True) == "recipient undeliverable (bounced)"
