"""Backbones: language model, classifier and regressor around any registered mixer."""
