//! What `image show`, `build show`, `build list`, `image diff` and the
//! artifact folder tell an auditor, on Podman with real builds: what built
//! an image (its build, recipe version, resolved parent, component versions,
//! checks, the local account that ran it), its packages as JSON, the CVE
//! fixes a diff to older versions loses, why a build started or failed.
//!
//! The packages are made in the build containers (`dpkg-deb`), so nothing
//! depends on a mirror: `autopatch-cli-demo` 1.0-1 in the parent and 2.0-1,
//! whose changelog names CVE-2026-1111, in the child.

#[path = "support/binary.rs"]
#[allow(dead_code)]
mod binary;

use std::process::{Command, Output};

use binary::{Cli, stderr, stdout};
use serde_json::{Value, json};

/// The demo package's 1.0-1 changelog entry.
const ENTRY_V1: &str = "autopatch-cli-demo (1.0-1) bookworm; urgency=medium

  * Initial release.

 -- autopatch tests <tests@autopatch.invalid>  Mon, 02 Nov 2026 10:00:00 +0000
";

/// The demo package's 2.0-1 changelog entry.
const ENTRY_V2: &str = "autopatch-cli-demo (2.0-1) bookworm-security; urgency=high

  * Fix a parser overflow, CVE-2026-1111.

 -- autopatch tests <tests@autopatch.invalid>  Tue, 24 Nov 2026 10:00:00 +0000
";

/// A component `name` that builds and installs `autopatch-cli-demo` at
/// `version` with `changelog` (build phase), checks it is installed
/// (validate) and runs it (test).
fn demo_component(name: &str, version: &str, changelog: &str) -> String {
    let script = format!(
        "set -eu
root=$(mktemp -d)
mkdir -p \"$root/DEBIAN\" \"$root/usr/share/doc/autopatch-cli-demo\" \"$root/usr/bin\"
printf 'Package: autopatch-cli-demo\\nVersion: {version}\\nArchitecture: all\\nMaintainer: t <t@autopatch.invalid>\\nDescription: test\\n test package\\n' > \"$root/DEBIAN/control\"
printf '#!/bin/sh\\necho demo {version}\\n' > \"$root/usr/bin/autopatch-cli-demo\"
chmod 755 \"$root/usr/bin/autopatch-cli-demo\"
cat > \"$root/changelog\" <<'CHANGELOG'
{changelog}CHANGELOG
gzip -9n < \"$root/changelog\" > \"$root/usr/share/doc/autopatch-cli-demo/changelog.Debian.gz\"
rm \"$root/changelog\"
dpkg-deb --root-owner-group -Zgzip --build \"$root\" /tmp/demo.deb > /dev/null
dpkg -i /tmp/demo.deb
rm -rf \"$root\" /tmp/demo.deb
"
    );
    let block: String = script.lines().map(|line| format!("              {line}\n")).collect();
    format!(
        "name: {name}
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: InstallDemo
        action: ExecuteBash
        inputs:
          commands:
            - |
{block}  - name: validate
    steps:
      - name: DemoInstalled
        action: ExecuteBash
        inputs:
          commands: [ \"dpkg-query -W autopatch-cli-demo\" ]
  - name: test
    steps:
      - name: DemoRuns
        action: ExecuteBash
        inputs:
          commands: [ \"autopatch-cli-demo\" ]
"
    )
}

/// The test's state directory, with the golden image in the engine; the
/// images it published are removed when it ends, passed or not.
struct Lab {
    cli: Cli,
}

impl Lab {
    fn new() -> Lab {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            autopatch_testkit::ensure_golden(&autopatch_testkit::engine().await).await;
        });
        Lab { cli: Cli::new() }
    }

    fn ok(&self, args: &[&str]) -> Output {
        let output = self.cli.run(args);
        assert_eq!(output.status.code(), Some(0), "autopatch {args:?}: {}", stderr(&output));
        output
    }

    fn json(&self, args: &[&str]) -> Value {
        let output = self.ok(&[&["--output", "json"], args].concat());
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("{args:?}: not JSON ({error}): {}", stdout(&output)))
    }

    /// Registers `component`, a recipe `name` 1.0.0 on `parent` running
    /// it, and a pipeline `name` with `pipeline_extra`.
    fn pipeline(&self, name: &str, parent: &str, component: &str, pipeline_extra: &str) {
        let component_name = component
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("name: "))
            .expect("the component's name first");
        let component = self.cli.write(&format!("{name}.component.yml"), component);
        let recipe = self.cli.write(
            &format!("{name}.recipe.yml"),
            &format!("name: {name}\nsemanticVersion: 1.0.0\nparentImage: {parent}\ncomponents:\n  - componentArn: {component_name}\n"),
        );
        let pipeline = self.cli.write(
            &format!("{name}.pipeline.yml"),
            &format!("name: {name}\nimageRecipeArn: {name}\n{pipeline_extra}"),
        );
        self.ok(&["component", "create", "--file", &component]);
        self.ok(&["recipe", "create", "--file", &recipe]);
        self.ok(&["pipeline", "create", "--file", &pipeline]);
    }

    /// The build list's entry of the newest build.
    fn newest_build(&self) -> Value {
        self.json(&["build", "list"])[0].clone()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let output = self.cli.run(&["--output", "json", "image", "list"]);
        let images: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        // Newest first: children before their parents.
        for image in images.as_array().into_iter().flatten() {
            if let Some(reference) = image["engineReference"].as_str() {
                let _ = Command::new("podman").args(["rmi", reference]).output();
            }
        }
    }
}

fn uid() -> String {
    let output = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn lines(output: &Output) -> Vec<String> {
    stdout(output).lines().map(str::to_owned).collect()
}

fn has_line(lines: &[String], expected: &str) {
    assert!(
        lines.iter().any(|line| line == expected),
        "no line {expected:?} in:\n{}",
        lines.join("\n")
    );
}

fn has_line_starting(lines: &[String], prefix: &str) -> String {
    lines
        .iter()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{}", lines.join("\n")))
        .clone()
}

#[test]
fn image_show_build_show_and_the_artifacts_say_what_built_an_image() {
    let lab = Lab::new();
    lab.pipeline(
        "prov-base",
        autopatch_testkit::GOLDEN,
        &demo_component("demo-v1", "1.0-1", ENTRY_V1),
        "",
    );
    lab.ok(&["pipeline", "start", "prov-base"]);
    lab.pipeline(
        "prov-child",
        "prov-base",
        &demo_component("demo-v2", "2.0-1", &format!("{ENTRY_V2}\n{ENTRY_V1}")),
        "imageTestsConfiguration:\n  imageTestsEnabled: false\n",
    );
    lab.ok(&["pipeline", "start", "prov-child"]);
    let child_build = lab.newest_build();
    let build_id = child_build["id"].as_str().unwrap().to_owned();

    // `build list` and `build show` give the parent as resolved.
    assert_eq!(child_build["parentImage"], "prov-base", "{child_build}");
    assert_eq!(child_build["parent"], "prov-base/1.0.0/1", "{child_build}");
    assert_eq!(child_build["published"], true);
    let listed = lines(&lab.ok(&["build", "list"]));
    assert!(listed[0].starts_with("BUILD"), "{listed:?}");
    let row = has_line_starting(&listed, &build_id);
    let cells: Vec<&str> = row.split_whitespace().take(4).collect();
    assert_eq!(cells, [build_id.as_str(), "prov-child/1.0.0/1", "prov-base/1.0.0/1", "AVAILABLE"]);

    let shown = lab.json(&["build", "show", &build_id]);
    assert_eq!(shown["parent"], "prov-base/1.0.0/1");
    assert_eq!(shown["components"], json!([{"name": "demo-v2", "version": "1.0.0", "build": 1}]));
    assert_eq!(
        shown["checks"],
        json!([{"phase": "validate", "component": "demo-v2", "step": "DemoInstalled", "status": "success"}])
    );
    assert_eq!(shown["builtBy"]["uid"].to_string(), uid(), "{shown}");
    let artifacts = std::path::PathBuf::from(shown["artifactDir"].as_str().unwrap());
    let text = lines(&lab.ok(&["build", "show", &build_id]));
    has_line(&text, "image      prov-child/1.0.0/1");
    has_line(&text, "recipe     prov-child 1.0.0");
    has_line(&text, "parent     prov-base/1.0.0/1 (the recipe names prov-base)");
    has_line(&text, "components demo-v2 1.0.0/1");
    has_line(&text, "checks     1 ran: 1 success");
    let built_by = has_line_starting(&text, "built by   ");
    assert!(built_by.contains(&format!("(uid {})", uid())), "{built_by}");
    assert!(built_by.contains(", autopatch "), "{built_by}");

    // The detailed output names the resolved parent beside the reference.
    let detailed: Value = serde_json::from_str(
        &std::fs::read_to_string(artifacts.join("detailedoutput.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (&detailed["parent"], &detailed["parent_resolved"]),
        (&json!("prov-base"), &json!("prov-base/1.0.0/1"))
    );
    assert_eq!(detailed["components"], shown["components"]);

    // `image show`: what built it, and the upgrade (not from an UpdateOS
    // step, so whether it is a security update is unknown).
    let text = lines(&lab.ok(&["image", "show", "prov-child"]));
    has_line(&text, "recipe     prov-child 1.0.0");
    has_line(&text, "pipeline   prov-child");
    has_line(&text, "parent     prov-base/1.0.0/1");
    has_line(&text, "components demo-v2 1.0.0/1");
    has_line(&text, "checks     1 ran: 1 success");
    has_line(&text, "           validate demo-v2 DemoInstalled: success");
    has_line(&text, "           test stage skipped: image tests are disabled");
    let build_line = has_line_starting(&text, "build      ");
    assert!(build_line.starts_with(&format!("build      {build_id} (started ")), "{build_line}");
    assert!(build_line.contains(", finished "), "{build_line}");
    assert!(has_line_starting(&text, "built by   ").contains(&format!("(uid {})", uid())));
    let packages = has_line_starting(&text, "packages   ");
    assert!(packages.contains("; 1 upgraded (0 security, 1 unknown), 0 downgraded"), "{packages}");
    let upgraded = has_line_starting(&text, "autopatch-cli-demo");
    assert!(
        upgraded.contains("1.0-1") && upgraded.contains("2.0-1  unknown   CVE-2026-1111"),
        "{upgraded}"
    );

    let image = lab.json(&["image", "show", "prov-child"]);
    assert_eq!(image["components"], json!([{"name": "demo-v2", "version": "1.0.0", "build": 1}]));
    assert_eq!(image["buildStartedAt"], shown["createdAt"]);
    assert_eq!(image["buildFinishedAt"], shown["finishedAt"]);
    let evidence = &image["evidence"];
    assert_eq!(evidence["image"], "prov-child/1.0.0/1");
    assert_eq!(evidence["parent"], "prov-base/1.0.0/1");
    assert_eq!(evidence["created_at"], image["createdAt"]);
    assert_eq!(evidence["build"]["id"], build_id.as_str());
    assert_eq!(evidence["build"]["engine_image_id"], image["engineImageId"]);
    assert_eq!(evidence["build"]["components"], image["components"]);
    assert_eq!(evidence["built_by"]["uid"].to_string(), uid());
    assert_eq!(evidence["upgraded"][0]["security"], Value::Null);
    // evidence.json stands alone: the same document.
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(artifacts.join("evidence.json")).unwrap())
            .unwrap();
    assert_eq!(&file, evidence);

    // The package manifest as JSON: one object per package.
    let image = lab.json(&["image", "show", "prov-child", "--packages"]);
    let packages = image["packages"].as_array().expect("an array of packages");
    let demo =
        packages.iter().find(|p| p["name"] == "autopatch-cli-demo").expect("the demo package");
    assert_eq!(
        demo,
        &json!({"name": "autopatch-cli-demo", "version": "2.0-1", "architecture": "all",
                "source_name": "autopatch-cli-demo", "source_version": "2.0-1", "status": "ii"})
    );
    let installed = packages
        .iter()
        .filter(|p| p["status"].as_str().is_some_and(|s| s.chars().nth(1) == Some('i')))
        .count();
    assert_eq!(installed as u64, image["evidence"]["package_count"].as_u64().unwrap());
    let text = lines(&lab.ok(&["image", "show", "prov-child", "--packages"]));
    let header = text.iter().position(|line| line.starts_with("PACKAGE ")).expect("a header");
    let demo_line = has_line_starting(&text[header..], "autopatch-cli-demo ");
    let cells: Vec<&str> = demo_line.split_whitespace().collect();
    assert_eq!(cells, ["autopatch-cli-demo", "2.0-1", "all", "autopatch-cli-demo", "2.0-1", "ii"]);

    // A diff to the older image warns: the fix it undoes is named.
    let output = lab.ok(&["image", "diff", "prov-child", "prov-base"]);
    assert!(
        stderr(&output).contains(
            "warning: this diff is a downgrade: 1 package(s) of prov-child/1.0.0/1 are older in \
             prov-base/1.0.0/1, which loses 1 CVE fix(es)"
        ),
        "{}",
        stderr(&output)
    );
    has_line(
        &lines(&output),
        "cves lost  1 fixed in the newer versions the downgrades undo: CVE-2026-1111",
    );
    let diff = lab.json(&["image", "diff", "prov-child", "prov-base"]);
    assert_eq!(
        (&diff["from"], &diff["to"]),
        (&json!("prov-child/1.0.0/1"), &json!("prov-base/1.0.0/1"))
    );
    assert_eq!(diff["cves_lost"], json!(["CVE-2026-1111"]));
    assert_eq!(diff["downgraded"][0]["cves"], json!(["CVE-2026-1111"]));
    let forward = lab.ok(&["image", "diff", "prov-base", "prov-child"]);
    assert!(!stderr(&forward).contains("warning"), "{}", stderr(&forward));
    assert_eq!(
        lab.json(&["image", "diff", "prov-base", "prov-child"])["cves"],
        json!(["CVE-2026-1111"])
    );

    // A forced start says so, as a progress line and as the build's event.
    let output = lab.ok(&["pipeline", "start", "prov-child", "--force"]);
    assert!(stderr(&output).contains("building: forced (--force)"), "{}", stderr(&output));
    let forced = lab.newest_build();
    let text = stdout(&lab.ok(&["build", "show", forced["id"].as_str().unwrap()]));
    assert!(text.contains("  start-condition: forced (--force)\n"), "{text}");
}

#[test]
fn a_failed_build_is_a_version_not_an_image_and_its_reason_reads_in_one_table_row() {
    let lab = Lab::new();
    let component = "name: fails-test\nschemaVersion: 1.0\nphases:\n  - name: test\n    steps:\n      - name: Check\n        action: ExecuteBash\n        inputs:\n          commands: [ \"echo auditor-visible failure; exit 1\" ]\n";
    lab.pipeline("prov-fail", autopatch_testkit::GOLDEN, component, "");
    let output = lab.cli.run(&["pipeline", "start", "prov-fail"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let build = lab.newest_build();
    let id = build["id"].as_str().unwrap();
    assert_eq!(build["published"], false);
    let reason = build["reason"].as_str().unwrap();
    assert!(reason.contains('\n'), "a multi-line reason: {reason}");

    // The list shows its first line, marked as cut.
    let listed = lines(&lab.ok(&["build", "list"]));
    let row = has_line_starting(&listed, id);
    let first = reason.lines().next().unwrap();
    assert!(row.ends_with(&format!("{first} …")), "{row}");

    // `build show` names the version without calling it an image, and
    // indents the reason's other lines under it.
    let text = lines(&lab.ok(&["build", "show", id]));
    has_line(&text, "version    prov-fail/1.0.0/1 (not published: the build ended FAILED)");
    assert!(!text.iter().any(|line| line.starts_with("image ")), "{text:?}");
    has_line(&text, &format!("reason     {first}"));
    has_line(&text, "           auditor-visible failure");
    has_line(&text, "checks     1 ran: 1 failed");
}
