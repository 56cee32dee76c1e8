"""The addon's background tasks, one small object each, started and
stopped together by one ``Supervisor``: the rules watch (``rulewatch``), the
grants poll (``grantpoll``), the locked lists' feeds (``feedcheck``), the
status file and its alerts (``statusfile``), the weekly report
(``weeklysend``), the retention purge (``dailypurge``), alert delivery
(``alertsend``) and a WireGuard listener per enrolled device (``offsite``).  Each has ``run()``: a coroutine that loops until
cancelled, so each can be tested alone.
May import what ``proxy`` may; nothing in ``proxy`` but ``flowstate``,
``recorder`` and their own siblings."""
