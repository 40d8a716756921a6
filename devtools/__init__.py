"""Developer tooling: local services, the `make dev` loop and the benchmark."""
