"""The pure core: the night and its calendar, the landing contract, statistics, the model
and the one feature spec. No Dagster, no engine."""
