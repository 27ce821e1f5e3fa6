"""llmesh services: orchestrator, processor, emulator and their shared pieces."""
