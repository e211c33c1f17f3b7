"""Preprocessing and augmentation layers."""

__all__ = []
