"""The customer behind the contacts (SPEC §2 "The customer"): who they are, kept as a keyed hash.

A customer identifier (a caller number, an account or visitor id) is personal data. Stage 1
replaces it at intake, before the lifecycle, the facts topic or any table sees it, by an
HMAC-SHA256 under the operator's secret (CCMON_CUSTOMER_KEY_FILE): the same customer gives the
same hash on every topic and worker, so their contacts still meet, while the hash cannot be
turned back into the number without the key, and numbers are not enumerable without it either
(a plain SHA-256 of a phone number is: there are only ~10^10 of them). Without a key the
customer is dropped, and with it every customer feature (docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

__all__ = ["HASH_CHARS", "customer_hash"]

#: hex characters of a customer's hash kept: 128 bits, no collision among billions of customers
HASH_CHARS: Final = 32


def customer_hash(key: bytes, customer: str) -> str:
    """The customer's keyed hash (hex): what ccmon keeps of them in place of the identifier."""
    return hmac.new(key, customer.encode("utf-8"), hashlib.sha256).hexdigest()[:HASH_CHARS]
