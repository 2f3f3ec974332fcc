"""The single sign-on settings: each provider entry is checked at load, the client secret is
read only from its file or variable when used, and no error or repr ever shows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api.config import load_settings
from api.errors import ConfigError

SECRET_VALUE = "top-secret-client-value-1234567890"


def _provider(**changes: Any) -> dict[str, Any]:
    entry = {"name": "met", "agency_id": "metpolice", "issuer": "https://login.example.org/met",
             "client_id": "kitledger", "client_secret_env": "MET_OIDC_SECRET",
             "group_roles": {"stores": "stores-officer"}}
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


def test_a_good_provider_loads() -> None:
    settings = load_settings(oidc_providers=[_provider()])
    assert settings.oidc_providers[0].group_roles == {"stores": "stores-officer"}


@pytest.mark.parametrize(("changes", "words"), [
    ({"issuer": "http://login.example.org/met"}, "https"),             # plain HTTP off loopback
    ({"issuer": "https://user:pw@login.example.org"}, "credentials"),
    ({"issuer": "https://login.example.org/?x=1"}, "query"),
    ({"issuer": "ftp://login.example.org"}, "https"),
    ({"group_roles": {"stores": "god"}}, "role must be one of"),
    ({"group_roles": {}}, "group_roles"),
    ({"group_roles": {f"g{i}": "auditor" for i in range(65)}}, "group_roles"),
    ({"group_roles": {"": "auditor"}}, "group name"),
    ({"client_secret_env": None}, "one of them"),                       # no secret source
    ({"client_secret_file": "/etc/x"}, "one of them"),                  # both
    ({"client_secret_env": "lower-case"}, "client_secret_env"),
    ({"scope": "profile groups"}, "openid"),
    ({"name": "Has Spaces"}, "name"),
    ({"name": "x" * 40}, "name"),
    ({"unknown": 1}, "unknown"),
])
def test_bad_provider_entries_are_refused(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_settings(oidc_providers=[_provider(**changes)])


def test_provider_names_are_unique() -> None:
    with pytest.raises(ConfigError, match="own name"):
        load_settings(oidc_providers=[_provider(), _provider(agency_id="other")])


def test_loopback_issuers_may_be_plain_http() -> None:
    for issuer in ("http://127.0.0.1:9000", "http://localhost:9000/realm", "http://[::1]:1"):
        assert load_settings(oidc_providers=[_provider(issuer=issuer)]).oidc_providers


def test_the_secret_is_read_when_used_and_never_shown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from_env = load_settings(oidc_providers=[_provider()]).oidc_providers[0]
    monkeypatch.delenv("MET_OIDC_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"no client secret in \$MET_OIDC_SECRET"):
        from_env.client_secret()
    monkeypatch.setenv("MET_OIDC_SECRET", SECRET_VALUE)
    assert from_env.client_secret().get_secret_value() == SECRET_VALUE
    assert SECRET_VALUE not in repr(from_env.client_secret()) + repr(from_env)
    path = tmp_path / "met.secret"
    from_file = load_settings(oidc_providers=[_provider(
        client_secret_env=None, client_secret_file=str(path))]).oidc_providers[0]
    with pytest.raises(ConfigError, match="cannot read client_secret_file"):
        from_file.client_secret()
    path.write_text("\n")
    with pytest.raises(ConfigError, match="no client secret in"):
        from_file.client_secret()
    path.write_text(SECRET_VALUE + "\n")
    assert from_file.client_secret().get_secret_value() == SECRET_VALUE
    settings = load_settings(oidc_providers=[_provider(client_secret_env=None,
                                                       client_secret_file=str(path))])
    assert SECRET_VALUE not in repr(settings) and SECRET_VALUE not in str(settings)


def test_a_relative_secret_file_is_read_beside_the_settings_file(tmp_path: Path) -> None:
    config = tmp_path / "kitledger.toml"
    config.write_text('[[oidc_providers]]\nname = "met"\nagency_id = "metpolice"\n'
                      'issuer = "https://login.example.org/met"\nclient_id = "kitledger"\n'
                      'client_secret_file = "met.secret"\n'
                      '[oidc_providers.group_roles]\nstores = "stores-officer"\n')
    (tmp_path / "met.secret").write_text(SECRET_VALUE)
    provider = load_settings(config).oidc_providers[0]
    assert provider.client_secret_file == tmp_path / "met.secret"
    assert provider.client_secret().get_secret_value() == SECRET_VALUE
