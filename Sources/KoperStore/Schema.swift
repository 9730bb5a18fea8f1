public import Postgres

/// The Frontend's database schema, as versioned migrations applied at start (and by `koper-frontend migrate`).
/// Never edit a released migration; add a new one.
public enum Schema {
    public static let migrations: [PGMigration] = [
        PGMigration(
            version: 1,
            name: "initial",
            sql: """
                CREATE TABLE users (
                    id bigserial PRIMARY KEY,
                    name text NOT NULL UNIQUE,
                    email text,
                    is_admin boolean NOT NULL DEFAULT false,
                    api_login text NOT NULL UNIQUE,
                    api_token_sha256 text,
                    api_token_expiration date,
                    created_on timestamptz NOT NULL DEFAULT now()
                );
                CREATE TABLE copr_groups (
                    id bigserial PRIMARY KEY,
                    name text NOT NULL UNIQUE,
                    fas_name text NOT NULL
                );
                CREATE TABLE group_members (
                    group_id bigint NOT NULL REFERENCES copr_groups(id) ON DELETE CASCADE,
                    user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    PRIMARY KEY (group_id, user_id)
                );
                CREATE TABLE mock_chroots (
                    id serial PRIMARY KEY,
                    name text NOT NULL UNIQUE,
                    os text NOT NULL,
                    version text NOT NULL,
                    arch text NOT NULL,
                    comment text NOT NULL DEFAULT '',
                    is_active boolean NOT NULL DEFAULT true
                );
                CREATE TABLE projects (
                    id bigserial PRIMARY KEY,
                    ownername text NOT NULL,
                    owner_user_id bigint REFERENCES users(id),
                    owner_group_id bigint REFERENCES copr_groups(id),
                    name text NOT NULL,
                    created_by bigint REFERENCES users(id),
                    description text NOT NULL DEFAULT '',
                    instructions text NOT NULL DEFAULT '',
                    homepage text,
                    contact text,
                    devel_mode boolean NOT NULL DEFAULT false,
                    persistent boolean NOT NULL DEFAULT false,
                    unlisted_on_hp boolean NOT NULL DEFAULT false,
                    auto_prune boolean NOT NULL DEFAULT true,
                    enable_net boolean NOT NULL DEFAULT false,
                    bootstrap text NOT NULL DEFAULT 'default',
                    bootstrap_image text,
                    isolation text NOT NULL DEFAULT 'default',
                    module_hotfixes boolean NOT NULL DEFAULT false,
                    appstream boolean NOT NULL DEFAULT false,
                    follow_fedora_branching boolean NOT NULL DEFAULT true,
                    multilib boolean NOT NULL DEFAULT false,
                    fedora_review boolean NOT NULL DEFAULT false,
                    repo_priority integer,
                    delete_after timestamptz,
                    additional_repos text[] NOT NULL DEFAULT '{}',
                    runtime_dependencies text[] NOT NULL DEFAULT '{}',
                    packit_forge_projects_allowed text[] NOT NULL DEFAULT '{}',
                    storage text NOT NULL DEFAULT 'backend',
                    forked_from_id bigint REFERENCES projects(id) ON DELETE SET NULL,
                    created_on timestamptz NOT NULL DEFAULT now(),
                    CHECK ((owner_user_id IS NULL) <> (owner_group_id IS NULL)),
                    UNIQUE (ownername, name)
                );
                CREATE TABLE project_chroots (
                    project_id bigint NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                    mock_chroot_id integer NOT NULL REFERENCES mock_chroots(id),
                    additional_packages text NOT NULL DEFAULT '',
                    additional_repos text[] NOT NULL DEFAULT '{}',
                    additional_modules text NOT NULL DEFAULT '',
                    with_opts text NOT NULL DEFAULT '',
                    without_opts text NOT NULL DEFAULT '',
                    isolation text NOT NULL DEFAULT 'unchanged',
                    bootstrap text,
                    bootstrap_image text,
                    delete_comps boolean NOT NULL DEFAULT false,
                    PRIMARY KEY (project_id, mock_chroot_id)
                );
                CREATE TABLE permissions (
                    project_id bigint NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                    user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    builder smallint NOT NULL DEFAULT 0,
                    admin smallint NOT NULL DEFAULT 0,
                    PRIMARY KEY (project_id, user_id)
                );
                CREATE TABLE packages (
                    id bigserial PRIMARY KEY,
                    project_id bigint NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                    name text NOT NULL,
                    source_type text NOT NULL,
                    source_json text NOT NULL DEFAULT '{}',
                    webhook_rebuild boolean NOT NULL DEFAULT false,
                    max_builds integer,
                    chroot_denylist text[] NOT NULL DEFAULT '{}',
                    timeout integer,
                    UNIQUE (project_id, name)
                );
                CREATE TABLE builds (
                    id bigserial PRIMARY KEY,
                    project_id bigint NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                    project_dirname text NOT NULL,
                    package_id bigint REFERENCES packages(id) ON DELETE SET NULL,
                    submitter_id bigint REFERENCES users(id) ON DELETE SET NULL,
                    source_type text NOT NULL,
                    source_json text NOT NULL DEFAULT '{}',
                    source_state text NOT NULL,
                    -- Derived build state (CoprModel.BuildStateDerivation), refreshed on every change; kept for listing/filtering.
                    state text NOT NULL,
                    canceled boolean NOT NULL DEFAULT false,
                    pkg_name text,
                    pkg_epoch integer,
                    pkg_version text,
                    pkg_release text,
                    srpm_path text,
                    srpm_url text,
                    srpm_sha256 text,
                    srpm_size bigint,
                    is_background boolean NOT NULL DEFAULT false,
                    timeout integer NOT NULL,
                    enable_net boolean NOT NULL,
                    isolation text NOT NULL DEFAULT 'unchanged',
                    bootstrap text,
                    selected_chroots text[] NOT NULL DEFAULT '{}',
                    submitted_on timestamptz NOT NULL DEFAULT now(),
                    source_started_on timestamptz,
                    source_ended_on timestamptz,
                    source_claimed_by text,
                    source_result_dir text
                );
                CREATE INDEX builds_project_idx ON builds (project_id, id DESC);
                CREATE INDEX builds_package_idx ON builds (package_id, id DESC);
                CREATE INDEX builds_source_pending_idx ON builds (id) WHERE source_state IN ('pending', 'importing');
                CREATE TABLE build_chroots (
                    build_id bigint NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
                    mock_chroot_id integer NOT NULL REFERENCES mock_chroots(id),
                    name text NOT NULL,
                    state text NOT NULL,
                    started_on timestamptz,
                    ended_on timestamptz,
                    result_dir text,
                    built_packages text,
                    claimed_by text,
                    PRIMARY KEY (build_id, mock_chroot_id)
                );
                CREATE INDEX build_chroots_pending_idx ON build_chroots (build_id) WHERE state = 'pending';
                CREATE INDEX build_chroots_cancel_idx ON build_chroots (build_id) WHERE state IN ('starting', 'running');
                -- Backend updates already applied (idempotency of retried POSTs).
                CREATE TABLE backend_updates (
                    update_id text PRIMARY KEY,
                    applied_on timestamptz NOT NULL DEFAULT now()
                );
                -- Work for the Backend that is not a build: createrepo, deletes, forks.
                CREATE TABLE actions (
                    id bigserial PRIMARY KEY,
                    action_type text NOT NULL,
                    ownername text,
                    projectname text,
                    data text NOT NULL DEFAULT '{}',
                    state text NOT NULL DEFAULT 'pending',
                    created_on timestamptz NOT NULL DEFAULT now(),
                    ended_on timestamptz
                );
                CREATE INDEX actions_pending_idx ON actions (id) WHERE state = 'pending';
                -- Builds (or chroots) canceled while a builder had them; the Backend kills them and acknowledges.
                CREATE TABLE cancel_requests (
                    task_id text PRIMARY KEY,
                    created_on timestamptz NOT NULL DEFAULT now()
                );
                """
        ),
        PGMigration(
            version: 2,
            name: "build read model",
            sql: """
                -- GET /api_3/build/ID is the hottest read: serve it from one row (decision 0002). Owner, project and
                -- submitter names never change, so they are copied onto the build; the chroot list and the derived
                -- start/end times are refreshed with the derived state on every change.
                ALTER TABLE builds
                    ADD COLUMN ownername text,
                    ADD COLUMN projectname text,
                    ADD COLUMN submitter_name text,
                    ADD COLUMN chroot_names text NOT NULL DEFAULT '',
                    ADD COLUMN submitted_epoch bigint,
                    ADD COLUMN started_epoch bigint,
                    ADD COLUMN ended_epoch bigint;
                UPDATE builds b SET ownername = p.ownername, projectname = p.name FROM projects p WHERE p.id = b.project_id;
                UPDATE builds b SET submitter_name = u.name FROM users u WHERE u.id = b.submitter_id;
                UPDATE builds b SET submitted_epoch = extract(epoch from b.submitted_on)::bigint,
                    chroot_names = coalesce((SELECT string_agg(name, ',' ORDER BY name) FROM build_chroots WHERE build_id = b.id), ''),
                    started_epoch = (SELECT min(x) FROM (SELECT extract(epoch from started_on)::bigint AS x FROM build_chroots WHERE build_id = b.id
                                     UNION ALL SELECT extract(epoch from b.source_started_on)::bigint) s),
                    ended_epoch = CASE WHEN b.state IN ('succeeded', 'failed', 'canceled', 'skipped', 'forked') THEN
                                  (SELECT max(x) FROM (SELECT extract(epoch from ended_on)::bigint AS x FROM build_chroots WHERE build_id = b.id
                                   UNION ALL SELECT extract(epoch from b.source_ended_on)::bigint) s) END;
                ALTER TABLE builds ALTER COLUMN ownername SET NOT NULL, ALTER COLUMN projectname SET NOT NULL,
                    ALTER COLUMN submitted_epoch SET DEFAULT extract(epoch from now())::bigint;
                UPDATE builds SET submitted_epoch = extract(epoch from submitted_on)::bigint WHERE submitted_epoch IS NULL;
                ALTER TABLE builds ALTER COLUMN submitted_epoch SET NOT NULL;
                """
        ),
        PGMigration(
            version: 3,
            name: "build retention",
            sql: """
                -- Retention (decision 0006): keep the newest N succeeded builds of each package; NULL keeps everything.
                ALTER TABLE projects ADD COLUMN keep_builds integer CHECK (keep_builds IS NULL OR keep_builds BETWEEN 1 AND 1000);
                CREATE INDEX builds_retention_idx ON builds (project_id, package_id, id DESC) WHERE package_id IS NOT NULL;
                """
        ),
        PGMigration(
            version: 4,
            name: "forked builds",
            sql: """
                -- A forked build names the build it copies (forking again with --confirm skips what is there).
                ALTER TABLE builds ADD COLUMN forked_from_id bigint REFERENCES builds(id) ON DELETE SET NULL;
                CREATE INDEX builds_forked_from_idx ON builds (forked_from_id) WHERE forked_from_id IS NOT NULL;
                """
        ),
    ]
}
