"""Versioned prompt templates: stored in the ledger database, rendered in Jinja2's sandbox
(by the processor), picked per call by A/B weights, measured from the ledger's call rows.

A version (`TemplateVersion`) declares its variables, an optional system prompt, messages
and default parameters; versions are immutable (a change is a new version). A call names
``name`` or ``name@version`` (`TemplateRef`); `resolve` picks the version, `Renderer`
renders it, `TemplateStore.stats` reports each version's calls.
"""

from llmesh.services.templates.choose import pick_version, sticky_point
from llmesh.services.templates.model import (
    Parameters,
    TemplateMessage,
    TemplateRef,
    TemplateVersion,
    Variable,
    not_found,
    parse_ref,
    version_from_mapping,
    version_to_mapping,
)
from llmesh.services.templates.render import Rendered, Renderer, check
from llmesh.services.templates.stats import StatsQuery, VersionStats
from llmesh.services.templates.store import (
    TemplateStore,
    TemplateSummary,
    open_template_store,
    resolve,
)

__all__ = [
    "Parameters",
    "Rendered",
    "Renderer",
    "StatsQuery",
    "TemplateMessage",
    "TemplateRef",
    "TemplateStore",
    "TemplateSummary",
    "TemplateVersion",
    "Variable",
    "VersionStats",
    "check",
    "not_found",
    "open_template_store",
    "parse_ref",
    "pick_version",
    "resolve",
    "sticky_point",
    "version_from_mapping",
    "version_to_mapping",
]
