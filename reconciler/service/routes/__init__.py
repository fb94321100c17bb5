"""The service's routes, one router per area: actors (seed 004's reads), images (the token-gated mutations),
views (status, datasets, final dataset) and the status page."""
