"""The read pipeline: filtering, presence (arrive/depart), zones, badge sessions, portal
direction, and a count of every dropped read by reason. Pure and clock-free."""

from reader_agent.pipeline.core import MAX_TRACKED_TAGS, ReadPipeline
from reader_agent.pipeline.model import DropCounters, DropReason, PipelineObservation

__all__ = ["MAX_TRACKED_TAGS", "DropCounters", "DropReason", "PipelineObservation",
           "ReadPipeline"]
