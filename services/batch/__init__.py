"""Batch jobs: many chat or embeddings requests run in the background, natively through a
provider's batch API or item by item through the mesh."""
