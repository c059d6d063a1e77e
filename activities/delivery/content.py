"""What an engagement says: a subject and a text from its content key
(``<cause>/<step>``, or ``<cause>/<step>/<detail>`` such as a campaign's category) and
its offer, as data. Unknown steps read as their own name; copy is kept short enough for
a text message."""

from __future__ import annotations

from typing import NamedTuple

from workflows.catalogue import CATALOGUE


class Copy(NamedTuple):
    subject: str
    text: str


COPY: dict[str, Copy] = {
    "we miss you": Copy("We miss you", "It has been a while. Come and see what is new."),
    "an offer": Copy("Something for you", "A little something to welcome you back."),
    "free shipping": Copy("Free shipping, on us", "Your next order ships free."),
    "20% offer": Copy("20% off, just for you", "Come back for 20% off your next order."),
    "dormant check-in": Copy("Still there?", "We have new things you might like."),
    "how did we do": Copy("How did we do?", "Tell us what went wrong with your return."),
    "apology": Copy("We are sorry", "We got it wrong. Here is what we are doing about it."),
    "welcome": Copy("Welcome", "Thank you for your first order."),
    "payment reminder": Copy("Your payment did not go through", "Please check your card."),
    "update your payment method": Copy(
        "Update your payment method", "Your order is waiting for a card that works."
    ),
    "VIP care ticket": Copy("VIP care", "A VIP customer needs a call from the service team."),
}


def render(content_key: str, offer_id: str | None) -> Copy:
    cause, _, rest = content_key.partition("/")
    step, _, detail = rest.partition("/")
    copy = COPY.get(step) or Copy(_title(step or cause), "We have something for you.")
    subject = f"{copy.subject}: {_title(detail)}" if detail else copy.subject
    offer = CATALOGUE.get(offer_id) if offer_id else None
    text = f"{copy.text} Your offer: {offer.description}." if offer else copy.text
    return Copy(subject, text)


def _title(words: str) -> str:
    return words.replace("-", " ").replace("_", " ").capitalize()
