"""The /api/v1/cases part of the OpenAPI document (issue 4), from the schemas in
`concord_contracts.cases`: what the gateway and `case_management` validate with."""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from concord_contracts import cases
from concord_contracts.cases import ConflictCode
from gateway.case_api import LIST_PARAMETERS

TAG = "cases"

SCHEMAS = (
    cases.CaseRegistrationSchema,
    cases.CaseChildSchema,
    cases.CaseContactSchema,
    cases.FamilySectionSchema,
    cases.PeopleSectionSchema,
    cases.SafetySectionSchema,
    cases.CaseRecordSchema,
    cases.CaseListSchema,
    cases.ApprovalItemSchema,
    cases.AssigneeSchema,
    cases.AssignmentSchema,
    cases.AssessmentSubmissionSchema,
    cases.AssessmentSchema,
    cases.PlanSubmissionSchema,
    cases.ServiceUpdateSchema,
    cases.FollowUpRequestSchema,
    cases.FollowUpOutcomeSchema,
    cases.ReasonSchema,
    cases.CommentSchema,
    cases.ClosureRequestSchema,
    cases.NoteInputSchema,
    cases.NoteSchema,
    cases.NotesPageSchema,
)

_CASE_ID = {
    "in": "path",
    "name": "case_id",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
_CONFLICT = "CaseConflict"
_CONFLICT_CODES = {
    ConflictCode.stale_version: "the case changed since it was read (If-Match): read it again",
    ConflictCode.four_eyes: "a supervisor decides on a plan or closure another one wrote "
    "or requested",
    ConflictCode.wrong_state: "the case, its plan, service or follow-up is not in a state "
    "that allows this",
}
_IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": False,
    "description": (
        "The case's `version` as it was read: the write is refused (409) if the case "
        "changed since. Leave it out to write whatever the version."
    ),
    "schema": {"type": "string", "pattern": '^(W/)?"?[0-9]+"?$'},
}
_LIST_PARAMETERS: dict[str, dict[str, Any]] = {
    "status": {
        "description": "Workflow statuses (repeated or comma-separated).",
        "schema": {"type": "array", "items": {"type": "string"}},
        "style": "form",
        "explode": True,
    },
    "state": {
        "description": "open (default: all but closed), closed or all.",
        "schema": {"type": "string", "enum": ["open", "closed", "all"]},
    },
    "assigned_to": {
        "description": "A user id; a social worker may only name themself.",
        "schema": {"type": "string"},
    },
    "overdue": {
        "description": "true: only cases with something overdue.",
        "schema": {"type": "boolean"},
    },
    "risk_level": {
        "description": "Risk levels of the latest assessment (repeated or comma-separated).",
        "schema": {"type": "array", "items": {"type": "string"}},
        "style": "form",
        "explode": True,
    },
    "origin": {"description": "referral or direct.", "schema": {"type": "string"}},
    "limit": {"description": "1 to 100, default 25.", "schema": {"type": "integer"}},
    "cursor": {"description": "`next_cursor` of the previous page.", "schema": {"type": "string"}},
}
assert set(_LIST_PARAMETERS) == set(LIST_PARAMETERS)


def _path(name: str, **extra: Any) -> dict:
    return {"in": "path", "name": name, "required": True, "schema": {"type": "string"}, **extra}


def _query(name: str, spec: dict) -> dict:
    return {"in": "query", "name": name, "required": False, **spec}


def name_of(schema: type) -> str:
    return schema.__name__.removesuffix("Schema")


def add_case_paths(spec: APISpec, operation, responses, conflict) -> None:
    """Register the case schemas and every /api/v1/cases path on `spec`.

    `operation`, `responses` and `conflict` (a 409 by its codes) are openapi.py's own
    builders, so that the case routes are described exactly like the others."""
    for schema in SCHEMAS:
        # A schema nested in one registered before is registered already, by its name.
        if name_of(schema) not in spec.components.schemas:
            spec.components.schema(name_of(schema), schema=schema)

    def ref(name: str) -> dict:
        return {"$ref": f"#/components/schemas/{name}"}

    def array(name: str) -> dict:
        return {"type": "array", "items": ref(name)}

    record = "CaseRecord"
    write_errors = (400, 401, 403, 404, 413, 422, 502, 503)  # and 409 by its codes
    spec.components.response(_CONFLICT, conflict(_CONFLICT_CODES))

    def write_responses(
        status: int, description: str = "The case as it now stands.", schema: str = record
    ) -> dict:
        answers = responses(status, description, schema, *write_errors)
        answers["409"] = {"$ref": f"#/components/responses/{_CONFLICT}"}
        return dict(sorted(answers.items()))

    def write(summary, operation_id, body=None, *, status=200, params=(), versioned=True):
        return operation(
            summary,
            operation_id,
            write_responses(status),
            tag=TAG,
            body=body,
            parameters=(_CASE_ID, *params, *((_IF_MATCH,) if versioned else ())),
        )

    spec.path(
        "/api/v1/cases",
        operations={
            "get": operation(
                "Cases, due and overdue first (a social worker's own; a supervisor's agency's)",
                "listCases",
                responses(200, "One page of cases.", "CaseList", 401, 403, 422, 502, 503),
                tag=TAG,
                parameters=tuple(_query(n, s) for n, s in _LIST_PARAMETERS.items()),
            ),
            "post": operation(
                "Register a case directly (social workers, supervisors): it gets a "
                "coordination id from the hub and is assigned to its registrant",
                "registerCase",
                responses(201, "The case registered.", record, 400, 401, 403, 413, 422, 502, 503),
                tag=TAG,
                body="CaseRegistration",
            ),
        },
    )
    spec.path(
        "/api/v1/cases/approvals",
        operations={
            "get": operation(
                "Plans and closures waiting for a supervisor, oldest first",
                "approvalsQueue",
                responses(200, "Waiting for a decision.", array("ApprovalItem"), 401, 403, 502),
                tag=TAG,
            )
        },
    )
    spec.path(
        "/api/v1/cases/assignees",
        operations={
            "get": operation(
                "The social workers of the supervisor's agency, to assign cases to",
                "caseAssignees",
                responses(200, "Active social workers.", array("Assignee"), 401, 403),
                tag=TAG,
            )
        },
    )
    spec.path(
        "/api/v1/cases/{case_id}",
        operations={
            "get": operation(
                "A case: the child's record, the work, the workflow and the partners' "
                "statuses (its social worker and supervisors; every read is audited)",
                "getCase",
                responses(200, "The case.", record, 401, 403, 404, 422, 502, 503),
                tag=TAG,
                parameters=(
                    _CASE_ID,
                    _query(
                        "reason",
                        {
                            "description": "Why the case is read, for the audit trail.",
                            "schema": {"type": "string", "maxLength": 200},
                        },
                    ),
                ),
            )
        },
    )
    section = _path("section", schema={"type": "string", "enum": list(cases.SECTION_SCHEMAS)})
    spec.path(
        "/api/v1/cases/{case_id}/sections/{section}",
        operations={
            "put": write(
                "Replace one section of the child's record",
                "updateCaseSection",
                {"oneOf": [ref(name_of(s)) for s in cases.SECTION_SCHEMAS.values()]},
                params=(section,),
            )
        },
    )
    spec.path(
        "/api/v1/cases/{case_id}/assignment",
        operations={
            "post": write(
                "Assign or reassign the case (supervisors; a reassignment says why)",
                "assignCase",
                "Assignment",
            )
        },
    )
    spec.path(
        "/api/v1/cases/{case_id}/assessments",
        operations={
            "get": operation(
                "Every assessment of the case, newest first",
                "listAssessments",
                responses(200, "Assessments.", array("Assessment"), 401, 403, 404, 422, 502),
                tag=TAG,
                parameters=(_CASE_ID,),
            ),
            "post": write(
                "Record an assessment (dated and signed by its author)",
                "recordAssessment",
                "AssessmentSubmission",
                status=201,
            ),
        },
    )
    spec.path(
        "/api/v1/cases/{case_id}/plan",
        operations={"put": write("Write the case plan (a draft)", "savePlan", "PlanSubmission")},
    )
    spec.path(
        "/api/v1/cases/{case_id}/plan/submit",
        operations={"post": write("Submit the plan for approval", "submitPlan")},
    )
    spec.path(
        "/api/v1/cases/{case_id}/plan/approve",
        operations={
            "post": write(
                "Approve the plan (a supervisor other than its author; body optional)",
                "approvePlan",
                "Comment",
            )
        },
    )
    spec.path(
        "/api/v1/cases/{case_id}/plan/return",
        operations={
            "post": write("Return the plan with a reason (supervisors)", "returnPlan", "Reason")
        },
    )
    spec.path(
        "/api/v1/cases/{case_id}/services/{service_id}",
        operations={
            "patch": write(
                "Move a service of the approved plan on, or cancel it",
                "updateService",
                "ServiceUpdate",
                params=(_path("service_id", schema={"type": "string", "format": "uuid"}),),
            )
        },
    )
    spec.path(
        "/api/v1/cases/{case_id}/follow-ups",
        operations={
            "post": write(
                "Schedule a follow-up visit, call or review",
                "scheduleFollowUp",
                "FollowUpRequest",
                status=201,
            )
        },
    )
    follow_up = _path("follow_up_id", schema={"type": "string", "format": "uuid"})
    spec.path(
        "/api/v1/cases/{case_id}/follow-ups/{follow_up_id}/record",
        operations={
            "post": write(
                "Record what a follow-up found (a review records the child's views)",
                "recordFollowUp",
                "FollowUpOutcome",
                params=(follow_up,),
            )
        },
    )
    spec.path(
        "/api/v1/cases/{case_id}/follow-ups/{follow_up_id}/cancel",
        operations={
            "post": write(
                "Cancel a follow-up, saying why", "cancelFollowUp", "Reason", params=(follow_up,)
            )
        },
    )
    spec.path(
        "/api/v1/cases/{case_id}/notes",
        operations={
            "get": operation(
                "The case's notes, newest first (they never leave social services)",
                "listNotes",
                responses(200, "A page of notes.", "NotesPage", 401, 403, 404, 422, 502),
                tag=TAG,
                parameters=(
                    _CASE_ID,
                    _query("before", {"schema": {"type": "string"}}),
                    _query("limit", {"schema": {"type": "integer"}}),
                ),
            ),
            "post": operation(
                "Write a note",
                "addNote",
                write_responses(201, "The note.", "Note"),
                tag=TAG,
                body="NoteInput",
                parameters=(_CASE_ID,),
            ),
        },
    )
    spec.path(
        "/api/v1/cases/{case_id}/closure",
        operations={
            "post": write(
                "Request the closure of the case with a reason code",
                "requestClosure",
                "ClosureRequest",
            )
        },
    )
    spec.path(
        "/api/v1/cases/{case_id}/closure/approve",
        operations={
            "post": write(
                "Approve the closure (a supervisor other than the requester; body optional)",
                "approveClosure",
                "Comment",
            )
        },
    )
    spec.path(
        "/api/v1/cases/{case_id}/closure/reject",
        operations={
            "post": write("Keep the case open, saying why (supervisors)", "rejectClosure", "Reason")
        },
    )
    spec.path(
        "/api/v1/cases/{case_id}/reopen",
        operations={"post": write("Reopen a closed case, saying why", "reopenCase", "Reason")},
    )
