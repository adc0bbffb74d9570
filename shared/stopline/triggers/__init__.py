"""Trigger adapters: each turns one platform's input into commands for the pipeline, and the
pipeline's results back into that platform's answer. Nothing else lives here."""
