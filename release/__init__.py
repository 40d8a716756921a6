"""Release tooling: build the App Service deploy package, start it, swap slots.

Named `release` rather than `packaging` so that running from the repository root never shadows
the PyPI `packaging` library that pip and pulumi import.
"""
