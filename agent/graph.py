"""The director's graph. Wires nodes and edges, nothing else.

plan → approve → (one `shoot` branch per shot, in parallel) → cut → report
with --anchor N:  approve → `anchor` (shot N alone) → `shoot` (the others, conditioned on its kept take) → cut
`redo`: the same graph on a new thread, with the storyboard given and every other shot's result kept, so
`fan_out` sends only the re-shot shot (and `plan` has nothing to do)

shoot:  render → critique ─┬─ passed, or takes used up ─► animate → adapt (--variants: outpaint per platform)
             ▲             └─ failed ─► repair ─┐
             └──────────────────────────────────┘   (at most settings.max_takes takes)
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from agent import nodes
from agent.settings import RunSettings
from agent.state import FilmState, ShotOutput, ShotState


def build_shot_graph():
    g = StateGraph(ShotState, output_schema=ShotOutput, context_schema=RunSettings)
    g.add_node("render", nodes.render)
    g.add_node("critique", nodes.critique)
    g.add_node("repair", nodes.repair)
    g.add_node("animate", nodes.animate)
    g.add_node("adapt", nodes.adapt)
    g.add_edge(START, "render")
    g.add_edge("render", "critique")
    g.add_conditional_edges("critique", nodes.after_critique)
    g.add_edge("repair", "render")
    g.add_edge("animate", "adapt")
    g.add_edge("adapt", END)
    return g.compile()


def build_graph(checkpointer=None):
    """The film graph, compiled with `checkpointer` (a SqliteSaver in the run directory for real runs)."""
    g = StateGraph(FilmState, context_schema=RunSettings)
    g.add_node("plan", nodes.plan)
    g.add_node("approve", nodes.approve)
    shot_graph = build_shot_graph()
    g.add_node("anchor", shot_graph)  # the same branch, for the shot the others are conditioned on
    g.add_node("shoot", shot_graph)
    g.add_node("cut", nodes.cut)
    g.add_node("report", nodes.report)
    g.add_edge(START, "plan")
    g.add_edge("plan", "approve")
    g.add_conditional_edges("approve", nodes.fan_out, ["shoot", "anchor", "cut"])
    g.add_conditional_edges("anchor", nodes.fan_out, ["shoot", "cut"])
    g.add_edge("shoot", "cut")
    g.add_edge("cut", "report")
    g.add_edge("report", END)
    return g.compile(checkpointer=checkpointer)
