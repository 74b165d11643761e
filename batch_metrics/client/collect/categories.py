"""tsuku's canonical failure categories and subcategories, as its dashboard reads them.

The reference is tsuku's `internal/dashboard/failures.go` (a copy is in
tests/fixtures/tsuku/source/, and the tests compare these tables with it): old category names
are remapped to the pipeline's canonical taxonomy, and a failure that carries no subcategory
gets one from a bracketed tag, then a phrase in its message, then (no message) its exit code.
They apply to tsuku's shapes only: per-record lines, failure records, validation results and
sandbox results. `category-map` renames categories of any format afterwards (client.merge).
"""

from __future__ import annotations

CANONICAL = {
    "api_error": "network_error",
    "validation_failed": "install_failed",
    "deterministic_insufficient": "generation_failed",
    "deterministic": "generation_failed",
    "timeout": "network_error",
    "network": "network_error",
}
KNOWN_TAGS = frozenset(
    ("api_error", "no_bottles", "complex_archive", "no_binaries", "library_only", "verify_failed",
     "install_failed", "timeout", "rate_limited")
)  # fmt: skip
# In order: the first phrase found in the lower-cased message names the subcategory.
_PHRASES = (
    (("no bottle", "bottle not found"), "no_bottle"),
    (("no executables", "no binaries"), "binary_discovery_failed"),
    (("version pattern", "failed to verify", "verification"), "verify_pattern_mismatch"),
    (("already exists", "use --force"), "recipe_already_exists"),
    (("rate limit", "429"), "rate_limited"),
    (("5xx", "unavailable"), "upstream_unavailable"),
    (("timeout", "deadline"), "timeout"),
)
_EXIT_CODES = {6: "install_failed", 7: "verify_failed", 9: "deterministic_failed"}


def canonical(category: object) -> object:
    """tsuku's canonical name for a category; anything else as it is."""
    return CANONICAL.get(category, category) if isinstance(category, str) else category


def subcategory(message: str | None, exit_code: object) -> str | None:
    """A subcategory for a failure that names none, by failures.go's three levels; None when none fits.

    Only the first `[` opens a tag, as in failures.go.
    """
    if message:
        start = message.find("[")
        if start >= 0:
            end = message.find("]", start)
            if end > start + 1 and message[start + 1 : end] in KNOWN_TAGS:
                return message[start + 1 : end]
        lowered = message.lower()
        for phrases, name in _PHRASES:
            if any(phrase in lowered for phrase in phrases):
                return name
        return None
    return _EXIT_CODES.get(exit_code) if isinstance(exit_code, int) else None
