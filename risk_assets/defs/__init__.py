"""The Dagster layer: thin assets, checks, jobs and sensors over the pure modules."""
