"""Implementation flows: synthesis, place and route, the board build, sweeps and their reports."""
