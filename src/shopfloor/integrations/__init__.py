"""Integrations: events out to subscribers (Standard Webhooks), orders and stock in from other platforms
(Shopify webhooks, bulk import). Everything outside this package uses the names exported here."""

from .outbound import (
    AlertSink,
    HttpxSender,
    WebhookDispatcher,
    WebhookFanout,
    WebhookSender,
    WebhookSubscriptions,
    new_secret,
)
from .policy import EVENT_TYPES, RETRY_SCHEDULE_S, AttemptResult, Verdict, judge, public_event
from .ssrf import HostResolver, TargetGuard, TargetRefused

__all__ = [
    "EVENT_TYPES", "RETRY_SCHEDULE_S", "AlertSink", "AttemptResult", "HostResolver", "HttpxSender", "TargetGuard",
    "TargetRefused", "Verdict", "WebhookDispatcher", "WebhookFanout", "WebhookSender", "WebhookSubscriptions",
    "judge", "new_secret", "public_event",
]
