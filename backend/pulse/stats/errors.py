"""The refusal of a stats query: what is wrong, and where in the body."""

from __future__ import annotations


class QueryError(ValueError):
    """Answered 400 as {"error": message, "at": at}; `at` is a path into the body (metrics[1],
    filters[0][2], date_range.to), or "$" for the body as a whole."""

    def __init__(self, message: str, at: str) -> None:
        super().__init__(message)
        self.message = message
        self.at = at
