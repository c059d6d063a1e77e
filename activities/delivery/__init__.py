"""The providers the courier delivers through, one module each (configured per channel
name in ``DeliverySettings``, ``activities/courier.py``), and the copy they send."""
