"""Screening a conversation: the rules on user and tool texts, plus an optional classifier.

System messages are the operator's and are not screened; assistant turns are the model's.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason
from llmesh.services.common.step_settings import SCREEN_RULES
from llmesh.services.core.chat import Message, Role, TextPart
from llmesh.services.processor.screen.rules import RULES, Rule, combine

__all__ = [
    "ALLOW_ENV",
    "CLASSIFIER_GROUP",
    "Classifier",
    "Screener",
    "Screening",
    "load_classifier",
]

CLASSIFIER_GROUP = "llmesh.screen_classifiers"
"""The entry point group searched for a classifier's name."""
ALLOW_ENV = "LLMESH_SCREEN_CLASSIFIERS"
"""The processor's environment variable listing the dotted paths it may load (comma-separated).
A request names a classifier, so a path not listed is refused: the processor never imports
or calls what a client merely names (``subprocess:run`` would run the texts)."""

Classifier = Callable[[Sequence[str]], float]
"""Texts -> score in 0..1. Called on the processor's event loop: keep it fast."""

_SCREENED = (Role.USER, Role.TOOL)


@dataclass(frozen=True, slots=True)
class Screening:
    """A call's score and what made it."""

    score: float
    rules: tuple[str, ...]
    """The rules that matched, in `SCREEN_RULES` order, then ``classifier`` when it scored."""


def _bad_classifier(name: str, why: str) -> LlmeshError:
    return LlmeshError(
        Reason.INVALID_REQUEST,
        f"invalid request: screening.classifier: {why}",
        violations=(FieldViolation("screening.classifier", why),),
        metadata={"step": "screen"},
    )


def load_classifier(name: str, allowed: Collection[str] = ()) -> Classifier:
    """An entry point of `CLASSIFIER_GROUP` called `name` (installed by the operator), else
    the object at the dotted path ``pkg.module:attr`` (or ``pkg.module.attr``) when `allowed`
    lists it; INVALID_REQUEST otherwise."""
    found = entry_points(group=CLASSIFIER_GROUP, name=name)
    if not found and name not in allowed:
        why = f"{name!r} is neither an entry point of {CLASSIFIER_GROUP} nor listed in {ALLOW_ENV}"
        raise _bad_classifier(name, why)
    try:
        if found:
            obj: Any = next(iter(found)).load()
        else:
            module, sep, attr = name.partition(":")
            if not sep:
                module, _, attr = name.rpartition(".")
            if not module or not attr:
                raise ImportError(name)
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise _bad_classifier(name, f"{name!r} is neither an entry point nor importable") from None
    if not callable(obj):
        raise _bad_classifier(name, f"{name!r} is not callable")
    classifier: Classifier = obj
    return classifier


class Screener:
    """The chosen rules and classifier, ready to screen calls."""

    def __init__(
        self,
        rules: Sequence[str] = SCREEN_RULES,
        classifier: str = "",
        allowed: Collection[str] = (),
    ) -> None:
        """`allowed`: the dotted paths a classifier may be loaded from (see `ALLOW_ENV`)."""
        chosen = set(rules)
        self._rules: tuple[Rule, ...] = tuple(r for r in RULES if r.name in chosen)
        self._classifier = load_classifier(classifier, allowed) if classifier else None

    def screen(self, messages: Sequence[Message]) -> Screening:
        """The score of the user and tool texts of `messages`."""
        matched: set[str] = set()
        texts: list[str] = []
        for m in messages:
            if m.role not in _SCREENED:
                continue
            tool = m.role is Role.TOOL
            own = [m.content, *(p.text for p in m.parts if isinstance(p, TextPart))]
            for text in own:
                if not text:
                    continue
                texts.append(text)
                lower = text.lower()
                for rule in self._rules:
                    usable = rule.name not in matched and (tool or not rule.tool_only)
                    if usable and rule.matches(text, lower):
                        matched.add(rule.name)
        names = [r.name for r in self._rules if r.name in matched]
        scores = [r.weight for r in self._rules if r.name in matched]
        if self._classifier is not None and texts:
            extra = self._classify(texts)
            if extra > 0:
                names.append("classifier")
                scores.append(extra)
        return Screening(combine(scores), tuple(names))

    def _classify(self, texts: Sequence[str]) -> float:
        value = self._classifier(texts) if self._classifier is not None else 0.0
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise LlmeshError(
                Reason.INTERNAL,
                "the screen step's classifier returned no score (a number from 0 to 1)",
                metadata={"step": "screen"},
            )
        return min(max(float(value), 0.0), 1.0)
