"""Components that rerank and prune retrieved context inside RAG frameworks.

- :class:`pruning_encoder.integrations.langchain.PruningEncoderCompressor`: a LangChain document
  compressor (``pip install 'pruning-encoder[langchain]'``).
- :class:`pruning_encoder.integrations.llama_index.PruningEncoderPostprocessor`: a LlamaIndex node
  postprocessor (``pip install 'pruning-encoder[llamaindex]'``).
- :class:`pruning_encoder.integrations.haystack.PruningEncoderRanker`: a Haystack ranker component
  (``pip install 'pruning-encoder[haystack]'``).

Each lives in its own module, imported on demand, so that only the framework in use need be
installed. All three behave alike: documents come back best first with their text pruned to the
relevant sentences; a document left with no sentence is dropped; a ``pruning_only`` model only
prunes, keeping the input order and the documents' existing scores.
"""
