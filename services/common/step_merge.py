"""How a tenant's processor steps combine with a route's: the tenant's apply to every route
it calls, merged with the route's, the stricter setting winning where both set one.

- ``pre`` and ``post``: the union, in the steps' fixed order (`PRE_STEPS`, `POST_STEPS`).
- ``redact``: the stricter mode (block, then mask, then pseudonymize); the union of
  detectors, patterns and words. ``redact_output``: the union of detectors, patterns, words.
- ``screen``: the stricter action (block, then route, then flag) with its ``route_to``, the
  lower threshold, the union of rules, the route's classifier (else the tenant's).
- ``fit``: the route's settings when it fits, else the tenant's.
- ``restore`` is kept only while the merged redact step still pseudonymizes (a tenant that
  masks or blocks leaves nothing to restore).
"""

from __future__ import annotations

from llmesh.services.common.step_settings import (
    DETECTORS,
    POST_STEPS,
    PRE_STEPS,
    SCREEN_RULES,
    RedactionConfig,
    RedactionMode,
    ScreenAction,
    ScreenConfig,
    StepsConfig,
)

__all__ = ["merge_steps"]

_MODE_RANK = {RedactionMode.PSEUDONYMIZE: 0, RedactionMode.MASK: 1, RedactionMode.BLOCK: 2}
_ACTION_RANK = {ScreenAction.FLAG: 0, ScreenAction.ROUTE: 1, ScreenAction.BLOCK: 2}


def merge_steps(route: StepsConfig | None, tenant: StepsConfig | None) -> StepsConfig | None:
    """The steps a call of `tenant` on `route` runs (see the module docstring)."""
    if tenant is None:
        return route
    if route is None:
        return tenant
    pre = tuple(s for s in PRE_STEPS if s in route.pre or s in tenant.pre)
    redact = _redaction(route, tenant, "redact", "pre")
    post = tuple(s for s in POST_STEPS if s in route.post or s in tenant.post)
    if "restore" in post and redact.mode is not RedactionMode.PSEUDONYMIZE:
        post = tuple(s for s in post if s != "restore")
    return StepsConfig(
        pre,
        post,
        redact,
        _screen(route, tenant),
        route.fit if "fit" in route.pre or "fit" not in tenant.pre else tenant.fit,
        _redaction(route, tenant, "redact_output", "post"),
    )


def _redaction(route: StepsConfig, tenant: StepsConfig, step: str, phase: str) -> RedactionConfig:
    mine: RedactionConfig = getattr(route, step)
    theirs: RedactionConfig = getattr(tenant, step)
    if step not in getattr(tenant, phase):
        return mine
    if step not in getattr(route, phase):
        return theirs
    mode = max(mine.mode, theirs.mode, key=_MODE_RANK.__getitem__)
    detectors = tuple(d for d in DETECTORS if d in mine.detectors or d in theirs.detectors)
    patterns = mine.patterns + tuple(p for p in theirs.patterns if p not in mine.patterns)
    words = dict(mine.words)
    for name, listed in theirs.words:
        words[name] = words.get(name, ()) + tuple(w for w in listed if w not in words.get(name, ()))
    return RedactionConfig(mode, detectors, patterns, tuple(words.items()))


def _screen(route: StepsConfig, tenant: StepsConfig) -> ScreenConfig:
    mine, theirs = route.screen, tenant.screen
    if "screen" not in tenant.pre:
        return mine
    if "screen" not in route.pre:
        return theirs
    strict = max((mine, theirs), key=lambda s: _ACTION_RANK[s.action])  # the route's on a tie
    return ScreenConfig(
        strict.action,
        min(mine.threshold, theirs.threshold),
        strict.route_to,
        tuple(r for r in SCREEN_RULES if r in mine.rules or r in theirs.rules),
        mine.classifier or theirs.classifier,
    )
