"""Backbones and task models."""

from modelyard.models.backbones import BACKBONES, backbone_kind, resolve_backbone
from modelyard.models.build import build_classifier, load_tokenizer

__all__ = ["BACKBONES", "backbone_kind", "build_classifier", "load_tokenizer", "resolve_backbone"]
