"""Simulated payment processors and carrier-rate service, with injectable faults: in-process (:mod:`.gateway`) or
served as their own HTTP process (``shopfloor simulate serve``: :mod:`.server`, called through :mod:`.client`)."""
