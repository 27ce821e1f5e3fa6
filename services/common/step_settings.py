"""A route's processor steps (``routes.<name>.steps``): what the processor does to a call's
input before it goes out, and what the orchestrator does to the reply on its way back.

Part of the route configuration (`llmesh.services.common.route_settings`)::

    steps:
      pre: [redact]          # before the call: the processor's Prepare RPC, once per call
      post: [restore, redact_output]   # on the reply, in the orchestrator's stream, in order:
                             # pseudonyms put back, then the output rules' values masked
      redact:
        mode: pseudonymize   # mask | pseudonymize | block
        detectors: [email, phone, credit_card, iban, ip, secrets]   # default: all
        patterns: {ticket: "TCK-[0-9]{6}"}                          # name: regex
        words: {project: [Falcon, Osprey]}                          # name: whole words
      screen:                # with pre: [screen]: prompt-injection and jailbreak screening
        action: flag         # flag | block | route
        threshold: 0.5       # the score (0..1) from which the action applies
        route_to: strict-model   # with action route: the model or route the call moves to
        rules: [ignore_previous, reveal_system_prompt]   # default: all
        classifier: mypkg.screens:score   # optional: (texts) -> score, or an entry point name
      fit:                   # pre: [..., fit]: the conversation fitted to the target's window
        strategy: trim       # trim | larger_model | summarize
        larger_model: openai/gpt-4.1   # for larger_model
        summary_model: openai/gpt-4o-mini   # for summarize: a model or route of the mesh
        summary_max_tokens: 512   # for summarize: the summary's length limit
        keep_turns: 2        # for summarize: the last user turns kept whole
        reserve_output: 1024 # tokens kept for the reply (default: max_tokens, else the
                             # model's output limit; never less than the call's max_tokens,
                             # and a call without max_tokens is sent this one)
      redact_output:         # with post: [redact_output]: what is masked in the reply
        detectors: [secrets, email]                                 # default: all
        patterns: {ticket: "TCK-[0-9]{6}"}                          # name: regex
        words: {project: [Falcon, Osprey]}                          # name: whole words
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import regex

from llmesh.services.common.config_fields import ConfigError

__all__ = [
    "DETECTORS",
    "DETECTOR_GROUPS",
    "POST_STEPS",
    "PRE_STEPS",
    "SCREEN_RULES",
    "FitConfig",
    "FitStrategy",
    "RedactionConfig",
    "RedactionMode",
    "ScreenAction",
    "ScreenConfig",
    "StepsConfig",
    "parse_steps",
]

DETECTORS = (
    "private_key",
    "anthropic_key",
    "openai_key",
    "aws_key",
    "github_token",
    "slack_token",
    "jwt",
    "email",
    "credit_card",
    "iban",
    "ipv4",
    "ipv6",
    "phone",
)
"""The processor's built-in detectors, in priority order (the processor's own list is tested
against this one)."""

DETECTOR_GROUPS: Mapping[str, tuple[str, ...]] = {
    "ip": ("ipv4", "ipv6"),
    "secrets": DETECTORS[:7],
}
"""Names standing for several detectors."""

SCREEN_RULES = (
    "ignore_previous",
    "role_override",
    "jailbreak",
    "reveal_system_prompt",
    "tool_instructions",
    "encoded_payload",
    "invisible_characters",
)
"""The processor's injection-screening rules (the processor's own list is tested against
this one)."""

PRE_STEPS = ("screen", "redact", "fit")
"""Steps the processor runs on the input, in the order listed (``fit`` always last, on
the messages as they go out)."""
POST_STEPS = ("restore", "redact_output")
"""Steps run on the reply in the orchestrator's stream, in the order listed."""

_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


class RedactionMode(enum.Enum):
    """What replaces a sensitive value."""

    MASK = "mask"
    """``[EMAIL]``: irreversible."""
    PSEUDONYMIZE = "pseudonymize"
    """``<EMAIL_1>``: the same value gets the same placeholder within a call, and the
    ``restore`` post-step puts the value back in the reply."""
    BLOCK = "block"
    """The call fails (INVALID_REQUEST naming the detector, never the value)."""


@dataclass(frozen=True)
class RedactionConfig:
    """The ``redact`` step's settings."""

    mode: RedactionMode = RedactionMode.PSEUDONYMIZE
    """Mask, pseudonymize or block."""
    detectors: tuple[str, ...] = DETECTORS
    """Built-in detectors in use (groups expanded), in priority order."""
    patterns: tuple[tuple[str, str], ...] = ()
    """User detectors: (name, regular expression)."""
    words: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """User word lists: (name, words matched whole and case-insensitively)."""


OUTPUT_DEFAULT = RedactionConfig(RedactionMode.MASK)
"""The ``redact_output`` step's settings when none are given: every detector, masking."""


class ScreenAction(enum.Enum):
    """What a call scoring at or above the threshold gets."""

    FLAG = "flag"
    """The call goes on; the score and rules are in the trail and the metrics."""
    BLOCK = "block"
    """The call fails (INVALID_REQUEST naming the rules, never the text)."""
    ROUTE = "route"
    """The call moves to `ScreenConfig.route_to`, a stricter model."""


_CLASSIFIER = re.compile(r"[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?")


@dataclass(frozen=True)
class ScreenConfig:
    """The ``screen`` step's settings."""

    action: ScreenAction = ScreenAction.FLAG
    """Flag, block or route."""
    threshold: float = 0.5
    """The score (0..1) from which the action applies."""
    route_to: str = ""
    """With action route: the model or route a call at or above the threshold moves to."""
    rules: tuple[str, ...] = SCREEN_RULES
    """Rules in use, of `SCREEN_RULES`."""
    classifier: str = ""
    """A classifier ``(texts) -> score`` used with the rules: an entry point name of the
    ``llmesh.screen_classifiers`` group or a dotted path (``pkg.mod:func``); empty: none."""


class FitStrategy(enum.Enum):
    """What the ``fit`` step does with a conversation over the target's window."""

    TRIM = "trim"
    """Drop the oldest turns (system messages and last turns kept, tool results with their
    call)."""
    LARGER_MODEL = "larger_model"
    """Move the call to `FitConfig.larger_model`; trim to its window if still too long."""
    SUMMARIZE = "summarize"
    """Replace the middle turns (after the system messages, before the last
    `FitConfig.keep_turns` user turns) with a summary written by `FitConfig.summary_model`,
    called through the mesh; trim when the summary does not make it fit."""


@dataclass(frozen=True)
class FitConfig:
    """The ``fit`` step's settings."""

    strategy: FitStrategy = FitStrategy.TRIM
    """Trim, or move to a larger model."""
    larger_model: str | None = None
    """``provider/model`` the call moves to (required with ``larger_model``)."""
    reserve_output: int | None = None
    """Tokens kept free for the reply; None: the call's max_tokens, else the model's output
    limit. Never less than the call's max_tokens; a call without max_tokens is sent this
    as its max_tokens (a provider's default could ask for more than was kept free)."""
    summary_model: str | None = None
    """The model or route (of this mesh) writing the summary (required with ``summarize``)."""
    summary_max_tokens: int = 512
    """The most tokens the summary may take (its call's max_tokens)."""
    keep_turns: int = 2
    """User turns kept whole at the end (a turn: a user message and the replies and tool
    results after it); fewer are kept when these do not fit with the summary."""


@dataclass(frozen=True)
class StepsConfig:
    """A route's pre-call and post-call steps."""

    pre: tuple[str, ...] = ()
    """Of `PRE_STEPS`, in order."""
    post: tuple[str, ...] = ()
    """Of `POST_STEPS`, in order."""
    redact: RedactionConfig = field(default_factory=RedactionConfig)
    """Settings of the ``redact`` step."""
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    """Settings of the ``screen`` step."""
    fit: FitConfig = field(default_factory=FitConfig)
    """Settings of the ``fit`` step."""
    redact_output: RedactionConfig = field(default_factory=lambda: OUTPUT_DEFAULT)
    """Settings of the ``redact_output`` post-step (mode is always mask)."""

    @property
    def restores(self) -> bool:
        """True when the reply's placeholders are put back."""
        return "restore" in self.post

    @property
    def masks_output(self) -> bool:
        """True when the output rules' values are masked in the reply."""
        return "redact_output" in self.post


_FIT_KEYS = (
    "strategy",
    "larger_model",
    "reserve_output",
    "summary_model",
    "summary_max_tokens",
    "keep_turns",
)
_STEPS_KEYS = ("pre", "post", "redact", "screen", "fit", "redact_output")


def _settings(
    where: str, raw: Any, keys: Sequence[str], shape: str | None = None
) -> Mapping[str, Any]:
    """`raw` as the mapping of a section whose keys are `keys` (None: nothing set); errors
    name `where`, saying the section takes `shape` (default: the keys) when it is no mapping,
    and which keys are unknown."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a mapping with {shape or ', '.join(keys)}")
    unknown = set(raw) - set(keys)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(map(str, unknown))}")
    return raw


def _names(where: str, raw: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise ConfigError(f"{where}: a list of step names, of {list(allowed)}")
    for v in raw:
        if v not in allowed:
            raise ConfigError(f"{where}: {v!r} is not one of {list(allowed)}")
    if len(set(raw)) != len(raw):
        raise ConfigError(f"{where}: a step is listed twice")
    return tuple(raw)


def _user_name(where: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in DETECTORS:
        raise ConfigError(
            f"{where}: {name!r} must be lowercase letters, digits and _ (up to 32), "
            "and not a built-in detector's name"
        )
    return name


def _redaction(where: str, raw: Any, *, output: bool = False) -> RedactionConfig:
    """The ``redact`` step's settings; with `output`, the ``redact_output`` step's (no
    mode: always mask; patterns must also compile for partial matching)."""
    keys = sorted({"detectors", "patterns", "words"} | (set() if output else {"mode"}))
    raw = _settings(where, raw, keys)
    mode_raw = raw.get("mode", (RedactionMode.MASK if output else RedactionConfig.mode).value)
    try:
        mode = RedactionMode(mode_raw)
    except ValueError:
        modes = [m.value for m in RedactionMode]
        raise ConfigError(f"{where}.mode: {mode_raw!r} is not one of {modes}") from None
    chosen: set[str] = set()
    detectors_raw = raw.get("detectors")
    if detectors_raw is None:
        chosen = set(DETECTORS)
    elif not isinstance(detectors_raw, list):
        raise ConfigError(f"{where}.detectors: a list of detector names")
    else:
        for name in detectors_raw:
            if name in DETECTOR_GROUPS:
                chosen.update(DETECTOR_GROUPS[name])
            elif name in DETECTORS:
                chosen.add(name)
            else:
                known = [*DETECTORS, *DETECTOR_GROUPS]
                raise ConfigError(f"{where}.detectors: {name!r} is not one of {known}")
    patterns: list[tuple[str, str]] = []
    for name, source in _mapping(f"{where}.patterns", raw.get("patterns")).items():
        _user_name(f"{where}.patterns", name)
        if not isinstance(source, str) or not source:
            raise ConfigError(f"{where}.patterns.{name}: a regular expression")
        try:
            compiled = re.compile(source)
        except re.error as exc:
            raise ConfigError(f"{where}.patterns.{name}: not a regular expression: {exc}") from None
        if compiled.fullmatch(""):
            raise ConfigError(f"{where}.patterns.{name}: must not match the empty text")
        if output:
            try:
                regex.compile(source, regex.V0)
            except regex.error as exc:
                raise ConfigError(
                    f"{where}.patterns.{name}: not usable on a streamed reply: {exc}"
                ) from None
        patterns.append((name, source))
    words: list[tuple[str, tuple[str, ...]]] = []
    for name, items in _mapping(f"{where}.words", raw.get("words")).items():
        _user_name(f"{where}.words", name)
        if (
            not isinstance(items, list)
            or not items
            or not all(isinstance(w, str) and w.strip() for w in items)
        ):
            raise ConfigError(f"{where}.words.{name}: a non-empty list of words")
        words.append((name, tuple(w.strip() for w in items)))
    names = [n for n, _ in patterns] + [n for n, _ in words]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: a name is used by both a pattern and a word list")
    return RedactionConfig(
        mode,
        tuple(d for d in DETECTORS if d in chosen),
        tuple(patterns),
        tuple(words),
    )


def _fit(where: str, raw: Any) -> FitConfig:
    raw = _settings(where, raw, _FIT_KEYS, "strategy, larger_model, reserve_output")
    strategy_raw = raw.get("strategy", FitStrategy.TRIM.value)
    try:
        strategy = FitStrategy(strategy_raw)
    except ValueError:
        names = [s.value for s in FitStrategy]
        raise ConfigError(f"{where}.strategy: {strategy_raw!r} is not one of {names}") from None
    larger = raw.get("larger_model")
    if larger is not None and (
        not isinstance(larger, str) or "/" not in larger.strip("/") or larger != larger.strip()
    ):
        raise ConfigError(f"{where}.larger_model: a provider/model name")
    if strategy is FitStrategy.LARGER_MODEL and larger is None:
        raise ConfigError(f"{where}.larger_model: required with strategy larger_model")
    reserve = raw.get("reserve_output")
    if reserve is not None and (isinstance(reserve, bool) or not isinstance(reserve, int)):
        raise ConfigError(f"{where}.reserve_output: a number of tokens")
    if reserve is not None and reserve < 0:
        raise ConfigError(f"{where}.reserve_output: must be >= 0")
    summary = raw.get("summary_model")
    if summary is not None and (not isinstance(summary, str) or not summary.strip()):
        raise ConfigError(f"{where}.summary_model: a model or route name")
    if (strategy is FitStrategy.SUMMARIZE) != (summary is not None):
        raise ConfigError(
            f"{where}.summary_model: required with strategy summarize, and only with it"
        )
    summary_max = _positive(where, raw, "summary_max_tokens", FitConfig.summary_max_tokens)
    keep = _positive(where, raw, "keep_turns", FitConfig.keep_turns)
    return FitConfig(strategy, larger, reserve, summary, summary_max, keep)


def _positive(where: str, raw: Mapping[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}.{key}: a whole number >= 1")
    return value


def _mapping(where: str, raw: Any) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a mapping of names")
    return raw


def _screen(where: str, raw: Any) -> ScreenConfig:
    raw = _settings(where, raw, ("action", "threshold", "route_to", "rules", "classifier"))
    action_raw = raw.get("action", ScreenConfig.action.value)
    try:
        action = ScreenAction(action_raw)
    except ValueError:
        actions = [a.value for a in ScreenAction]
        raise ConfigError(f"{where}.action: {action_raw!r} is not one of {actions}") from None
    threshold = raw.get("threshold", ScreenConfig.threshold)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ConfigError(f"{where}.threshold: a number from 0 to 1")
    if not 0 < threshold <= 1:
        raise ConfigError(f"{where}.threshold: a number above 0, at most 1")
    route_to = raw.get("route_to", "")
    if not isinstance(route_to, str):
        raise ConfigError(f"{where}.route_to: a model or route name")
    if (action is ScreenAction.ROUTE) != bool(route_to):
        raise ConfigError(f"{where}.route_to: required with action route, and only with it")
    rules_raw = raw.get("rules")
    rules: tuple[str, ...] = SCREEN_RULES
    if rules_raw is not None:
        if not isinstance(rules_raw, list) or not rules_raw:
            raise ConfigError(f"{where}.rules: a non-empty list of {list(SCREEN_RULES)}")
        for name in rules_raw:
            if name not in SCREEN_RULES:
                raise ConfigError(f"{where}.rules: {name!r} is not one of {list(SCREEN_RULES)}")
        rules = tuple(r for r in SCREEN_RULES if r in rules_raw)
    classifier = raw.get("classifier", "")
    if not isinstance(classifier, str) or (classifier and not _CLASSIFIER.fullmatch(classifier)):
        raise ConfigError(f"{where}.classifier: an entry point name or pkg.module:function")
    return ScreenConfig(action, float(threshold), route_to, rules, classifier)


def parse_steps(route: str, raw: Any, where: str | None = None) -> StepsConfig | None:
    """``routes.<route>.steps`` (None when absent or empty); errors name the key (`where`,
    for steps configured elsewhere: ``tenants.<tenant>.steps``)."""
    if raw is None:
        return None
    where = where or f"routes.{route}.steps"
    raw = _settings(where, raw, _STEPS_KEYS, "pre, post and the steps' settings")
    pre = _names(f"{where}.pre", raw.get("pre"), PRE_STEPS)
    post = _names(f"{where}.post", raw.get("post"), POST_STEPS)
    redact = _redaction(f"{where}.redact", raw.get("redact"))
    screen = _screen(f"{where}.screen", raw.get("screen"))
    for step in ("redact", "screen"):
        if step in raw and step not in pre:
            raise ConfigError(f"{where}.{step}: settings for a step not in pre")
    fit = _fit(f"{where}.fit", raw.get("fit"))
    if "fit" in raw and "fit" not in pre:
        raise ConfigError(f"{where}.fit: settings for a step not in pre")
    if "fit" in pre and pre[-1] != "fit":
        raise ConfigError(f"{where}.pre: fit must come last")
    redact_output = _redaction(f"{where}.redact_output", raw.get("redact_output"), output=True)
    if "redact_output" in raw and "redact_output" not in post:
        raise ConfigError(f"{where}.redact_output: settings for a step not in post")
    if "restore" in post and ("redact" not in pre or redact.mode is not RedactionMode.PSEUDONYMIZE):
        raise ConfigError(f"{where}.post: restore needs pre: [redact] with mode pseudonymize")
    if not pre and not post:
        return None
    return StepsConfig(pre, post, redact, screen, fit, redact_output)
