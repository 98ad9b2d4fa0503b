"""Backbones and task models."""

from modelyard.models.backbones import BACKBONES, resolve_backbone
from modelyard.models.build import build_classifier, load_tokenizer

__all__ = ["BACKBONES", "build_classifier", "load_tokenizer", "resolve_backbone"]
