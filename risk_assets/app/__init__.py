"""The operator's surface: the CLI, night operations, the demo, audit, status report and alerts."""
