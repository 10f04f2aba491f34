//! Versioned migrations of the Postgres store: the `schema_version` table holds the version;
//! index + 1 of [`MIGRATIONS`] is the version after applying it.

/// The migrations, in order. Ids are compared in the "C" collation (byte order), as SQLite
/// compares them: UUID v7 run ids then sort by creation time.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: runs, step paths, events, shared run state.
    "CREATE TABLE runs (
        id TEXT COLLATE \"C\" PRIMARY KEY,
        workflow TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        status TEXT NOT NULL,
        input TEXT NOT NULL,
        output TEXT,
        error TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        owner TEXT,
        lease_until BIGINT
    );
    CREATE INDEX runs_active ON runs (status, lease_until) WHERE status IN ('running', 'suspended');
    CREATE INDEX runs_by_owner ON runs (owner) WHERE owner IS NOT NULL;
    CREATE TABLE steps (
        run_id TEXT COLLATE \"C\" NOT NULL,
        path TEXT COLLATE \"C\" NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        output TEXT,
        error TEXT,
        payload TEXT,
        resume TEXT,
        attempt BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (run_id, path)
    );
    CREATE TABLE events (
        run_id TEXT COLLATE \"C\" NOT NULL,
        seq BIGINT NOT NULL,
        at BIGINT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE run_state (
        run_id TEXT COLLATE \"C\" NOT NULL,
        key TEXT COLLATE \"C\" NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, key)
    );",
    // 2: approval gates, their audit trail and notification outbox.
    "CREATE TABLE gates (
        run_id TEXT COLLATE \"C\" NOT NULL,
        gate TEXT COLLATE \"C\" NOT NULL,
        workflow TEXT NOT NULL,
        status TEXT NOT NULL,
        deadline_at BIGINT,
        delivered BOOLEAN NOT NULL,
        created_at BIGINT NOT NULL,
        version BIGINT NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (run_id, gate)
    );
    CREATE INDEX gates_by_status ON gates (status, created_at);
    CREATE INDEX gates_by_deadline ON gates (deadline_at) WHERE status = 'pending';
    CREATE TABLE audit (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id TEXT NOT NULL,
        gate TEXT NOT NULL,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX audit_by_run ON audit (run_id, gate, id);
    CREATE INDEX audit_by_actor ON audit (actor, id);
    CREATE TABLE outbox (
        run_id TEXT COLLATE \"C\" NOT NULL,
        gate TEXT COLLATE \"C\" NOT NULL,
        notifier TEXT COLLATE \"C\" NOT NULL,
        event TEXT COLLATE \"C\" NOT NULL,
        status TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        next_at BIGINT NOT NULL,
        last_error TEXT,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (run_id, gate, notifier, event)
    );
    CREATE INDEX outbox_due ON outbox (next_at) WHERE status = 'pending';",
];
