"""The tenant a request acts for or may see: a key's own, or without keys the one named."""

from __future__ import annotations

from llmesh.services.core.caller import Caller
from llmesh.services.orchestrator.tenancy import acting_caller, viewed_tenant, visible_tenant

KEYED = Caller("acme", "k1")
KEYLESS = Caller("default", "")


def test_a_key_holds_the_caller_to_its_own_tenant() -> None:
    assert visible_tenant(KEYED, "other") == "acme"
    assert visible_tenant(KEYED, "") == "acme"
    assert visible_tenant(KEYED, None) == "acme"
    assert acting_caller(KEYED, "other") == KEYED


def test_without_keys_the_request_names_the_tenant() -> None:
    assert visible_tenant(KEYLESS, "other") == "other"
    assert acting_caller(KEYLESS, "other") == Caller("other", "")


def test_without_keys_naming_none_sees_every_tenant_and_acts_for_its_own() -> None:
    assert visible_tenant(KEYLESS, "") is None
    assert visible_tenant(KEYLESS, None) is None
    assert acting_caller(KEYLESS, None) == KEYLESS
    assert acting_caller(Caller("team", ""), "") == Caller("team", "")


def test_an_admin_tenants_key_sees_every_tenant_or_the_one_it_names() -> None:
    admin = Caller("ops", "k9")
    assert viewed_tenant(admin, None, {"ops"}) is None
    assert viewed_tenant(admin, "", {"ops"}) is None
    assert viewed_tenant(admin, "acme", {"ops"}) == "acme"


def test_any_other_key_still_sees_only_its_own_tenant() -> None:
    assert viewed_tenant(KEYED, "other", {"ops"}) == "acme"
    assert viewed_tenant(KEYED, None, ()) == "acme"
    # a tenant named like an admin tenant without a key (auth off) is just a filter
    assert viewed_tenant(Caller("ops", ""), None, {"ops"}) is None
    assert viewed_tenant(KEYLESS, "acme", {"ops"}) == "acme"


def test_a_caller_acting_for_its_own_tenant_is_not_copied() -> None:
    assert acting_caller(KEYED, "other") is KEYED
    assert acting_caller(KEYLESS, None) is KEYLESS
    assert acting_caller(KEYLESS, "default") is KEYLESS
