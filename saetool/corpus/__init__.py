"""Corpus sources (text documents) and packing them into token windows."""
