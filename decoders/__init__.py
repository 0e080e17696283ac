"""Posteriors to words: CTC prefix beam search, language models, hotwords, timestamps."""
