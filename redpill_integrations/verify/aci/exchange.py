"""What the client itself observed of one ACI exchange: the facts a receipt must agree with."""

from __future__ import annotations

import dataclasses
from datetime import datetime

__all__ = ["REFUSAL_STATUSES", "AciExchange"]

#: Statuses of the gateway's fail-closed refusals (503 upstream_verification_failed, 412
#: session_not_accepted); they carry a signed refusal receipt.
REFUSAL_STATUSES = frozenset({503, 412})


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AciExchange:
    """One request/response as captured by us (never as the server describes it).

    ``request_body``/``response_body`` are the exact bytes sent and received (the whole SSE
    stream for streamed calls); ``receipt_id`` is the ``X-Receipt-Id`` header (None when absent);
    ``chat_id`` the response's ``id`` (None when it has none); ``endpoint`` the path called
    (``/v1/chat/completions``); ``model`` the model we requested; ``started_at``/``finished_at``
    bound the request in time; ``sent_aci_constraint`` says whether the request carried
    ``"provider": {"aci_verified": true}``.
    """

    request_body: bytes
    response_body: bytes
    receipt_id: str | None
    chat_id: str | None
    endpoint: str
    model: str | None
    started_at: datetime
    finished_at: datetime
    sent_aci_constraint: bool
    status_code: int = 200

    @property
    def refused(self) -> bool:
        return self.status_code in REFUSAL_STATUSES
