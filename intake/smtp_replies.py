"""The replies of the SMTP/LMTP edge, with their enhanced status codes (RFC 3463).

One place for every reply text, so that tests and the server assert on the same constants.
"""

from __future__ import annotations

import re

from intake.types import Disposition, Quarantined

# RCPT (RFC 5321 4.2.2; RFC 3463 3.2 X.1.1 bad destination mailbox, X.5.3 too many recipients)
NOT_A_DESK_ADDRESS = "550 5.1.1 <{address}>: no such desk address here"
RELAY_DENIED = "550 5.1.1 <{address}>: relay access denied, this server only takes desk mail"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
# MAIL: a reverse-path that is not UTF-8 cannot be stored (RFC 6531 requires UTF-8).
BAD_SENDER = "553 5.1.7 The sender address is not valid UTF-8"
# DATA
ACCEPTED = "250 2.0.0 Ok: {what}"
NOT_KEPT = "451 4.3.0 Temporary failure, the message was not kept: please try again later"
TOO_BIG = "552 5.3.4 Message too big for this desk"
# Connection level (RFC 5321 3.8: 421 before closing on our own initiative)
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
TOO_MANY_FROM_YOU = "421 4.7.0 Too many connections from your address, try again later"
IDLE_TIMEOUT = "421 4.4.2 Idle timeout, closing connection"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"

# aiosmtpd's own replies carry no enhanced status code; we advertise ENHANCEDSTATUSCODES
# (RFC 2034; RFC 2033 4.1 requires it of LMTP), so `enhanced()` adds them.
_EXACT = {
    "250 OK": "250 2.0.0 OK",
    "221 Bye": "221 2.0.0 Bye",
    "552 Error: Too much mail data": TOO_BIG,
    "552 Error: message size exceeds fixed maximum message size": TOO_BIG,
}
_BY_CODE = {
    "500": "5.5.2",  # syntax error
    "501": "5.5.4",  # invalid arguments
    "502": "5.5.1",  # invalid command
    "503": "5.5.1",  # bad sequence
    "504": "5.5.4",
    "530": "5.7.0",
    "552": "5.3.4",
    "554": "5.7.0",
    "555": "5.5.4",
}
_HAS_CODE = re.compile(r"\d{3}[ -][245]\.\d{1,3}\.\d{1,3}(?:\s|$)")


def enhanced(reply: str) -> str:
    """`reply` with an enhanced status code. Only errors are rewritten besides a few exact
    2xx texts: the greeting, 354 and the EHLO lines carry none (RFC 2034 3)."""
    if reply in _EXACT:
        return _EXACT[reply]
    if reply[:1] not in ("4", "5") or _HAS_CODE.match(reply):
        return reply
    code, rest = reply[:3], reply[4:]
    return f"{code} {_BY_CODE.get(code, reply[0] + '.0.0')} {rest}"


def accepted(disposition: Disposition) -> str:
    """`250 2.0.0 Ok: CD-000042 stored` (or needs_info, duplicate; `quarantined ID`)."""
    if isinstance(disposition, Quarantined):
        what = f"quarantined {disposition.quarantine_id}"
    elif disposition.ticket:
        what = f"{disposition.ticket} {disposition.kind}"
    else:
        what = disposition.kind
    return ACCEPTED.format(what=what)


def per_recipient(reply: str, recipients: list[str]) -> str:
    """LMTP (RFC 2033 4.2): after DATA one reply per accepted recipient, in RCPT order."""
    code, enhanced, text = reply.split(" ", 2)
    return "\r\n".join(f"{code} {enhanced} <{r}> {text}" for r in recipients)
