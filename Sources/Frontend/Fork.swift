import CoprModel
import KoperJSON
import Postgres

/// Forking copies builds as upstream does: for every package of the source project, its newest succeeded build
/// becomes a `forked` build of the fork, with one build chroot per succeeded chroot the fork also has. The Backend's
/// `fork` action then copies the result directories, re-signs the RPMs with the fork's own key and publishes the
/// fork's repositories (docs/internal-api.md).
enum ForkBuilds {
    /// Creates the forked builds in `target` and returns the action's `builds_map`: chroot → {source result dir →
    /// fork result dir}. Packages that already have a forked copy of that same build in the target are skipped
    /// (forking twice with --confirm adds nothing twice).
    static func copy(_ c: PGConnection, source: Project, targetID: Int, targetOwner: String, targetName: String, submitter: User) throws -> JSONObject {
        let builds = try c.query(
            """
            SELECT DISTINCT ON (b.package_id) b.id, b.package_id, k.name AS package_name
            FROM builds b JOIN packages k ON k.id = b.package_id
            WHERE b.project_id = \(source.id) AND b.state = 'succeeded'
            ORDER BY b.package_id, b.id DESC
            """
        ).rows
        var map: [String: JSONObject] = [:]
        for build in builds {
            let sourceBuild = try build.string("id")
            let packageName = try build.string("package_name")
            guard let targetPackage = try c.query("SELECT id FROM packages WHERE project_id = \(targetID) AND name = \(packageName)").first
            else { continue }
            if try c.query(
                "SELECT 1 FROM builds WHERE project_id = \(targetID) AND forked_from_id = \(sourceBuild)"
            ).first != nil { continue }
            let chroots = try c.query(
                """
                SELECT bc.mock_chroot_id, bc.name, bc.result_dir, bc.built_packages,
                       extract(epoch from bc.started_on)::bigint AS started, extract(epoch from bc.ended_on)::bigint AS ended
                FROM build_chroots bc JOIN project_chroots pc ON pc.mock_chroot_id = bc.mock_chroot_id AND pc.project_id = \(targetID)
                WHERE bc.build_id = \(sourceBuild) AND bc.state = 'succeeded' AND bc.result_dir IS NOT NULL ORDER BY bc.name
                """
            ).rows
            guard !chroots.isEmpty else { continue }
            let newID = try c.query(
                """
                INSERT INTO builds (project_id, ownername, projectname, submitter_name, project_dirname, package_id, submitter_id, source_type,
                                    source_json, source_state, state, pkg_name, pkg_epoch, pkg_version, pkg_release, srpm_url, srpm_sha256, srpm_size,
                                    is_background, timeout, enable_net, isolation, bootstrap, selected_chroots, source_started_on, source_ended_on, forked_from_id)
                SELECT \(targetID), \(targetOwner), \(targetName), \(submitter.name), \(targetName), \(try targetPackage.string("id")), \(submitter.id), source_type,
                       source_json, 'succeeded', 'forked', pkg_name, pkg_epoch, pkg_version, pkg_release, srpm_url, srpm_sha256, srpm_size,
                       is_background, timeout, enable_net, isolation, bootstrap, \(try chroots.map { try $0.string("name") })::text[], source_started_on, source_ended_on, id
                FROM builds WHERE id = \(sourceBuild)
                RETURNING id
                """
            ).first!.int("id")
            for ch in chroots {
                let name = try ch.string("name")
                let newDir = resultDirName(buildID: newID, packageName: packageName)
                try c.execute(
                    """
                    INSERT INTO build_chroots (build_id, mock_chroot_id, name, state, started_on, ended_on, result_dir, built_packages)
                    VALUES (\(newID), \(try ch.string("mock_chroot_id")), \(name), 'forked', to_timestamp(\(ch.optionalString("started"))::bigint), to_timestamp(\(ch.optionalString("ended"))::bigint), \(newDir), \(ch.optionalString("built_packages")))
                    """
                )
                var entry = map[name] ?? [:]
                entry[try ch.string("result_dir")] = .string(newDir)
                map[name] = entry
            }
            try Builds.refreshState(c, buildID: newID)
        }
        var out = JSONObject()
        for name in map.keys.sorted() { out[name] = .object(map[name]!) }
        return out
    }
}
