"""Pulumi CrossGuard policy pack: the security baseline every stack must pass."""
