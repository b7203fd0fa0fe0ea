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
    assert_eq!((again.created, again.updated, again.outcome()), (false, true, "updated"));
    assert_eq!(store.pipeline("other").unwrap().unwrap().document, changed);
    let same = create(changed);
    assert_eq!((same.created, same.updated), (false, false));
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
