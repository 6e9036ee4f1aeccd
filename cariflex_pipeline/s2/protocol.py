"""The message boundary, pure: raw websocket text to an s2-python message, or the ReceptionStatus that refuses it.

A refusal names the field: INVALID_DATA when the text is not an S2 message at all (not JSON, not an object, no
usable `message_id`), INVALID_MESSAGE when it is one but malformed (pydantic's errors, field by field) or out of
protocol (a type only a CEM sends, a message before the handshake or the control type it belongs to),
INVALID_CONTENT when it is well formed but refers to something the RM never declared. The connection stays up.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from enum import StrEnum

from pydantic import ValidationError
from s2python.common import ReceptionStatus, ReceptionStatusValues
from s2python.message import S2Message
from s2python.s2_parser import TYPE_TO_MESSAGE_CLASS, S2Parser
from s2python.s2_validation_error import S2ValidationError

NIL_ID = uuid.UUID(int=0)  # S2's subject id for a message whose own id could not be read
MAX_MESSAGE_CHARS = 1_000_000  # a system description of many modes is tens of kB; anything far beyond is refused
_DIAGNOSTIC_CHARS = 500


class Phase(StrEnum):
    """Where a connection stands, from the CEM's side."""

    AWAITING_HANDSHAKE = "awaiting_handshake"
    AWAITING_DETAILS = "awaiting_details"  # handshake done, ResourceManagerDetails not yet received
    FRBC = "frbc"  # FRBC selected: the RM is under control
    UNCONTROLLED = "uncontrolled"  # the RM offers no FRBC: told so, never instructed


# what only a CEM sends: an RM sending one is out of protocol
CEM_ONLY = frozenset({"HandshakeResponse", "SelectControlType", "FRBC.Instruction", "PPBC.ScheduleInstruction",
                      "PPBC.StartInterruptionInstruction", "PPBC.EndInterruptionInstruction", "OMBC.Instruction",
                      "PEBC.Instruction", "DDBC.Instruction"})
# allowed in any phase once the connection exists
ANY_PHASE = frozenset({"ReceptionStatus", "SessionRequest"})


@dataclass(frozen=True)
class Refusal:
    """The ReceptionStatus a message gets instead of being processed."""

    status: ReceptionStatusValues
    subject_message_id: uuid.UUID
    diagnostic: str
    message_type: str = "unknown"

    def reception_status(self) -> ReceptionStatus:
        return ReceptionStatus(subject_message_id=self.subject_message_id, status=self.status,
                               diagnostic_label=self.diagnostic[:_DIAGNOSTIC_CHARS])


def _field_errors(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:10]:
        where = ".".join(str(part) for part in item["loc"]) or "message"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def _message_id(document: dict) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(document.get("message_id")))
    except ValueError:
        return None


def parse_incoming(raw: str | bytes) -> S2Message | Refusal:
    """An S2 message, or the refusal naming what is wrong with it."""
    if len(raw) > MAX_MESSAGE_CHARS:
        return Refusal(ReceptionStatusValues.INVALID_DATA, NIL_ID,
                       f"message of {len(raw)} characters exceeds {MAX_MESSAGE_CHARS}")
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        return Refusal(ReceptionStatusValues.INVALID_DATA, NIL_ID, f"not valid JSON: {error}")
    if not isinstance(document, dict):
        return Refusal(ReceptionStatusValues.INVALID_DATA, NIL_ID,
                       f"an S2 message is a JSON object, not {type(document).__name__}")
    message_type = document.get("message_type")
    # a ReceptionStatus has no id of its own: it names the message it answers
    message_id = _message_id(document) if message_type != "ReceptionStatus" else NIL_ID
    if message_id is None:
        return Refusal(ReceptionStatusValues.INVALID_DATA, NIL_ID,
                       f"message_id: {document.get('message_id')!r} is not a UUID", str(message_type))
    if not isinstance(message_type, str) or message_type not in TYPE_TO_MESSAGE_CLASS:
        return Refusal(ReceptionStatusValues.INVALID_MESSAGE, message_id,
                       f"message_type: {message_type!r} is not an S2 message type", str(message_type))
    try:
        return S2Parser.parse_as_any_message(document)
    except S2ValidationError as error:
        cause = error.__cause__
        detail = _field_errors(cause) if isinstance(cause, ValidationError) else error.msg
        return Refusal(ReceptionStatusValues.INVALID_MESSAGE, message_id, f"{message_type}: {detail}", message_type)


def out_of_protocol(message_type: str, message_id: uuid.UUID, phase: Phase) -> Refusal | None:
    """The refusal of a well-formed message that this phase of the connection does not allow, if any."""

    def refuse(reason: str) -> Refusal:
        return Refusal(ReceptionStatusValues.INVALID_MESSAGE, message_id, f"message_type: {reason}", message_type)

    if message_type in CEM_ONLY:
        return refuse(f"{message_type} is sent by a CEM, not by a resource manager")
    if message_type in ANY_PHASE:
        return None
    if phase == Phase.AWAITING_HANDSHAKE and message_type != "Handshake":
        return refuse(f"{message_type} before the Handshake")
    if message_type == "Handshake" and phase != Phase.AWAITING_HANDSHAKE:
        return refuse("a second Handshake on the same connection")
    control_type = message_type.split(".", 1)[0] if "." in message_type else None
    if phase == Phase.AWAITING_DETAILS and message_type not in ("ResourceManagerDetails", "PowerMeasurement"):
        return refuse(f"{message_type} before ResourceManagerDetails")
    if control_type is not None and (control_type != "FRBC" or phase != Phase.FRBC):
        return refuse(f"{message_type} but the selected control type is "
                      f"{'FILL_RATE_BASED_CONTROL' if phase == Phase.FRBC else 'none'}")
    return None
