"""schoolproxy: a web filtering proxy for school networks.

Sub-packages, in the order a request meets them (each may import only the
ones below it; ``pyproject.toml``'s import-linter contracts enforce this):

    cli      the ``schoolproxy`` command
    admin    the admin web app              proxy   the mitmproxy side: hooks, block pages
    monitor  reports, alerts, history       grants  exceptions   lists  third-party lists
    audit    the audit log                  content media, downloads, personal data, pacing
    classify the pure decision
    policy   the school's configuration
    urls     hosts and URLs in canonical form
"""
