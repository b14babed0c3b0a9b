"""Typed, validated configuration: loaded once at start, then passed around as values.

Every key is declared once in `config/default.toml` (with a comment); a user file is merged
over those defaults table by table. Validation errors become `ConfigError` whose message names
the dotted key and the problem, so the CLI can exit 2 with it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from intake.types import FIELD_NAMES

DATABASE_URL_ENV = "CLAIMDESK_DATABASE_URL"
CONFIG_PATH_ENV = "CLAIMDESK_CONFIG"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    url: str = "sqlite:///claimdesk.db"


class SmtpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(2525, ge=0, le=65535)
    lmtp: bool = False
    max_message_bytes: int = Field(26_214_400, gt=0)
    tls_cert: str = ""
    tls_key: str = ""
    extra_domains: tuple[str, ...] = ()
    max_connections: int = Field(200, gt=0)
    max_connections_per_client: int = Field(20, gt=0)
    max_recipients: int = Field(50, gt=0)
    idle_timeout_seconds: float = Field(300.0, gt=0)
    process_threads: int = Field(4, gt=0)
    store_processes: int = Field(0, ge=0)
    store_in_process: bool = False


class DeskSettings(_Section):
    from_address: str = "claims@desk.example"
    accepted_languages: tuple[str, ...] = ("en",)
    timezone: str = "UTC"
    spool_dir: str = "spool"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("accepted_languages")
    @classmethod
    def _language_codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one language is needed")
        for code in value:
            if not re.fullmatch(r"[a-z]{2}(-[a-z]{2})?", code):
                raise ValueError(f"{code!r} is not an ISO 639-1 code such as 'en' or 'zh-cn'")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class CarrierPattern(_Section):
    name: str
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return value


class ChecksSettings(_Section):
    language_min_letters: int = Field(40, ge=0)
    language_max_chars: int = Field(400, gt=0)
    language_min_probability: float = Field(0.80, ge=0, le=1)
    max_files: int = Field(5, ge=0)
    max_file_bytes: int = Field(5 * 1024 * 1024, gt=0)
    carrier_patterns: tuple[CarrierPattern, ...] = ()
    marketplace_domains: tuple[str, ...] = ("aliexpress.com", "aliexpress.ru", "aliexpress.us")

    @model_validator(mode="after")
    def _cap_above_minimum(self) -> ChecksSettings:
        if self.language_max_chars < self.language_min_letters:
            raise ValueError(
                "language_max_chars must be at least language_min_letters, or every "
                "language verdict would be 'unknown'"
            )
        return self


class QueueSettings(_Section):
    addresses: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    reply_within_days: int = Field(30, gt=0)
    warn_before_days: int = Field(5, ge=0)
    fallback: bool = False
    staff_address: str = ""

    @field_validator("required")
    @classmethod
    def _known_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in FIELD_NAMES:
                raise ValueError(f"unknown field {name!r}; known: {', '.join(FIELD_NAMES)}")
        return value

    @field_validator("addresses")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(a.strip().lower() for a in value)


class RoutingSettings(_Section):
    order: tuple[str, ...] = ("security", "complaints", "disputes", "general")


class MailboxSettings(_Section):
    name: str
    host: str = "127.0.0.1"
    port: int = Field(993, ge=1, le=65535)
    tls: Literal["implicit", "starttls", "none"] = "implicit"
    username: str = ""
    password_env: str = ""
    oauth2_token_env: str = ""
    folder: str = "INBOX"
    after: str = "seen"
    queue: str = ""
    poll_seconds: float = Field(60.0, gt=0)
    idle: bool = True
    batch_size: int = Field(200, gt=0)
    address: str = ""

    @field_validator("after")
    @classmethod
    def _after(cls, value: str) -> str:
        if value != "seen" and not (value.startswith("move:") and len(value) > 5):
            raise ValueError("must be 'seen' or 'move:FOLDER'")
        return value


class RelaySettings(_Section):
    host: str = ""
    port: int = Field(587, ge=0, le=65535)
    starttls: bool = True
    username: str = ""
    password_env: str = ""
    max_auto_replies_per_day: int = Field(5, ge=0)
    ca_file: str = ""

    @field_validator("ca_file")
    @classmethod
    def _existing_file(cls, value: str) -> str:
        if value and not Path(value).is_file():
            raise ValueError(f"no such file: {value}")
        return value


class OutboundSettings(_Section):
    from_name: str = "Claims Desk"
    envelope_from: str = ""
    templates_dir: str = ""
    poll_seconds: float = Field(1.0, gt=0)
    batch_size: int = Field(10, gt=0)
    timeout_seconds: float = Field(60.0, gt=0)
    lock_seconds: float = Field(600.0, gt=0)
    retry_base_seconds: float = Field(60.0, gt=0)
    retry_max_seconds: float = Field(3600.0, gt=0)
    max_attempts: int = Field(10, gt=0)

    @field_validator("from_name", "envelope_from")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must not contain control characters (CR, LF, ...)")
        return value.strip()

    @field_validator("templates_dir")
    @classmethod
    def _existing_dir(cls, value: str) -> str:
        if value and not Path(value).is_dir():
            raise ValueError(f"no such directory: {value}")
        return value

    @model_validator(mode="after")
    def _lock_outlives_a_send(self) -> OutboundSettings:
        # A claimed row whose lock expires is sent again by another worker: the lock must
        # outlast one SMTP conversation (several commands, each up to timeout_seconds).
        if self.lock_seconds < 5 * self.timeout_seconds:
            raise ValueError("lock_seconds must be at least 5 x timeout_seconds")
        return self


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class ReportsSettings(_Section):
    sla_cron: str = "0 7 * * *"
    recipients: tuple[str, ...] = ()
    out_dir: str = "reports"
    period_days: int = Field(30, gt=0)

    @field_validator("sla_cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError("must be a cron expression of 5 fields, e.g. '0 7 * * *'")
        return value


class IntakeSettings(_Section):
    analysis_processes: int = Field(0, ge=0)


class SchedulerSettings(_Section):
    enabled: bool = True
    sla_sweep_minutes: float = Field(15.0, gt=0)
    outbox_retry_seconds: float = Field(30.0, gt=0)
    misfire_grace_seconds: int = Field(3600, gt=0)


class Settings(_Section):
    database: DatabaseSettings = DatabaseSettings()
    smtp: SmtpSettings = SmtpSettings()
    desk: DeskSettings = DeskSettings()
    checks: ChecksSettings = ChecksSettings()
    queues: dict[str, QueueSettings] = Field(default_factory=dict)
    routing: RoutingSettings = RoutingSettings()
    mailboxes: tuple[MailboxSettings, ...] = ()
    relay: RelaySettings = RelaySettings()
    outbound: OutboundSettings = OutboundSettings()
    web: WebSettings = WebSettings()
    reports: ReportsSettings = ReportsSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    intake: IntakeSettings = IntakeSettings()

    def fallback_queue(self) -> str:
        """The queue that takes mail no rule claimed (validated to exist exactly once)."""
        return next(name for name, q in self.queues.items() if q.fallback)

    def desk_addresses(self) -> frozenset[str]:
        """Every address claimdesk accepts mail for, lower-cased."""
        addresses = {a for q in self.queues.values() for a in q.addresses}
        addresses.add(self.desk.from_address.lower())
        return frozenset(addresses)


def _default_document() -> dict[str, Any]:
    text = resources.files("config").joinpath("default.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; `queues.NAME` tables replace the default queue set as a whole
    when the user names any queue (a desk with its own queues should not inherit ours)."""
    merged = dict(base)
    for key, value in override.items():
        if key == "queues":
            merged[key] = value
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _explain(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{key}: {message}")
    return "invalid configuration: " + "; ".join(lines)


def _check_queues(settings: Settings) -> None:
    if not settings.queues:
        raise ConfigError("invalid configuration: queues: at least one queue is needed")
    fallbacks = [n for n, q in settings.queues.items() if q.fallback]
    if len(fallbacks) != 1:
        raise ConfigError(
            "invalid configuration: queues: exactly one queue needs fallback = true "
            f"(found {len(fallbacks)})"
        )
    seen: dict[str, str] = {}
    for name, queue in settings.queues.items():
        for address in queue.addresses:
            if address in seen:
                raise ConfigError(
                    f"invalid configuration: queues.{name}.addresses: {address} is already "
                    f"used by queue {seen[address]}"
                )
            seen[address] = name
    for name in settings.routing.order:
        if name not in settings.queues:
            raise ConfigError(f"invalid configuration: routing.order: unknown queue {name!r}")
    names = [m.name for m in settings.mailboxes]
    for name in {n for n in names if names.count(n) > 1}:
        raise ConfigError(
            f"invalid configuration: mailboxes: name {name!r} is used twice (it keys the "
            "import cursor)"
        )
    for mailbox in settings.mailboxes:
        if mailbox.queue and mailbox.queue not in settings.queues:
            raise ConfigError(
                f"invalid configuration: mailboxes.{mailbox.name}.queue: unknown queue "
                f"{mailbox.queue!r}"
            )


def build_settings(document: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Validate a config document merged over the defaults; raises ConfigError."""
    env = os.environ if env is None else env
    merged = _merge(_default_document(), document)
    if env.get(DATABASE_URL_ENV):
        merged["database"] = {**merged.get("database", {}), "url": env[DATABASE_URL_ENV]}
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
    _check_queues(settings)
    return settings


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load `path` (else $CLAIMDESK_CONFIG, else built-in defaults); raises ConfigError."""
    env = os.environ if env is None else env
    chosen = path or env.get(CONFIG_PATH_ENV)
    document: dict[str, Any] = {}
    if chosen:
        try:
            document = tomllib.loads(Path(chosen).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {chosen}: not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {chosen}: not valid TOML: {exc}") from None
    return build_settings(document, env)
