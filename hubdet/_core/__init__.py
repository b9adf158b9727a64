"""Shared machinery: errors, strict configs, registries, image decoding rules, Hub I/O."""
