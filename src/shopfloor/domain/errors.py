"""Domain exceptions. Each carries structured data; the API maps them to the error envelope in one place."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class. ``code`` is the snake_case error code, ``status`` the HTTP status it maps to."""

    code = "domain_error"
    status = 400

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class NotFound(DomainError):
    code = "not_found"
    status = 404


class OutOfStock(DomainError):
    code = "out_of_stock"
    status = 409

    def __init__(self, shortages: list[dict[str, Any]]) -> None:
        skus = ", ".join(s["sku"] for s in shortages)
        super().__init__(f"not enough stock for: {skus}", shortages)


class UnknownSku(DomainError):
    code = "unknown_sku"
    status = 422

    def __init__(self, skus: list[str]) -> None:
        super().__init__(
            f"unknown sku(s): {', '.join(skus)}", [{"field": "lines.sku", "sku": s} for s in skus]
        )


class InvalidInput(DomainError):
    code = "invalid_input"
    status = 422


class Conflict(DomainError):
    code = "conflict"
    status = 409


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    status = 422

    def __init__(self, key_hint: str) -> None:
        super().__init__(
            "this Idempotency-Key was already used with a different request body",
            [{"field": "Idempotency-Key", "key": key_hint}],
        )


class IdempotencyInProgress(DomainError):
    code = "idempotency_in_progress"
    status = 409

    def __init__(self) -> None:
        super().__init__("a request with this Idempotency-Key is still being processed; retry shortly")


class PaymentDeclined(DomainError):
    code = "payment_declined"
    status = 402


class InvalidTransition(DomainError):
    code = "invalid_transition"
    status = 409


class Unauthorized(DomainError):
    code = "unauthorized"
    status = 401


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class ServiceUnavailable(DomainError):
    code = "service_unavailable"
    status = 503


class ReadOnlyRegion(ServiceUnavailable):
    """This region's database is a standby (the other region is primary): it takes no writes until a failover
    promotes it."""

    code = "read_only_region"
