"""The investment decision: search model size, tokens, cluster, compression and serving for the plan the
objective asks for, with its Pareto front, uncertainty and sensitivity (`decide(scenario) -> Decision`)."""

from simulator.decision.decide import Decision, NoPlan, decide

__all__ = ["Decision", "NoPlan", "decide"]
