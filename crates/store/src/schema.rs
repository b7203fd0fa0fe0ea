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
];
