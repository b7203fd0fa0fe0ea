//! Images: importing a root filesystem tarball with changes, tagging,
//! inspecting and removing.

use std::path::Path;

use autopatch_engine::{DockerEngine, Engine, EngineError};

use crate::support::{Cleanup, TestResult, engine, golden};

/// A tiny root filesystem: two files, no binaries (never run).
fn write_tiny_rootfs(path: &Path) -> Result<(), std::io::Error> {
    let mut builder = tar::Builder::new(fs_err::File::create(path)?);
    for (name, contents) in [("etc/hello", &b"hello\n"[..]), ("srv/app/version", b"1\n")] {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, name, contents)?;
    }
    builder.into_inner()?;
    Ok(())
}

#[tokio::test]
async fn import_streams_a_tarball_and_applies_every_change() -> TestResult {
    let engine = engine().await?;
    let mut cleanup = Cleanup::new(&engine);
    let directory = tempfile::tempdir()?;
    let tarball = directory.path().join("rootfs.tar");
    write_tiny_rootfs(&tarball)?;
    let reference = format!("localhost/{}:v1", crate::support::unique_name("import"));
    cleanup.image(&reference);
    let changes = [
        r#"CMD ["/srv/app/run","--port","80"]"#.to_string(),
        "LABEL autopatch.test=import".to_string(),
        r#"LABEL note="two words""#.to_string(),
        "ENV PATCHED=1".to_string(),
        "EXPOSE 80".to_string(),
    ];

    let imported = engine.image_import(&tarball, &reference, &changes).await?;

    assert_eq!(imported.tags, vec![reference.clone()]);
    assert_eq!(
        imported.cmd,
        Some(vec!["/srv/app/run".to_string(), "--port".to_string(), "80".to_string()])
    );
    assert_eq!(imported.labels.get("autopatch.test").map(String::as_str), Some("import"));
    assert_eq!(imported.labels.get("note").map(String::as_str), Some("two words"));
    assert!(imported.env.contains(&"PATCHED=1".to_string()), "{:?}", imported.env);
    assert_eq!(engine.image_inspect(&imported.id).await?, Some(imported.clone()));
    Ok(())
}

#[tokio::test]
async fn tag_adds_a_reference_and_remove_drops_one_at_a_time() -> TestResult {
    let engine = engine().await?;
    let mut cleanup = Cleanup::new(&engine);
    let directory = tempfile::tempdir()?;
    let tarball = directory.path().join("rootfs.tar");
    write_tiny_rootfs(&tarball)?;
    let name = crate::support::unique_name("tag");
    let first = format!("localhost/{name}:first");
    let second = format!("localhost/{name}:second");
    cleanup.image(&first);
    cleanup.image(&second);
    let imported = engine.image_import(&tarball, &first, &[]).await?;

    engine.image_tag(&imported.id, &second).await?;
    let tagged = engine.image_inspect(&second).await?.ok_or("the new tag names the image")?;
    assert_eq!(tagged.id, imported.id);
    assert!(tagged.tags.contains(&first) && tagged.tags.contains(&second), "{:?}", tagged.tags);

    engine.image_remove(&second).await?;
    assert_eq!(engine.image_inspect(&second).await?, None);
    assert!(engine.image_inspect(&first).await?.is_some(), "the other tag keeps the image");
    engine.image_remove(&first).await?;
    assert_eq!(engine.image_inspect(&imported.id).await?, None);
    engine.image_remove(&first).await?;
    Ok(())
}

#[tokio::test]
async fn import_reports_a_missing_tarball_and_refuses_multiline_changes() -> TestResult {
    let engine = engine().await?;
    let error = engine
        .image_import(Path::new("/nonexistent/rootfs.tar"), "localhost/never:v1", &[])
        .await
        .expect_err("no tarball");
    assert!(matches!(&error, EngineError::Io { path, .. } if path == "/nonexistent/rootfs.tar"));

    let directory = tempfile::tempdir()?;
    let tarball = directory.path().join("rootfs.tar");
    write_tiny_rootfs(&tarball)?;
    let changes = ["CMD [\"a\"]\nLABEL b=c".to_string()];
    let error =
        engine.image_import(&tarball, "localhost/never:v2", &changes).await.expect_err("refused");
    assert!(matches!(error, EngineError::Api { .. }), "{error:?}");
    assert_eq!(engine.image_inspect("localhost/never:v2").await?, None);
    Ok(())
}

#[tokio::test]
async fn absent_images_are_none_and_removing_them_is_fine() -> TestResult {
    let engine: DockerEngine = engine().await?;
    let reference = format!("localhost/{}:absent", crate::support::unique_name("absent"));
    assert_eq!(engine.image_inspect(&reference).await?, None);
    engine.image_remove(&reference).await?;
    let error = engine.image_tag(&reference, "localhost/never:v3").await.expect_err("absent");
    assert!(matches!(error, EngineError::NotFound { .. }), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn the_golden_image_is_a_real_root_filesystem() -> TestResult {
    let engine = engine().await?;
    let reference = golden(&engine).await?;
    let image = engine.image_inspect(reference).await?.ok_or("the golden image exists")?;
    assert!(image.size_bytes > 50_000_000, "{image:?}");
    Ok(())
}
