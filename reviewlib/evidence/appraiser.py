"""Risk-of-bias appraisal in JupyterLab with ipywidgets, one study at a time.

``Appraiser(store, "ana", studies).display()`` shows a study's title and abstract (HTML-escaped:
PubMed text is untrusted), the tool its design calls for (:func:`appraisal.tool_for_design`)
with one answer picker and one support box per item, and Save / Previous / Next / Undo last
buttons.  **Save** appends every answered item through
:func:`reviewlib.evidence.appraisal.record_judgement` (each durable before the next) and moves on;
answers already stored for this reviewer are shown, and an unchanged answer is not appended
again.  **Undo last** appends an undo row (:func:`appraisal.undo_last`).  A status line says what
was saved.  Studies whose design has no tool are left out, and the status line says how many.
"""
from __future__ import annotations

import html
import logging
from typing import Any

import pandas as pd

from ..errors import InputError, ReviewlibError
from ..store import ReviewStore
from . import appraisal

logger = logging.getLogger(__name__)

__all__ = ["Appraiser"]

UNANSWERED = "(not answered)"


class Appraiser:
    """The appraisal widget.

    Parameters
    ----------
    store : ReviewStore
    reviewer : str
        Who appraises (their name goes with every judgement).
    studies : pandas.DataFrame
        record_id, the design column, and optionally study (label), title, abstract, tool
        (overrides the design).
    design : str, optional
        The column of study designs; default the protocol's ``study_design`` role when the
        study table carries its schema (:func:`reviewlib.evidence.tables.study_table`).
    """

    def __init__(self, store: ReviewStore, reviewer: str, studies: pd.DataFrame, design: str | None = None):
        import ipywidgets as w

        if not isinstance(reviewer, str) or not reviewer.strip():
            raise InputError("reviewer name is empty: give the reviewer's name or initials")
        self.store, self.reviewer = store, reviewer.strip()
        from .tables import role_field

        self.design = design or role_field("study_design", studies, required=False)
        rows = []
        for s in studies.to_dict("records"):
            tool = s.get("tool") or (appraisal.tool_for_design(s.get(self.design)) if self.design else None)
            if tool:
                rows.append({**s, "tool": tool})
        self.skipped = len(studies) - len(rows)
        self.queue = rows
        self.position = 0
        self.record = w.HTML()
        self.items_box = w.VBox()
        self.status = w.HTML()
        self.save_button = w.Button(description="Save", button_style="success", icon="check")
        self.prev_button = w.Button(description="Previous", icon="backward")
        self.next_button = w.Button(description="Next", icon="forward")
        self.undo_button = w.Button(description="Undo last", icon="undo")
        self.save_button.on_click(lambda _b: self.save())
        self.prev_button.on_click(lambda _b: self.move(-1))
        self.next_button.on_click(lambda _b: self.move(1))
        self.undo_button.on_click(lambda _b: self.undo())
        self.pickers: dict[str, Any] = {}
        self.supports: dict[str, Any] = {}
        self.widget = w.VBox([self.record, self.items_box,
                              w.HBox([self.save_button, self.prev_button, self.next_button, self.undo_button]),
                              self.status])
        self.refresh()
        if self.skipped:
            self._say(f"{self.skipped} {'study has' if self.skipped == 1 else 'studies have'} no appraisal tool "
                      "for its design (reviews, preclinical...) and are left out", "warn")

    # -- state ----------------------------------------------------------------------------
    @property
    def current(self) -> dict[str, Any] | None:
        return self.queue[self.position] if 0 <= self.position < len(self.queue) else None

    def _stored(self, record_id: str, tool: str) -> dict[str, tuple[str, str | None]]:
        cur = appraisal.current_judgements(self.store, reviewer=self.reviewer)
        if cur.empty:
            return {}
        mine = cur[(cur["record_id"] == record_id) & (cur["tool"] == tool) & (cur["kind"] == "human")]
        return {r["item"]: (r["answer"], r["support"]) for r in mine.to_dict("records")}

    def refresh(self) -> None:
        """Show the current study with this reviewer's stored answers."""
        import ipywidgets as w

        study = self.current
        if study is None:
            self.record.value = "<div><b>No studies to appraise.</b></div>"
            self.items_box.children = ()
            return
        tool = appraisal.TOOLS[study["tool"]]
        stored = self._stored(study["record_id"], tool.key)
        title = html.escape(str(study.get("title") or ""))
        abstract = html.escape(str(study.get("abstract") or ""))
        label = html.escape(str(study.get("study") or study["record_id"]))
        self.record.value = (f"<div style='white-space:normal;line-height:1.4'><div style='color:#555'>"
                             f"Study {self.position + 1} of {len(self.queue)}: {label} ({html.escape(study['record_id'])}), "
                             f"{html.escape(str(study.get(self.design) if self.design else 'design not named'))}; tool: {html.escape(tool.name)}</div>"
                             f"<div style='font-weight:600;margin:.3em 0'>{title}</div>"
                             f"<div style='max-height:16em;overflow-y:auto'>{abstract}</div></div>")
        self.pickers, self.supports, rows = {}, {}, []
        for item in tool.item_keys:
            answer, support = stored.get(item, (None, None))
            picker = w.ToggleButtons(options=[UNANSWERED, *tool.answers], value=answer or UNANSWERED,
                                     style={"button_width": "auto"})
            box = w.Text(value=support or "", placeholder="support (quote or reason)",
                         layout=w.Layout(width="40%"))
            self.pickers[item], self.supports[item] = picker, box
            rows.append(w.VBox([w.HTML(f"<b>{html.escape(item)}</b> {html.escape(tool.question(item))}"),
                                w.HBox([picker, box])]))
        self.items_box.children = tuple(rows)

    def _say(self, message: str, cls: str = "ok") -> None:
        colour = {"ok": "#2e6b2e", "error": "#b00", "warn": "#8a5a00"}[cls]
        self.status.value = f"<span style='color:{colour}'>{html.escape(message)}</span>"

    # -- actions ---------------------------------------------------------------------------
    def answer(self, item: str, value: str, support: str | None = None) -> None:
        """Set an item's answer (and support) in the form, as a click would."""
        self.pickers[item].value = value
        if support is not None:
            self.supports[item].value = support

    def save(self) -> int:
        """Append the answered items that differ from the stored ones; returns how many; moves on."""
        study = self.current
        if study is None:
            return 0
        stored = self._stored(study["record_id"], study["tool"])
        saved = 0
        try:
            for item, picker in self.pickers.items():
                if picker.value == UNANSWERED:
                    continue
                support = self.supports[item].value.strip() or None
                if stored.get(item) == (picker.value, support):
                    continue
                appraisal.record_judgement(self.store, study["record_id"], study["tool"], item, picker.value,
                                           self.reviewer, support)
                saved += 1
        except ReviewlibError as exc:
            self._say(f"not saved: {exc}", "error")
            return saved
        missing = sum(p.value == UNANSWERED for p in self.pickers.values())
        note = f"; {missing} item{'s' if missing != 1 else ''} left unanswered" if missing else ""
        self._say(f"saved {saved} judgement{'s' if saved != 1 else ''} for {study.get('study') or study['record_id']}"
                  f"{note}")
        self.move(1, say=False)
        return saved

    def move(self, step: int, say: bool = True) -> None:
        """Go to the previous (-1) or next (+1) study."""
        self.position = max(0, min(len(self.queue) - 1, self.position + step))
        self.refresh()
        if say and self.current is not None:
            self._say(f"study {self.position + 1} of {len(self.queue)}")

    def undo(self) -> int | None:
        """Undo this reviewer's latest judgement (appends an undo row) and show its study."""
        cur = appraisal.current_judgements(self.store, reviewer=self.reviewer)
        undo_id = appraisal.undo_last(self.store, self.reviewer)
        if undo_id is None:
            self._say("nothing to undo", "warn")
            return None
        last = cur[cur["kind"] == "human"].sort_values(["created_at", "appraisal_id"]).iloc[-1]
        for i, s in enumerate(self.queue):
            if s["record_id"] == last["record_id"]:
                self.position = i
        self.refresh()
        self._say(f"undid {last['tool']} item {last['item']} ({last['answer']}) of {last['record_id']}")
        return undo_id

    def display(self) -> None:
        """Show the widget in the notebook."""
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)
