"""Flash-sale waiting room: signed queue tokens, inventory-aware admission, the queue behind a Protocol.

Pure (standard library and :mod:`shopfloor.domain` only). The Redis queue store lives in
:mod:`shopfloor.store.queue_redis`; :class:`InProcessQueueStore` serves a single process.
"""

from .abuse import BotPattern, BotPatternDetector, card_fingerprint
from .gate import GO, QUEUED, RATE_LIMITED, SOLD, UNAVAILABLE, CheckoutGate, Verdict
from .memory import InProcessQueueStore
from .policy import AdmissionPolicy, admit_upto, rank_of
from .room import (
    ADMITTED,
    CLAIMED,
    EXPIRED,
    SOLD_OUT,
    UNUSED,
    WAITING,
    Decision,
    Entry,
    GuardedProduct,
    HeldAnswer,
    Hold,
    Opening,
    Place,
    QueueStore,
    QueueTokenExpired,
    QueueTokenUsed,
    StockLevels,
    WaitingRoom,
)
from .tokens import AFTER_OPEN, PRE_OPEN, QueueTicket, QueueTokenCodec, QueueTokenInvalid, QueueTokenWrongProduct

__all__ = [
    "ADMITTED", "AFTER_OPEN", "GO", "QUEUED", "RATE_LIMITED", "SOLD", "UNAVAILABLE", "BotPattern", "BotPatternDetector", "CLAIMED", "CheckoutGate", "Verdict", "EXPIRED", "PRE_OPEN", "SOLD_OUT", "WAITING", "AdmissionPolicy", "Decision",
    "Entry", "GuardedProduct", "HeldAnswer", "Hold", "InProcessQueueStore", "Opening", "Place", "QueueStore", "QueueTicket",
    "QueueTokenCodec", "QueueTokenExpired", "QueueTokenInvalid", "QueueTokenUsed", "QueueTokenWrongProduct",
    "StockLevels", "UNUSED", "WaitingRoom", "admit_upto", "card_fingerprint", "rank_of",
]
