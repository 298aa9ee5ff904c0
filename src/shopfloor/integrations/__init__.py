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
from .importer import FORMATS, LONG_COLUMNS, ImportFileError, ImportSummary, plan_import, read_rows, run_import
from .orders_in import STOCK_POLICIES, ImportedLine, ImportedOrder, OrderWriter, to_minor_units
from .policy import EVENT_TYPES, RETRY_SCHEDULE_S, AttemptResult, Verdict, judge, public_event
from .shopify import TOPICS as SHOPIFY_TOPICS, ShopifyIntegration, shopify_hmac, verify_shopify_hmac
from .ssrf import HostResolver, TargetGuard, TargetRefused

__all__ = [
    "FORMATS", "LONG_COLUMNS", "ImportFileError", "ImportSummary", "plan_import", "read_rows", "run_import",
    "SHOPIFY_TOPICS", "STOCK_POLICIES", "ImportedLine", "ImportedOrder", "OrderWriter", "ShopifyIntegration",
    "shopify_hmac", "to_minor_units", "verify_shopify_hmac",
    "EVENT_TYPES", "RETRY_SCHEDULE_S", "AlertSink", "AttemptResult", "HostResolver", "HttpxSender", "TargetGuard",
    "TargetRefused", "Verdict", "WebhookDispatcher", "WebhookFanout", "WebhookSender", "WebhookSubscriptions",
    "judge", "new_secret", "public_event",
]
