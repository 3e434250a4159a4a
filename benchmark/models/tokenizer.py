"""An offline byte-level BPE tokenizer for the tiny text preset, trained in code on prompt-like text.

Byte-level BPE never emits an unknown token, so any prompt template and class word can be encoded,
and training on a fixed text makes the vocabulary identical on every machine.
"""

from __future__ import annotations

from functools import cache

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

TINY_VOCAB_SIZE = 512
_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's ids 0..4

_CORPUS = [
    "The emotion is neutral.",
    "The emotion is happy.",
    "The emotion is angry.",
    "The emotion is sad.",
    "The emotion is excited.",
    "The emotion is frustrated.",
    "The emotion is surprised.",
    "The emotion is fearful.",
    "The emotion is disgusted.",
    "The emotion is calm.",
    "The gender is female.",
    "The gender is male.",
    "A speaker sounds neutral, happy, angry or sad; a female or a male voice.",
    "This person is speaking with an emotion of neutrality, happiness, anger or sadness.",
]


@cache
def _backend() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return tok


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A RoBERTa-style tokenizer (``<s> ... </s>``, pad id 1) that needs no download."""
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_backend().to_str()),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        cls_token="<s>",
        sep_token="</s>",
        model_max_length=64,
    )
