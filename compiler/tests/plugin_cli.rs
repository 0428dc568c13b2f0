//! End-to-end tests of `donmaic verbs` and `donmaic plugin check|sign`, and
//! of a project's `[plugins] requireSignatures`, with the real binary.

mod tree;

use donmai_runtime::keys::load_or_create_signing_key;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use serde_json::Value;
use tree::Tree;

const MANIFEST: &str = r#"# Acme's tickets.
apiVersion: donmai.dev/v1
kind: Plugin
metadata:
  name: acme
  version: "1.2.0"
  description: The Acme ticket tracker.
auth:
  type: oauth2
  scopes: [tickets:read, tickets:write]
verbs:
  - id: acme.ticket.close
    description: Closes a ticket.
    sideEffectClass: external-write
    idempotencyKey: "close:${input.ticketId}"
    authScopes: [tickets:write]
    inputSchema:
      type: object
      required: [ticketId]
      properties:
        ticketId: {type: string, description: "The ticket's key, e.g. T-1"}
    outputSchema:
      type: object
      required: [closedAt]
      properties:
        closedAt: {type: string, format: date-time}
"#;

const WORKFLOW: &str = r#"apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: close, version: "1"}
requires: [{plugin: acme@1}]
triggers: [{id: go, kind: manual}]
spec:
  steps:
    - {id: start, type: trigger, config: {triggerId: go}, next: [close]}
    - {id: close, type: action, config: {action: "acme@1:acme.ticket.close", ticketId: T-1}}
"#;

/// A key pair in `tree`: the private key at `name.pem` (owner-only), the
/// public key at `name.pub.pem`.
fn key_pair(tree: &Tree, name: &str) {
    let key = load_or_create_signing_key(tree.root.join(format!("{name}.pem"))).expect("key");
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("pem");
    tree.write(&format!("{name}.pub.pem"), public);
}

#[test]
fn verbs_lists_the_palette_the_project_enables() {
    let tree = Tree::new("verbs-palette");
    tree.write("donmai.toml", "[integrations]\nenabled = [\"linear\"]\n");
    let run = tree.run(&["verbs"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("linear.issue.update"), "{}", run.stdout);
    assert!(run.stdout.contains("core@1"), "builtins are always there");
    assert!(!run.stdout.contains("github@1"), "{}", run.stdout);

    let all = tree.run(&["verbs", "--all", "--plugin", "github"]);
    assert_eq!(all.code, Some(0), "{}", all.stderr);
    assert!(all.stdout.contains("github@1") && all.stdout.contains("not enabled"));

    let refused = tree.run(&["verbs", "--plugin", "github"]);
    assert_eq!(refused.code, Some(2));
    assert!(
        refused.stderr.contains("not enabled in donmai.toml"),
        "{}",
        refused.stderr
    );
    assert_eq!(tree.run(&["verbs", "--plugin", "nope"]).code, Some(2));

    let json = tree.run(&["verbs", "--format", "json"]);
    let document: Value = serde_json::from_str(&json.stdout).expect("json");
    let pins: Vec<&str> = document["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .map(|p| p["plugin"].as_str().expect("pin"))
        .collect();
    assert!(
        pins.contains(&"linear@1") && !pins.contains(&"github@1"),
        "{pins:?}"
    );
}

#[test]
fn verbs_show_prints_one_verb_with_its_ports() {
    let tree = Tree::new("verbs-show");
    tree.write(".donmai/plugins/acme/plugin.yaml", MANIFEST);
    let run = tree.run(&["verbs", "show", "acme.ticket.close"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for needle in [
        "acme@1:acme.ticket.close",
        "external-write",
        "auth scopes: `tickets:write`",
        "idempotency key: `close:${input.ticketId}`",
        "| `ticketId` | `string` | yes | The ticket's key, e.g. T-1 |",
        "| `closedAt` | `timestamp` | yes |",
    ] {
        assert!(run.stdout.contains(needle), "{needle} in\n{}", run.stdout);
    }
    let json = tree.run(&[
        "verbs",
        "show",
        "acme@1:acme.ticket.close",
        "--format",
        "json",
    ]);
    let verb: Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(verb["inputSchema"]["required"][0], "ticketId");
    assert_eq!(verb["authScopes"][0], "tickets:write");

    let event = tree.run(&["verbs", "show", "com.linear.AgentSessionEvent.created"]);
    assert_eq!(event.code, Some(0), "{}", event.stderr);
    assert!(
        event.stdout.contains("**Payload**") && event.stdout.contains("`agentSessionId`"),
        "{}",
        event.stdout
    );
    let event = tree.run(&[
        "verbs",
        "show",
        "com.linear.AgentSessionEvent.created",
        "--format",
        "json",
    ]);
    let event: Value = serde_json::from_str(&event.stdout).expect("json");
    assert_eq!(event["plugin"], "linear@1");

    let typo = tree.run(&["verbs", "show", "acme.ticket.clos"]);
    assert_eq!(typo.code, Some(2));
    assert!(
        typo.stderr.contains("did you mean `acme.ticket.close`?"),
        "{}",
        typo.stderr
    );
}

#[test]
fn plugin_check_reports_manifest_problems_with_positions() {
    let tree = Tree::new("plugin-check");
    tree.write("acme/plugin.yaml", MANIFEST);
    let clean = tree.run(&["plugin", "check", "acme"]);
    assert_eq!(clean.code, Some(0), "{}{}", clean.stdout, clean.stderr);
    assert!(
        clean
            .stderr
            .contains("acme@1: 1 verb, 0 event types, unsigned"),
        "{}",
        clean.stderr
    );
    assert!(clean.stderr.contains("unsigned"), "{}", clean.stderr);

    // A key template naming an input that does not exist; a second verb
    // with no key and a misspelt scope.
    let broken = MANIFEST.replace("close:${input.ticketId}", "close:${input.ticket}");
    let broken = format!(
        "{broken}  - id: acme.ticket.reopen\n    sideEffectClass: external-write\n    authScopes: [tickets:writ]\n"
    );
    tree.write("acme/plugin.yaml", &broken);
    let run = tree.run(&["plugin", "check", "acme/plugin.yaml", "--format", "json"]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).expect("json");
    let found: Vec<(String, u64, u64)> = report["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| {
            (
                d["code"].as_str().expect("code").to_string(),
                d["line"].as_u64().expect("line"),
                d["column"].as_u64().expect("column"),
            )
        })
        .collect();
    // `    idempotencyKey: "close:${input.ticket}"`: the field is reported
    // where it is written, not at the start of the value.
    assert!(
        found.iter().any(|(code, line, column)| code == "DN0124"
            && *line == 15
            && (30..=36).contains(column)),
        "{found:?}"
    );
    assert!(found.contains(&("DN0015".into(), 28, 22)), "{found:?}");
    assert!(found.contains(&("DN0013".into(), 29, 18)), "{found:?}");

    // `??` does not cover an input a step leaves out: `?.` does.
    let optional = MANIFEST.replace(
        "close:${input.ticketId}",
        "close:${input.ticketId}:${input.reason ?? ''}",
    )
    .replace(
        "        ticketId: {type: string, description: \"The ticket's key, e.g. T-1\"}\n",
        "        ticketId: {type: string, description: \"The ticket's key, e.g. T-1\"}\n        reason: {type: string}\n",
    );
    tree.write("acme/plugin.yaml", &optional);
    let run = tree.run(&["plugin", "check", "acme"]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(
        run.stdout.contains("reads the optional input `reason`"),
        "{}",
        run.stdout
    );
    tree.write(
        "acme/plugin.yaml",
        optional.replace("input.reason", "input?.reason"),
    );
    let run = tree.run(&["plugin", "check", "acme"]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);

    let missing = tree.run(&["plugin", "check", "nowhere"]);
    assert_eq!(missing.code, Some(2));
}

#[test]
fn signed_plugins_verify_and_projects_can_require_them() {
    let tree = Tree::new("plugin-sign");
    key_pair(&tree, "publisher");
    key_pair(&tree, "stranger");
    tree.write(".donmai/plugins/acme/plugin.yaml", MANIFEST);
    tree.write("close.yaml", WORKFLOW);

    let sign = tree.run(&[
        "plugin",
        "sign",
        ".donmai/plugins/acme",
        "--key",
        "publisher.pem",
    ]);
    assert_eq!(sign.code, Some(0), "{}", sign.stderr);
    let signed = tree.read(".donmai/plugins/acme/plugin.yaml");
    assert!(
        signed.starts_with(MANIFEST),
        "the manifest is kept as written:\n{signed}"
    );
    assert!(signed.contains("signature:\n  keyId: \""), "{signed}");
    // Signing again replaces the block rather than adding one.
    assert_eq!(
        tree.run(&[
            "plugin",
            "sign",
            ".donmai/plugins/acme",
            "--key",
            "publisher.pem"
        ])
        .code,
        Some(0)
    );
    let resigned = tree.read(".donmai/plugins/acme/plugin.yaml");
    assert_eq!(resigned.matches("signature:").count(), 1, "{resigned}");

    let verified = tree.run(&[
        "plugin",
        "check",
        ".donmai/plugins/acme",
        "--key",
        "publisher.pub.pem",
    ]);
    assert_eq!(
        verified.code,
        Some(0),
        "{}{}",
        verified.stdout,
        verified.stderr
    );
    assert!(
        verified.stderr.contains("signed by trusted key"),
        "{}",
        verified.stderr
    );
    let untrusted = tree.run(&[
        "plugin",
        "check",
        ".donmai/plugins/acme",
        "--key",
        "stranger.pub.pem",
    ]);
    assert_eq!(untrusted.code, Some(1));
    assert!(
        untrusted.stdout.contains("does not trust"),
        "{}",
        untrusted.stdout
    );

    // The project requires signatures by the publisher: the workflow checks.
    tree.write(
        "donmai.toml",
        "[plugins]\nrequireSignatures = true\ntrustedKeys = [\"publisher.pub.pem\"]\n",
    );
    let check = tree.run(&["check", "close.yaml"]);
    assert_eq!(check.code, Some(0), "{}{}", check.stdout, check.stderr);

    // Re-indenting and reordering keeps the signature valid; a change of
    // meaning breaks it and the project refuses the plugin.
    let reformatted = resigned.replace(
        "description: The Acme ticket tracker.\n",
        "description: 'The Acme ticket tracker.'\n",
    );
    tree.write(".donmai/plugins/acme/plugin.yaml", &reformatted);
    assert_eq!(tree.run(&["check", "close.yaml"]).code, Some(0));
    tree.write(
        ".donmai/plugins/acme/plugin.yaml",
        reformatted.replace(
            "sideEffectClass: external-write",
            "sideEffectClass: read-only",
        ),
    );
    let tampered = tree.run(&["check", "close.yaml"]);
    assert_eq!(tampered.code, Some(1), "{}", tampered.stdout);
    assert!(
        tampered.stdout.contains("changed after it was signed"),
        "{}",
        tampered.stdout
    );
    assert!(tampered.stdout.contains("acme"), "{}", tampered.stdout);

    // An unsigned plugin is refused when signatures are required.
    tree.write(".donmai/plugins/acme/plugin.yaml", MANIFEST);
    let unsigned = tree.run(&["check", "close.yaml"]);
    assert_eq!(unsigned.code, Some(1));
    assert!(
        unsigned.stdout.contains("is not signed"),
        "{}",
        unsigned.stdout
    );

    // A trusted key file that is not a public key is a project error.
    tree.write("donmai.toml", "[plugins]\ntrustedKeys = [\"close.yaml\"]\n");
    let bad_key = tree.run(&["check", "close.yaml"]);
    assert_eq!(bad_key.code, Some(1));
    assert!(
        bad_key.stdout.contains("cannot be used"),
        "{}",
        bad_key.stdout
    );
}

#[test]
fn every_document_of_a_manifest_is_signed() {
    let tree = Tree::new("plugin-sign-majors");
    key_pair(&tree, "publisher");
    let second = MANIFEST
        .replace("# Acme's tickets.\n", "")
        .replace("version: \"1.2.0\"", "version: \"2.0.0\"");
    tree.write("acme/plugin.yaml", format!("{MANIFEST}---\n{second}"));
    let sign = tree.run(&["plugin", "sign", "acme", "--key", "publisher.pem"]);
    assert_eq!(sign.code, Some(0), "{}", sign.stderr);
    assert!(sign.stderr.contains("acme@1, acme@2"), "{}", sign.stderr);
    let signed = tree.read("acme/plugin.yaml");
    assert_eq!(signed.matches("signature:").count(), 2, "{signed}");
    let check = tree.run(&["plugin", "check", "acme", "--key", "publisher.pub.pem"]);
    assert_eq!(check.code, Some(0), "{}{}", check.stdout, check.stderr);
    assert_eq!(
        check.stderr.matches("signed by trusted key").count(),
        2,
        "{}",
        check.stderr
    );
}
