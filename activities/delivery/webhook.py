"""A signed HTTP webhook, for the providers of SMS, push, in-app messages and service
tickets: a POST of the delivery as JSON, signed as the ingest API's webhooks are
(``activities/signatures.py``: ``Equator-Signature``, HMAC-SHA256 of the timestamp and
the body), with the engagement's idempotency key in ``Idempotency-Key``, the same on
every retry, so the provider can drop a message it already has."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Literal

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, SecretStr

from activities.channels import Delivery, DeliveryFailed, DeliveryPolicy, DeliveryRefused
from activities.signatures import SIGNATURE_HEADER, sign

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Refusals that say "not now" rather than "never": retried, as a 5xx is.
_RETRYABLE_4XX = frozenset({408, 425, 429})


class WebhookConfig(BaseModel):
    """``{"kind": "webhook", "url": …, "secret": …}`` under a channel's name."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["webhook"]
    url: AnyHttpUrl
    secret: SecretStr
    # The whole exchange, connection to answer.
    timeout: timedelta = timedelta(seconds=10)
    policy: DeliveryPolicy = DeliveryPolicy()

    def channel(self) -> WebhookChannel:
        return WebhookChannel(self)


class WebhookChannel:
    def __init__(self, config: WebhookConfig) -> None:
        self._config = config
        # A client per message has nothing to close; the costly part, the TLS context
        # (its CA bundle loaded), is made once.
        self._tls = httpx.create_ssl_context()

    async def deliver(self, delivery: Delivery) -> str:
        """The provider's id for the message (the answer's ``id``, else its status) once
        it answers 2xx. Any other 4xx (or a redirect) refuses it for good; a 5xx, 408,
        425, 429, a timeout or a dropped connection may pass."""
        body = delivery.model_dump_json().encode()
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: delivery.idempotency_key,
            SIGNATURE_HEADER: sign(self._config.secret.get_secret_value(), int(time.time()), body),
        }
        seconds = self._config.timeout.total_seconds()
        try:
            async with (
                asyncio.timeout(seconds),
                httpx.AsyncClient(timeout=seconds, verify=self._tls) as http,
            ):
                answer = await http.post(str(self._config.url), content=body, headers=headers)
        except (httpx.TransportError, TimeoutError) as err:
            raise DeliveryFailed(f"webhook {type(err).__name__}: {err}") from err
        reason = f"HTTP {answer.status_code}: {answer.text[:200]}"
        if answer.status_code >= 500 or answer.status_code in _RETRYABLE_4XX:
            raise DeliveryFailed(reason)
        if not answer.is_success:
            raise DeliveryRefused(reason)
        return _reference(answer)


def _reference(answer: httpx.Response) -> str:
    try:
        found = answer.json().get("id")
    except (ValueError, AttributeError):  # not JSON, or not an object
        found = None
    return str(found) if found is not None else f"HTTP {answer.status_code}"
