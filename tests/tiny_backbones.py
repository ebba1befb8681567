"""Tiny random encoders of every backbone family the library supports, each saved like a Hub
checkpoint with a tokenizer of that family's own kind, trained here on a few sentences:

| backbone | tokenizer | pair template |
|---|---|---|
| BERT, ELECTRA | WordPiece | ``[CLS] q [SEP] c [SEP]``, token types |
| ModernBERT | byte-level BPE | ``[CLS] q [SEP] c [SEP]``, no token types |
| ModernBERT, bare | byte-level BPE | none: the tokenizer adds no special tokens |
| RoBERTa | byte-level BPE | ``<s> q </s></s> c </s>`` |
| XLM-RoBERTa | SentencePiece Unigram | ``<s> q </s></s> c </s>`` |
| DeBERTa-v2/v3 | SentencePiece Unigram | ``[CLS] q [SEP] c [SEP]``, no token types |
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    AutoConfig,
    AutoModel,
    BertTokenizerFast,
    DebertaV2TokenizerFast,
    ElectraTokenizerFast,
    PreTrainedConfig,
    PreTrainedTokenizerFast,
    RobertaTokenizerFast,
    XLMRobertaTokenizerFast,
)

BACKBONES = (
    "bert",
    "electra",
    "modernbert",
    "modernbert-bare",
    "roberta",
    "xlm-roberta",
    "deberta-v2",
)
CORPUS = [
    "The Louvre opened as a museum in 1793. It is in Paris, the capital of France.",
    "What is the capital of France? When did the museum open? Who wrote Hamlet?",
    "Cats sleep most of the day. Dogs bark at night. Shakespeare wrote Hamlet in 1600.",
    "where is the cat? the cat is in paris. the dog was in france. it is a city.",
]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
SIZE = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
}
WINDOW = 128


def _pair_template(tokenizer: Tokenizer, cls: str, sep: str, double_sep: bool) -> None:
    middle = f"{sep} {sep}" if double_sep else sep
    type_id = "" if double_sep else ":1"
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {middle} $B{type_id} {sep}{type_id}",
        special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))],
    )


def _wordpiece() -> Tokenizer:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(
        CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=BERT_SPECIALS)
    )
    _pair_template(tokenizer, "[CLS]", "[SEP]", double_sep=False)
    return tokenizer


def _byte_level_bpe(specials: list[str]) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    return tokenizer


def _unigram(specials: list[str], unk: str) -> Tokenizer:
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=200, special_tokens=specials, unk_token=unk)
    tokenizer.train_from_iterator(CORPUS, trainer)
    return tokenizer


BERT_TOKENS = {
    "unk_token": "[UNK]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
ROBERTA_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "cls_token": "<s>",
    "sep_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}


def make_tokenizer(kind: str) -> PreTrainedTokenizerFast:
    """The tokenizer of a backbone ``kind`` (one of :data:`BACKBONES`)."""
    if kind in ("bert", "electra"):
        cls = BertTokenizerFast if kind == "bert" else ElectraTokenizerFast
        return cls(tokenizer_object=_wordpiece(), **BERT_TOKENS)
    if kind in ("modernbert", "modernbert-bare"):
        bpe = _byte_level_bpe(BERT_SPECIALS)
        if kind == "modernbert":
            _pair_template(bpe, "[CLS]", "[SEP]", double_sep=False)
        return PreTrainedTokenizerFast(
            tokenizer_object=bpe, model_input_names=["input_ids", "attention_mask"], **BERT_TOKENS
        )
    if kind == "roberta":
        bpe = _byte_level_bpe(ROBERTA_SPECIALS)
        bpe.post_processor = processors.RobertaProcessing(
            ("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>"))
        )
        return RobertaTokenizerFast(tokenizer_object=bpe, **ROBERTA_TOKENS)
    if kind == "xlm-roberta":
        unigram = _unigram(ROBERTA_SPECIALS, "<unk>")
        _pair_template(unigram, "<s>", "</s>", double_sep=True)
        return XLMRobertaTokenizerFast(tokenizer_object=unigram, **ROBERTA_TOKENS)
    if kind == "deberta-v2":
        unigram = _unigram(BERT_SPECIALS, "[UNK]")
        _pair_template(unigram, "[CLS]", "[SEP]", double_sep=False)
        return DebertaV2TokenizerFast(
            tokenizer_object=unigram, bos_token="[CLS]", eos_token="[SEP]", **BERT_TOKENS
        )
    raise ValueError(f"Unknown backbone kind {kind!r}.")


def make_config(kind: str, tokenizer: PreTrainedTokenizerFast) -> PreTrainedConfig:
    """A tiny random config of a backbone ``kind`` whose vocabulary fits ``tokenizer``."""
    common: dict[str, Any] = {
        **SIZE,
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "max_position_embeddings": WINDOW,
    }
    if kind in ("bert", "electra"):
        extra = {"embedding_size": 16} if kind == "electra" else {}
        return AutoConfig.for_model(kind, **common, **extra)
    if kind.startswith("modernbert"):
        return AutoConfig.for_model(
            "modernbert",
            **common,
            cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            global_attn_every_n_layers=2,
            local_attention=16,
        )
    if kind in ("roberta", "xlm-roberta"):
        # RoBERTa positions start after the padding index.
        return AutoConfig.for_model(kind, **{**common, "max_position_embeddings": WINDOW + 2})
    if kind == "deberta-v2":
        return AutoConfig.for_model(
            "deberta-v2",
            **common,
            type_vocab_size=0,
            relative_attention=True,
            position_buckets=32,
            max_relative_positions=-1,
            pos_att_type=["p2c", "c2p"],
            position_biased_input=False,
        )
    raise ValueError(f"Unknown backbone kind {kind!r}.")


def make_backbone(kind: str, directory: Path, *, seed: int = 0) -> Path:
    """Save a tiny random ``kind`` encoder and its tokenizer into ``directory``."""
    tokenizer = make_tokenizer(kind)
    tokenizer.model_max_length = WINDOW
    torch.manual_seed(seed)
    AutoModel.from_config(make_config(kind, tokenizer)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
