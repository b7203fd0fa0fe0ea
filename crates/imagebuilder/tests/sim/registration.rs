//! CreateImageRecipe validates the whole recipe, references included, and
//! reports every problem at its position before registering anything.

use autopatch_documents::SourceFile;
use autopatch_imagebuilder::RegistryError;

use crate::harness::{Sim, update_and_smoke};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_recipe_with_an_unregistered_component_and_a_missing_parent_changes_nothing() {
    let sim = Sim::new();
    for component in update_and_smoke() {
        sim.register_component(&component);
    }
    let text = "\
name: recipe
semanticVersion: 1.0.0
parentImage: localhost/test/missing:1
components:
  - componentArn: update
  - componentArn: ghost
";
    let file = SourceFile::new("recipe.yml", text);

    let result =
        autopatch_imagebuilder::create_recipe(&sim.builder.store, &sim.builder.engine, &file).await;

    let Err(RegistryError::Invalid(diagnostics)) = result else {
        panic!("expected RegistryError::Invalid, got {result:?}")
    };
    let found: Vec<(u32, u32, String)> = diagnostics
        .iter()
        .map(|d| (d.span.start.line, d.span.start.column, d.message.clone()))
        .collect();
    assert_eq!(found.len(), 2, "{diagnostics}");
    // Sorted by position, as `Diagnostics` promises: the parent (line 3)
    // before the component (line 6).
    let (line, column, message) = &found[0];
    assert_eq!((*line, *column), (3, 14), "{message}");
    assert!(
        message.contains(r#"parent image "localhost/test/missing:1" does not exist"#),
        "{message}"
    );
    let (line, column, message) = &found[1];
    assert_eq!((*line, *column), (6, 5), "{message}");
    assert!(message.starts_with("component ghost is not registered"), "{message}");
    assert!(message.contains("registered: smoke/1.0.0, update/1.0.0"), "{message}");
    assert!(diagnostics.iter().all(|d| d.file == "recipe.yml"));

    assert_eq!(sim.builder.store.recipes().unwrap(), []);
    // A pipeline naming it is refused too: nothing was registered.
    let pipeline = SourceFile::new("pipeline.yml", "name: pipe\nimageRecipeArn: recipe\n");
    let refused = autopatch_imagebuilder::create_pipeline(&sim.builder.store, &pipeline);
    assert!(matches!(refused, Err(RegistryError::Invalid(_))), "{refused:?}");
    assert_eq!(sim.builder.store.pipelines().unwrap(), []);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_image_version_with_a_build_number_names_that_build_or_nothing() {
    let sim = Sim::with_pipeline(&update_and_smoke(), "").await;
    let (outcome, _) = sim.build().await;
    assert!(outcome.image.is_some(), "{:?}", outcome.build.reason);
    let store = &sim.builder.store;
    let find = |reference: &str| autopatch_imagebuilder::find_image(store, reference);

    assert_eq!(
        find("recipe/1.0.0/1").unwrap().map(|i| i.version).as_deref(),
        Some("recipe/1.0.0/1")
    );
    assert_eq!(find("recipe/1.0.0").unwrap().map(|i| i.version).as_deref(), Some("recipe/1.0.0/1"));
    assert_eq!(find("recipe/1.0.0/99").unwrap(), None, "no build 99: not the latest build");
    for bad in ["recipe/1.0.0/x", "recipe/1.0.0/0", "recipe/x.x.x/1"] {
        let error = find(bad).expect_err(bad);
        assert!(matches!(error, RegistryError::BadReference { .. }), "{bad}: {error:?}");
    }
    // Engine references with three parts are still engine references.
    assert_eq!(find("docker.io/library/debian:12").unwrap(), None);

    // Stacks and recipes resolve through `resolve_parent`: a typo is a
    // problem to report, not the latest image.
    for reference in ["recipe/1.0.0/99", "recipe/1.0.0/x"] {
        let resolved =
            autopatch_imagebuilder::resolve_parent(store, sim.builder.engine.as_ref(), reference)
                .await
                .unwrap();
        let reason = resolved.expect_err(reference);
        assert!(reason.to_string().contains(reference), "{reason}");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn registering_a_changed_pipeline_says_updated_and_an_identical_one_unchanged() {
    let sim = Sim::with_pipeline(&update_and_smoke(), "").await;
    let store = &sim.builder.store;
    let create = |text: &str| {
        autopatch_imagebuilder::create_pipeline(store, &SourceFile::new("p.yml", text)).unwrap()
    };
    let first = "name: other\nimageRecipeArn: recipe\n";
    let changed = "name: other\nimageRecipeArn: recipe\nimageTestsConfiguration: { imageTestsEnabled: false }\n";

    assert_eq!(create(first).outcome(), "registered");
    let again = create(changed);
    assert_eq!((again.created(), again.updated(), again.outcome()), (false, true, "updated"));
    assert_eq!(store.pipeline("other").unwrap().unwrap().document, changed);
    let same = create(changed);
    assert_eq!((same.created(), same.updated()), (false, false));
    assert_eq!(same.outcome(), "unchanged (already registered)");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn component_names_that_are_not_names_are_refused_at_their_position() {
    let sim = Sim::new();
    let store = &sim.builder.store;
    for bad in ["../../evil", "x/../y", "UPPER case"] {
        let text = format!(
            "schemaVersion: 1.0\nname: {bad:?}\nphases:\n  - name: build\n    steps:\n      - name: S\n        action: ExecuteBash\n        inputs:\n          commands: [\"true\"]\n"
        );
        let result = autopatch_imagebuilder::create_component(
            store,
            &SourceFile::new("c.yml", text),
            None,
            None,
        );
        let Err(RegistryError::Invalid(diagnostics)) = result else {
            panic!("{bad}: expected RegistryError::Invalid, got {result:?}")
        };
        let text = diagnostics.to_string();
        assert!(text.starts_with("c.yml:2:7: error: found the component name"), "{bad}: {text}");
        // Given on the command line instead: refused too.
        let ok = "name: fine\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: S\n        action: ExecuteBash\n        inputs:\n          commands: [\"true\"]\n";
        let result = autopatch_imagebuilder::create_component(
            store,
            &SourceFile::new("c.yml", ok),
            Some(bad),
            None,
        );
        assert!(matches!(result, Err(RegistryError::Invalid(_))), "--name {bad}: {result:?}");
    }
    assert!(store.components().unwrap().is_empty());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_uppercase_recipe_name_is_refused_at_registration() {
    let sim = Sim::new();
    for component in update_and_smoke() {
        sim.register_component(&component);
    }
    let text = format!(
        "semanticVersion: 1.0.0\nname: PatchedWebServer\nparentImage: {}\ncomponents:\n  - componentArn: update\n",
        crate::harness::PARENT
    );
    let file = SourceFile::new("recipe.yml", text);

    let result =
        autopatch_imagebuilder::create_recipe(&sim.builder.store, &sim.builder.engine, &file).await;

    let Err(RegistryError::Invalid(diagnostics)) = result else {
        panic!("expected RegistryError::Invalid, got {result:?}")
    };
    let text = diagnostics.to_string();
    assert!(
        text.starts_with("recipe.yml:2:7: error: found the recipe name \"PatchedWebServer\""),
        "{text}"
    );
    assert!(sim.builder.store.recipes().unwrap().is_empty());
}

/// The document's own problems and its references' are reported together,
/// in line order: one round of fixes, not one per kind of check.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn every_problem_of_a_document_is_reported_at_once_references_included() {
    let sim = Sim::new();
    let store = &sim.builder.store;
    let greeter = "name: greeter\nschemaVersion: 1.0\nparameters:\n  - Greeting: {type: string}\nphases:\n  - name: build\n    steps:\n      - name: S\n        action: ExecuteBash\n        inputs:\n          commands: [\"echo {{ Greeting }}\"]\n";
    autopatch_imagebuilder::create_component(
        store,
        &SourceFile::new("greeter.yml", greeter),
        None,
        None,
    )
    .unwrap();
    let lines = |result: Result<_, RegistryError>| -> Vec<String> {
        let Err(RegistryError::Invalid(diagnostics)) = result else {
            panic!("expected RegistryError::Invalid, got {result:?}")
        };
        diagnostics.iter().map(|d| format!("{}:{}", d.span.start, d.message)).collect()
    };

    let recipe = "\
name: Web
semanticVersion: 1.0
parentImage: localhost/test/missing:1
bogus: 1
components:
  - componentArn: greeter
    parameters:
      - name: Greting
        value: [hi]
  - componentArn: ghost
";
    let found = lines(
        autopatch_imagebuilder::create_recipe(
            store,
            &sim.builder.engine,
            &SourceFile::new("recipe.yml", recipe),
        )
        .await,
    );
    let expected = [
        "1:7:found the recipe name \"Web\"; expected lowercase",
        "2:18:found the version \"1.0\"",
        "3:14:parent image \"localhost/test/missing:1\" does not exist",
        "4:1:unknown key `bogus`",
        "6:5:missing a value for the parameter `Greeting`",
        "8:15:found a value for the undeclared parameter `Greting`, did you mean `Greeting`?",
        "10:5:component ghost is not registered",
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (found, expected) in found.iter().zip(expected) {
        assert!(found.starts_with(expected), "{found} does not start with {expected}");
    }
    assert!(store.recipes().unwrap().is_empty());

    let pipeline =
        "name: pipe\nimageRecipeArn: web\nbogus: 1\ninfrastructureConfiguration: {memoryMiB: 1}\n";
    let found =
        lines(autopatch_imagebuilder::create_pipeline(store, &SourceFile::new("p.yml", pipeline)));
    let expected =
        ["2:17:recipe web is not registered", "3:1:unknown key `bogus`", "4:42:found memoryMiB 1"];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (found, expected) in found.iter().zip(expected) {
        assert!(found.starts_with(expected), "{found} does not start with {expected}");
    }
    assert!(store.pipelines().unwrap().is_empty());

    let component = "name: bad name\nschemaVersion: 1.0\nphases: []\n";
    let found = lines(autopatch_imagebuilder::create_component(
        store,
        &SourceFile::new("c.yml", component),
        None,
        None,
    ));
    let expected = ["1:7:found the component name \"bad name\"", "3:9:expected at least one phase"];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (found, expected) in found.iter().zip(expected) {
        assert!(found.starts_with(expected), "{found} does not start with {expected}");
    }
}

/// Registers `qasleep` at each of `versions` (the same document).
fn register_versions(store: &autopatch_store::Store, name: &str, versions: &[&str]) {
    let text = format!(
        "name: {name}\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: S\n        action: ExecuteBash\n        inputs:\n          commands: [\"true\"]\n"
    );
    for version in versions {
        autopatch_imagebuilder::create_component(
            store,
            &SourceFile::new(format!("{name}.yml"), text.clone()),
            None,
            Some(version),
        )
        .unwrap_or_else(|error| panic!("register {name}/{version}: {error}"));
    }
}

/// The problems of a refused registration, as `line:col:message`.
fn problems<T: std::fmt::Debug>(result: Result<T, RegistryError>) -> Vec<String> {
    let Err(RegistryError::Invalid(diagnostics)) = result else {
        panic!("expected RegistryError::Invalid, got {result:?}")
    };
    diagnostics.iter().map(|d| format!("{}:{}", d.span.start, d.message)).collect()
}

/// Image Builder's version filters (`x.x.x`, `1.x.x`, `1.2.x`) work the same
/// in a bare reference and in an ARN, and select the highest registered
/// version they match when the pipeline is loaded to build.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn component_version_filters_select_the_highest_matching_version_in_every_form() {
    let sim = Sim::new();
    let store = &sim.builder.store;
    register_versions(store, "qasleep", &["1.0.0", "1.2.0", "1.2.7", "2.2.4"]);
    let arn = "arn:aws:imagebuilder:us-east-1:aws:component/qasleep";
    let recipe = format!(
        "name: recipe\nsemanticVersion: 1.0.0\nparentImage: {}\ncomponents:\n  - componentArn: qasleep/x.x.x\n  - componentArn: qasleep/1.x.x\n  - componentArn: qasleep/1.2.x\n  - componentArn: {arn}/x.x.x\n  - componentArn: {arn}/1.x.x\n  - componentArn: {arn}/1.2.x\n  - componentArn: {arn}/1.0.0/1\n  - componentArn: qasleep\n",
        crate::harness::PARENT
    );
    sim.register_recipe(&recipe).await;
    sim.register_pipeline("name: pipe\nimageRecipeArn: recipe/1.x.x\n");

    let loaded = autopatch_imagebuilder::load_pipeline(store, "pipe").unwrap();
    let versions: Vec<&str> = loaded.components.iter().map(|c| c.version.as_str()).collect();
    assert_eq!(
        versions,
        ["2.2.4", "1.2.7", "1.2.7", "2.2.4", "1.2.7", "1.2.7", "1.0.0", "2.2.4"],
        "each filter selects the highest version it matches"
    );
    assert_eq!(loaded.recipe.name, "recipe");

    // A filter no registered version matches, and filters AWS refuses (a
    // number after an x), are reported at their entries.
    let bad = format!(
        "name: other\nsemanticVersion: 1.0.0\nparentImage: {}\ncomponents:\n  - componentArn: qasleep/3.x.x\n  - componentArn: qasleep/x.2.x\n  - componentArn: {arn}/1.x.3\n",
        crate::harness::PARENT
    );
    let found = problems(
        autopatch_imagebuilder::create_recipe(
            store,
            &sim.builder.engine,
            &SourceFile::new("recipe.yml", bad),
        )
        .await,
    );
    let expected = [
        "5:5:component qasleep/3.x.x is not registered",
        "6:19:found the version \"x.2.x\" in \"qasleep/x.2.x\"; expected x.y.z or a version filter",
        "7:19:found the version \"1.x.3\"",
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (found, expected) in found.iter().zip(expected) {
        assert!(found.starts_with(expected), "{found} does not start with {expected}");
    }
}

/// A component version has one build, 1 (versions are immutable): any other
/// build number is refused at the reference, as an image reference names
/// its build or nothing.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_component_build_that_does_not_exist_is_refused_at_the_reference() {
    let sim = Sim::new();
    let store = &sim.builder.store;
    register_versions(store, "qasleep", &["1.0.0"]);
    let recipe = format!(
        "name: recipe\nsemanticVersion: 1.0.0\nparentImage: {}\ncomponents:\n  - componentArn: qasleep/1.0.0/2\n  - componentArn: arn:aws:imagebuilder:us-east-1:123456789012:component/qasleep/1.0.0/7\n  - componentArn: qasleep/1.0.0/1\n",
        crate::harness::PARENT
    );
    let found = problems(
        autopatch_imagebuilder::create_recipe(
            store,
            &sim.builder.engine,
            &SourceFile::new("recipe.yml", recipe),
        )
        .await,
    );
    assert_eq!(
        found,
        [
            "5:19:component qasleep/1.0.0 has no build 2: a registered component version has one build, 1 (versions are immutable)",
            "6:19:component qasleep/1.0.0 has no build 7: a registered component version has one build, 1 (versions are immutable)",
        ]
    );
    assert!(store.recipes().unwrap().is_empty());

    let fine = format!(
        "name: recipe\nsemanticVersion: 1.0.0\nparentImage: {}\ncomponents:\n  - componentArn: qasleep/1.0.0/1\n",
        crate::harness::PARENT
    );
    sim.register_recipe(&fine).await;
}

/// Image references take the same filters: `image show`, a recipe's
/// `parentImage` and a stack's image parameter all resolve through
/// `find_image`.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn image_references_take_the_version_filters_too() {
    let sim = Sim::with_pipeline(&update_and_smoke(), "").await;
    let (outcome, _) = sim.build().await;
    assert!(outcome.image.is_some(), "{:?}", outcome.build.reason);
    let store = &sim.builder.store;
    let find = |reference: &str| {
        autopatch_imagebuilder::find_image(store, reference).map(|i| i.map(|i| i.version))
    };
    for reference in [
        "recipe/x.x.x",
        "recipe/1.x.x",
        "recipe/1.0.x",
        "arn:aws:imagebuilder:us-east-1:123456789012:image/recipe/1.x.x",
        "arn:aws:imagebuilder:us-east-1:123456789012:image/recipe/1.0.0/1",
    ] {
        assert_eq!(find(reference).unwrap().as_deref(), Some("recipe/1.0.0/1"), "{reference}");
    }
    assert_eq!(find("recipe/2.x.x").unwrap(), None);
    assert_eq!(find("recipe/1.1.x").unwrap(), None);
    for bad in ["recipe/x.0.x", "recipe/1.x.x/1"] {
        assert!(matches!(find(bad), Err(RegistryError::BadReference { .. })), "{bad}");
    }

    // A recipe on the latest 1.x.x build, by path and by ARN.
    let parents =
        ["recipe/1.x.x", "arn:aws:imagebuilder:us-east-1:123456789012:image/recipe/1.0.x"];
    for (patch, parent) in parents.iter().enumerate() {
        let text = format!(
            "name: child\nsemanticVersion: 1.0.{patch}\nparentImage: {parent}\ncomponents:\n  - componentArn: update\n"
        );
        sim.register_recipe(&text).await;
    }
    let text = "name: child\nsemanticVersion: 1.0.9\nparentImage: recipe/2.x.x\ncomponents:\n  - componentArn: update\n";
    let found = problems(
        autopatch_imagebuilder::create_recipe(
            store,
            &sim.builder.engine,
            &SourceFile::new("recipe.yml", text),
        )
        .await,
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].starts_with("3:14:parent image \"recipe/2.x.x\" does not exist"), "{found:?}");
}

/// The AWS keys QA's files used (`tags`, `blockDeviceMappings`,
/// `enhancedImageMetadataEnabled`) register as on AWS, and `dryRun: true`
/// checks a request whole, references included, and registers nothing.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn aws_keys_without_local_effect_register_and_a_dry_run_registers_nothing() {
    let sim = Sim::new();
    let store = &sim.builder.store;
    register_versions(store, "qasleep", &["1.0.0"]);
    let recipe = |extra: &str| {
        format!(
            "name: recipe\nsemanticVersion: 1.0.0\nparentImage: {}\ncomponents:\n  - componentArn: qasleep\ntags:\n  Team: patching\nblockDeviceMappings:\n  - deviceName: /dev/xvda\n    ebs: {{ volumeSize: 30, volumeType: gp3 }}\n{extra}",
            crate::harness::PARENT
        )
    };
    let pipeline = |extra: &str| {
        format!(
            "name: pipe\nimageRecipeArn: recipe\nenhancedImageMetadataEnabled: true\ntags: {{ Team: patching }}\ninfrastructureConfigurationArn: arn:aws:imagebuilder:us-east-1:123456789012:infrastructure-configuration/infra\n{extra}"
        )
    };

    // A dry run of a recipe whose component is missing is refused like the
    // real request; a valid one answers and writes nothing.
    let missing = recipe("dryRun: true\n").replace("qasleep", "ghost");
    let found = problems(
        autopatch_imagebuilder::create_recipe(
            store,
            &sim.builder.engine,
            &SourceFile::new("recipe.yml", missing),
        )
        .await,
    );
    assert!(found[0].starts_with("5:5:component ghost is not registered"), "{found:?}");
    let dry = autopatch_imagebuilder::create_recipe(
        store,
        &sim.builder.engine,
        &SourceFile::new("recipe.yml", recipe("dryRun: true\n")),
    )
    .await
    .unwrap();
    assert_eq!(
        (dry.outcome == autopatch_imagebuilder::Registration::DryRun, dry.created(), dry.outcome()),
        (true, false, "valid (dry run: nothing registered)")
    );
    assert!(store.recipes().unwrap().is_empty());

    sim.register_recipe(&recipe("")).await;
    let dry = autopatch_imagebuilder::create_pipeline(
        store,
        &SourceFile::new("pipeline.yml", pipeline("dryRun: true\n")),
    )
    .unwrap();
    assert_eq!(dry.outcome, autopatch_imagebuilder::Registration::DryRun);
    assert!(store.pipelines().unwrap().is_empty());
    sim.register_pipeline(&pipeline(""));
    let loaded = autopatch_imagebuilder::load_pipeline(store, "pipe").unwrap();
    assert_eq!(loaded.components[0].name, "qasleep");
}

/// `component validate` (`validate_component`) reports every problem
/// `component create` reports with the same name and version, the name
/// included; only the registry's own refusal (an existing version with a
/// different text) is create's alone.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn validating_a_component_reports_what_creating_it_would() {
    let sim = Sim::new();
    let store = &sim.builder.store;
    let body = "schemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: S\n        action: ExecuteBash\n        inputs:\n          commands: [\"true\"]\n";
    let cases: [(String, Option<&str>, Option<&str>); 6] = [
        (format!("name: Bad Comp\n{body}"), None, None),
        (body.to_owned(), None, None),
        (format!("name: fine\n{body}"), Some("../evil"), None),
        (format!("name: fine\n{body}"), None, Some("1.0")),
        ("name: Bad Comp\nschemaVersion: 2.0\nphases: []\n".to_owned(), None, Some("x")),
        (format!("name: Bad Comp\n{body}"), Some("good"), None),
    ];
    for (text, name, version) in &cases {
        let file = SourceFile::new("c.yml", text.clone());
        let validated = autopatch_imagebuilder::validate_component(&file, *name, *version);
        let created = autopatch_imagebuilder::create_component(store, &file, *name, *version);
        match (validated, created) {
            (Ok(checked), Ok(registered)) => {
                assert_eq!(
                    (checked.name, Some(checked.version)),
                    (registered.name, registered.version)
                );
            }
            (validated, created) => {
                assert_eq!(problems(validated), problems(created), "{text} {name:?} {version:?}")
            }
        }
    }
    // The QA case: a name that is not one is reported by validate, at it.
    let file = SourceFile::new("c.yml", cases[0].0.clone());
    let found = problems(autopatch_imagebuilder::validate_component(&file, None, None));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("1:7:found the component name \"Bad Comp\""), "{found:?}");
    // Only the last case registered (under --name good).
    let names: Vec<String> = store.components().unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["good"]);

    // The registry's refusal is create's alone: the same version with
    // another text is still a valid document.
    let changed = SourceFile::new("c.yml", format!("name: good\ndescription: changed\n{body}"));
    assert!(autopatch_imagebuilder::validate_component(&changed, None, None).is_ok());
    let refused = autopatch_imagebuilder::create_component(store, &changed, None, None);
    assert!(refused.is_err(), "{refused:?}");
}

/// `schedule.timezone` is an IANA zone of the host's time zone database
/// (AWS documents the IANA names), reported at its value with the document's
/// other problems; `schemaVersion` is AWSTOE's `1.0` as written.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_time_zone_that_does_not_exist_and_a_schema_version_other_than_1_0_are_refused() {
    let sim = Sim::with_pipeline(&update_and_smoke(), "").await;
    let store = &sim.builder.store;
    let pipeline = |zone: &str| {
        format!(
            "name: zoned\nimageRecipeArn: recipe\nschedule:\n  scheduleExpression: cron(0 3 ? * SUN *)\n  timezone: {zone}\n"
        )
    };
    for zone in ["Europe/Paris", "Etc/UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+5"] {
        let file = SourceFile::new("p.yml", pipeline(zone));
        autopatch_imagebuilder::create_pipeline(store, &file)
            .unwrap_or_else(|error| panic!("{zone}: {error}"));
    }
    for zone in ["Mars/Olympus", "Europe", "Etc/GMT+99"] {
        let found = problems(autopatch_imagebuilder::create_pipeline(
            store,
            &SourceFile::new("p.yml", pipeline(zone)),
        ));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(&format!(
                "5:13:found the time zone \"{zone}\", which is not in the IANA time zone database"
            )),
            "{found:?}"
        );
    }
    // With the document's other problems, in line order.
    let text = "name: zoned\nimageRecipeArn: ghost\nschedule:\n  scheduleExpression: cron(0 3 * * *)\n  timezone: Mars/Olympus\n";
    let found =
        problems(autopatch_imagebuilder::create_pipeline(store, &SourceFile::new("p.yml", text)));
    let expected =
        ["2:17:recipe ghost is not registered", "4:28:found 5 fields", "5:13:found the time zone"];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (found, expected) in found.iter().zip(expected) {
        assert!(found.starts_with(expected), "{found} does not start with {expected}");
    }

    let component = |version: &str| {
        format!(
            "name: sv\nschemaVersion: {version}\nphases:\n  - name: build\n    steps:\n      - name: S\n        action: UpdateOS\n"
        )
    };
    let found = problems(autopatch_imagebuilder::create_component(
        store,
        &SourceFile::new("c.yml", component("1.00")),
        None,
        None,
    ));
    assert_eq!(found, ["2:16:found the schema version \"1.00\"; expected 1.0"]);
    for (schema, version) in [("1.0", "1.0.0"), ("\"1.0\"", "1.0.1")] {
        autopatch_imagebuilder::create_component(
            store,
            &SourceFile::new("c.yml", component(schema)),
            None,
            Some(version),
        )
        .unwrap_or_else(|error| panic!("{schema}: {error}"));
    }
}

/// AWSTOE constants register, reach the build as values of their
/// references, and cannot be set by a recipe.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn component_constants_reach_the_build_and_a_recipe_cannot_set_them() {
    let sim = Sim::new();
    let store = &sim.builder.store;
    let text = "name: fetch\nschemaVersion: 1.0\nconstants:\n  - Source:\n      type: string\n      value: https://example.com/app.tar.gz\nphases:\n  - name: build\n    steps:\n      - name: Fetch\n        action: ExecuteBash\n        inputs:\n          commands: [\"echo {{ Source }}\"]\n";
    autopatch_imagebuilder::create_component(
        store,
        &SourceFile::new("fetch.yml", text),
        None,
        None,
    )
    .unwrap();
    let recipe = |extra: &str| {
        format!(
            "name: recipe\nsemanticVersion: 1.0.0\nparentImage: {}\ncomponents:\n  - componentArn: fetch\n{extra}",
            crate::harness::PARENT
        )
    };
    let found = problems(
        autopatch_imagebuilder::create_recipe(
            store,
            &sim.builder.engine,
            &SourceFile::new(
                "recipe.yml",
                recipe("    parameters:\n      - name: Source\n        value: [elsewhere]\n"),
            ),
        )
        .await,
    );
    assert_eq!(
        found,
        [
            "7:15:found a value for `Source`, a constant of the component; expected a parameter (a constant cannot be set)"
        ]
    );
    sim.register_recipe(&recipe("")).await;
    sim.register_pipeline("name: pipe\nimageRecipeArn: recipe\n");
    let loaded = autopatch_imagebuilder::load_pipeline(store, "pipe").unwrap();
    assert_eq!(
        loaded.components[0].parameters.get("Source").map(String::as_str),
        Some("https://example.com/app.tar.gz")
    );
}
