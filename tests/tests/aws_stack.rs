#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! `infra/template.yaml` against the code. moto's CloudFormation creates the template's
//! stack: its table and queues (moto 5 creates neither `AWS::Serverless::Function`s nor
//! `AWS::SecretsManager::Secret`s, so the test creates the operator-key secret under the
//! name the template gives it). Each function is then built from exactly the variables the
//! template gives it, resolved against the stack's resources, and the pipeline runs through
//! the real handlers: API Gateway request → ingest → events queue → evaluate → actions
//! queue → dispatch (a 503 backed off through the message's visibility, a 410 disabling
//! its integration) → a webhook with the team's secret at a loopback receiver, FINISHED; and
//! a Slack notification whose webhook URL is a team secret.
//! Every AWS call each function makes on the way is counted, and must be an action its
//! role in the template allows (moto does not enforce IAM; this catches a missing grant).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use automations_tests::lambda_stack::{api_gateway_raw, api_gateway_request, drive};
use automations_tests::request_counter::RequestCounter;
use automations_tests::{Receiver, moto};
use aws_sdk_cloudformation::types::Capability;
use serde_json::json;
use serde_norway::Value;
use shared::adapters::aws::{SqsQueue, dynamodb};
use shared::config::{INGEST_BURST_ENV, INGEST_RATE_ENV};
use shared::delivery::guard::{OutboundGuard, parse_allow_networks};
use shared::delivery::retry::RetrySchedule;
use shared::domain::access::Actor;
use shared::domain::from_json;
use shared::domain::source::mlflow;
use shared::http::{AppState, Surface, router_for};
use shared::lambda::{LambdaConfig, dispatch_records, engine, evaluate_records, operator_key};
use shared::usecases::evaluate::Evaluator;
use shared::usecases::{jobs, manage, sources};
use tower::ServiceExt;

/// The variables DESIGN.md's AWS runtime contract gives every function, and no others.
const CONTRACT: [&str; 5] = [
    "AUTOMATIONS_TABLE",
    "AUTOMATIONS_EVENTS_QUEUE_URL",
    "AUTOMATIONS_ACTIONS_QUEUE_URL",
    "AUTOMATIONS_SECRETS_PREFIX",
    "AUTOMATIONS_OPERATOR_KEY_SECRET",
];

const FUNCTIONS: [&str; 4] = [
    "IngestFunction",
    "ApiFunction",
    "EvaluateFunction",
    "DispatchFunction",
];

const OUTPUTS: [&str; 7] = [
    "ApiUrl",
    "TableName",
    "EventsQueueUrl",
    "ActionsQueueUrl",
    "EventsDlqUrl",
    "ActionsDlqUrl",
    "OperatorKeySecret",
];

fn template_text() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The template, and the stack moto made of it.
struct Deployed {
    template: Value,
    stack: String,
    /// Logical id → physical id, for the resources moto created.
    physical: HashMap<String, String>,
    outputs: HashMap<String, String>,
}

impl Deployed {
    async fn create(sdk: &aws_config::SdkConfig) -> Deployed {
        let body = template_text();
        let template: Value = serde_norway::from_str(&body).unwrap();
        let stack = format!("automations-{}", std::process::id());
        let cloudformation = aws_sdk_cloudformation::Client::new(sdk);
        cloudformation
            .create_stack()
            .stack_name(&stack)
            .template_body(&body)
            .capabilities(Capability::CapabilityIam)
            .capabilities(Capability::CapabilityAutoExpand)
            .send()
            .await
            .unwrap();
        let described = cloudformation
            .describe_stacks()
            .stack_name(&stack)
            .send()
            .await
            .unwrap();
        let created = &described.stacks()[0];
        assert_eq!(
            created.stack_status().map(|s| s.as_str()),
            Some("CREATE_COMPLETE"),
            "{:?}",
            created.stack_status_reason()
        );
        let outputs = created
            .outputs()
            .iter()
            .map(|o| {
                (
                    o.output_key().unwrap_or_default().to_string(),
                    o.output_value().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let resources = cloudformation
            .list_stack_resources()
            .stack_name(&stack)
            .send()
            .await
            .unwrap();
        let physical = resources
            .stack_resource_summaries()
            .iter()
            .filter_map(|r| {
                Some((
                    r.logical_resource_id()?.to_string(),
                    r.physical_resource_id()?.to_string(),
                ))
            })
            .collect();
        Deployed {
            template,
            stack,
            physical,
            outputs,
        }
    }

    fn resource(&self, logical: &str) -> &Value {
        let resource = &self.template["Resources"][logical];
        assert!(
            !resource.is_null(),
            "the template has no resource {logical}"
        );
        resource
    }

    /// What an intrinsic function (or a plain value) of the template comes to in this stack.
    fn resolve(&self, value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Tagged(tagged) => self.intrinsic(&tagged.tag.to_string(), &tagged.value),
            Value::Mapping(m) if m.len() == 1 => {
                let (key, arg) = m.iter().next().unwrap();
                let name = key.as_str().unwrap_or_default();
                self.intrinsic(name.trim_start_matches("Fn::"), arg)
            }
            other => panic!("cannot resolve {other:?}"),
        }
    }

    fn intrinsic(&self, name: &str, arg: &Value) -> String {
        match name.trim_start_matches('!') {
            "Ref" => self.reference(arg.as_str().unwrap()),
            "GetAtt" => {
                let (logical, attribute) = match arg {
                    Value::String(s) => s.split_once('.').unwrap(),
                    Value::Sequence(parts) => {
                        (parts[0].as_str().unwrap(), parts[1].as_str().unwrap())
                    }
                    other => panic!("GetAtt {other:?}"),
                };
                self.attribute(logical, attribute)
            }
            "Sub" => {
                let text = arg.as_str().expect("Sub of a plain string");
                let mut out = String::new();
                let mut rest = text;
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let end = rest[start..].find('}').unwrap() + start;
                    let name = &rest[start + 2..end];
                    out.push_str(&match name.split_once('.') {
                        Some((logical, attribute)) if !name.starts_with("AWS::") => {
                            self.attribute(logical, attribute)
                        }
                        _ => self.reference(name),
                    });
                    rest = &rest[end + 1..];
                }
                out.push_str(rest);
                out
            }
            other => panic!("the stack test does not resolve the intrinsic {other}"),
        }
    }

    fn reference(&self, name: &str) -> String {
        match name {
            "AWS::StackName" => self.stack.clone(),
            "AWS::Region" => "us-east-1".into(),
            "AWS::AccountId" => "123456789012".into(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            parameter if self.template["Parameters"].get(parameter).is_some() => {
                let default = &self.template["Parameters"][parameter]["Default"];
                match default {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    other => panic!("parameter {parameter} has no plain default: {other:?}"),
                }
            }
            logical => match self.physical.get(logical) {
                Some(id) => id.clone(),
                // moto makes no secret: its name is what the test creates it under.
                None if self.resource(logical)["Type"] == "AWS::SecretsManager::Secret" => {
                    self.resolve(&self.resource(logical)["Properties"]["Name"])
                }
                None => panic!("moto did not create {logical}, which a function refers to"),
            },
        }
    }

    fn attribute(&self, logical: &str, attribute: &str) -> String {
        // A queue's physical id is its URL; a table's is its name.
        let id = self.reference(logical);
        let kind = self.resource(logical)["Type"].as_str().unwrap_or_default();
        match (kind, attribute) {
            ("AWS::SQS::Queue", "QueueUrl") => id,
            ("AWS::SQS::Queue", "QueueName") => id.rsplit('/').next().unwrap().to_string(),
            ("AWS::SQS::Queue", "Arn") => format!(
                "arn:aws:sqs:us-east-1:123456789012:{}",
                id.rsplit('/').next().unwrap()
            ),
            ("AWS::DynamoDB::Table", "Arn") => {
                format!("arn:aws:dynamodb:us-east-1:123456789012:table/{id}")
            }
            _ => panic!("the stack test does not resolve {logical}.{attribute}"),
        }
    }

    /// A function's variables: the template's globals, then its own.
    fn variables(&self, function: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for source in [
            &self.template["Globals"]["Function"]["Environment"]["Variables"],
            &self.resource(function)["Properties"]["Environment"]["Variables"],
        ] {
            if let Value::Mapping(vars) = source {
                for (k, v) in vars {
                    out.insert(k.as_str().unwrap().to_string(), self.resolve(v));
                }
            }
        }
        out
    }

    /// A function's property, its own or from the globals.
    fn property(&self, function: &str, name: &str) -> Value {
        let own = &self.resource(function)["Properties"][name];
        if own.is_null() {
            self.template["Globals"]["Function"][name].clone()
        } else {
            own.clone()
        }
    }

    /// The actions the function's role allows (whatever the resources).
    fn allowed_actions(&self, function: &str) -> BTreeSet<String> {
        let role = match &self.resource(function)["Properties"]["Role"] {
            Value::Tagged(t) if t.tag == "GetAtt" => t
                .value
                .as_str()
                .unwrap()
                .split_once('.')
                .unwrap()
                .0
                .to_string(),
            other => panic!("{function}'s Role is not a role of the template: {other:?}"),
        };
        let mut allowed = BTreeSet::new();
        for policy in self.resource(&role)["Properties"]["Policies"]
            .as_sequence()
            .unwrap()
        {
            for statement in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
                if statement["Effect"] != "Allow" {
                    continue;
                }
                match &statement["Action"] {
                    Value::String(action) => {
                        allowed.insert(action.clone());
                    }
                    Value::Sequence(actions) => {
                        allowed.extend(actions.iter().map(|a| a.as_str().unwrap().to_string()));
                    }
                    other => panic!("{role}: an Action of {other:?}"),
                }
            }
        }
        allowed
    }

    /// The function's event sources of a SAM `Type`.
    fn events(&self, function: &str, kind: &str) -> Vec<Value> {
        match &self.resource(function)["Properties"]["Events"] {
            Value::Mapping(events) => events
                .values()
                .filter(|e| e["Type"] == kind)
                .map(|e| e["Properties"].clone())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The IAM actions that authorise an API operation, as the request counter names it
/// (`DynamoDB.Query`): batch SQS calls are authorised as their single forms, and a
/// DynamoDB transaction as its items' writes (this code's transactions put items, and those
/// of jobs also update their queue's count).
fn iam_actions(operation: &str) -> Vec<String> {
    let (service, call) = operation.split_once('.').unwrap();
    let service = match service {
        "DynamoDB" => "dynamodb",
        "SQS" => "sqs",
        "SecretsManager" => "secretsmanager",
        other => panic!("a call to an unexpected service: {other}"),
    };
    let calls: &[&str] = match (service, call) {
        ("sqs", "SendMessageBatch") => &["SendMessage"],
        ("sqs", "DeleteMessageBatch") => &["DeleteMessage"],
        ("sqs", "ChangeMessageVisibilityBatch") => &["ChangeMessageVisibility"],
        ("dynamodb", "TransactWriteItems") => &["PutItem", "UpdateItem"],
        (_, call) => return vec![format!("{service}:{call}")],
    };
    calls
        .iter()
        .map(|call| format!("{service}:{call}"))
        .collect()
}

/// The settings a function gets besides the contract's variables: the ingest function's
/// per-key rate limit.
fn settings_of(function: &str) -> &'static [&'static str] {
    match function {
        "IngestFunction" => &[INGEST_RATE_ENV, INGEST_BURST_ENV],
        _ => &[],
    }
}

/// The function's configuration: exactly the contract's variables (and its settings), as
/// the template gives them.
fn config(deployed: &Deployed, function: &str) -> LambdaConfig {
    let vars = deployed.variables(function);
    assert_eq!(
        vars.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        CONTRACT
            .into_iter()
            .chain(settings_of(function).iter().copied())
            .collect::<BTreeSet<_>>(),
        "{function} gets exactly the contract's variables and its settings"
    );
    let mut config = LambdaConfig::from_vars(&|name| vars.get(name).cloned()).unwrap();
    // The template's defaults are the code's.
    assert_eq!(
        config.settings.ingest_limit,
        shared::domain::access::RateLimit::default(),
        "{function}'s ingest limit"
    );
    // The receiver is on loopback, which the outbound guard refuses in production, and the
    // retry waits a second instead of minutes; only this test changes them.
    config.settings.guard = Arc::new(OutboundGuard::new(
        parse_allow_networks("127.0.0.0/8").unwrap(),
    ));
    config.settings.retry = RetrySchedule::from_secs(&[1, 1]);
    config
}

async fn queue_attribute(sqs: &aws_sdk_sqs::Client, url: &str, name: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attribute = QueueAttributeName::from(name);
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(attribute.clone())
        .send()
        .await
        .unwrap();
    out.attributes()
        .and_then(|a| a.get(&attribute))
        .cloned()
        .unwrap_or_else(|| panic!("{url} has no {name}"))
}

/// The JSON body of a router's response.
async fn json_of(response: axum::response::Response) -> serde_json::Value {
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// Creates an integration of team acme, as its operator.
async fn integration_of(
    api: &shared::usecases::Engine,
    spec: serde_json::Value,
) -> shared::domain::integration::Integration {
    manage::create_integration(
        api,
        &Actor::operator(),
        "acme",
        serde_json::from_value(spec).unwrap(),
    )
    .await
    .unwrap()
}

/// Creates an automation of team acme, as its operator.
async fn automation_of(
    api: &shared::usecases::Engine,
    spec: serde_json::Value,
) -> shared::domain::automation::Automation {
    manage::create_automation(
        api,
        &Actor::operator(),
        "acme",
        serde_json::from_value(spec).unwrap(),
    )
    .await
    .unwrap()
}

fn seconds(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("a number of seconds, not {value:?}"))
}

#[tokio::test]
async fn the_template_s_stack_runs_the_pipeline_with_the_variables_it_gives_each_function() {
    // GIVEN the template's stack on moto, and the operator-key secret it names
    let sdk = moto::sdk_config().await;
    let deployed = Deployed::create(&sdk).await;
    for output in OUTPUTS {
        assert!(
            !deployed.template["Outputs"][output].is_null(),
            "the template outputs {output}"
        );
    }
    for output in [
        "TableName",
        "EventsQueueUrl",
        "ActionsQueueUrl",
        "EventsDlqUrl",
        "ActionsDlqUrl",
    ] {
        assert!(
            deployed.outputs.contains_key(output),
            "moto's stack outputs {output}: {:?}",
            deployed.outputs
        );
    }
    // AND every function runs on the architecture the bundle was built for (bundle.sh prints
    // the deploy command with it): a parameter, arm64 unless told otherwise
    let architecture = &deployed.template["Parameters"]["Architecture"];
    assert_eq!(architecture["Default"], Value::from("arm64"));
    assert_eq!(
        architecture["AllowedValues"],
        serde_norway::from_str::<Value>("[arm64, x86_64]").unwrap()
    );
    for function in FUNCTIONS {
        assert_eq!(
            deployed.property(function, "Architectures"),
            serde_norway::from_str::<Value>("[!Ref Architecture]").unwrap(),
            "{function}"
        );
    }
    let configs: HashMap<&str, LambdaConfig> = FUNCTIONS
        .iter()
        .map(|f| (*f, config(&deployed, f)))
        .collect();
    let ingest_config = &configs["IngestFunction"];
    assert_eq!(ingest_config.table, deployed.outputs["TableName"]);
    assert_eq!(
        ingest_config.events_queue_url,
        deployed.outputs["EventsQueueUrl"]
    );
    assert_eq!(
        ingest_config.actions_queue_url,
        deployed.outputs["ActionsQueueUrl"]
    );
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(&ingest_config.operator_key_secret)
        .secret_string("stack-operator-key-0123456789abcdefghijklmn")
        .send()
        .await
        .unwrap();

    // AND the queues as the template made them: dead-letter queues, visibility at least six
    // times the consumer's timeout, and batch item failures reported
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    for (queue, dlq, consumer, min_receives) in [
        ("EventsQueueUrl", "EventsDlqUrl", "EvaluateFunction", 3),
        ("ActionsQueueUrl", "ActionsDlqUrl", "DispatchFunction", 30),
    ] {
        let url = &deployed.outputs[queue];
        let redrive: serde_json::Value =
            serde_json::from_str(&queue_attribute(&sqs, url, "RedrivePolicy").await).unwrap();
        let dlq_arn = queue_attribute(&sqs, &deployed.outputs[dlq], "QueueArn").await;
        assert_eq!(redrive["deadLetterTargetArn"], json!(dlq_arn), "{queue}");
        let receives: u64 = redrive["maxReceiveCount"]
            .to_string()
            .trim_matches('"')
            .parse()
            .unwrap();
        assert!(
            receives >= min_receives,
            "{queue}: maxReceiveCount {receives}"
        );
        let visibility: u64 = queue_attribute(&sqs, url, "VisibilityTimeout")
            .await
            .parse()
            .unwrap();
        let timeout = seconds(&deployed.property(consumer, "Timeout"));
        assert!(
            visibility >= 6 * timeout,
            "{queue}: visibility {visibility} s, {consumer} timeout {timeout} s"
        );
        let sources = deployed.events(consumer, "SQS");
        assert_eq!(sources.len(), 1, "{consumer} has one SQS source");
        assert_eq!(
            deployed.resolve(&sources[0]["Queue"]),
            queue_attribute(&sqs, url, "QueueArn").await,
            "{consumer} consumes {queue}"
        );
        assert_eq!(
            sources[0]["FunctionResponseTypes"],
            serde_norway::from_str::<Value>("[ReportBatchItemFailures]").unwrap()
        );
    }

    // AND the table has the code's key, index and TTL attributes (moto makes the indexes,
    // which the pipeline below uses, but ignores the TTL; the template must name it)
    let table = &deployed.resource("Table")["Properties"];
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"],
        dynamodb::EXPIRES_AT
    );
    let described = aws_sdk_dynamodb::Client::new(&sdk)
        .describe_table()
        .table_name(&deployed.outputs["TableName"])
        .send()
        .await
        .unwrap();
    let described = described.table().unwrap();
    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<String> {
        schema
            .iter()
            .map(|k| k.attribute_name().to_string())
            .collect()
    };
    assert_eq!(
        keys(described.key_schema()),
        [dynamodb::PARTITION_KEY, dynamodb::SORT_KEY]
    );
    let mut indexes: Vec<(String, Vec<String>)> = described
        .global_secondary_indexes()
        .iter()
        .map(|i| (i.index_name().unwrap().to_string(), keys(i.key_schema())))
        .collect();
    // (the history indexes project keys only, the others whole items, as the code makes them)
    for index in described.global_secondary_indexes() {
        let projection = index.projection().and_then(|p| p.projection_type());
        let keys_only =
            [dynamodb::BY_TIME, dynamodb::BY_STATUS].contains(&index.index_name().unwrap());
        let expected = if keys_only {
            aws_sdk_dynamodb::types::ProjectionType::KeysOnly
        } else {
            aws_sdk_dynamodb::types::ProjectionType::All
        };
        assert_eq!(projection, Some(&expected), "{:?}", index.index_name());
    }
    indexes.sort();
    let expected = [
        (
            dynamodb::BY_AUTOMATION,
            [dynamodb::AUTOMATION_KEY, dynamodb::AUTOMATION_SORT],
        ),
        (
            dynamodb::BY_QUEUE,
            [dynamodb::QUEUE_KEY, dynamodb::QUEUE_SORT],
        ),
        (
            dynamodb::BY_STATUS,
            [dynamodb::STATUS_KEY, dynamodb::STATUS_SORT],
        ),
        (dynamodb::BY_TIME, [dynamodb::TIME_KEY, dynamodb::TIME_SORT]),
        (
            dynamodb::BY_TRIGGER,
            [dynamodb::TRIGGER_KEY, dynamodb::TRIGGER_SORT],
        ),
    ]
    .map(|(name, keys)| (name.to_string(), keys.map(String::from).to_vec()));
    assert_eq!(indexes, expected);

    // AND the HTTP API routes events to ingest and everything else to api
    // (exactly the routes the code serves on the ingest surface: events, sources' deliveries)
    let ingest_routes: BTreeSet<(String, String)> = deployed
        .events("IngestFunction", "HttpApi")
        .iter()
        .map(|r| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (text(&r["Method"]), text(&r["Path"]))
        })
        .collect();
    let served: BTreeSet<(String, String)> = shared::http::routes()
        .into_iter()
        .filter(|r| r.served_by(Surface::Ingest))
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(ingest_routes, served);
    assert_eq!(served.len(), 2);
    let api_routes = deployed.events("ApiFunction", "HttpApi");
    assert!(
        api_routes
            .iter()
            .any(|r| r["Path"].is_null() && r["Method"].is_null()),
        "the api function takes the $default route"
    );

    // WHEN each function is built from its variables, as at cold start, talking to AWS
    // through a counter of its own (to compare the calls it makes with its role)
    let mut counters = HashMap::new();
    let mut engines = HashMap::new();
    let mut function_sdks = HashMap::new();
    for function in FUNCTIONS {
        let counter = RequestCounter::start(&moto::endpoint()).await;
        let function_sdk = moto::sdk_config_at(&counter.url).await;
        engines.insert(function, engine(&configs[function], &function_sdk).unwrap());
        function_sdks.insert(function, function_sdk);
        counters.insert(function, counter);
    }
    let key = operator_key(&configs["IngestFunction"], &function_sdks["IngestFunction"])
        .await
        .unwrap();
    assert_eq!(
        operator_key(&configs["ApiFunction"], &function_sdks["ApiFunction"])
            .await
            .unwrap(),
        key
    );
    let receiver = Receiver::start().await;
    let api = engines["ApiFunction"].clone();
    manage::create_team(&api, &Actor::operator(), "acme")
        .await
        .unwrap();
    manage::put_secret(
        &api,
        &Actor::operator(),
        "acme",
        "TOKEN",
        "stack-token-value".into(),
    )
    .await
    .unwrap();
    let hook = json!({"type": "webhook", "name": "ci", "url": receiver.url, "access_token_secret": "TOKEN"});
    let integration = integration_of(&api, hook).await;
    let spec = json!({"name": "deploy", "scope": {"type": "registry", "name": "model"},
        "event": {"type": "ADD_ARTIFACT_ALIAS"},
        "action": {"type": "webhook", "integration": integration.id, "payload": {"v": "${artifact_version_string}"}}});
    let automation = automation_of(&api, spec).await;
    // (and a second automation whose receiver is gone: its 410 disables the integration)
    let gone = Receiver::start().await;
    gone.script(&[(410, "gone")]);
    let hook = json!({"type": "webhook", "name": "gone", "url": gone.url});
    let gone_integration = integration_of(&api, hook).await;
    let spec = json!({"name": "notify", "scope": {"type": "registry", "name": "model"},
        "event": {"type": "ADD_ARTIFACT_ALIAS"},
        "action": {"type": "webhook", "integration": gone_integration.id}});
    automation_of(&api, spec).await;
    // (and a Slack notification, its webhook URL a team secret)
    let slack = Receiver::start().await;
    manage::put_secret(
        &api,
        &Actor::operator(),
        "acme",
        "SLACK_URL",
        slack.url.clone(),
    )
    .await
    .unwrap();
    let channel = json!({"type": "slack", "name": "alerts", "webhook_url_secret": "SLACK_URL"});
    let slack_integration = integration_of(&api, channel).await;
    let spec = json!({"name": "tell-the-channel", "scope": {"type": "registry", "name": "model"},
        "event": {"type": "ADD_ARTIFACT_ALIAS"},
        "action": {"type": "notification", "integration": slack_integration.id,
                   "title": "${artifact_version_string}", "message": "alias ${alias}", "severity": "INFO"}});
    automation_of(&api, spec).await;
    // (and a queued job for the team's own machines)
    let queue = json!({"name": "gpu"});
    jobs::create_queue(&api, &Actor::operator(), "acme", from_json(queue).unwrap())
        .await
        .unwrap();
    let spec = json!({"name": "evaluate", "scope": {"type": "registry", "name": "model"},
        "event": {"type": "ADD_ARTIFACT_ALIAS"},
        "action": {"type": "queue_job", "queue": "gpu", "job": "eval",
                   "overrides": {"model": "${artifact_version_string}"}}});
    let job_automation = automation_of(&api, spec).await;
    // (and a run-metric automation, which keeps its window in the table)
    let spec = json!({"name": "nan-loss", "scope": {"type": "project", "name": "detector"},
        "event": {"type": "RUN_METRIC_NAN", "metric": "loss"}, "action": {"type": "no_op"}});
    let nan_automation = automation_of(&api, spec).await;
    // (and an MLflow source, whose deliveries the ingest function checks with a team secret)
    manage::put_secret(
        &api,
        &Actor::operator(),
        "acme",
        "MLFLOW_SIGNING",
        "mlflow-webhook-secret".into(),
    )
    .await
    .unwrap();
    let source = json!({"type": "mlflow", "name": "mlflow-prod", "signing_secret": "MLFLOW_SIGNING", "registry": "mlflow"});
    let source =
        sources::create_source(&api, &Actor::operator(), "acme", from_json(source).unwrap())
            .await
            .unwrap();
    let spec = json!({"name": "mlflow-linked", "scope": {"type": "registry", "name": "mlflow"},
        "event": {"type": "LINK_ARTIFACT", "filter": {"artifact.collection": "My Model"}},
        "action": {"type": "no_op"}});
    let mlflow_automation = automation_of(&api, spec).await;
    receiver.script(&[(503, "busy")]);

    // AND the api function grants a training job an ingest key
    let api_router = router_for(
        AppState::new(engines["ApiFunction"].clone(), &key),
        Surface::Management,
    );
    let grant = json!({"user": "training-job", "role": "ingest"});
    let request = api_gateway_request("POST", "/v1/teams/acme/api-keys", &key, &grant);
    let granted = api_router.clone().oneshot(request).await.unwrap();
    assert_eq!(granted.status(), 201);
    let granted = json_of(granted).await;
    let job_key = granted["key"].as_str().unwrap().to_string();

    // AND with it, an event goes through ingest, evaluate and dispatch
    let ingest = router_for(
        AppState::new(engines["IngestFunction"].clone(), &key),
        Surface::Ingest,
    );
    let event = json!({"id": "e1", "event_type": "ADD_ARTIFACT_ALIAS", "registry": "model",
        "artifact": {"collection": "resnet", "version": "v4", "alias": "production"}});
    let request = api_gateway_request("POST", "/v1/teams/acme/events", &job_key, &event);
    assert_eq!(ingest.clone().oneshot(request).await.unwrap().status(), 202);
    let points = json!({"id": "m1", "event_type": "RUN_METRICS", "project": "detector",
        "run": {"id": "r1"}, "step": 7, "metrics": {"loss": "NaN", "acc": 0.5}});
    let request = api_gateway_request("POST", "/v1/teams/acme/events", &job_key, &points);
    assert_eq!(ingest.clone().oneshot(request).await.unwrap().status(), 202);
    // (and an MLflow delivery, with no key: refused when not signed by the source's
    // secret, taken when it is)
    let delivery = r#"{"entity": "model_version", "action": "created", "timestamp": "2026-12-02T12:39:58.642076+00:00", "data": {"name": "My Model", "version": "3", "source": "s3://models/3", "run_id": null, "tags": {}, "description": null}}"#;
    let now = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let signed = |secret: &str| {
        let signature = mlflow::signature(secret, "d-1", &now, delivery.as_bytes());
        let headers = [
            ("content-type", "application/json".to_string()),
            ("x-mlflow-delivery-id", "d-1".to_string()),
            ("x-mlflow-timestamp", now.clone()),
            ("x-mlflow-signature", signature),
        ];
        api_gateway_raw("POST", &source.receive_path(), &headers, delivery)
    };
    let refused = ingest
        .clone()
        .oneshot(signed("not-the-secret"))
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        ingest
            .oneshot(signed("mlflow-webhook-secret"))
            .await
            .unwrap()
            .status(),
        202
    );
    let events = SqsQueue::new(sqs.clone(), &configs["EvaluateFunction"].events_queue_url);
    let evaluator = Evaluator::new(engines["EvaluateFunction"].clone());
    let mut evaluated = 0;
    for _ in 0..3 {
        let (got, response) = drive(&events, Duration::from_secs(5), vec![], |e| {
            evaluate_records(&evaluator, e)
        })
        .await;
        assert!(response.batch_item_failures.is_empty());
        evaluated += got;
        if evaluated == 3 {
            break;
        }
    }
    assert_eq!(evaluated, 3);
    let linked = api
        .store
        .list_executions("acme", &mlflow_automation.id, 10, None)
        .await
        .unwrap()
        .into_items("acme");
    assert_eq!(linked.len(), 1, "the MLflow delivery fired its automation");
    assert_eq!(linked[0].vars["artifact_version"], "models:/My Model/3");
    let fired = api
        .store
        .list_executions("acme", &nan_automation.id, 10, None)
        .await
        .unwrap()
        .into_items("acme");
    assert_eq!(fired.len(), 1, "the NaN loss fired its automation");
    assert_eq!(fired[0].vars["metric_value"], "NaN");
    let dispatch = engines["DispatchFunction"].clone();
    let actions = Arc::new(SqsQueue::new(
        sqs.clone(),
        &configs["DispatchFunction"].actions_queue_url,
    ));
    // (the first attempt gets a 503 and backs off through its message's visibility; the
    // second gets a 410; the notification is delivered; the retry is delivered)
    let mut handed = 0;
    let mut kept = 0;
    for _ in 0..3 {
        let (got, response) = drive(&actions, Duration::from_secs(5), vec![], |e| {
            dispatch_records(&dispatch, actions.clone(), e)
        })
        .await;
        handed += got;
        kept += response.batch_item_failures.len();
        if receiver.count() == 2 {
            break;
        }
    }
    assert_eq!((handed, kept), (5, 1), "four executions, one retry");
    assert_eq!(gone.count(), 1);
    let posted = slack.deliveries();
    assert_eq!(posted.len(), 1, "the notification was posted once");
    let message = posted[0].json();
    assert_eq!(
        message["blocks"][0]["text"]["text"],
        "acme/model/resnet:production"
    );
    assert_eq!(message["blocks"][1]["text"]["text"], "alias production");
    let disabled = api
        .store
        .get_integration("acme", &gone_integration.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!disabled.enabled, "a 410 disables the integration");

    // THEN the webhook arrived with the team's secret, and the execution is FINISHED
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(
        deliveries[1].header("authorization"),
        Some("Bearer stack-token-value")
    );
    assert_eq!(
        deliveries[1].json(),
        json!({"v": "acme/model/resnet:production"})
    );
    let executions: Vec<_> = api
        .store
        .list_executions("acme", &automation.id, 10, None)
        .await
        .unwrap()
        .into_items("acme");
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].status.as_str(), "FINISHED");

    // AND an agent claims the job through the api function, and completes it
    let grant = json!({"user": "gpu-box", "role": "agent"});
    let request = api_gateway_request("POST", "/v1/teams/acme/api-keys", &key, &grant);
    let agent = api_router.clone().oneshot(request).await.unwrap();
    assert_eq!(agent.status(), 201);
    let agent = json_of(agent).await;
    let agent_key = agent["key"].as_str().unwrap().to_string();
    let claim = json!({"agent": "gpu-box", "wait_seconds": 1});
    let request = api_gateway_request(
        "POST",
        "/v1/teams/acme/queues/gpu/claim",
        &agent_key,
        &claim,
    );
    let claimed = api_router.clone().oneshot(request).await.unwrap();
    assert_eq!(claimed.status(), 200);
    let claimed = json_of(claimed).await;
    let job = &claimed["job"];
    assert_eq!(
        job["overrides"],
        json!({"model": "acme/model/resnet:production"})
    );
    assert_eq!(job["attempt"], 1);
    let done = json!({"status": "FINISHED", "exit_code": 0, "output": "auc 0.97\n", "attempt": 1});
    let path = format!(
        "/v1/teams/acme/jobs/{}/complete",
        job["id"].as_str().unwrap()
    );
    let request = api_gateway_request("POST", &path, &agent_key, &done);
    assert_eq!(
        api_router.clone().oneshot(request).await.unwrap().status(),
        200
    );
    let ran = api
        .store
        .list_executions("acme", &job_automation.id, 10, None)
        .await
        .unwrap()
        .into_items("acme");
    assert_eq!(ran.len(), 1);
    assert_eq!(
        ran[0].status.as_str(),
        "FINISHED",
        "the job's end ends its execution"
    );
    let result = ran[0].result.as_ref().unwrap();
    assert_eq!(
        (result.exit_code, result.output.as_deref()),
        (Some(0), Some("auc 0.97\n"))
    );

    // AND the api function lists the team's executions (all, and one status) and its
    // recent events with what evaluation made of them, from the template's indexes
    let listed = |path: &str| {
        let request = api_gateway_request("GET", path, &key, &json!(null));
        let router = api_router.clone();
        async move {
            let answer = router.oneshot(request).await.unwrap();
            assert_eq!(answer.status(), 200);
            json_of(answer).await
        }
    };
    let team_executions = listed("/v1/teams/acme/executions").await;
    assert_eq!(
        team_executions["executions"].as_array().unwrap().len(),
        6,
        "{team_executions}"
    );
    let finished = listed("/v1/teams/acme/executions?status=FINISHED&limit=200").await;
    assert!(
        finished["executions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["status"] == "FINISHED")
    );
    let recent = listed("/v1/teams/acme/events").await;
    let recent_ids: BTreeSet<&str> = recent["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert!(
        recent_ids.is_superset(&BTreeSet::from(["e1", "m1"])),
        "{recent}"
    );
    let points = recent["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "m1")
        .unwrap();
    assert_eq!(
        points["evaluation"]["fired"][0]["automation_id"],
        json!(nan_automation.id),
        "{points}"
    );

    // AND the api function serves the console (API Gateway's $default route), with its policy
    let request = api_gateway_request("GET", "/", "", &json!(null));
    let console = api_router.clone().oneshot(request).await.unwrap();
    assert_eq!(console.status(), 200);
    assert_eq!(
        console.headers()["content-security-policy"],
        shared::http::console::CONTENT_SECURITY_POLICY
    );

    // AND the audit trail has the grant; once revoked, the api function refuses the key
    let request = api_gateway_request("GET", "/v1/teams/acme/audit", &key, &json!(null));
    let trail = api_router.clone().oneshot(request).await.unwrap();
    assert_eq!(trail.status(), 200);
    let trail = axum::body::to_bytes(trail.into_body(), 1 << 20)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&trail).contains("api_key.grant"));
    let revoke = format!(
        "/v1/teams/acme/api-keys/{}",
        granted["id"].as_str().unwrap()
    );
    let request = api_gateway_request("DELETE", &revoke, &key, &json!(null));
    assert_eq!(
        api_router.clone().oneshot(request).await.unwrap().status(),
        204
    );
    let request = api_gateway_request("GET", "/v1/teams/acme", &job_key, &json!(null));
    assert_eq!(api_router.oneshot(request).await.unwrap().status(), 401);

    // AND every call each function made is an action its role allows
    for function in FUNCTIONS {
        let allowed = deployed.allowed_actions(function);
        for operation in counters[function].take().keys() {
            for action in iam_actions(operation) {
                assert!(
                    allowed.contains(&action),
                    "{function} calls {operation}, but its role does not allow {action}: {allowed:?}"
                );
            }
        }
    }
    // (and Lambda's event source mappings poll and delete with the consumers' roles)
    for function in ["EvaluateFunction", "DispatchFunction"] {
        let allowed = deployed.allowed_actions(function);
        for action in [
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
        ] {
            assert!(allowed.contains(action), "{function} needs {action}");
        }
    }

    // AND the team's secret sits under the template's prefix, where the IAM policies point
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let prefix = &configs["DispatchFunction"].secrets_prefix;
    let stored = secrets
        .describe_secret()
        .secret_id(format!("{prefix}acme/TOKEN"))
        .send()
        .await;
    assert!(stored.is_ok(), "the secret is named {prefix}acme/TOKEN");
}
