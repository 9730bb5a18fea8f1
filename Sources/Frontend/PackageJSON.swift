import CoprModel
import HTTPCore
import KoperJSON
import KoperStore
import Postgres

/// API v3's package object and the source descriptions packages and builds store.
enum PackageJSON {
    static let sourceTypes = ["scm", "url", "upload", "pypi", "rubygems", "custom", "distgit"]

    /// Source description of an SCM package or build (copr-cli's add-package-scm / build-scm body).
    static func scmSource(_ o: JSONObject) throws -> JSONObject {
        guard let url = o["clone_url"]?.stringValue, !url.isEmpty else {
            throw APIError.badRequest("clone_url: This field is required.")
        }
        guard
            url.hasPrefix("https://") || url.hasPrefix("http://") || url.hasPrefix("git://") || url.hasPrefix("ssh://")
                || url.contains("@")
        else {
            throw APIError.badRequest("clone_url: Invalid URL")
        }
        let type = o["scm_type"]?.stringValue ?? o["type"]?.stringValue ?? "git"
        guard ["git", "svn"].contains(type) else { throw APIError.badRequest("scm_type: Not a valid choice") }
        let method = o["source_build_method"]?.stringValue ?? "rpkg"
        guard ["rpkg", "tito", "tito_test", "make_srpm"].contains(method) else {
            throw APIError.badRequest("source_build_method: Not a valid choice")
        }
        return [
            "clone_url": .string(url),
            "committish": .string(o["committish"]?.stringValue ?? ""),
            "subdirectory": .string(o["subdirectory"]?.stringValue ?? ""),
            "spec": .string(o["spec"]?.stringValue ?? ""),
            "type": .string(type),
            "source_build_method": .string(method),
        ]
    }

    static func source(type: String, _ o: JSONObject) throws -> JSONObject {
        switch type {
        case "scm":
            return try scmSource(o)
        case "url":
            guard let u = o["url"]?.stringValue, u.hasPrefix("http://") || u.hasPrefix("https://") else {
                throw APIError.badRequest("url: A valid http(s) URL is required.")
            }
            return ["url": .string(u)]
        case "upload":
            return [:]
        default:
            // pypi, rubygems, custom, distgit: stored as sent (minus client-side keys); built in a later issue.
            var copy = o
            for k in ["package_name", "max_builds", "timeout", "chroot_denylist", "webhook_rebuild"] { copy[k] = nil }
            return copy
        }
    }

    static func json(
        _ c: PGConnection,
        _ package: PackageRecord,
        project: ProjectRecord,
        withLatest: Bool,
        withLatestSucceeded: Bool,
        resultsBase: String,
        publicBase: String
    ) throws -> JSON {
        func latest(_ succeeded: Bool) throws -> JSON {
            try BuildStore.latest(c, packageID: package.id, succeeded: succeeded).map {
                Builds.json($0, resultsBase: resultsBase, publicBase: publicBase)
            } ?? .null
        }
        var dict = package.source
        dict["max_builds"] = JSON(package.maxBuilds)
        dict["timeout"] = JSON(package.timeout)
        dict["chroot_denylist"] = JSON(package.chrootDenylist)
        return [
            "id": .int(package.id),
            "name": .string(package.name),
            "ownername": .string(project.ownername),
            "projectname": .string(project.name),
            "source_type": .string(package.sourceType),
            "source_dict": .object(dict),
            "auto_rebuild": .bool(package.webhookRebuild),
            "webhook_rebuild": .bool(package.webhookRebuild),
            "builds": [
                "latest": withLatest ? try latest(false) : .null,
                "latest_succeeded": withLatestSucceeded ? try latest(true) : .null,
            ],
        ]
    }
}
