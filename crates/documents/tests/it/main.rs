//! Integration tests of autopatch-documents through its public API, on the
//! fixture files in `tests/fixtures`.

mod cloudformation;

use autopatch_documents::{
    Action, ParentImage, PhaseName, SourceFile, StartCondition, check_parameter_values,
    parse_component, parse_pipeline, parse_recipe,
};
use expect_test::expect;

fn fixture(name: &str, text: &str) -> SourceFile {
    SourceFile::new(format!("tests/fixtures/{name}"), text)
}

#[test]
fn lab_configure_os_in_yaml_and_json_is_the_same_document() {
    let yaml = parse_component(&fixture(
        "configure-os.yaml",
        include_str!("../fixtures/configure-os.yaml"),
    ))
    .unwrap();
    let json = parse_component(&fixture(
        "configure-os.json",
        include_str!("../fixtures/configure-os.json"),
    ))
    .unwrap();
    assert_eq!(yaml.name.as_deref(), Some("ConfigureOS"));
    assert_eq!(yaml.schema_version, "1.0");
    let build = yaml.phase(PhaseName::Build).unwrap();
    assert_eq!(build.steps[0].name, "UpdateOS");
    assert_eq!(build.steps[0].action, Action::UpdateOs { include: vec![], exclude: vec![] });
    assert_eq!(build.steps[0].timeout_seconds, Some(7200));
    // Only spans differ between the two spellings.
    assert_eq!(yaml.phases[0].steps[0].action, json.phases[0].steps[0].action);
    assert_eq!(yaml.parameters, json.parameters);
}

#[test]
fn broken_component_reports_everything() {
    let file = fixture("broken-component.yaml", include_str!("../fixtures/broken-component.yaml"));
    let diagnostics = parse_component(&file).unwrap_err();
    expect![[r#"
        tests/fixtures/broken-component.yaml:3:16: error: found the schema version "2.0"; expected 1.0
        tests/fixtures/broken-component.yaml:13:21: error: found the undefined parameter `Greting` in `{{ Greting }}`; expected one of the declared parameters: `Greeting`
        tests/fixtures/broken-component.yaml:13:36: error: found `{{ build.Later.outputs.stdout }}` in step `Fetch`, which runs before step `Later`; expected an earlier step
        tests/fixtures/broken-component.yaml:14:15: error: duplicate step name `Fetch` in phase build, first given at 9:15
        tests/fixtures/broken-component.yaml:15:17: error: found the unknown action `RunScript`; expected one of CreateFile, ExecuteBash, UpdateOS
        tests/fixtures/broken-component.yaml:18:22: error: expected an integer, found the string "many"
        tests/fixtures/broken-component.yaml:24:28: error: found `{{ build.Fetch.outputs.stdout }}` in phase test, which runs in the test stage; expected an earlier step of the same stage (phase test)"#]]
    .assert_eq(&diagnostics.to_string());
}

#[test]
fn recipe_and_its_component_parameters() {
    let recipe =
        parse_recipe(&fixture("recipe.yaml", include_str!("../fixtures/recipe.yaml"))).unwrap();
    assert_eq!(recipe.name, "PatchedWebServer");
    assert_eq!(recipe.semantic_version.to_string(), "1.0.0");
    assert!(
        matches!(&recipe.parent_image, ParentImage::Image(image) if image.to_string() == "golden/1.0.0/1")
    );
    let names: Vec<String> = recipe
        .components
        .iter()
        .map(|component| {
            format!(
                "{} {:?} {:?}",
                component.name,
                component.version.exact().map(|v| v.to_string()),
                component.build
            )
        })
        .collect();
    expect![[r#"["update-os Some(\"1.0.0\") Some(1)", "webapp Some(\"1.0.0\") None"]"#]]
        .assert_eq(&format!("{names:?}"));

    // The webapp component declares Greeting with a default; a recipe may set
    // it but nothing else.
    let webapp = parse_component(&SourceFile::new(
        "webapp.yaml",
        "schemaVersion: 1.0\nparameters:\n  - Greeting: {type: string, default: hi}\nphases: [{name: build, steps: [{name: A, action: UpdateOS}]}]\n",
    ))
    .unwrap();
    let entry = &recipe.components[1];
    assert!(check_parameter_values(&webapp, entry, "recipe.yaml").is_empty());
    // The fixture's text with the parameter misspelt: reported at its name.
    let misspelt = include_str!("../fixtures/recipe.yaml").replace("Greeting", "Greting");
    let recipe = parse_recipe(&fixture("recipe.yaml", &misspelt)).unwrap();
    let diagnostics = check_parameter_values(&webapp, &recipe.components[1], "recipe.yaml");
    expect!["recipe.yaml:9:15: error: found a value for the undeclared parameter `Greting`, did you mean `Greeting`?"]
        .assert_eq(&diagnostics[0].to_string());
}

#[test]
fn pipeline() {
    let pipeline =
        parse_pipeline(&fixture("pipeline.yaml", include_str!("../fixtures/pipeline.yaml")))
            .unwrap();
    assert_eq!(pipeline.image_recipe.name, "PatchedWebServer");
    assert_eq!(pipeline.image_tests.timeout_minutes, 60);
    let schedule = pipeline.schedule.unwrap();
    assert_eq!(schedule.start_condition, StartCondition::UpdatesAvailable);
    assert_eq!(schedule.schedule_expression, "cron(0 3 ? * SUN *)");
    assert_eq!(pipeline.infrastructure.timeout_minutes, 240);
}
