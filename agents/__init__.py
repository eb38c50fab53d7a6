"""The actor-critic agent: torso, memory-cell core, policy and baseline heads, action distributions."""

from agents.agent import Agent, AgentOutput
from agents.distributions import ActionDistribution, greedy_action, make_distribution, sample_action

__all__ = ["ActionDistribution", "Agent", "AgentOutput", "greedy_action", "make_distribution", "sample_action"]
