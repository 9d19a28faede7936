"""The old private path of `awf_sim.flow`, kept only while awf_deploy's runtime and bundle are
being rewritten on another branch (their tests still import it). Delete after that merge;
new code imports `awf_sim.flow`."""

from awf_sim.flow import FlowError, FlowFile, load_flow, parse_input, parse_json

__all__ = ["FlowError", "FlowFile", "load_flow", "parse_input", "parse_json"]
