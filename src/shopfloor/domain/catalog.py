"""Catalog and warehouse value objects."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Sku:
    sku: str
    name: str
    category: str
    price: int  # minor units
    currency: str


@dataclass(frozen=True, slots=True)
class Warehouse:
    id: str
    region: str
    country: str
    postal_prefixes: tuple[str, ...] = field(default_factory=tuple)

    def serves(self, country: str, postal_code: str) -> bool:
        """True when this warehouse is the local one for a destination (same country and a matching prefix).

        A warehouse with no prefixes serves its whole country.
        """
        if country.upper() != self.country.upper():
            return False
        if not self.postal_prefixes:
            return True
        return any(postal_code.startswith(p) for p in self.postal_prefixes)

    def prefix_match_len(self, country: str, postal_code: str) -> int:
        """Length of the longest matching postal prefix (-1 when it does not serve the destination)."""
        if country.upper() != self.country.upper():
            return -1
        if not self.postal_prefixes:
            return 0
        best = -1
        for p in self.postal_prefixes:
            if postal_code.startswith(p) and len(p) > best:
                best = len(p)
        return best
