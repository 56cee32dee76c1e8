"""Small hand-written configurations for unit tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

CATEGORIES = """
categories:
  - id: gambling
    title: Gambling
    clause: "6.3.1"
    policy_text: "gambling/betting/gaming"
    action: block
    domains: [casino.example, example.co.uk]
    urls: [games.example/poker]
  - id: streaming
    title: Streaming
    clause: "6.3.1"
    policy_text: "streaming"
    action: limit
    domains: [video.example]
    urls: [example.co.uk/tv]
  - id: press
    title: Press
    clause: "6.2.1"
    policy_text: "press"
    action: allow
    domains: [news.casino.example]
  - id: banking
    title: Banking
    clause: "6.3.1"
    policy_text: "bank"
    action: allow
    decrypt: false
    domains: [bank.example]
  - id: social
    title: Social
    clause: "6.2.1"
    policy_text: "social"
    action: block
    domains: [social.example]
"""


def write_config(root: Path, rules: str = "", categories: str = CATEGORIES, **files: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "categories.yaml").write_text(textwrap.dedent(categories))
    (root / "rules").mkdir(exist_ok=True)
    (root / "rules" / "rules.yaml").write_text(textwrap.dedent(rules))
    for name, text in files.items():
        path = root / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root
