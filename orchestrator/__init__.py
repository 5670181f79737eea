"""The flow: JobContext, the execution plan, retry policies, events and the orchestrator itself."""
