"""API tokens: the store in Redis and the `flask --app web tokens` commands."""

import pytest

from jobs.keys import token_index_key, token_key
from web import tokens
from web.cli import tokens_cli


def test_a_token_is_stored_by_its_sha256_only(redis):
    secret = tokens.create(redis, "ci", frozenset({"start:send_email"}))
    assert secret.startswith(tokens.SECRET_PREFIX) and len(secret) > 40
    stored = b"".join(key + value for key, value in redis.hgetall(token_key(tokens.digest(secret))).items())
    assert secret.encode() not in stored and b"".join(redis.keys("*")).find(secret.encode()) == -1
    found = tokens.lookup(redis, secret)
    assert (found.name, found.scopes) == ("ci", frozenset({"start:send_email"}))


def test_unknown_and_revoked_tokens_are_not_found_and_write_nothing(redis):
    secret = tokens.create(redis, "ci", frozenset({"cancel:any"}))
    keys_before = set(redis.keys("*"))
    assert tokens.lookup(redis, secret + "x") is None
    assert set(redis.keys("*")) == keys_before
    assert tokens.revoke(redis, "ci") is True
    assert tokens.lookup(redis, secret) is None
    assert tokens.revoke(redis, "ci") is False
    assert redis.hgetall(token_index_key()) == {}


def test_a_use_is_noted_as_last_used(redis):
    secret = tokens.create(redis, "ci", frozenset({"cancel:any"}))
    assert tokens.all_tokens(redis)[0].last_used_at is None
    tokens.lookup(redis, secret)
    assert tokens.all_tokens(redis)[0].last_used_at > 0


def test_start_star_grants_every_start_but_not_cancel():
    token = tokens.Token("t", frozenset({"start:*"}), 0.0)
    assert token.has_scope("start:send_email") and token.has_scope("start:long_task")
    assert not token.has_scope("cancel:any")


@pytest.mark.parametrize("scopes", [(), ("start:nope",), ("admin",), ("cancel:all",)])
def test_only_known_scopes(scopes):
    with pytest.raises(tokens.BadToken):
        tokens.check_scopes(scopes, ["long_task", "send_email"])


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "ünï"])
def test_bad_names_are_refused(redis, name):
    with pytest.raises(tokens.BadToken):
        tokens.create(redis, name, frozenset({"cancel:any"}))


def test_a_name_is_taken_once(redis):
    tokens.create(redis, "ci", frozenset({"cancel:any"}))
    with pytest.raises(tokens.BadToken, match="exists"):
        tokens.create(redis, "ci", frozenset({"cancel:any"}))


def test_cli_creates_lists_and_revokes(app, redis):
    runner = app.test_cli_runner()
    created = runner.invoke(
        tokens_cli, ["create", "ci", "--scope", "start:send_email", "--scope", "cancel:any"]
    )
    assert created.exit_code == 0, created.output
    secret = created.output.strip().splitlines()[-1]
    assert tokens.lookup(redis, secret).name == "ci"
    listed = runner.invoke(tokens_cli, ["list"])
    assert listed.exit_code == 0
    assert "ci" in listed.output and "cancel:any start:send_email" in listed.output
    assert listed.output.splitlines()[0].split() == ["NAME", "SCOPES", "CREATED", "LAST", "USED"]
    assert listed.output.splitlines()[1].endswith(" UTC") and " UTC  2" in listed.output.splitlines()[1]
    assert secret not in listed.output and tokens.digest(secret) not in listed.output
    assert runner.invoke(tokens_cli, ["revoke", "ci"]).exit_code == 0
    assert tokens.lookup(redis, secret) is None
    again = runner.invoke(tokens_cli, ["revoke", "ci"])
    assert again.exit_code == 1 and "no token named 'ci'" in again.output


def test_cli_refuses_an_unknown_scope(app):
    result = app.test_cli_runner().invoke(tokens_cli, ["create", "ci", "--scope", "start:rm"])
    assert result.exit_code == 1 and "unknown scope 'start:rm'" in result.output
