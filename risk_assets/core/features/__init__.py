"""Pure feature logic: the one feature declaration, its two SQL executions, encoding."""
