"""Pure business rules. Imports only the standard library and itself (a test enforces this)."""
