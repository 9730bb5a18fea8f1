import CoprModel
import Postgres

/// Build retention (decision 0006): a project with `keep_builds = N` keeps, for every package, its newest N
/// succeeded builds and every build newer than the oldest of those; finished builds older than that are deleted
/// like `copr-cli delete-build` does (rows go now, the Backend removes the files and republishes the chroots).
/// So a failed rebuild never costs the repository its last good build, and running builds are never touched.
/// Persistent projects are never pruned (their builds cannot be deleted at all). A forked build counts as a
/// succeeded one (it is a copy of one).
enum Retention {
    static let finalStates: PGQuery = "'succeeded', 'forked', 'failed', 'canceled', 'skipped'"

    /// Prunes one package (after one of its builds succeeded) or, with `packageID` nil, every package of the
    /// project (after `keep_builds` was lowered). Returns the stored uploads to remove after commit.
    static func prune(_ c: PGConnection, projectID: Int, packageID: Int? = nil) throws -> [String] {
        guard let p = try c.query("SELECT keep_builds, persistent FROM projects WHERE id = \(projectID)").first,
            let keep = try p.optionalInt("keep_builds"), keep > 0, p["persistent"] != "t"
        else { return [] }
        let packages: [Int]
        if let packageID {
            packages = [packageID]
        } else {
            packages = try c.query(
                "SELECT DISTINCT package_id FROM builds WHERE project_id = \(projectID) AND package_id IS NOT NULL ORDER BY package_id"
            ).rows.map { try $0.int("package_id") }
        }
        var uploads: [String] = []
        for package in packages {
            // The Nth newest succeeded build is the oldest one kept; finished builds older than it go.
            let rows = try c.query(
                """
                WITH oldest_kept AS (
                    SELECT id FROM builds WHERE project_id = \(projectID) AND package_id = \(package) AND state IN ('succeeded', 'forked')
                    ORDER BY id DESC OFFSET \(keep - 1) LIMIT 1
                )
                SELECT b.id, b.project_id, b.state, b.srpm_path, b.project_dirname, p.ownername, p.name
                FROM builds b JOIN projects p ON p.id = b.project_id, oldest_kept k
                WHERE b.project_id = \(projectID) AND b.package_id = \(package) AND b.id < k.id AND b.state IN (\(finalStates))
                ORDER BY b.id FOR UPDATE OF b
                """
            ).rows
            // One delete action per results directory (a package can have builds in several CoprDirs).
            for dirname in Set(rows.compactMap { $0.optionalString("project_dirname") }).sorted() {
                uploads += try BuildAPI.removeBuilds(c, rows: rows.filter { $0.optionalString("project_dirname") == dirname })
            }
        }
        return uploads
    }
}
