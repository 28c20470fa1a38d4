"""A token setting set to the empty string turns its API off, never open: the empty
token would otherwise match every request that carries none."""

from __future__ import annotations

from services.common.http_api import ApiTokens


def test_an_empty_admin_token_grants_nothing_and_turns_the_api_off() -> None:
    tokens = ApiTokens(admin="", admin_setting="NEWSMON_FETCHER_API_TOKEN")
    assert tokens.scope_of("") is None
    assert tokens.unset_message("admin") == "API disabled: set NEWSMON_FETCHER_API_TOKEN"


def test_an_empty_read_token_grants_nothing_beside_a_real_admin_token() -> None:
    tokens = ApiTokens(
        admin="s3cret",
        admin_setting="NEWSMON_ALERTER_API_TOKEN",
        read="",
        read_setting="NEWSMON_ALERTER_READ_TOKEN",
    )
    assert tokens.scope_of("") is None
    assert tokens.scope_of("s3cret") == "admin"
    assert tokens.unset_message("read") is None


def test_an_api_with_only_an_empty_read_token_serves_no_reads() -> None:
    tokens = ApiTokens(
        admin=None, admin_setting="A", read="", read_setting="NEWSMON_ALERTER_READ_TOKEN"
    )
    assert tokens.scope_of("") is None
    assert tokens.unset_message("read") == "API disabled: set A or NEWSMON_ALERTER_READ_TOKEN"
