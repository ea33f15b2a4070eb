"""One window -> model inputs: vocabularies of unit and session ids, the tokenizer (spike and
delimiter tokens, output queries), and collate (variable-length windows -> one padded batch)."""

from neuropoyo.tokens.collate import collate
from neuropoyo.tokens.tokenizer import Tokenizer
from neuropoyo.tokens.vocab import Vocabulary

__all__ = ["Tokenizer", "Vocabulary", "collate"]
