"""Semantic Pullback backward rules, one file per rule family."""
