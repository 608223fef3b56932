"""Shared constrained types: an integer that crosses a contract is bounded by what Postgres stores,
so an out-of-range id or cursor is a validation error where it enters, never a failed query."""
from typing import Annotated

from pydantic import Field

PG_BIGINT_MIN = -(2**63)
PG_BIGINT_MAX = 2**63 - 1

PgBigInt = Annotated[int, Field(ge=PG_BIGINT_MIN, le=PG_BIGINT_MAX)]
PgId = Annotated[int, Field(ge=0, le=PG_BIGINT_MAX)]
"""A bigserial id, or a cursor over ids (0 = before the first)."""
