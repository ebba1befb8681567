"""The options of the service's requests and of the LangChain and LlamaIndex integrations as
pydantic field types, each checked by its rule in :mod:`pruning_encoder.checks`: pydantic's own
number fields would read ``true`` as 1 and ``2.0`` as 2, which ``process()`` refuses.

A refusal is a ``ValueError`` (a 422 in the service, a ``ValidationError`` in the
integrations), whatever the rule raised; None passes (the model's default, or no limit).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from pydantic import BeforeValidator

from .checks import check_batch_size, check_max_tokens, check_threshold, check_top_k


def rule(check: Callable[[Any], Any]) -> BeforeValidator:
    """``check`` as a field's validator: None passes, a refusal is a ValueError."""

    def validate(value: Any) -> Any:
        try:
            return None if value is None else check(value)
        except TypeError as error:  # pydantic turns ValueErrors, not TypeErrors, into its errors
            raise ValueError(str(error)) from None

    return BeforeValidator(validate)


Threshold = Annotated[float | None, rule(check_threshold)]
MaxTokens = Annotated[int | None, rule(check_max_tokens)]
TopN = Annotated[int | None, rule(partial(check_top_k, name="top_n"))]
BatchSize = Annotated[int, rule(check_batch_size)]
