"""Email over SMTP (aiosmtplib): one connection per message, submitted to the configured
server. The engagement's idempotency key is the message's ``Message-ID`` (and its
``X-Equator-Idempotency-Key``), which the provider's webhooks echo back; a message sent
again after a lost answer carries the same one, so the provider can drop it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from email.message import EmailMessage
from typing import Literal
from urllib.parse import quote

import aiosmtplib
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from activities.channels import Delivery, DeliveryFailed, DeliveryPolicy, DeliveryRefused

IDEMPOTENCY_HEADER = "X-Equator-Idempotency-Key"


class SmtpConfig(BaseModel):
    """``{"kind": "smtp", "host": …, "from_address": …}`` under a channel's name."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["smtp"]
    host: str = "localhost"
    port: int = Field(default=587, ge=1, le=65535)
    # Required, not opportunistic: credentials never cross in the clear.
    starttls: bool = True
    username: str | None = None
    password: SecretStr | None = None
    from_address: str
    # The right-hand side of Message-IDs; the from address's domain by default.
    message_id_domain: str | None = None
    # The whole exchange, connection to answer.
    timeout: timedelta = timedelta(seconds=30)
    policy: DeliveryPolicy = DeliveryPolicy()

    @field_validator("from_address")
    @classmethod
    def _address(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError("an email address, like news@shop.example")
        return value

    def channel(self) -> SmtpChannel:
        return SmtpChannel(self)


class SmtpChannel:
    def __init__(self, config: SmtpConfig) -> None:
        self._config = config
        self._domain = config.message_id_domain or config.from_address.rpartition("@")[2]

    def message_id(self, idempotency_key: str) -> str:
        # The key quoted to fit a Message-ID's left-hand side (dots too: no "..").
        left = quote(idempotency_key, safe="/").replace(".", "%2E")
        return f"<{left}@{self._domain}>"

    async def deliver(self, delivery: Delivery) -> str:
        """The server's answer to the message (its queue id) once it has taken it. A 5xx
        (a refused recipient, say) or no usable address refuses it for good; a 4xx, a
        timeout or a server that cannot be reached may pass."""
        message = self._message(delivery)
        config = self._config
        seconds = config.timeout.total_seconds()
        try:
            async with asyncio.timeout(seconds):
                _, answer = await aiosmtplib.send(
                    message,
                    hostname=config.host,
                    port=config.port,
                    start_tls=config.starttls,
                    username=config.username,
                    password=config.password.get_secret_value() if config.password else None,
                    timeout=seconds,
                )
        except aiosmtplib.SMTPRecipientsRefused as err:
            refusal = err.recipients[0]
            raise _by_code(refusal.code, f"{refusal.code} {refusal.message}") from err
        except aiosmtplib.SMTPResponseException as err:
            raise _by_code(err.code, f"{err.code} {err.message}") from err
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as err:
            raise DeliveryFailed(f"SMTP {type(err).__name__}: {err}") from err
        return answer

    def _message(self, delivery: Delivery) -> EmailMessage:
        if not delivery.email:
            raise DeliveryRefused("the customer has no email address")
        message = EmailMessage()
        try:
            if "@" not in delivery.email:
                raise ValueError("no @")
            message["To"] = delivery.email  # refuses a line break, say
        except ValueError as err:
            raise DeliveryRefused(f"invalid email address {delivery.email!r}: {err}") from err
        message["From"] = self._config.from_address
        message["Subject"] = delivery.subject
        message["Message-ID"] = self.message_id(delivery.idempotency_key)
        message[IDEMPOTENCY_HEADER] = delivery.idempotency_key
        message.set_content(delivery.text)
        return message


def _by_code(code: int, reason: str) -> DeliveryFailed | DeliveryRefused:
    return DeliveryRefused(reason) if code >= 500 else DeliveryFailed(reason)
