//! Tests of component documents: one `check` renders the parsed document, or
//! every diagnostic, as text.

use expect_test::{Expect, expect};

use super::*;

fn render(document: &ComponentDocument) -> String {
    let mut out = format!(
        "name: {:?}, description: {:?}, schemaVersion: {}\n",
        document.name, document.description, document.schema_version
    );
    for parameter in &document.parameters {
        out.push_str(&format!(
            "parameter {} default={:?} description={:?} at {}\n",
            parameter.name, parameter.default, parameter.description, parameter.span.start
        ));
    }
    for constant in &document.constants {
        out.push_str(&format!(
            "constant {}={:?} at {}\n",
            constant.name, constant.value, constant.span.start
        ));
    }
    for phase in &document.phases {
        out.push_str(&format!("phase {}\n", phase.name));
        for step in &phase.steps {
            out.push_str(&format!(
                "  step {} ({}) timeout={:?} onFailure={} maxAttempts={} at {}\n",
                step.name,
                step.action.name(),
                step.timeout_seconds,
                step.on_failure.as_str(),
                step.max_attempts,
                step.span.start
            ));
            match &step.action {
                Action::ExecuteBash { commands } => {
                    for command in commands {
                        out.push_str(&format!("    command {:?}\n", command.to_string()));
                    }
                }
                Action::UpdateOs { include, exclude } => {
                    for package in include {
                        out.push_str(&format!("    include {package}\n"));
                    }
                    for package in exclude {
                        out.push_str(&format!("    exclude {package}\n"));
                    }
                }
                Action::CreateFile { files } => {
                    for file in files {
                        let render = |t: &Option<Template>| t.as_ref().map(ToString::to_string);
                        out.push_str(&format!(
                            "    file {} content={:?} encoding={} permissions={:?} owner={:?} group={:?} overwrite={}\n",
                            file.path,
                            render(&file.content),
                            file.encoding.as_str(),
                            file.permissions.map(|mode| format!("{mode:o}")),
                            render(&file.owner),
                            render(&file.group),
                            file.overwrite
                        ));
                    }
                }
            }
        }
    }
    out
}

fn check(text: &str, expect: Expect) {
    let file = SourceFile::new("component.yaml", text);
    let actual = match parse_component(&file) {
        Ok(document) => render(&document),
        Err(diagnostics) => format!("{diagnostics}\n"),
    };
    expect.assert_eq(&actual);
}

#[test]
fn lab_configure_os() {
    check(
        r#"name: ConfigureOS
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: UpdateOS
        action: UpdateOS
"#,
        expect![[r#"
            name: Some("ConfigureOS"), description: None, schemaVersion: 1.0
            phase build
              step UpdateOS (UpdateOS) timeout=Some(7200) onFailure=Abort maxAttempts=1 at 6:9
        "#]],
    );
}

#[test]
fn every_action_and_option() {
    check(
        r#"name: WebServer
description: installs the lab's web page
schemaVersion: "1.0"
parameters:
  - Greeting:
      type: string
      default: Welcome to Re:Invent 2020 The Well Architected Way
      description: the page's text
  - Port:
      type: string
phases:
  - name: build
    steps:
      - name: Packages
        action: UpdateOS
        inputs:
          include: [httpd, php]
          exclude: ["kernel*"]
      - name: Page
        action: CreateFile
        inputs:
          - path: /var/www/html/index.html
            content: "<h1>{{ Greeting }}</h1>"
            permissions: 0644
            owner: apache
            group: apache
            overwrite: false
          - path: /etc/motd
          - path: /tmp/blob
            content: aGVsbG8=
            encoding: base64
            permissions: "755"
      - name: Version
        action: ExecuteBash
        timeoutSeconds: -1
        onFailure: Continue
        maxAttempts: 3
        inputs:
          commands:
            - php --version | head -1
            - true
            - |
              echo "port {{Port}}"
              echo "{{ build.Packages.outputs.stdout }}"
  - name: validate
    steps:
      - name: Check
        action: ExecuteBash
        timeoutSeconds: 60
        onFailure: Ignore
        inputs:
          commands: ["test -n '{{ build.Version.outputs.stdout }}'"]
  - name: test
    steps:
      - name: Page
        action: ExecuteBash
        inputs:
          commands:
            - curl -fsS localhost:{{ Port }}
      - name: Again
        action: ExecuteBash
        inputs:
          commands:
            - echo {{ test.Page.outputs.stdout }}
"#,
        expect![[r#"
            name: Some("WebServer"), description: Some("installs the lab's web page"), schemaVersion: 1.0
            parameter Greeting default=Some("Welcome to Re:Invent 2020 The Well Architected Way") description=Some("the page's text") at 5:5
            parameter Port default=None description=None at 9:5
            phase build
              step Packages (UpdateOS) timeout=Some(7200) onFailure=Abort maxAttempts=1 at 14:9
                include httpd
                include php
                exclude kernel*
              step Page (CreateFile) timeout=Some(7200) onFailure=Abort maxAttempts=1 at 19:9
                file /var/www/html/index.html content=Some("<h1>{{ Greeting }}</h1>") encoding=utf8 permissions=Some("644") owner=Some("apache") group=Some("apache") overwrite=false
                file /etc/motd content=None encoding=utf8 permissions=None owner=None group=None overwrite=true
                file /tmp/blob content=Some("aGVsbG8=") encoding=base64 permissions=Some("755") owner=None group=None overwrite=true
              step Version (ExecuteBash) timeout=None onFailure=Continue maxAttempts=3 at 33:9
                command "php --version | head -1"
                command "true"
                command "echo \"port {{ Port }}\"\necho \"{{ build.Packages.outputs.stdout }}\"\n"
            phase validate
              step Check (ExecuteBash) timeout=Some(60) onFailure=Ignore maxAttempts=1 at 47:9
                command "test -n '{{ build.Version.outputs.stdout }}'"
            phase test
              step Page (ExecuteBash) timeout=Some(7200) onFailure=Abort maxAttempts=1 at 55:9
                command "curl -fsS localhost:{{ Port }}"
              step Again (ExecuteBash) timeout=Some(7200) onFailure=Abort maxAttempts=1 at 60:9
                command "echo {{ test.Page.outputs.stdout }}"
        "#]],
    );
}

#[test]
fn json_component() {
    check(
        r#"{
  "name": "ConfigureOS",
  "schemaVersion": "1.0",
  "phases": [
    {"name": "build", "steps": [{"name": "UpdateOS", "action": "UpdateOS"}]}
  ]
}"#,
        expect![[r#"
            name: Some("ConfigureOS"), description: None, schemaVersion: 1.0
            phase build
              step UpdateOS (UpdateOS) timeout=Some(7200) onFailure=Abort maxAttempts=1 at 5:33
        "#]],
    );
}

#[test]
fn malformed_yaml() {
    check(
        "name: x\nphases:\n  - name: build\n   steps: []\n",
        expect![[r#"
            component.yaml:4:4: error: invalid YAML: while parsing a block collection, did not find expected '-' indicator
        "#]],
    );
}

#[test]
fn unknown_actions_are_named() {
    check(
        r#"schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: A
        action: ExecuteBinary
        inputs: {path: /bin/true}
      - name: B
        action: executebash
      - name: C
        action: Shell
"#,
        expect![[r#"
            component.yaml:6:17: error: found the AWSTOE action `ExecuteBinary`, which autopatch does not support; expected one of CreateFile, ExecuteBash, UpdateOS
            component.yaml:9:17: error: found the unknown action `executebash`, did you mean `ExecuteBash`?
            component.yaml:11:17: error: found the unknown action `Shell`; expected one of CreateFile, ExecuteBash, UpdateOS
        "#]],
    );
}

#[test]
fn duplicate_names() {
    check(
        r#"schemaVersion: 1.0
parameters:
  - P: {type: string}
  - P: {type: string}
phases:
  - name: build
    steps:
      - name: Same
        action: UpdateOS
      - name: Same
        action: UpdateOS
  - name: test
    steps:
      - name: Same
        action: UpdateOS
  - name: build
    steps:
      - name: Other
        action: UpdateOS
"#,
        expect![[r#"
            component.yaml:4:5: error: duplicate parameter `P`, first declared at 3:5
            component.yaml:10:15: error: duplicate step name `Same` in phase build, first given at 8:15
            component.yaml:16:11: error: duplicate phase `build`, first given at 6:11
        "#]],
    );
}

#[test]
fn references_are_checked_at_their_position() {
    check(
        r#"schemaVersion: 1.0
parameters:
  - Known: {type: string, default: x}
phases:
  - name: validate
    steps:
      - name: V
        action: ExecuteBash
        inputs:
          commands:
            - echo {{ build.B1.outputs.stdout }} {{ build.Nope.outputs.stdout }}
  - name: build
    steps:
      - name: B1
        action: ExecuteBash
        inputs:
          commands:
            - "echo {{Known}} {{ Unknown }}"
            - 'it''s {{ build.B1.outputs.stdout }}'
            - echo {{ build.B2.outputs.stdout }} {{ validate.V.outputs.stdout }}
      - name: B2
        action: CreateFile
        inputs:
          - path: "/tmp/{{ test.T.outputs.stdout }}"
            content: |
              line one
                {{ Missing }} indented
  - name: test
    steps:
      - name: T
        action: ExecuteBash
        inputs:
          commands:
            - >-
              folded {{ build.B1.outputs.stdout }}
              {{ T2 }}
"#,
        expect![[r#"
            component.yaml:11:50: error: found `{{ build.Nope.outputs.stdout }}`, but phase build has no step named `Nope`; expected an earlier step of the same stage
            component.yaml:18:31: error: found the undefined parameter `Unknown` in `{{ Unknown }}`; expected one of the declared parameters: `Known`
            component.yaml:19:22: error: found `{{ build.B1.outputs.stdout }}` in step `B1` itself; expected an earlier step
            component.yaml:20:20: error: found `{{ build.B2.outputs.stdout }}` in step `B1`, which runs before step `B2`; expected an earlier step
            component.yaml:20:50: error: found `{{ validate.V.outputs.stdout }}` in step `B1`, which runs before step `V`; expected an earlier step
            component.yaml:24:25: error: found `{{ test.T.outputs.stdout }}` in phase build, which runs in the build stage; expected an earlier step of the same stage (phases build and validate)
            component.yaml:27:17: error: found the undefined parameter `Missing` in `{{ Missing }}`; expected one of the declared parameters: `Known`
            component.yaml:35:22: error: found `{{ build.B1.outputs.stdout }}` in phase test, which runs in the test stage; expected an earlier step of the same stage (phase test)
            component.yaml:36:15: error: found the undefined parameter `T2` in `{{ T2 }}`; expected one of the declared parameters: `Known`
        "#]],
    );
}

#[test]
fn malformed_references() {
    check(
        r#"schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: A
        action: ExecuteBash
        inputs:
          commands:
            - "docker inspect --format '{{.Id}}' x"
            - echo {{ Open
            - "escaped \x7b{ not located {{ X }}"
"#,
        expect![[r#"
            component.yaml:9:41: error: found the reference `{{.Id}}`; expected `{{ ParameterName }}` or `{{ phase.StepName.outputs.stdout }}`
            component.yaml:10:20: error: found `{{` without a closing `}}`
            component.yaml:11:15: error: found the reference `{{ not located {{ X }}`; expected `{{ ParameterName }}` or `{{ phase.StepName.outputs.stdout }}`
        "#]],
    );
}

#[test]
fn missing_keys_and_wrong_types() {
    check(
        r#"name: [not, a, string]
phases:
  - name: deploy
    steps: []
  - steps:
      - action: ExecuteBash
      - name: NoInputs
        action: ExecuteBash
      - name: Empty
        action: ExecuteBash
        inputs: {commands: []}
      - name: Types
        action: ExecuteBash
        timeoutSeconds: "60"
        maxAttempts: 0
        onFailure: Stop
        inputs:
          commands: echo
      - name: Files
        action: CreateFile
        inputs:
          - content: x
            permissions: rw-r--r--
            overwrite: "yes"
            encoding: latin1
            mode: 644
      - name: Zero
        action: UpdateOS
        timeoutSeconds: 0
        inputs: [x]
  - name: test
    steps: {}
  - name: validate
    steps:
      - name: Loop
        action: UpdateOS
        loop: {forEach: [a]}
        Inputs: {}
"#,
        expect![[r#"
            component.yaml:1:1: error: missing required key `schemaVersion`
            component.yaml:1:7: error: expected a string, found a sequence
            component.yaml:3:11: error: found the phase name "deploy"; expected build, validate or test
            component.yaml:4:12: error: expected at least one step, found an empty sequence
            component.yaml:5:5: error: missing required key `name`
            component.yaml:6:9: error: missing required key `name`
            component.yaml:6:9: error: missing required key `inputs` for the action ExecuteBash
            component.yaml:7:9: error: missing required key `inputs` for the action ExecuteBash
            component.yaml:11:28: error: expected at least one command, found an empty sequence
            component.yaml:14:25: error: expected an integer, found the string "60"
            component.yaml:15:22: error: found maxAttempts 0; expected an integer of at least 1
            component.yaml:16:20: error: found onFailure "Stop"; expected Abort, Continue or Ignore
            component.yaml:18:21: error: expected a sequence, found the string "echo"
            component.yaml:22:13: error: missing required key `path`
            component.yaml:23:26: error: found the permissions "rw-r--r--"; expected an octal mode like "0644"
            component.yaml:24:24: error: expected a boolean (true or false), found the string "yes"
            component.yaml:25:23: error: found the encoding "latin1"; expected utf8 or base64
            component.yaml:26:13: error: unknown key `mode`; expected one of `path`, `content`, `encoding`, `permissions`, `owner`, `group`, `overwrite`
            component.yaml:29:25: error: found timeoutSeconds 0; expected a positive number of seconds, or -1 for no timeout
            component.yaml:30:17: error: expected a mapping, found a sequence
            component.yaml:32:12: error: expected a sequence, found a mapping
            component.yaml:37:9: error: found key `loop`, which is not supported: AWSTOE step loops are not supported yet
            component.yaml:38:9: error: unknown key `Inputs`, did you mean `inputs`?
        "#]],
    );
}

#[test]
fn create_file_paths_are_absolute_and_base64_content_decodes() {
    // Only the bad ones are reported: a path starting with a reference and
    // content with references are checked once rendered, when the step runs.
    check(
        r#"schemaVersion: 1.0
parameters:
  - Dir: {type: string, default: /etc}
phases:
  - name: build
    steps:
      - name: Files
        action: CreateFile
        inputs:
          - path: etc/motd
          - path: ""
          - path: "{{ Dir }}/motd"
          - path: /tmp/{{ Dir }}
          - path: /tmp/bad
            content: "aGVsbG8!"
            encoding: base64
          - path: /tmp/short
            content: aGVsbG8
            encoding: base64
          - path: /tmp/padding
            content: aGVs=bG8
            encoding: base64
          - path: /tmp/wrapped
            encoding: base64
            content: |
              aGVs
              bG8=
          - path: /tmp/rendered
            encoding: base64
            content: "{{ Dir }}"
          - path: /tmp/text
            content: "not base64!"
"#,
        expect![[r#"
            component.yaml:10:19: error: found the relative path "etc/motd"; expected an absolute path, starting with `/` (AWSTOE writes files at absolute paths only)
            component.yaml:11:19: error: found an empty path; expected an absolute path, starting with `/`
            component.yaml:15:22: error: found content that is not valid base64 (the character '!', which base64 does not use); expected base64, as `encoding: base64` says
            component.yaml:18:22: error: found content that is not valid base64 (7 characters besides whitespace, not a multiple of 4 padded with `=`); expected base64, as `encoding: base64` says
            component.yaml:21:22: error: found content that is not valid base64 (`=` padding before its end); expected base64, as `encoding: base64` says
        "#]],
    );
}

#[test]
fn a_lenient_parse_gives_the_name_of_a_document_with_problems() {
    let text = "name: bad name\nschemaVersion: 2.0\nphases: []\n";
    let (component, diagnostics) = parse_component_lenient(&SourceFile::new("c.yaml", text));
    let component = component.expect("a mapping");
    let name = Span::new(Position::new(1, 7), Position::new(1, 15));
    assert_eq!(component.name, Some(("bad name".to_owned(), name)));
    let rendered: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(rendered.len(), 2, "{rendered:?}");
    assert!(rendered[0].starts_with("c.yaml:2:16: error: found the schema version"));
    assert!(rendered[1].starts_with("c.yaml:3:9: error: expected at least one phase"));
    assert_eq!(component.complete(), None);
    let (nothing, _) = parse_component_lenient(&SourceFile::new("c.yaml", "a: [\n"));
    assert!(nothing.is_none());
}

#[test]
fn schema_versions() {
    let version = |text: &str| {
        let document = format!(
            "schemaVersion: {text}\nphases: [{{name: build, steps: [{{name: A, action: UpdateOS}}]}}]\n"
        );
        match parse_component(&SourceFile::new("c.yaml", document)) {
            Ok(document) => document.schema_version,
            Err(diagnostics) => diagnostics.to_string(),
        }
    };
    let actual = ["1.0", "\"1.0\"", "1.00", "1", "2.0", "[1.0]", "'1.0.0'"].map(version).join("\n");
    // AWSTOE reads the version as the string written: 1.00 is not 1.0.
    expect![[r#"
        1.0
        1.0
        c.yaml:1:16: error: found the schema version "1.00"; expected 1.0
        c.yaml:1:16: error: found the schema version "1"; expected 1.0
        c.yaml:1:16: error: found the schema version "2.0"; expected 1.0
        c.yaml:1:16: error: expected a string, found a sequence
        c.yaml:1:16: error: found the schema version "1.0.0"; expected 1.0"#]]
    .assert_eq(&actual);
}

#[test]
fn empty_and_non_mapping_documents() {
    check(
        "",
        expect![[r#"
            component.yaml:1:1: error: expected a mapping, found an empty value
        "#]],
    );
    check(
        "- a\n- b\n",
        expect![[r#"
            component.yaml:1:1: error: expected a mapping, found a sequence
        "#]],
    );
}

#[test]
fn bad_parameters() {
    check(
        r#"schemaVersion: 1.0
parameters:
  - Name: {type: integer, default: 5}
  - A: {type: string}
    B: {type: string}
  - bad name: {type: string}
  - NoType: {default: x}
  - Extra: {type: string, required: true}
  - plain
phases: [{name: build, steps: [{name: A, action: UpdateOS}]}]
"#,
        expect![[r#"
            component.yaml:3:18: error: found the parameter type "integer"; expected string
            component.yaml:4:5: error: expected a parameter like `- Name: { type: string }`, found a mapping with 2 keys
            component.yaml:6:5: error: found the parameter name "bad name"; expected a name made of letters, digits, `-` and `_`
            component.yaml:7:13: error: missing required key `type`
            component.yaml:8:27: error: unknown key `required`; expected one of `type`, `default`, `description`
            component.yaml:9:5: error: expected a parameter like `- Name: { type: string }`, found the string "plain"
        "#]],
    );
}

/// AWSTOE constants: referenced like parameters, never set by a recipe.
#[test]
fn constants() {
    let text = r#"schemaVersion: 1.0
parameters:
  - Greeting: {type: string, default: hi}
constants:
  - Source:
      type: string
      value: https://example.com/app.tar.gz
phases:
  - name: build
    steps:
      - name: Fetch
        action: ExecuteBash
        inputs:
          commands: ["curl -fsSO {{ Source }} && echo {{ Greeting }}"]
"#;
    check(
        text,
        expect![[r#"
            name: None, description: None, schemaVersion: 1.0
            parameter Greeting default=Some("hi") description=None at 3:5
            constant Source="https://example.com/app.tar.gz" at 5:5
            phase build
              step Fetch (ExecuteBash) timeout=Some(7200) onFailure=Abort maxAttempts=1 at 11:9
                command "curl -fsSO {{ Source }} && echo {{ Greeting }}"
        "#]],
    );
    check(
        r#"schemaVersion: 1.0
parameters:
  - Greeting: {type: string}
constants:
  - Greeting: {type: string, value: x}
  - Source: {type: integer, value: 1}
  - Source: {type: string, value: y}
  - NoValue: {type: string}
  - bad name: {type: string, value: z}
  - plain
phases:
  - name: build
    steps:
      - name: A
        action: ExecuteBash
        inputs:
          commands: ["echo {{ Missing }}"]
"#,
        expect![[r#"
            component.yaml:5:5: error: duplicate name `Greeting`: a parameter of that name is declared at 3:5
            component.yaml:6:20: error: found the constant type "integer"; expected string
            component.yaml:7:5: error: duplicate name `Source`: a constant of that name is declared at 6:5
            component.yaml:8:14: error: missing required key `value`
            component.yaml:9:5: error: found the constant name "bad name"; expected a name made of letters, digits, `-` and `_`
            component.yaml:10:5: error: expected a constant like `- Name: { type: string, value: x }`, found the string "plain"
            component.yaml:17:28: error: found the undefined parameter `Missing` in `{{ Missing }}`; expected one of the declared parameters: `Greeting`, `Source`
        "#]],
    );
    let document = parse_component(&SourceFile::new("c.yaml", text)).unwrap();
    let recipe = crate::parse_recipe(&SourceFile::new(
        "recipe.yaml",
        "name: r\nsemanticVersion: 1.0.0\nparentImage: debian\ncomponents:\n  - componentArn: c\n    parameters:\n      - name: Source\n        value: [elsewhere]\n",
    ))
    .unwrap();
    let found: Vec<String> =
        check_parameter_values(&document, &recipe.components[0], "recipe.yaml")
            .iter()
            .map(ToString::to_string)
            .collect();
    expect![[r#"
        [
            "recipe.yaml:7:15: error: found a value for `Source`, a constant of the component; expected a parameter (a constant cannot be set)",
        ]
    "#]].assert_debug_eq(&found);
}

/// The values a recipe's component entry gives, checked against the
/// component: a missing value at the entry, an undeclared parameter at its
/// own `name`, with the declared one it is likely a misspelling of.
fn check_values(entry: &str) -> String {
    let component = SourceFile::new(
        "c.yaml",
        "schemaVersion: 1.0\nparameters:\n  - Required: {type: string}\n  - Optional: {type: string, default: d}\n  - Misspelt: {type: string, default: d}\nphases: [{name: build, steps: [{name: A, action: UpdateOS}]}]\n",
    );
    let document = parse_component(&component).unwrap();
    let recipe = SourceFile::new(
        "recipe.yaml",
        format!("name: r\nsemanticVersion: 1.0.0\nparentImage: debian\ncomponents:\n{entry}"),
    );
    let (recipe, diagnostics) = crate::parse_recipe_lenient(&recipe);
    let recipe = recipe.expect("a readable recipe");
    let parse: String = diagnostics.iter().map(|diagnostic| format!("{diagnostic}\n")).collect();
    let checked: String = recipe
        .components
        .iter()
        .flat_map(|reference| check_parameter_values(&document, reference, "recipe.yaml"))
        .map(|diagnostic| format!("{diagnostic}\n"))
        .collect();
    parse + &checked
}

#[test]
fn parameter_values() {
    expect![""].assert_eq(&check_values(
        "  - componentArn: c\n    parameters:\n      - name: Required\n        value: [x]\n",
    ));
    expect![""].assert_eq(&check_values(
        "  - componentArn: c\n    parameters:\n      - {name: Required, value: x}\n      - {name: Optional, value: [y]}\n",
    ));
    expect![[r#"
        recipe.yaml:5:5: error: missing a value for the parameter `Required`, which has no default
        recipe.yaml:9:15: error: found a value for the undeclared parameter `Mispelt`, did you mean `Misspelt`?
        recipe.yaml:11:15: error: found a value for the undeclared parameter `other`; expected one of the declared parameters: `Required`, `Optional`, `Misspelt`
        recipe.yaml:13:15: error: found a value for the undeclared parameter `required`, did you mean `Required`?
    "#]]
    .assert_eq(&check_values(
        "  - componentArn: c\n    parameters:\n      - name: Optional\n        value: [y]\n      - name: Mispelt\n        value: [x]\n      - name: other\n        value: [x]\n      - name: required\n        value: [x]\n",
    ));
}

#[test]
fn parameter_values_of_the_wrong_shape_are_reported_at_the_value() {
    // The value's problem is the recipe's (at the value); the name is still
    // known, so no "missing value" is reported on top of it.
    expect![[r#"
        recipe.yaml:8:16: error: found 2 values; expected exactly one value, like `value: ["x"]`
        recipe.yaml:10:16: error: expected a string, found a mapping
        recipe.yaml:12:17: error: expected a string, found a sequence
    "#]]
    .assert_eq(&check_values(
        "  - componentArn: c\n    parameters:\n      - name: Required\n        value: [a, b]\n      - name: Misspelt\n        value: {a: b}\n      - name: Optional\n        value: [[x]]\n",
    ));
    // An entry whose name cannot be read might be the missing one: only
    // the entry's own problem is reported.
    expect![[r#"
        recipe.yaml:9:9: error: missing required key `name`
    "#]]
    .assert_eq(&check_values(
        "  - componentArn: c\n    parameters:\n      - name: Optional\n        value: [y]\n      - value: [x]\n",
    ));
}

#[test]
fn stage_order_helpers() {
    let file = SourceFile::new(
        "c.yaml",
        "schemaVersion: 1.0\nphases:\n  - {name: test, steps: [{name: T, action: UpdateOS}]}\n  - {name: validate, steps: [{name: V, action: UpdateOS}]}\n  - {name: build, steps: [{name: B, action: UpdateOS}]}\n",
    );
    let document = parse_component(&file).unwrap();
    let order = |stage: Stage| {
        document.phases_of(stage).map(|phase| phase.name.as_str()).collect::<Vec<_>>()
    };
    assert_eq!(order(Stage::Build), ["build", "validate"]);
    assert_eq!(order(Stage::Test), ["test"]);
}
