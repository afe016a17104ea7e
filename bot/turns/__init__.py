"""Turns: one question and its answer.

Read in this order: ``types`` (the data a turn carries and the ports it talks to),
``queue`` (one worker per busy conversation: order, /stop, drain), ``answer`` (the
steps of one answer, top to bottom), ``outcomes`` (what the user sees for each ending),
``journal`` (answers in progress, so a crash is reported to their users), ``pictures``
(an /image turn: a picture instead of an answer).
"""
