"""The credentials file (TOML): named tokens by their SHA-256 and what each may do, and which GitHub
Actions workflows may upload with an OIDC token.

    [[token]]
    name = "dashboard"
    sha256 = "<64 hex digits: batch-metrics token new prints them>"
    can = ["read"]

    [[token]]
    name = "tsuku-ci"
    sha256 = "..."
    can = ["write"]
    ecosystems = ["npm", "homebrew*"]    # patterns: * and ? as in shell globs

    [oidc]
    issuer = "https://token.actions.githubusercontent.com"
    audience = "https://telemetry.example.dev"

    [[oidc.rule]]
    name = "tsuku main"
    repository_owner = "tsukumogami"
    ref = "refs/heads/main"
    ecosystems = ["npm", "homebrew"]

Every mistake is an error naming the entry and the key (never a value): an unknown key, a rule that
does not pin an owner (GitHub's issuer signs for every repository on GitHub), a symmetric algorithm.
TOML because Python reads it without a dependency (tomllib) and people write it without quoting
trouble; docs/endpoint.md documents the whole format.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from batch_metrics.endpoint.access.tokens import hash_token

READ, WRITE = "read", "write"
LEGACY_NAME = "legacy token"  # what a run uploaded with a token given the old way records as its uploader
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
# The claims a rule may match, each a pattern or a list of patterns (any one matches).
RULE_CLAIMS = (
    "repository", "repository_owner", "repository_id", "repository_owner_id", "job_workflow_ref", "ref",
    "environment",
)  # fmt: skip
# Asymmetric algorithms only: with a shared-secret one (HS256) the issuer's public key would be the secret.
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_WILDCARD = re.compile(r"[*?\[]")
_OIDC_NUMBERS = {
    "leeway_seconds": 60.0,
    "fetch_timeout_seconds": 5.0,
    "keys_refresh_seconds": 3600.0,
    "keys_max_age_seconds": 86400.0,
    "keys_min_refresh_seconds": 60.0,
}


class CredentialsError(ValueError):
    """The file cannot be used; the message says where and what, never a secret."""


@dataclass(frozen=True)
class Grant:
    """What one credential may do: a token's rights, or one OIDC rule's."""

    name: str
    can_read: bool
    can_write: bool
    ecosystems: tuple[str, ...] = ()

    def may_write(self, ecosystem: str) -> bool:
        return self.can_write and any(fnmatchcase(ecosystem, pattern) for pattern in self.ecosystems)


@dataclass(frozen=True)
class TokenEntry:
    digest: bytes  # SHA-256 of the token
    grant: Grant


@dataclass(frozen=True)
class Rule:
    """Lets a verified OIDC token write: every claim named must match one of its patterns."""

    grant: Grant
    claims: tuple[tuple[str, tuple[str, ...]], ...]

    def allows(self, claims: Mapping[str, Any]) -> bool:
        for name, patterns in self.claims:
            value = claims.get(name)
            if not isinstance(value, str) or not any(fnmatchcase(value, pattern) for pattern in patterns):
                return False
        return True


@dataclass(frozen=True)
class OidcSettings:
    """Whose ID tokens are accepted and how their keys are kept (oidc.py)."""

    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256",)
    ca_file: str | None = None
    leeway_seconds: float = _OIDC_NUMBERS["leeway_seconds"]
    fetch_timeout_seconds: float = _OIDC_NUMBERS["fetch_timeout_seconds"]
    keys_refresh_seconds: float = _OIDC_NUMBERS["keys_refresh_seconds"]
    keys_max_age_seconds: float = _OIDC_NUMBERS["keys_max_age_seconds"]
    keys_min_refresh_seconds: float = _OIDC_NUMBERS["keys_min_refresh_seconds"]


@dataclass(frozen=True)
class Credentials:
    """Everything the guard checks against. `from_file` is False when only the single-token options
    are in use (the legacy mode, in which the dashboard still takes a token that can write)."""

    tokens: tuple[TokenEntry, ...] = ()
    oidc: OidcSettings | None = None
    rules: tuple[Rule, ...] = ()
    from_file: bool = False


def legacy_entries(tokens: Sequence[str]) -> tuple[TokenEntry, ...]:
    """Tokens given the old way: each may read and write every ecosystem."""
    grant = Grant(LEGACY_NAME, can_read=True, can_write=True, ecosystems=("*",))
    return tuple(TokenEntry(bytes.fromhex(hash_token(token)), grant) for token in tokens)


def token_entry(name: str, token: str, can: Sequence[str], ecosystems: Sequence[str]) -> str:
    """The `[[token]]` table to add to the credentials file for `token`; CredentialsError if it would
    not be accepted (the same checks as the file's)."""
    lines = [
        "[[token]]",
        f"name = {json.dumps(name)}",  # a JSON string is a TOML basic string
        f'sha256 = "{hash_token(token)}"',
        f"can = {json.dumps(list(can))}",
    ]
    if ecosystems:
        lines.append(f"ecosystems = {json.dumps(list(ecosystems))}")
    entry = "\n".join(lines) + "\n"
    parse_credentials(entry)
    return entry


def parse_credentials(text: str, legacy: Sequence[str] = ()) -> Credentials:
    """The file's credentials, plus the legacy tokens; CredentialsError saying what is wrong and where."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CredentialsError(f"not valid TOML: {error}") from None
    _known_keys(document, {"token", "oidc"}, "the file")
    tables = _tables(document, "token")
    tokens = [_token(entry, f"[[token]] #{number}") for number, entry in enumerate(tables, 1)]
    names = [entry.grant.name for entry in tokens]
    _unique(names, "[[token]]")
    if len({entry.digest for entry in tokens}) < len(tokens):
        raise CredentialsError("[[token]]: two entries have the same sha256; each token needs its own")
    oidc, rules = _oidc(document.get("oidc"))
    return Credentials(legacy_entries(legacy) + tuple(tokens), oidc, rules, from_file=True)


def _tables(document: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = document.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise CredentialsError(f"{key} must be an array of tables ([[{key}]])")
    return value


def _known_keys(table: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise CredentialsError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")


def _unique(names: Sequence[str], where: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise CredentialsError(f"{where}: the name {name!r} is used twice")
        seen.add(name)


def _text(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CredentialsError(f"{where}: {key} is required and must be a non-empty string")
    return value.strip()


def _texts(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    """A string or a list of strings, as a tuple; CredentialsError when empty or of another type."""
    value = table.get(key)
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise CredentialsError(f"{where}: {key} must be a non-empty string or list of non-empty strings")
    return tuple(values)


def _ecosystems(table: Mapping[str, Any], where: str) -> tuple[str, ...]:
    if "ecosystems" not in table:
        raise CredentialsError(f'{where}: ecosystems is required for a writer ("*" for every ecosystem)')
    return _texts(table, "ecosystems", where)


def _token(table: Mapping[str, Any], where: str) -> TokenEntry:
    _known_keys(table, {"name", "sha256", "can", "ecosystems"}, where)
    name = _text(table, "name", where)
    where = f"[[token]] {name!r}"
    if name == LEGACY_NAME:
        raise CredentialsError(f"{where}: this name is kept for the tokens given the old way")
    digest = _text(table, "sha256", where).lower()
    if not _HEX_DIGEST.fullmatch(digest):
        raise CredentialsError(
            f"{where}: sha256 must be 64 hex digits (the SHA-256 of the token; `batch-metrics token new` "
            "prints it)"
        )
    can = set(_texts(table, "can", where))
    if not can <= {READ, WRITE}:
        raise CredentialsError(f"{where}: can must list read, write or both")
    if WRITE in can:
        ecosystems = _ecosystems(table, where)
    elif "ecosystems" in table:
        raise CredentialsError(f"{where}: ecosystems is for writers; this token cannot write")
    else:
        ecosystems = ()
    return TokenEntry(bytes.fromhex(digest), Grant(name, READ in can, WRITE in can, ecosystems))


def _oidc(table: Any) -> tuple[OidcSettings | None, tuple[Rule, ...]]:
    if table is None:
        return None, ()
    if not isinstance(table, dict):
        raise CredentialsError("oidc must be a table ([oidc])")
    where = "[oidc]"
    _known_keys(table, {"issuer", "audience", "algorithms", "ca_file", "rule", *_OIDC_NUMBERS}, where)
    issuer = _text(table, "issuer", where).rstrip("/")
    parts = urlsplit(issuer)
    if parts.scheme != "https" or not parts.hostname:
        raise CredentialsError(f"{where}: issuer must be an https:// URL (the keys are fetched from it)")
    algorithms = _texts(table, "algorithms", where) if "algorithms" in table else ("RS256",)
    if not set(algorithms) <= set(ASYMMETRIC):
        raise CredentialsError(f"{where}: algorithms may list only {', '.join(ASYMMETRIC)}")
    numbers = {}
    for key, default in _OIDC_NUMBERS.items():
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 10**7:
            raise CredentialsError(f"{where}: {key} must be a number of seconds from 0 to 10000000")
        numbers[key] = float(value)
    if not numbers["fetch_timeout_seconds"] > 0:
        raise CredentialsError(f"{where}: fetch_timeout_seconds must be more than 0")
    settings = OidcSettings(
        issuer=issuer,
        audience=_text(table, "audience", where),
        algorithms=algorithms,
        ca_file=_text(table, "ca_file", where) if "ca_file" in table else None,
        **numbers,
    )
    tables = _tables(table, "rule")
    rules = [_rule(entry, f"[[oidc.rule]] #{number}") for number, entry in enumerate(tables, 1)]
    _unique([rule.grant.name for rule in rules], "[[oidc.rule]]")
    return settings, tuple(rules)


def _pins_owner(claims: Mapping[str, tuple[str, ...]]) -> bool:
    """Whether the rule names its owner without a wildcard: by owner or repository (name or id), or by
    the `owner/...` at the start of `repository` or `job_workflow_ref`."""

    def literal_owner(pattern: str) -> bool:
        owner, slash, _ = pattern.partition("/")
        return bool(slash and owner) and not _WILDCARD.search(owner)

    for name in ("repository_owner", "repository_owner_id", "repository_id"):
        if name in claims and not any(_WILDCARD.search(pattern) for pattern in claims[name]):
            return True
    return any(
        name in claims and all(literal_owner(pattern) for pattern in claims[name])
        for name in ("repository", "job_workflow_ref")
    )


def _rule(table: Mapping[str, Any], where: str) -> Rule:
    _known_keys(table, {"name", "ecosystems", *RULE_CLAIMS}, where)
    name = _text(table, "name", where)
    where = f"[[oidc.rule]] {name!r}"
    claims = {claim: _texts(table, claim, where) for claim in RULE_CLAIMS if claim in table}
    if not _pins_owner(claims):
        raise CredentialsError(
            f"{where}: name the owner without wildcards (repository_owner, repository_owner_id, "
            "repository_id, or repository / job_workflow_ref starting with owner/): the issuer signs "
            "tokens for every repository it serves"
        )
    grant = Grant(name, can_read=False, can_write=True, ecosystems=_ecosystems(table, where))
    return Rule(grant, tuple(claims.items()))
