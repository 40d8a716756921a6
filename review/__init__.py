"""Reviewers' view of the infrastructure: offline synth, diagrams, ARM rendering, checkov."""
