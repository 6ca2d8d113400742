"""Pure numpy helpers of the serving family: bits and bytes, the per-step roofline, batching and queueing."""
