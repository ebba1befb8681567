"""The special tokens around a (question, context) pair, for tokenizers that add none."""

from __future__ import annotations

import logging

from tokenizers import processors
from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


def add_pair_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Make ``tokenizer`` build pairs as ``[CLS] question [SEP] context [SEP]`` if it adds no
    start token (CLS or BOS) or no separator (SEP or EOS) by itself.

    Some rerankers ship such a tokenizer (a bare ``PreTrainedTokenizerFast``, as on ModernBERT),
    and OpenProvence builds their inputs by hand with the tokenizer's CLS (else BOS) and SEP (else
    EOS) tokens; this sets the same template as the tokenizer's post-processor, so that
    everything that loads the saved tokenizer — ``process()``, training, ``CrossEncoder``,
    ``pipeline()`` — builds the same inputs. The context's tokens get token type 1 where the
    tokenizer returns token types. A tokenizer without such tokens is left as it is.

    Returns:
        Whether the tokenizer was changed.
    """
    ids = tokenizer("a", "b")["input_ids"]
    starts = [t for t in (tokenizer.cls_token_id, tokenizer.bos_token_id) if t is not None]
    ends = [t for t in (tokenizer.sep_token_id, tokenizer.eos_token_id) if t is not None]
    if not starts or not ends or not tokenizer.is_fast:
        return False
    if any(t in ids for t in starts) and any(t in ids for t in ends):
        return False
    cls = str(tokenizer.convert_ids_to_tokens(starts[0]))
    sep = str(tokenizer.convert_ids_to_tokens(ends[0]))
    second = ":1" if "token_type_ids" in tokenizer.model_input_names else ""
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B{second} {sep}{second}",
        special_tokens=[(cls, starts[0]), (sep, ends[0])],
    )
    logger.info("The tokenizer adds no special tokens: pairs become %s q %s c %s.", cls, sep, sep)
    return True
