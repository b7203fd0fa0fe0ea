//! The schema and its migrations. Append a migration; never edit a shipped one.

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: documents, builds, images, events.
    r#"
    CREATE TABLE components (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        source_name TEXT NOT NULL,
        document TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE recipes (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        source_name TEXT NOT NULL,
        document TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE pipelines (
        name TEXT PRIMARY KEY,
        source_name TEXT NOT NULL,
        document TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE builds (
        id TEXT PRIMARY KEY,
        pipeline TEXT,
        recipe TEXT NOT NULL,
        recipe_version TEXT NOT NULL,
        build_number INTEGER NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        client_token TEXT UNIQUE,
        parent_image TEXT NOT NULL,
        artifact_dir TEXT NOT NULL,
        owner_pid INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        finished_at INTEGER,
        UNIQUE (recipe, recipe_version, build_number)
    );
    CREATE TABLE images (
        version TEXT PRIMARY KEY,
        recipe TEXT NOT NULL,
        recipe_version TEXT NOT NULL,
        build_number INTEGER NOT NULL,
        build_id TEXT,
        pipeline TEXT,
        engine_image_id TEXT NOT NULL,
        engine_reference TEXT NOT NULL,
        parent TEXT,
        parent_engine_image_id TEXT,
        manifest TEXT NOT NULL,
        evidence TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        subject TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX events_subject ON events (subject, seq);
    "#,
    // 2: stacks (CloudFormation), their resources and events; fleet instances.
    r#"
    CREATE TABLE stacks (
        stack_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        status_reason TEXT,
        template_body TEXT NOT NULL,
        template_source TEXT NOT NULL,
        parameters TEXT NOT NULL,
        outputs TEXT NOT NULL DEFAULT '[]',
        imports TEXT NOT NULL DEFAULT '[]',
        disable_rollback INTEGER NOT NULL DEFAULT 0,
        client_token TEXT,
        previous_template_body TEXT,
        previous_template_source TEXT,
        previous_parameters TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        deleted_at INTEGER
    );
    CREATE UNIQUE INDEX stacks_live_name ON stacks (name) WHERE deleted_at IS NULL;
    CREATE TABLE stack_resources (
        stack_id TEXT NOT NULL REFERENCES stacks (stack_id),
        logical_id TEXT NOT NULL,
        resource_type TEXT NOT NULL,
        physical_id TEXT,
        status TEXT NOT NULL,
        status_reason TEXT,
        properties TEXT NOT NULL DEFAULT '{}',
        attributes TEXT NOT NULL DEFAULT '{}',
        replaced TEXT,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (stack_id, logical_id)
    );
    CREATE TABLE stack_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        stack_id TEXT NOT NULL REFERENCES stacks (stack_id),
        stack_name TEXT NOT NULL,
        logical_id TEXT NOT NULL,
        physical_id TEXT,
        resource_type TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        at INTEGER NOT NULL
    );
    CREATE INDEX stack_events_stack ON stack_events (stack_id, seq);
    CREATE TABLE instances (
        instance_id TEXT PRIMARY KEY,
        group_name TEXT NOT NULL,
        stack_id TEXT,
        launch_config TEXT NOT NULL,
        image TEXT NOT NULL,
        engine_image_id TEXT NOT NULL,
        instance_type TEXT NOT NULL,
        zone TEXT NOT NULL,
        subnet TEXT,
        lifecycle TEXT NOT NULL,
        health TEXT NOT NULL,
        target_health TEXT,
        container_id TEXT,
        private_ip TEXT,
        host_port INTEGER,
        reason TEXT,
        launched_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        terminated_at INTEGER
    );
    CREATE INDEX instances_group ON instances (group_name, lifecycle);
    "#,
    // 3: settings; this state directory's namespace for engine tags, made
    // once, so two state directories on one host never tag the same name.
    r#"
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO settings (key, value) VALUES ('engine_namespace', lower(hex(randomblob(4))));
    "#,
    // 4: the component versions each build ran (what its recipe's references
    // resolved to), in recipe order, for the start condition.
    r#"
    CREATE TABLE build_components (
        build_id TEXT NOT NULL REFERENCES builds (id),
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        build_number INTEGER NOT NULL,
        PRIMARY KEY (build_id, position)
    );
    "#,
];
