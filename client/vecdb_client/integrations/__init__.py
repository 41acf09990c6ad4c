"""Vector stores for RAG frameworks, over the SDK.

- :mod:`vecdb_client.integrations.langchain`: ``VecdbVectorStore``, a langchain-core
  ``VectorStore`` (extra ``vecdb-client[langchain]``).
- :mod:`vecdb_client.integrations.llama_index`: ``VecdbVectorStore``, a LlamaIndex
  ``BasePydanticVectorStore`` (extra ``vecdb-client[llamaindex]``).

This package imports no framework: each framework is imported only by its own
module, so ``import vecdb_client`` stays thin (grpcio, protobuf, numpy).
"""
