"""The model layer every verb builds on: devices, resolve, embedder (the one Encoder), reranker, index."""
