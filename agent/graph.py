"""The director's graph. Wires nodes and edges, nothing else.

plan → approve → (one `shoot` branch per shot, in parallel) → cut → report
with --anchor N:  approve → `anchor` (shot N alone) → `shoot` (the others, conditioned on its kept take) → cut
`redo`: the same graph on a new thread, with the storyboard given and every other shot's result kept, so
`fan_out` sends only the re-shot shot (and `plan` has nothing to do)

the take loop (`add_take_loop`; alone as `build_take_graph`, which the evaluation harness runs):
        render → critique ─┬─ passed, or takes used up ─► keep
             ▲             └─ failed ─► repair ─┐
             └──────────────────────────────────┘   (at most max_takes takes)

shoot:  the take loop, then keep → animate → adapt (--variants: outpaint per platform); a node of the branch that
        raises ends the branch in `shot_failed`, which records the shot as failed (the other shots go on).
        A branch handed the takes of a shot that failed after its take was kept starts at animate (its clip
        raised) or at adapt (its variants raised) instead: a retry makes again only what failed (`nodes.entry`).

The shot branch wires the take loop's nodes into itself rather than nesting the compiled take graph: a run's
checkpoints name the branch's nodes (render, critique, repair, animate, adapt), and a run killed mid-loop resumes
from them.
"""

from __future__ import annotations

from functools import cache

from langgraph.graph import END, START, StateGraph

from agent import nodes
from agent.settings import RunSettings
from agent.state import FilmState, ShotOutput, ShotState, TakeState


def add_take_loop(g: StateGraph, keep: str) -> None:
    """Wire render → critique → (repair → render)* into `g`, leaving for node `keep` once a take is kept (the
    caller wires what leads to render)."""
    g.add_node("render", nodes.render)
    g.add_node("critique", nodes.critique)
    g.add_node("repair", nodes.repair)
    g.add_edge("render", "critique")
    g.add_conditional_edges("critique", nodes.after_critique, {"keep": keep, "repair": "repair"})
    g.add_edge("repair", "render")


@cache
def build_take_graph():
    """The take loop alone: a `TakeState` in, its takes out (pick the kept one with `nodes.best_take`)."""
    g = StateGraph(TakeState, context_schema=RunSettings)
    add_take_loop(g, keep=END)
    g.add_edge(START, "render")
    return g.compile()


def build_shot_graph():
    g = StateGraph(ShotState, output_schema=ShotOutput, context_schema=RunSettings)
    g.set_node_defaults(error_handler=nodes.shot_failed)
    add_take_loop(g, keep="animate")
    g.add_node("animate", nodes.animate)
    g.add_node("adapt", nodes.adapt)
    g.add_conditional_edges(START, nodes.entry, ["render", "animate", "adapt"])
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
