"""The acceptable-use notice (``policy.noticerules``): whether it is due for
someone, the signed token its "I understand" button carries, and the record
of acknowledgements (``notice_acks``, shared by every proxy instance)."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Engine as DBEngine
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..audit.models import NoticeAck
from ..policy.noticerules import NoticeRules

ACK_PATH = "/.schoolproxy/notice"
TOKEN_MAX_AGE = 24 * 3600


def subject_of(rules: NoticeRules, user: str, client_ip: str) -> str:
    return client_ip if rules.per == "device" else user


def due(rules: NoticeRules, acks: dict[str, datetime], subject: str, now: datetime) -> bool:
    last = acks.get(subject)
    return last is None or now - last >= timedelta(days=rules.every_days)


def load_acks(db: DBEngine, rules: NoticeRules, now: datetime) -> dict[str, datetime]:
    """The latest acknowledgement of each subject within the period."""
    with Session(db) as s:
        rows = s.execute(select(NoticeAck.subject, func.max(NoticeAck.ts))
                         .where(NoticeAck.ts > now - timedelta(days=rules.every_days))
                         .group_by(NoticeAck.subject)).all()
    return {subject: ts for subject, ts in rows}


def record_ack(db: DBEngine, subject: str, user: str, client_ip: str, instance: str, now: datetime) -> None:
    with Session(db) as s, s.begin():
        s.add(NoticeAck(ts=now, subject=subject[:255], user=user[:255], client_ip=client_ip[:64], instance=instance))


def _signer(secret: bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="schoolproxy-notice")


def make_token(secret: bytes, subject: str, url: str) -> str:
    return _signer(secret).dumps({"s": subject, "u": url})


def read_token(secret: bytes, token: str, subject: str) -> str:
    """The URL to go on to, or ValueError (forged, expired, or someone else's)."""
    try:
        data = _signer(secret).loads(token, max_age=TOKEN_MAX_AGE)
    except BadSignature as e:
        raise ValueError("this notice has expired or was not issued here; reload the page") from e
    if not isinstance(data, dict) or data.get("s") != subject or not str(data.get("u", "")).startswith(("http://",
                                                                                                     "https://")):
        raise ValueError("this notice was issued to someone else; reload the page")
    return str(data["u"])


def notice_page(rules: NoticeRules, token: str, url: str, contact: str) -> str:
    paras = "\n".join(f"<p>{escape(p)}</p>" for p in rules.paragraphs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Using the school's Internet connection</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#1f2937}}
h1{{font-size:1.4rem}}button{{font:inherit;padding:.6rem 1.2rem;background:#1d4ed8;color:#fff;border:0;border-radius:.3rem}}
.muted{{color:#4b5563;font-size:.9rem}}</style></head><body>
<h1>Using the school's Internet connection</h1>
{paras}
<form method="post" action="{ACK_PATH}">
<input type="hidden" name="token" value="{escape(token)}">
<p><button type="submit" id="understand">I understand</button></p>
</form>
<p class="muted">You will be taken on to {escape(url)}. Questions: {escape(contact)}.</p>
</body></html>"""
