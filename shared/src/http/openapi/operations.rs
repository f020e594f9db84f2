//! What each route takes and answers, for the OpenAPI document.

/// One operation: what it does, its body, its answers and its query.
pub struct Doc {
    pub summary: &'static str,
    /// The body's schema, and whether a body is required.
    pub body: Option<(&'static str, bool)>,
    /// The success answers: status and schema (`None` for no content).
    pub ok: &'static [(u16, Option<&'static str>)],
    pub query: &'static [Query],
    /// It may answer 409 (a name taken, an item in use or pending, a lease lost).
    pub conflict: bool,
}

/// A query parameter.
#[derive(Clone, Copy)]
pub enum Query {
    Limit,
    /// The recent events' `limit`: 1 to 50.
    EventsLimit,
    Before,
    JobStatus,
    ExecutionStatus,
    DeadLetterQueue,
    DryRun,
    Prune,
}

const PAGE: &[Query] = &[Query::Limit, Query::Before];

const fn doc(
    summary: &'static str,
    body: Option<(&'static str, bool)>,
    ok: &'static [(u16, Option<&'static str>)],
) -> Doc {
    Doc {
        summary,
        body,
        ok,
        query: &[],
        conflict: false,
    }
}

/// A listing that pages with `?limit=&before=`.
const fn paged(summary: &'static str, ok: &'static [(u16, Option<&'static str>)]) -> Doc {
    Doc {
        query: PAGE,
        ..doc(summary, None, ok)
    }
}

impl Doc {
    const fn conflicts(mut self) -> Doc {
        self.conflict = true;
        self
    }

    const fn with_query(mut self, query: &'static [Query]) -> Doc {
        self.query = query;
        self
    }
}

/// The operation at `method` `path`, or `None` for a route not described here (a test
/// proves there is none).
pub fn describe(method: &str, path: &str) -> Option<Doc> {
    let t = "/v1/teams/{team}";
    let rest = path.strip_prefix(t);
    let d = match (method, path, rest) {
        ("GET", "/healthz", _) => doc(
            "Whether the server answers.",
            None,
            &[(200, Some("Health"))],
        ),
        ("GET", "/openapi.json", _) => doc(
            "This document: OpenAPI 3.1 of every route.",
            None,
            &[(200, Some("OpenApi"))],
        ),
        ("GET", "/v1/teams", _) => doc("The teams (operator).", None, &[(200, Some("TeamList"))]),
        ("POST", "/v1/teams", _) => doc(
            "Create a team (operator).",
            Some(("NewTeam", true)),
            &[(201, Some("Team"))],
        )
        .conflicts(),
        ("GET", "/v1/dead-letters", _) => paged(
            "Messages that ran out of receives, each with its last error (operator).",
            &[(200, Some("DeadLetterPage"))],
        )
        .with_query(&[Query::DeadLetterQueue, Query::Limit, Query::Before]),
        ("POST", "/v1/dead-letters/redrive", _) => doc(
            "Put dead letters back on their queue (operator).",
            Some(("Redrive", false)),
            &[(200, Some("Redriven"))],
        ),
        (_, _, Some(rest)) => return team_route(method, rest),
        _ => return None,
    };
    Some(d)
}

fn team_route(method: &str, rest: &str) -> Option<Doc> {
    let d = match (method, rest) {
        ("GET", "") => doc("The team, and who the caller's key is in it.", None, &[(200, Some("TeamView"))]),
        ("POST", "/events") => doc(
            "Send one event or a batch of up to 1,000: answered once they are durably queued.",
            Some(("Events", true)),
            &[(202, Some("IngestReport"))],
        ),
        ("GET", "/events") => paged(
            "The team's recent events (kept as long as their ids are remembered, 7 days), newest first, each with what evaluation made of it: the executions it created and why each other automation of its scope and type did not fire.",
            &[(200, Some("EventPage"))],
        )
        .with_query(&[Query::EventsLimit, Query::Before]),
        ("GET", "/executions") => paged("The team's executions across its automations, newest first.", &[(200, Some("ExecutionPage"))])
            .with_query(&[Query::ExecutionStatus, Query::Limit, Query::Before]),
        ("POST", "/apply") => doc(
            "Make the team's queues, integrations and automations match a document (matched by name); everything is validated before the first write.",
            Some(("Document", true)),
            &[(200, Some("Plan"))],
        )
        .with_query(&[Query::DryRun, Query::Prune])
        .conflicts(),
        ("GET", "/export") => doc(
            "The team's queues, integrations and automations as a document that applies back with no changes.",
            None,
            &[(200, Some("Document"))],
        )
        .conflicts(),
        ("GET", "/automations") => doc("The team's automations.", None, &[(200, Some("AutomationList"))]),
        ("POST", "/automations") => doc("Create an automation.", Some(("AutomationInput", true)), &[(201, Some("Automation"))]).conflicts(),
        ("POST", "/automations/preview") => doc(
            "Would an automation fire on an event, and what would it send: nothing is sent or stored.",
            Some(("PreviewRequest", true)),
            &[(200, Some("Preview"))],
        ),
        ("GET", "/automations/{id}") => doc("An automation.", None, &[(200, Some("Automation"))]),
        ("PUT", "/automations/{id}") => doc("Replace an automation.", Some(("AutomationInput", true)), &[(200, Some("Automation"))]).conflicts(),
        ("PATCH", "/automations/{id}") => doc("Change some fields of an automation.", Some(("AutomationPatch", true)), &[(200, Some("Automation"))]).conflicts(),
        ("DELETE", "/automations/{id}") => doc("Delete an automation.", None, &[(204, None)]),
        ("GET", "/automations/{id}/executions") => paged("An automation's executions, newest first.", &[(200, Some("ExecutionPage"))]),
        ("GET", "/integrations") => doc("The team's integrations.", None, &[(200, Some("IntegrationList"))]),
        ("POST", "/integrations") => doc("Create an integration.", Some(("IntegrationInput", true)), &[(201, Some("Integration"))]).conflicts(),
        ("GET", "/integrations/{id}") => doc("An integration.", None, &[(200, Some("Integration"))]),
        ("PUT", "/integrations/{id}") => doc("Replace an integration (and re-enable it).", Some(("IntegrationInput", true)), &[(200, Some("Integration"))]).conflicts(),
        ("DELETE", "/integrations/{id}") => doc("Delete an integration no automation uses.", None, &[(204, None)]).conflicts(),
        ("POST", "/integrations/{id}/test") => doc(
            "Send one real request through the integration and show the receiver's answer.",
            Some(("IntegrationTest", false)),
            &[(200, Some("IntegrationTestResult"))],
        ),
        ("GET", "/secrets") => doc("The team's secrets: names and dates only.", None, &[(200, Some("SecretList"))]),
        ("PUT", "/secrets/{name}") => doc("Set a secret (write-only).", Some(("SecretInput", true)), &[(200, Some("Secret"))]),
        ("DELETE", "/secrets/{name}") => doc("Delete a secret.", None, &[(204, None)]),
        ("GET", "/executions/{id}") => doc("An execution: the event, what was sent (secrets masked), every attempt and the result.", None, &[(200, Some("Execution"))]),
        ("POST", "/executions/{id}/retry") => doc("Send a finished or failed execution again.", None, &[(202, Some("Execution"))]).conflicts(),
        ("GET", "/queues") => doc("The team's job queues.", None, &[(200, Some("QueueList"))]),
        ("POST", "/queues") => doc("Create a job queue.", Some(("QueueInput", true)), &[(201, Some("Queue"))]).conflicts(),
        ("DELETE", "/queues/{queue}") => doc("Delete a queue with no pending jobs.", None, &[(204, None)]).conflicts(),
        ("POST", "/queues/{queue}/claim") => doc(
            "Lease the next job of the queue to an agent: 204 when none came within wait_seconds.",
            Some(("Claim", true)),
            &[(200, Some("ClaimedJob")), (204, None)],
        ),
        ("GET", "/queues/{queue}/jobs") => paged("A queue's jobs, newest first.", &[(200, Some("JobPage"))])
            .with_query(&[Query::JobStatus, Query::Limit, Query::Before]),
        ("GET", "/jobs/{id}") => doc("A job.", None, &[(200, Some("Job"))]),
        ("POST", "/jobs/{id}/heartbeat") => doc("Extend a job's lease.", Some(("Lease", false)), &[(200, Some("Heartbeat"))]).conflicts(),
        ("POST", "/jobs/{id}/complete") => doc("End a job with its status, exit code and output.", Some(("Completion", true)), &[(200, Some("Job"))]).conflicts(),
        ("GET", "/sources") => doc("The team's sources (other systems' webhooks).", None, &[(200, Some("SourceList"))]),
        ("POST", "/sources") => doc("Create a source.", Some(("SourceInput", true)), &[(201, Some("Source"))]).conflicts(),
        ("GET", "/sources/{id}") => doc("A source.", None, &[(200, Some("Source"))]),
        ("DELETE", "/sources/{id}") => doc("Delete a source.", None, &[(204, None)]),
        ("POST", "/sources/{id}/receive") => doc(
            "Where the source's system delivers its webhooks: no key, a signature (X-MLflow-Signature).",
            Some(("Received", false)),
            &[(200, Some("Received")), (202, Some("Received"))],
        ),
        ("GET", "/api-keys") => doc("The team's API keys, without the keys.", None, &[(200, Some("ApiKeyList"))]),
        ("POST", "/api-keys") => doc("Grant a key: it is shown once, in this answer.", Some(("ApiKeyInput", true)), &[(201, Some("ApiKey"))]).conflicts(),
        ("DELETE", "/api-keys/{id}") => doc("Revoke a key.", None, &[(204, None)]),
        ("GET", "/audit") => paged("Who changed what in the team, newest first.", &[(200, Some("AuditPage"))]),
        _ => return None,
    };
    Some(d)
}
