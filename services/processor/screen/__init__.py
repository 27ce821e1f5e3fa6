"""Injection screening: heuristic rules with weights, a score per call, a classifier hook."""

from llmesh.services.processor.screen.rules import RULES, Rule, combine
from llmesh.services.processor.screen.screener import (
    ALLOW_ENV,
    CLASSIFIER_GROUP,
    Classifier,
    Screener,
    Screening,
    load_classifier,
)

__all__ = [
    "ALLOW_ENV",
    "CLASSIFIER_GROUP",
    "RULES",
    "Classifier",
    "Rule",
    "Screener",
    "Screening",
    "combine",
    "load_classifier",
]
