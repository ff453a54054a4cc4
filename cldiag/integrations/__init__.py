"""Adapters for training frameworks: Lightning, Hugging Face Trainer, sentence-transformers, model outputs.

Each submodule imports its framework on import (with an install hint when it is missing), except
:mod:`cldiag.integrations.outputs`, which turns open_clip / transformers CLIP outputs into what
:meth:`cldiag.Monitor.log` logs and needs nothing but torch.
"""
