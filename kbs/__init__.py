"""Veritee key broker."""
