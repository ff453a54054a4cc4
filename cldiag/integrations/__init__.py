"""Adapters for training frameworks: Lightning, Hugging Face Trainer, open_clip outputs."""
