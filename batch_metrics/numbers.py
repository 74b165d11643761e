"""The wire contract's one Python validator, apart from pydantic so the compiled client (wire.py) uses it."""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticCustomError


def none_to_zero(value: Any) -> Any:
    """`null` is 0 ("not given", as the Worker stores it); a boolean or numeric string is a client bug,
    refused with a 400 naming it. Anything else goes on to the number's own validation."""
    if value is None:
        return 0
    if isinstance(value, bool | str):
        raise PydanticCustomError("number_type", "Input should be a number")
    return value
