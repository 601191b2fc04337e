"""Hugging Face ``transformers`` models: ``spmm.load(folder | cached id | loaded model)``.

:mod:`.tasks` maps a config's architecture (``BertForSequenceClassification``…) to the loader
of its task; :mod:`.resolver` reads a ``save_pretrained`` folder (or the local HF cache, offline)
and registers the resolvers with :func:`spmm.load`.  Task modules register their loaders when
imported by :mod:`spmm.adapters.plugin`.
"""
