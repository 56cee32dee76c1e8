"""The decision engine: given a request target, a person and an instant, what
does the school's policy say?  Pure Python, no mitmproxy import, no I/O.

An `Engine` is built from one `Config` (and optionally one compiled list
index) and never changes; reloading builds a new one.  It holds no state that
depends on the traffic it has seen, so two proxy instances with the same
configuration, index and grants always agree.

Precedence, in order:

1. An *essential* allow override (the school's own services, e.g. its
   Microsoft 365 or Google Workspace) wins over every category entry for the
   sites it covers, however specific; only a more specific explicit block
   override beats it.  Real lists overreach, and a school cannot teach if a
   list happens to put ``docs.google.com`` under "file sharing".
2. Otherwise the most specific match wins: more host labels first, then a
   longer URL path.  ``casino.example.co.uk`` matches an entry for
   ``example.co.uk``; an entry for ``example.co.uk/games`` is more specific
   than one for ``example.co.uk``.
3. At the same specificity an explicit block override beats an explicit allow
   override, which beats category entries.
4. At the same specificity the school's own, hand-curated entries
   (``categories.yaml`` and its list files) beat entries of imported
   third-party lists: a list may file ``dropbox.com`` under "file hosting",
   but the school filed it under cloud storage on purpose.
5. Among categories at the same specificity the most restrictive action wins
   (block > limit > allow); the category's action may be changed for some
   people or times by ``category_rules`` (first matching rule wins).
6. Nothing matched: the rules' ``default_action``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from ..policy.circumventionrules import CircumventionRules
from ..policy.config import Config
from ..policy.loader import load_config
from ..policy.model import ACTIONS, Category
from ..policy.safesearchrules import SafeSearchRules
from ..policy.scoringrules import ScoringRules
from ..urls.entries import digest_forms
from ..urls.matching import specificity
from ..urls.normalize import HOST_MEMO, Target
from .circumvention import bare_ip_refused, circumvention_decision, doh_path
from .decision import Decision, Match
from .identity import Identity, identify
from .listindex import CURRENT, ListIndex
from .scoring import Score, Scorer

_RANK = {a: i for i, a in enumerate(ACTIONS)}


class ListLookup(Protocol):
    """The compiled index of imported category lists (see ``listindex``)."""

    meta: dict[str, Any]  # how it was built (``built``: when)

    @property
    def entries(self) -> int: ...

    def lookup_ex(self, target: Target) -> tuple[list[Match], bool]: ...


class Engine:
    def __init__(self, config: Config, lists: ListLookup | None = None):
        self.config = config
        self.lists = lists
        self._zone = config.zone
        self._people: dict[tuple[str, str | None], Identity] = {}
        # What matches a host is a pure function of the host (for hosts without
        # URL-prefix entries) and of this engine's immutable configuration and
        # index, so it is memoised: a school's traffic is mostly a few thousand
        # hosts.  Decisions are not cached: they depend on who and when.
        self._by_host: dict[str, tuple[Match, ...]] = {}
        # Likewise a decision that consulted no clock and no path depends only
        # on the host and the person (groups follow from the user name).
        self._decisions: dict[tuple[str, str, frozenset[str]], Decision] = {}
        self._ooh: dict[tuple[str, int], bool] = {}
        self.circumvention: CircumventionRules = config.sections.circumvention or CircumventionRules()
        self.safe_search: SafeSearchRules = config.sections.safe_search or SafeSearchRules()
        scoring: ScoringRules = config.sections.scoring or ScoringRules()
        self.scorer = Scorer(scoring) if scoring.enabled else None
        action = config.settings.default_action
        self._default = Decision(action, None, (), "default", None, None, None,
                                 f"in no category; the default action is {action}")

    @classmethod
    def load(cls, root: Path | str | None = None) -> Engine:
        """Load the configuration under ``root`` and the list index in force;
        raises ConfigError."""
        config = load_config(root)
        return cls(config, ListIndex.open_current(config.index_path))

    @property
    def watched_files(self) -> tuple[Path, ...]:
        """Files besides categories.yaml and rules/ whose change means a reload
        (the index's ``current`` link changes when a new index is swapped in)."""
        return (*self.config.list_files, self.config.index_path / CURRENT)

    def identify(self, client_ip: str, auth_user: str | None = None) -> Identity:
        """`identity.identify`, memoised for this configuration (a request's
        identity costs more to work out than its decision otherwise)."""
        key = (client_ip, auth_user)
        who = self._people.get(key)
        if who is None:
            if len(self._people) > self.HOST_CACHE:
                self._people.clear()
            who = self._people[key] = identify(self.config, client_ip, auth_user)
        return who

    # -- classification ------------------------------------------------------

    HOST_CACHE = HOST_MEMO

    def path_dependent(self, target: Target) -> bool:
        """Whether some entry for this host is URL-level (a phishing page, an
        IWF address): what is decided depends on the path, which only a
        decrypted request shows."""
        return not self._matches(target)[1]

    def matches(self, target: Target) -> list[Match]:
        """Every entry covering the target, whoever asks (overrides unfiltered)."""
        return self._matches(target)[0]

    def _matches(self, target: Target) -> tuple[list[Match], bool]:
        """The matches, and whether they depend on the host alone."""
        cached = self._by_host.get(target.host)
        host_only = True
        if cached is not None:
            out = list(cached)
        else:
            out, path_dependent = self._host_and_path_matches(target)
            if path_dependent:
                host_only = False
            else:
                if len(self._by_host) >= self.HOST_CACHE:
                    self._by_host.clear()
                self._by_host[target.host] = tuple(out)
        if self.config.regexes:
            out.extend(self._regex_matches(target))
            host_only = False
        return out, host_only

    def _host_and_path_matches(self, target: Target) -> tuple[list[Match], bool]:
        cfg = self.config
        out: list[Match] = []
        for hit in cfg.matcher.lookup(target):
            ref = hit.payload
            if ref.kind == "override":
                ov = cfg.overrides[ref.ref]
                out.append(Match("override", ov.category, ov.id, hit.entry.text, ref.origin,
                                 hit.specificity, ov.action, ov.essential))
            else:
                out.append(Match("category", ref.ref, ref.ref, hit.entry.text, ref.origin, hit.specificity))
        path_dependent = cfg.matcher.path_dependent(target.host)
        for bulk in cfg.bulk:
            for entry, line in bulk.compiled.lookup(target):
                out.append(Match("category", bulk.ref, bulk.ref, entry.text, f"{bulk.shown}:{line}",
                                 specificity(entry)))
            path_dependent = path_dependent or bulk.compiled.path_dependent(target.host)
        if self.lists is not None:
            listed, list_paths = self.lists.lookup_ex(target)
            out.extend(m for m in listed if m.category in cfg.categories)
            path_dependent = path_dependent or list_paths
        return out, path_dependent

    def _regex_matches(self, target: Target) -> list[Match]:
        cfg = self.config
        out: list[Match] = []
        url = target.url
        labels = 1 if target.is_ip else target.host.count(".") + 1
        spec = (labels, 1 + len(target.path))
        for pattern, ref in cfg.regexes:
            if pattern.search(url):
                if ref.kind == "override":
                    ov = cfg.overrides[ref.ref]
                    out.append(Match("override", ov.category, ov.id, f"regex {pattern.pattern}",
                                     ref.origin, spec, ov.action, ov.essential))
                else:
                    out.append(Match("category", ref.ref, ref.ref, f"regex {pattern.pattern}", ref.origin, spec))
        return out

    # -- time ----------------------------------------------------------------

    def local_time(self, at: datetime) -> datetime:
        if at.tzinfo is None:
            at = at.replace(tzinfo=timezone.utc)
        return at.astimezone(self._zone)

    def out_of_hours(self, who: Identity, at: datetime) -> bool:
        """Outside the person's working hours at this instant (memoised by the minute:
        the audit log asks for every request)."""
        key = (who.user, int(at.timestamp()) // 60)
        hit = self._ooh.get(key)
        if hit is None:
            if len(self._ooh) > self.HOST_CACHE:
                self._ooh.clear()
            hit = self._ooh[key] = not self.in_working_hours(who, self.local_time(at))
        return hit

    def in_working_hours(self, who: Identity, local: datetime) -> bool:
        """Inside the person's working hours; with none configured, always."""
        hours = self.config.working_hours
        if not hours:
            return True
        for wh in hours:
            if wh.audience.includes(who.user, who.groups):
                return wh.window.contains(local)
        return False

    def applies(self, audience: Any, when: Any, who: Identity, at: datetime) -> bool:
        """Whether a rule with this audience and ``when`` applies to who, at."""
        if not audience.includes(who.user, who.groups):
            return False
        if when.always:
            return True
        local = self.local_time(at)
        return bool(when.applies(local, self.in_working_hours(who, local)))

    # -- decision ------------------------------------------------------------

    def category_action(self, category: str, who: Identity, clock: _Clock) -> tuple[str, str]:
        for rule in self.config.category_rules:
            if (category in rule.categories and rule.audience.includes(who.user, who.groups)
                    and (rule.when.always or rule.when.applies(clock.local, clock.in_hours))):
                return rule.action, f"category_rule:{rule.id}"
        return self.config.categories[category].action, f"category:{category}"

    def category_decision(self, category: str, target: Target, who: Identity, at: datetime, rule: str,
                          why: str) -> Decision:
        """A decision that ``target`` is in ``category`` for a reason outside
        the lists (its page: ``pageverdicts``), with the action the rules give
        the category for this person now."""
        cat = self.config.categories[category]
        action, by = self.category_action(cat.id, who, _Clock(self, who, at))
        return Decision(action, cat.id, (cat.id,), rule, cat.clause, None, None, f"{why}; action {action} ({by})",
                        cat.decrypt, cat.policy_text, cat.title)

    def decide(self, target: Target, who: Identity, at: datetime) -> Decision:
        if self.config.locked_digests:
            locked = self._locked_digest(target)
            if locked is not None:
                return locked
        if doh_path(self.circumvention, target.path):
            return self._decide((), target, who, _Clock(self, who, at))
        key = (target.host, who.user, who.groups)  # groups: a directory can change them under the same name
        cached = self._decisions.get(key)
        if cached is not None:
            return cached
        matches, host_only = self._matches(target)
        clock = _Clock(self, who, at)
        decision = self._decide(matches, target, who, clock)
        if host_only and not clock.consulted:
            if len(self._decisions) >= self.HOST_CACHE:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def decide_from(self, matches: Sequence[Match], target: Target, who: Identity, at: datetime) -> Decision:
        """Decide on matches found earlier (``explain`` shows them too)."""
        locked = self._locked_digest(target) if self.config.locked_digests else None
        return locked or self._decide(matches, target, who, _Clock(self, who, at))

    def _decide(self, matches: Sequence[Match], target: Target, who: Identity, clock: _Clock) -> Decision:
        if doh_path(self.circumvention, target.path):
            return circumvention_decision("doh", f"DNS over HTTPS ({target.path}) resolves names round the "
                                                 "school's DNS and its filtering")
        decision = self._decide_matches(matches, target, who, clock)
        if (decision.action != "block" and not decision.rule.startswith("override:")
                and target.is_ip and bare_ip_refused(self.circumvention, target.host)):
            return circumvention_decision("bare-ip", f"browsing by IP address ({target.host}) instead of a "
                                                     "site name is not allowed", decision.categories)
        return decision

    def _decide_matches(self, matches: Sequence[Match], target: Target, who: Identity, clock: _Clock) -> Decision:
        cfg = self.config
        if not matches:
            return self._unlisted(target, who, clock)
        locked = [m for m in matches if m.via != "override" and m.category and cfg.categories[m.category].locked]
        if locked:  # before any rule, override, essential service or grant is looked at (policy.locked)
            best = max(locked, key=lambda m: m.specificity)
            return self._locked(cfg.categories[best.category], best.entry, best.origin)  # type: ignore[index]
        live: list[Match] = []
        for m in matches:
            if m.via == "override":
                ov = cfg.overrides[m.ref]
                if not ov.audience.includes(who.user, who.groups):
                    continue
                if not ov.when.always and not ov.when.applies(clock.local, clock.in_hours):
                    continue
            live.append(m)
        all_categories = tuple(dict.fromkeys(m.category for m in live if m.category))
        if not live:
            return self._unlisted(target, who, clock)

        essential = [m for m in live if m.essential and m.action == "allow"]
        if essential:
            best = max(essential, key=lambda m: m.specificity)
            beating = [m for m in live if m.via == "override" and m.action == "block"
                       and m.specificity >= best.specificity]  # the school blocks one on purpose
            if beating:
                return self._override(max(beating, key=lambda m: m.specificity), all_categories)
            # A URL-level entry (a phishing page on docs.google.com) is more
            # specific than the host-level allow of an essential service, and
            # is decided by the usual most-specific-wins below.
            if not any(m.specificity[1] and m.specificity > best.specificity for m in live if m.via != "override"):
                return self._override(best, all_categories)

        top_spec = max(m.specificity for m in live)
        top = [m for m in live if m.specificity == top_spec]
        for wanted in ("block", "allow"):
            for m in top:
                if m.via == "override" and m.action == wanted:
                    return self._override(m, all_categories)
        if any(m.via == "category" for m in top):
            top = [m for m in top if m.via == "category"]

        best_match: Match | None = None
        best_action, best_rule = "allow", ""
        for m in top:
            assert m.category is not None
            action, rule = self.category_action(m.category, who, clock)
            if best_match is None or _RANK[action] > _RANK[best_action]:
                best_match, best_action, best_rule = m, action, rule
        assert best_match is not None and best_match.category is not None
        cat = cfg.categories[best_match.category]
        where = "a category rule" if best_rule.startswith("category_rule:") else "default"
        reason = (f"{best_match.entry} ({best_match.origin}) is in category {cat.id!r}; "
                  f"action {best_action} ({where}: {best_rule})")
        if cat.circumvention and best_action == "block":
            reason = f"circumvention: {reason}"
        return Decision(best_action, cat.id, all_categories, best_rule, cat.clause, best_match.entry,
                        best_match.origin, reason, self._decrypt(all_categories), cat.policy_text, cat.title)

    def score(self, target: Target) -> Score | None:
        """The name score of a host (None: scoring is off, or no term occurs)."""
        if self.scorer is None or target.is_ip:
            return None
        return self.scorer.score(target.host)

    def _unlisted(self, target: Target, who: Identity, clock: _Clock) -> Decision:
        """A host no entry covers: the default, unless its name scores for a
        category (block above the block threshold; allowed but recorded as
        suspected between the review and block thresholds)."""
        s = self.score(target)
        if s is None or s.verdict == "none" or s.category not in self.config.categories:
            return self._default
        cat = self.config.categories[s.category]
        why = f"{target.host} is in no list; its {s.describe()}"
        if s.verdict == "suspect":
            d = self._default
            return Decision(d.action, None, (), f"suspect:{cat.id}", None, None, None,
                            f"{d.reason}; suspected {cat.id}: {why}")
        action, rule = self.category_action(cat.id, who, clock)
        return Decision(action, cat.id, (cat.id,), f"score:{cat.id}", cat.clause, None, None,
                        f"{why}; action {action} ({rule})", cat.decrypt, cat.policy_text, cat.title)

    def _locked(self, cat: Category, entry: str, origin: str) -> Decision:
        return Decision("block", cat.id, (cat.id,), f"locked:{cat.id}", cat.clause, entry, origin,
                        f"{entry} ({origin}) is in the locked category {cat.id!r}: blocked for everyone, always",
                        cat.decrypt, cat.policy_text, cat.title)

    def _locked_digest(self, target: Target) -> Decision | None:
        digests = self.config.locked_digests
        for d in digest_forms(target.host, target.path, target.query):
            hit = digests.get(d)
            if hit is not None:
                return self._locked(self.config.categories[hit[0]], f"sha256:{d.hex()[:16]}…", hit[1])
        return None

    def correspondence_only(self, categories: Sequence[str]) -> bool:
        """Every category that keeps this decision from being decrypted is
        electronic correspondence (so an interception order may open it;
        banking or health never)."""
        cats = self.config.categories
        closed = [cats[c] for c in categories if c in cats and not cats[c].decrypt]
        return bool(closed) and all(c.correspondence for c in closed)

    def _decrypt(self, categories: Sequence[str]) -> bool:
        cats = self.config.categories
        return all(cats[c].decrypt for c in categories if c in cats)

    def _override(self, m: Match, all_categories: tuple[str, ...]) -> Decision:
        ov = self.config.overrides[m.ref]
        cat: Category | None = self.config.categories.get(ov.category) if ov.category else None
        reason = f"{m.entry} ({m.origin}) is covered by override {ov.id!r} ({ov.action}): {ov.reason}"
        clause = cat.clause if cat else ("6.3.1" if ov.action == "block" else None)
        return Decision(ov.action, ov.category, all_categories, f"override:{ov.id}", clause, m.entry,
                        m.origin, reason, self._decrypt(all_categories),
                        cat.policy_text if cat else None, cat.title if cat else None)


class _Clock:
    """The school's local time and whether it is within the person's working
    hours, worked out only if a rule with ``when:`` asks."""

    __slots__ = ("_engine", "_who", "_at", "_local", "_in_hours")

    def __init__(self, engine: Engine, who: Identity, at: datetime):
        self._engine, self._who, self._at = engine, who, at
        self._local: datetime | None = None
        self._in_hours: bool | None = None

    @property
    def consulted(self) -> bool:
        return self._local is not None

    @property
    def local(self) -> datetime:
        if self._local is None:
            self._local = self._engine.local_time(self._at)
        return self._local

    @property
    def in_hours(self) -> bool:
        if self._in_hours is None:
            self._in_hours = self._engine.in_working_hours(self._who, self.local)
        return self._in_hours
