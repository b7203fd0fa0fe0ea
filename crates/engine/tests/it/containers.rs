//! Containers: create and start on a named network with a published port,
//! exec with streamed output, put_file, commit, list by label, stop, remove,
//! bind mounts, network removal.

use std::time::Duration;

use autopatch_engine::{
    ContainerState, Engine, EngineError, ExecSpec, Mount, OutputStream, PortBinding,
};

use crate::support::{
    Cleanup, NETWORK, Recorder, TEST_LABEL, TestResult, command, engine, golden, sleeper,
    unique_name,
};

#[tokio::test]
async fn a_container_runs_on_a_named_network_with_a_published_port() -> TestResult {
    let engine = engine().await?;
    let image = golden(&engine).await?;
    let mut cleanup = Cleanup::new(&engine);
    engine.network_ensure(NETWORK).await?;
    engine.network_ensure(NETWORK).await?;
    let name = unique_name("run");
    let mut spec = sleeper(image, &name);
    spec.publish =
        vec![PortBinding { container_port: 80, host_ip: "127.0.0.1".to_string(), host_port: 0 }];
    spec.cpus = Some(0.5);
    spec.memory_bytes = Some(256 << 20);
    spec.hostname = Some("web-1".to_string());
    spec.env = vec!["GREETING=hello".to_string()];

    let created = engine.container_create(&spec).await?;
    cleanup.container(&created.id);
    assert_eq!(created.name, name);
    assert_eq!(created.state, ContainerState::Created);
    engine.container_start(&created.id).await?;
    engine.container_start(&created.id).await?;

    let running = engine.container_inspect(&name).await?.ok_or("the container exists")?;
    assert_eq!(running.id, created.id);
    assert_eq!(running.state, ContainerState::Running);
    assert_eq!(running.exit_code, None);
    assert_eq!(running.labels.get(TEST_LABEL), Some(&name));
    assert!(running.ip_address.is_some(), "{running:?}");
    assert_eq!(running.ports.len(), 1, "{running:?}");
    assert_eq!(running.ports[0].container_port, 80);
    assert_eq!(running.ports[0].host_ip, "127.0.0.1");
    assert_ne!(running.ports[0].host_port, 0, "the engine picked a port");

    let result = engine
        .exec(
            &created.id,
            &ExecSpec {
                cmd: command(&["sh", "-c", "hostname; echo $GREETING"]),
                ..Default::default()
            },
            &mut (),
        )
        .await?;
    assert_eq!(result.stdout_text(), "web-1\nhello\n");

    engine.container_stop(&created.id, Duration::from_secs(10)).await?;
    engine.container_stop(&created.id, Duration::from_secs(10)).await?;
    let stopped = engine.container_inspect(&created.id).await?.ok_or("still there")?;
    assert_eq!(stopped.state, ContainerState::Exited);
    assert!(stopped.exit_code.is_some(), "{stopped:?}");

    engine.container_remove(&created.id).await?;
    assert_eq!(engine.container_inspect(&created.id).await?, None);
    engine.container_remove(&created.id).await?;
    Ok(())
}

#[tokio::test]
async fn exec_streams_stdout_and_stderr_and_returns_the_exit_code() -> TestResult {
    let engine = engine().await?;
    let image = golden(&engine).await?;
    let mut cleanup = Cleanup::new(&engine);
    engine.network_ensure(NETWORK).await?;
    let container = engine.container_create(&sleeper(image, &unique_name("exec"))).await?;
    cleanup.container(&container.id);
    engine.container_start(&container.id).await?;

    let mut recorder = Recorder::default();
    let spec = ExecSpec {
        cmd: command(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
        ..Default::default()
    };
    let result = engine.exec(&container.id, &spec, &mut recorder).await?;
    assert_eq!(result.exit_code, 3);
    assert_eq!(result.stdout_text(), "out\n");
    assert_eq!(result.stderr_text(), "err\n");
    assert_eq!(recorder.text(OutputStream::Stdout), "out\n");
    assert_eq!(recorder.text(OutputStream::Stderr), "err\n");

    let spec = ExecSpec {
        cmd: command(&["sh", "-c", "echo $MODE; pwd; id -un"]),
        env: vec!["MODE=patch".to_string()],
        user: Some("nobody".to_string()),
        working_dir: Some("/tmp".to_string()),
    };
    let result = engine.exec(&container.id, &spec, &mut ()).await?;
    assert_eq!((result.exit_code, result.stdout_text().as_str()), (0, "patch\n/tmp\nnobody\n"));

    let missing = ExecSpec { cmd: command(&["/nonexistent"]), ..Default::default() };
    match engine.exec(&container.id, &missing, &mut ()).await {
        Ok(result) => assert_ne!(result.exit_code, 0, "{result:?}"),
        Err(error) => assert!(matches!(error, EngineError::Api { .. }), "{error:?}"),
    }

    engine.container_stop(&container.id, Duration::from_secs(10)).await?;
    let error = engine.exec(&container.id, &spec, &mut ()).await.expect_err("stopped");
    assert!(matches!(error, EngineError::Api { .. }), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn dropping_an_exec_midway_does_not_panic() -> TestResult {
    let engine = engine().await?;
    let image = golden(&engine).await?;
    let mut cleanup = Cleanup::new(&engine);
    engine.network_ensure(NETWORK).await?;
    let container = engine.container_create(&sleeper(image, &unique_name("drop"))).await?;
    cleanup.container(&container.id);
    engine.container_start(&container.id).await?;

    let mut recorder = Recorder::default();
    let spec =
        ExecSpec { cmd: command(&["sh", "-c", "echo started; sleep 30"]), ..Default::default() };
    let outcome = tokio::time::timeout(
        Duration::from_secs(2),
        engine.exec(&container.id, &spec, &mut recorder),
    )
    .await;
    assert!(outcome.is_err(), "the exec was cut short");
    assert_eq!(recorder.text(OutputStream::Stdout), "started\n", "output arrived while running");

    let spec = ExecSpec { cmd: command(&["true"]), ..Default::default() };
    assert_eq!(engine.exec(&container.id, &spec, &mut ()).await?.exit_code, 0);
    Ok(())
}

#[tokio::test]
async fn put_file_writes_the_file_with_its_mode_and_leaves_parents_alone() -> TestResult {
    let engine = engine().await?;
    let image = golden(&engine).await?;
    let mut cleanup = Cleanup::new(&engine);
    engine.network_ensure(NETWORK).await?;
    let container = engine.container_create(&sleeper(image, &unique_name("put"))).await?;
    cleanup.container(&container.id);
    engine.container_start(&container.id).await?;
    let contents: Vec<u8> = (0..=255u8).chain(b"end\n".iter().copied()).collect();

    engine.put_file(&container.id, "/tmp/autopatch/deep/app.conf", &contents, 0o640).await?;
    engine.put_file(&container.id, "/etc/autopatch.conf", b"x=1\n", 0o600).await?;

    let cat =
        ExecSpec { cmd: command(&["cat", "/tmp/autopatch/deep/app.conf"]), ..Default::default() };
    assert_eq!(engine.exec(&container.id, &cat, &mut ()).await?.stdout, contents);
    let stat = ExecSpec {
        cmd: command(&[
            "stat",
            "-c",
            "%a %U %n",
            "/tmp/autopatch/deep/app.conf",
            "/tmp/autopatch/deep",
            "/tmp",
            "/etc/autopatch.conf",
            "/etc",
        ]),
        ..Default::default()
    };
    let result = engine.exec(&container.id, &stat, &mut ()).await?;
    assert_eq!(
        result.stdout_text(),
        "640 root /tmp/autopatch/deep/app.conf\n755 root /tmp/autopatch/deep\n\
         1777 root /tmp\n600 root /etc/autopatch.conf\n755 root /etc\n"
    );

    let error = engine
        .put_file(&container.id, "relative/path", b"", 0o644)
        .await
        .expect_err("relative paths are refused");
    assert!(matches!(error, EngineError::Api { .. }), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn commit_applies_changes_and_the_new_image_runs() -> TestResult {
    let engine = engine().await?;
    let image = golden(&engine).await?;
    let mut cleanup = Cleanup::new(&engine);
    engine.network_ensure(NETWORK).await?;
    let name = unique_name("commit");
    let builder = engine.container_create(&sleeper(image, &name)).await?;
    cleanup.container(&builder.id);
    engine.container_start(&builder.id).await?;
    engine.put_file(&builder.id, "/etc/autopatch/patched", b"yes\n", 0o644).await?;
    let reference = format!("localhost/{name}:patched");
    cleanup.image(&reference);
    let changes = [
        r#"CMD ["sleep","infinity"]"#.to_string(),
        "LABEL autopatch.test=commit".to_string(),
        r#"LABEL note="two words""#.to_string(),
        "ENV PATCHED=1".to_string(),
        "EXPOSE 80".to_string(),
    ];

    let committed = engine.commit(&builder.id, &reference, &changes).await?;

    assert_eq!(committed.tags, vec![reference.clone()]);
    assert_eq!(committed.cmd, Some(command(&["sleep", "infinity"])));
    assert_eq!(committed.labels.get("autopatch.test").map(String::as_str), Some("commit"));
    assert_eq!(committed.labels.get("note").map(String::as_str), Some("two words"));
    assert!(committed.env.contains(&"PATCHED=1".to_string()), "{:?}", committed.env);
    assert_eq!(engine.image_inspect(&reference).await?, Some(committed.clone()));

    // The committed image runs its own CMD and holds the file.
    let mut spec = sleeper(&reference, &unique_name("child"));
    spec.cmd = Vec::new();
    let child = engine.container_create(&spec).await?;
    cleanup.container(&child.id);
    engine.container_start(&child.id).await?;
    let cat = ExecSpec { cmd: command(&["cat", "/etc/autopatch/patched"]), ..Default::default() };
    assert_eq!(engine.exec(&child.id, &cat, &mut ()).await?.stdout_text(), "yes\n");
    let running = engine.container_inspect(&child.id).await?.ok_or("the child exists")?;
    assert_eq!(running.state, ContainerState::Running);

    engine.container_remove(&child.id).await?;
    engine.container_remove(&builder.id).await?;
    engine.image_remove(&reference).await?;
    assert_eq!(engine.image_inspect(&reference).await?, None);
    Ok(())
}

#[tokio::test]
async fn container_list_matches_every_label() -> TestResult {
    let engine = engine().await?;
    let image = golden(&engine).await?;
    let mut cleanup = Cleanup::new(&engine);
    engine.network_ensure(NETWORK).await?;
    let run = unique_name("list");
    let mut ids = Vec::new();
    for role in ["a", "b"] {
        let mut spec = sleeper(image, &format!("{run}-{role}"));
        spec.labels.insert("autopatch.run".to_string(), run.clone());
        spec.labels.insert("autopatch.role".to_string(), role.to_string());
        let container = engine.container_create(&spec).await?;
        cleanup.container(&container.id);
        ids.push(container.id);
    }
    engine.container_start(&ids[1]).await?;
    let label = |key: &str, value: &str| (key.to_string(), value.to_string());

    let mut both: Vec<String> = engine
        .container_list(&[label("autopatch.run", &run)])
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    both.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(both, expected, "running or not");

    let only_b = engine
        .container_list(&[label("autopatch.run", &run), label("autopatch.role", "b")])
        .await?;
    assert_eq!(only_b.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec![ids[1].as_str()]);
    assert_eq!(only_b[0].state, ContainerState::Running);

    let none = engine
        .container_list(&[label("autopatch.run", &run), label("autopatch.role", "c")])
        .await?;
    assert!(none.is_empty(), "{none:?}");
    Ok(())
}

#[tokio::test]
async fn absent_containers_are_none_or_not_found() -> TestResult {
    let engine = engine().await?;
    let name = unique_name("absent");
    assert_eq!(engine.container_inspect(&name).await?, None);
    engine.container_remove(&name).await?;
    let not_found = |result: Result<(), EngineError>| {
        assert!(matches!(result, Err(EngineError::NotFound { .. })), "{result:?}");
    };
    not_found(engine.container_start(&name).await);
    not_found(engine.container_stop(&name, Duration::from_secs(1)).await);
    not_found(engine.put_file(&name, "/x", b"", 0o644).await);
    not_found(
        engine
            .exec(&name, &ExecSpec { cmd: command(&["true"]), ..Default::default() }, &mut ())
            .await
            .map(drop),
    );
    not_found(engine.commit(&name, "localhost/never:v4", &[]).await.map(drop));

    let spec = sleeper(&format!("localhost/{name}:absent"), &name);
    engine.network_ensure(NETWORK).await?;
    let error = engine.container_create(&spec).await.expect_err("no such image");
    assert!(matches!(error, EngineError::Api { .. } | EngineError::NotFound { .. }), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn bind_mounts_share_a_host_directory_read_write_or_read_only() -> TestResult {
    let engine = engine().await?;
    let image = golden(&engine).await?;
    let mut cleanup = Cleanup::new(&engine);
    engine.network_ensure(NETWORK).await?;
    let host = tempfile::tempdir()?;
    fs_err::create_dir(host.path().join("rw"))?;
    fs_err::create_dir(host.path().join("ro"))?;
    fs_err::write(host.path().join("ro/given"), "from the host\n")?;
    let mut spec = sleeper(image, &unique_name("mounts"));
    spec.mounts = vec![
        Mount { source: host.path().join("rw"), target: "/mnt/rw".to_string(), read_only: false },
        Mount { source: host.path().join("ro"), target: "/mnt/ro".to_string(), read_only: true },
    ];
    let container = engine.container_create(&spec).await?;
    cleanup.container(&container.id);
    engine.container_start(&container.id).await?;
    let script = "cat /mnt/ro/given; echo written > /mnt/rw/out; \
                  if touch /mnt/ro/refused 2>/dev/null; then echo writable; else echo read-only; fi";
    let result = engine
        .exec(
            &container.id,
            &ExecSpec { cmd: command(&["sh", "-c", script]), ..Default::default() },
            &mut (),
        )
        .await?;
    assert_eq!(result.stdout_text(), "from the host\nread-only\n", "{}", result.stderr_text());
    assert_eq!(fs_err::read_to_string(host.path().join("rw/out"))?, "written\n");
    assert!(!host.path().join("ro/refused").exists());
    Ok(())
}

#[tokio::test]
async fn a_network_is_removed_once_unused_and_absent_is_fine() -> TestResult {
    let engine = engine().await?;
    let image = golden(&engine).await?;
    let mut cleanup = Cleanup::new(&engine);
    let network = unique_name("network");
    engine.network_ensure(&network).await?;
    let mut spec = sleeper(image, &unique_name("on-network"));
    spec.network = Some(network.clone());
    let container = engine.container_create(&spec).await?;
    cleanup.container(&container.id);
    engine.container_start(&container.id).await?;
    let error = engine.network_remove(&network).await.expect_err("the network is in use");
    assert!(matches!(error, EngineError::Api { operation: "remove network", .. }), "{error:?}");
    engine.container_remove(&container.id).await?;
    engine.network_remove(&network).await?;
    engine.network_remove(&network).await?;
    // Creating it again works: it is really gone, not just hidden.
    engine.network_ensure(&network).await?;
    engine.network_remove(&network).await?;
    Ok(())
}
