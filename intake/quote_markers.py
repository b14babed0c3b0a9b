"""What quote attributions, forward separators, header blocks and signatures look like,
in the languages buyers write in. Line predicates only; `quotes.split_reply` uses them.

Every check looks at one stripped line (or a window of at most three short lines) with
string operations and simple anchored patterns, so cost stays linear in the text.
"""

from __future__ import annotations

import re

MAX_MARKER_LINE = 400
"""Longer lines are never attributions, separators or signatures (and are not matched)."""

# Attribution lines end with one of these (before the final colon), e.g. "On <date>, X
# wrote:", "Le <date>, X a écrit :", "X <a@b> 于2020年1月1日写道：".
ATTRIBUTION_ENDINGS = (
    "wrote",
    "writes",
    "a écrit",
    "escribió",
    "escreveu",
    "ha scritto",
    "napisał(a)",
    "napisał",
    "napisała",
    "pisze",
    "yazdı",
    "пишет",
    "написал(а)",
    "написал",
    "написала",
    "пише",
    "написав(ла)",
    "написав",
    "написала",
    "写道",
    "寫道",
    "schrieb",
    "schreef",
    "het volgende geschreven",
    "skrev",
    "skrev følgende",
    "kirjoitti",
    "napsal(a)",
    "napsal",
    "a scris",
    "έγραψε",
    "đã viết",
    "كتب",
    "작성",
    "書きました",
)
# How attributions begin ("On <date>", "Le <date>", "Am <date>", ...).
ATTRIBUTION_INTROS = (
    "on ", "le ", "am ", "el ", "em ", "il ", "op ", "den ", "w dniu ", "dne ", "på ",
    "vào ", "в ",
)  # fmt: skip
# Verb-second languages put the verb in the middle: "Am <date> schrieb X:".
ATTRIBUTION_MIDDLES = (("am ", " schrieb "), ("op ", " schreef "), ("den ", " skrev "))

# Phrases between dash runs ("-----Original Message-----") or before a colon ("Begin
# forwarded message:") that start quoted or forwarded mail.
SEPARATOR_PHRASES = frozenset(
    {
        "original message",
        "forwarded message",
        "forwarded message follows",
        "begin forwarded message",
        "ursprüngliche nachricht",
        "originalnachricht",
        "weitergeleitete nachricht",
        "anfang der weitergeleiteten nachricht",
        "message d'origine",
        "message original",
        "message transféré",
        "début du message réexpédié",
        "début du message transféré",
        "mensaje original",
        "mensaje reenviado",
        "inicio del mensaje reenviado",
        "mensagem original",
        "mensagem encaminhada",
        "início da mensagem reencaminhada",
        "início da mensagem encaminhada",
        "messaggio originale",
        "messaggio inoltrato",
        "inizio messaggio inoltrato",
        "oorspronkelijk bericht",
        "origineel bericht",
        "doorgestuurd bericht",
        "begin doorgestuurd bericht",
        "исходное сообщение",
        "пересылаемое сообщение",
        "пересланное сообщение",
        "начало переадресованного сообщения",
        "переслане повідомлення",
        "оригінальне повідомлення",
        "wiadomość oryginalna",
        "oryginalna wiadomość",
        "wiadomość przekazana",
        "przekazana wiadomość",
        "początek przekazywanej wiadomości",
        "původní zpráva",
        "přeposlaná zpráva",
        "orijinal ileti",
        "özgün ileti",
        "iletilen ileti",
        "alkuperäinen viesti",
        "välitetty viesti",
        "ursprungligt meddelande",
        "vidarebefordrat meddelande",
        "oprindelig meddelelse",
        "videresendt meddelelse",
        "opprinnelig melding",
        "videresendt melding",
        "eredeti üzenet",
        "továbbított üzenet",
        "mesaj original",
        "mesaj redirecționat",
        "αρχικό μήνυμα",
        "προωθημένο μήνυμα",
        "原始邮件",
        "转发的邮件",
        "原始郵件",
        "轉寄郵件",
        "転送されたメッセージ",
        "元のメッセージ",
        "원본 메시지",
        "전달된 메시지",
        "tin nhắn gốc",
        "tin nhắn được chuyển tiếp",
    }
)

# Outlook-style header block labels: a From label, then (within a few lines) a date label.
FROM_LABELS = frozenset(
    {
        "from", "von", "de", "от", "od", "da", "van", "kimden", "från", "fra", "lähettäjä",
        "发件人", "寄件者", "差出人", "feladó", "από", "від", "expéditeur", "remitente",
        "mittente", "nadawca", "afzender", "gönderen", "avsändare", "afsender", "보낸 사람",
        "từ", "من", "отправитель", "absender", "odesílatel",
    }
)  # fmt: skip
DATE_LABELS = frozenset(
    {
        "sent", "date", "gesendet", "datum", "envoyé", "enviado", "enviada", "fecha",
        "отправлено", "дата", "wysłano", "wysłane", "data", "inviato", "verzonden",
        "verstuurd", "tarih", "gönderildi", "gönderilme", "skickat", "sendt", "lähetetty",
        "päivämäärä", "发送时间", "日期", "時間", "傳送時間", "寄件日期", "送信日時", "日付",
        "elküldve", "dátum", "στάλθηκε", "ημερομηνία", "надіслано", "odesláno", "보낸 날짜",
        "날짜", "gửi", "ngày", "التاريخ", "تاريخ", "datum odeslání",
    }
)  # fmt: skip
OTHER_LABELS = frozenset(
    {
        "to", "cc", "bcc", "subject", "reply-to", "an", "betreff", "à", "a", "objet",
        "para", "asunto", "assunto", "кому", "тема", "копия", "do", "temat", "dw",
        "oggetto", "aan", "onderwerp", "kime", "konu", "bilgi", "till", "ämne", "kopia",
        "til", "emne", "vastaanottaja", "aihe", "kopio", "收件人", "主题", "抄送", "收件者",
        "主旨", "副本", "宛先", "件名", "címzett", "tárgy", "προς", "θέμα", "komu",
        "předmět", "kopie", "받는 사람", "제목", "참조", "đến", "chủ đề", "إلى", "الموضوع",
    }
)  # fmt: skip
HEADER_LABELS = FROM_LABELS | DATE_LABELS | OTHER_LABELS

# Mobile / webmail signatures. "…my…" prefixes are signatures whatever follows; the
# others only when a device or app word follows ("Sent from Shenzhen" is not one).
_SIGNATURE_PREFIXES_OWNED = (
    "sent from my ",
    "sent from your ",
    "envoyé de mon ",
    "envoyé depuis mon ",
    "von meinem ",
    "gesendet von meinem ",
    "enviado desde mi ",
    "enviado de meu ",
    "enviado do meu ",
    "enviado de mi ",
    "inviato dal mio ",
    "verzonden vanaf mijn ",
    "verstuurd vanaf mijn ",
    "verzonden met mijn ",
    "wysłane z mojego ",
    "wysłano z mojego ",
    "отправлено с моего ",
    "надіслано з мого ",
    "skickat från min ",
    "sendt fra min ",
    "odesláno z mého ",
    "trimis de pe ",
    "αποστολή από το ",
    "发自我的",
    "發自我的",
    "来自我的",
    "從我的",
    "从我的",
    "get outlook for ",
)
_SIGNATURE_PREFIXES = (
    "sent from ",
    "sent via ",
    "sent with ",
    "sent using ",
    "envoyé de ",
    "envoyé depuis ",
    "envoyé avec ",
    "gesendet von ",
    "gesendet mit ",
    "enviado desde ",
    "enviado de ",
    "enviado do ",
    "enviado con ",
    "enviado com ",
    "inviato da ",
    "verzonden vanaf ",
    "verzonden met ",
    "verstuurd vanaf ",
    "wysłane z ",
    "wysłano z ",
    "отправлено с ",
    "отправлено из ",
    "отправлено со ",
    "надіслано з ",
    "skickat från ",
    "sendt fra ",
    "lähetetty ",
    "odesláno z ",
)
_SIGNATURE_SUFFIXES = ("gönderildi", "から送信", "에서 보냄", "发送", "傳送")
_DEVICE_WORDS = (
    "iphone", "ipad", "android", "samsung", "galaxy", "mobile", "outlook", "mail", "yahoo",
    "aol", "gmail", "blackberry", "huawei", "honor", "xiaomi", "redmi", "oppo", "vivo",
    "pixel", "nokia", "motorola", "sony", "xperia", "smartphone", "phone", "tablet",
    "device", "windows", "protonmail", "proton", "tutanota", "zoho", "yandex", "mail.ru",
    "почт", "thunderbird", "телефон", "смартфон", "устройств", "мобильн", "appareil",
    "téléphone", "handy", "dispositivo", "telefono", "teléfono", "celular", "telefon",
    "urządzenia", "app", "приложени",
)  # fmt: skip

_DASH_CHARS = "-=_*~–—"
_DASH_RUN = re.compile(r"[-=_*~–—]{2,}")
_HAS_DIGIT = re.compile(r"\d")
_SEPARATOR_ONLY = re.compile(r"[-=_*~–—\s]{5,}")
# Cheap necessary conditions, derived from the tables: a separator line starts with a dash
# or a phrase's first letter and ends with a dash, a colon or a phrase's last letter; a
# mobile signature starts like a prefix or ends like a suffix.
_SEPARATOR_FIRST = frozenset(_DASH_CHARS) | {p[0] for p in SEPARATOR_PHRASES}
_SEPARATOR_LAST = frozenset(_DASH_CHARS + ":") | {p[-1] for p in SEPARATOR_PHRASES}
# (Every prefix and suffix has two characters or more: their first and last two are tested.)
_SIGNATURE_STARTS = frozenset(p[:2] for p in (*_SIGNATURE_PREFIXES_OWNED, *_SIGNATURE_PREFIXES))
_SIGNATURE_ENDS = frozenset(s[-2:] for s in _SIGNATURE_SUFFIXES)


def is_quoted(line: str) -> bool:
    """A `>`-quoted line (leading whitespace allowed)."""
    return line.lstrip().startswith(">")


def unquote(line: str) -> str:
    """The line without its leading quote markers (all levels)."""
    return line.lstrip().lstrip("> \t")


def is_separator_line(stripped: str) -> bool:
    """Only dashes, underscores, equals signs etc. (a visual rule before quoted mail)."""
    return len(stripped) < MAX_MARKER_LINE and bool(_SEPARATOR_ONLY.fullmatch(stripped))


def _normalise(stripped: str) -> str:
    return stripped.lower().replace("：", ":").replace("\u00a0", " ")


def is_separator_phrase(stripped: str) -> bool:
    """Forward/reply separators: "-----Original Message-----", "---------- Forwarded
    message ---------", "Begin forwarded message:" and their translations."""
    if not stripped or len(stripped) > 120:
        return False
    # ASCII is lower-cased letter by letter: the ends of `text` below are the ends of
    # `stripped` lower-cased, so most lines are turned down before they are copied.
    if stripped.isascii() and (
        stripped[0].lower() not in _SEPARATOR_FIRST or stripped[-1].lower() not in _SEPARATOR_LAST
    ):
        return False
    text = _normalise(stripped)
    if text[0] not in _SEPARATOR_FIRST or text[-1] not in _SEPARATOR_LAST:
        return False
    dashed = bool(_DASH_RUN.match(text))
    core = _DASH_RUN.sub(" ", text).strip().rstrip(":").strip()
    if core in SEPARATOR_PHRASES:
        return dashed or text.rstrip().endswith(":") or core.startswith("begin")
    return False


def header_label(stripped: str) -> str | None:
    """The label of an Outlook-style header line ("From:", "*Sent:*", "De :"), lower-cased."""
    if not stripped or len(stripped) > MAX_MARKER_LINE:
        return None
    if ":" not in stripped and "：" not in stripped:
        return None
    text = stripped.lstrip("*").replace("：", ":")
    colon = text.find(":", 0, 30)
    if colon <= 0:
        return None
    label = text[:colon].strip().strip("*").strip().lower()
    return label if label in HEADER_LABELS else None


def attribution_window(window: str, *, next_is_quoted: bool, multi_line: bool) -> bool:
    """Whether `window` (one to three joined lines) attributes a quote ("On ... wrote:").

    Ending with an attribution verb needs an address, quoted lines right after, or an
    introduction ("On", "Le", ...) and a date; a window of several lines must also start
    like one or hold an address. The verb in the middle (German, Dutch, Scandinavian)
    needs its introduction, a date and an address or quoted lines; "<date>, Name <a@b>:"
    needs an address and a digit.
    """
    text = _normalise(window).rstrip()
    if len(text) > MAX_MARKER_LINE or not text.endswith(":"):
        return False
    body = text[:-1].rstrip()
    has_at = "@" in body
    has_digit = bool(_HAS_DIGIT.search(body))
    starts_like = text.startswith(ATTRIBUTION_INTROS)
    if body.endswith(ATTRIBUTION_ENDINGS):
        if multi_line and not (starts_like or has_at):
            return False
        return has_at or next_is_quoted or (starts_like and has_digit)
    if any(text.startswith(i) and m in text for i, m in ATTRIBUTION_MIDDLES):
        return has_digit and (has_at or next_is_quoted)
    return body.endswith((">", ")")) and has_at and has_digit and len(body) < 250


def is_mobile_signature(stripped: str) -> bool:
    """Mobile signatures: "Sent from my iPhone", "Von meinem iPhone gesendet", ..."""
    if not stripped or len(stripped) > 80 or "," in stripped:
        return False
    text = stripped.lower().rstrip(".! ")
    if not text or (text[:2] not in _SIGNATURE_STARTS and text[-2:] not in _SIGNATURE_ENDS):
        return False
    if len(text.split()) > 10:
        return False
    if text.startswith(_SIGNATURE_PREFIXES_OWNED):
        return True
    if text.startswith(_SIGNATURE_PREFIXES) or text.endswith(_SIGNATURE_SUFFIXES):
        return any(word in text for word in _DEVICE_WORDS)
    return False


def is_signature_delimiter(line: str) -> bool:
    """RFC 3676 "-- " (also "--": many clients strip the trailing space)."""
    return line.rstrip() == "--"


def is_footer_start(stripped: str) -> bool:
    """Lines that start a signature only when little follows: "____" rules (list
    footers) and "-Name" sign-offs."""
    if stripped[:1] not in ("_", "-"):
        return False
    if stripped.startswith("__") and not stripped.strip("_"):
        return True
    return (
        len(stripped) <= 40 and len(stripped) > 1 and stripped[0] == "-" and stripped[1].isalpha()
    )
