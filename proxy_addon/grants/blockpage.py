"""The page a member of staff sees when the policy stops a request.

It has to explain, not just refuse: which category, the policy's own words,
when, as whom, the address (escaped: it is attacker-controlled), and what to
do next, including the policy's promise that genuine mistakes are not a
breach.  Plain HTML with inline CSS, readable on a phone, no external assets
(the school's filter might block a CDN, and the page must never leak).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape

from ..classify.decision import Decision

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1b1b1b;line-height:1.5}
main{max-width:40rem;margin:0 auto;padding:1.5rem 1rem}
h1{font-size:1.5rem;margin:.2rem 0 1rem}
.badge{display:inline-block;background:#b3261e;color:#fff;border-radius:.3rem;padding:.1rem .5rem;font-size:.9rem}
blockquote{margin:1rem 0;padding:.6rem 1rem;background:#fff;border-left:.3rem solid #1d4ed8}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;background:#fff;padding:1rem;border-radius:.4rem}
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
.next{background:#fff;padding:.2rem 1rem 1rem;border-radius:.4rem;margin-top:1rem}
form{margin:.6rem 0}label{display:block;font-weight:600;margin:.4rem 0 .2rem}
textarea{width:100%;box-sizing:border-box;min-height:4rem;font:inherit}
button{font:inherit;padding:.5rem 1rem;border-radius:.3rem;border:1px solid #1d4ed8;background:#1d4ed8;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#1d4ed8}
"""


@dataclass(frozen=True, slots=True)
class BlockNotice:
    """Everything the page shows; all text is escaped on rendering."""

    heading: str
    category_title: str | None
    clause: str | None
    policy_text: str | None
    url: str
    user: str
    at: datetime
    contact: str
    reason: str = ""
    actions_html: str = ""  # pre-escaped forms (self-report, exception request)
    grantable: bool = True  # False: no grant can lift this block (a category that is not bypassable)


def render_block_page(n: BlockNotice) -> str:
    clause = ""
    if n.clause:
        words = f"<blockquote>{escape(n.policy_text)}</blockquote>" if n.policy_text else ""
        clause = f"<p>Social Media Policy, section {escape(n.clause)}:</p>{words}"
    category = f'<p><span class="badge">{escape(n.category_title)}</span></p>' if n.category_title else ""
    reason = f"<dt>Why</dt><dd>{escape(n.reason)}</dd>" if n.reason else ""
    ask = (f"<p>If you need this site for your work, ask the Headteacher for an exception\n(policy 6.3.1), "
           f"or contact {escape(n.contact)}.</p>" if n.grantable else
           f"<p>The policy allows no exception for this category. If the site is in the wrong category, "
           f"contact {escape(n.contact)}.</p>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Blocked by the school's Internet policy</title>
<style>{_STYLE}</style></head>
<body><main>
{category}
<h1>{escape(n.heading)}</h1>
{clause}
<dl>
<dt>Address</dt><dd><code>{escape(n.url)}</code></dd>
<dt>User</dt><dd>{escape(n.user)}</dd>
<dt>Time</dt><dd>{escape(n.at.strftime("%d %B %Y, %H:%M:%S %Z"))}</dd>
{reason}
</dl>
<section class="next"><h2>What to do next</h2>
<p>If you reached this page by accident, leave the site. The policy says genuine
mistakes and accidents will not be treated as a breach; tell the Senior Leadership Team.</p>
{ask}
{n.actions_html}
</section>
</main></body></html>
"""


CONTENT_RULES = ("streaming:", "download:", "upload:", "content:")
"""Rules of the content controls: the site is allowed, this transfer was not."""


def heading_for(d: Decision) -> str:
    """The page's heading: a limit or a refused transfer is not a blocked site
    (the person may use the site; this download, upload or stream was stopped)."""
    if d.rule.startswith("streaming:"):
        return d.title or "Streaming limit reached"
    if d.rule.startswith("download:"):
        return f"This download is not allowed: {d.title}" if d.title else "This download is not allowed"
    if d.rule.startswith("upload:"):
        return f"This upload is not allowed: {d.title}" if d.title else "This upload is not allowed"
    return f"This site is blocked: {d.title}" if d.title else "This site is blocked"


def page_reason(d: Decision) -> str:
    """What the block page says besides the category: nothing for a plain
    category block (the title and clause say it); the whole reason for a
    content control (the budget, what was used, when it starts again); the
    human part of the reason for attempts to get round the filter and for
    anything else."""
    if d.rule.startswith("circumvention:"):
        return d.reason.removeprefix("circumvention: ").split("; ")[0]
    if d.rule.startswith(CONTENT_RULES):
        return d.reason
    return "" if d.title else d.reason.split(" (")[0]


def message_page(text: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>School web filter</title>'
            f'<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;'
            f'line-height:1.5}}</style></head><body><main><h1>School web filter</h1>'
            f'<p id="message">{escape(text)}</p></main></body></html>')
