import CoprModel
import Foundation
import KoperJSON
import KoperProtocol
import KoperStore
import Postgres

/// API v3's build and build-chroot objects, from the store's records.
enum Builds {
    static func find(_ c: PGConnection, id: Int) throws -> BuildRecord? {
        try BuildStore.find(c, id: id)
    }

    static func require(_ c: PGConnection, id: Int) throws -> BuildRecord {
        guard let build = try BuildStore.find(c, id: id) else { throw APIError.notFound("Build \(id) does not exist.") }
        return build
    }

    static func chrootRows(_ c: PGConnection, buildID: Int, descending: Bool = false) throws -> [BuildChrootRecord] {
        try BuildStore.chroots(c, buildID: buildID, descending: descending)
    }

    @discardableResult
    static func refreshState(_ c: PGConnection, buildID: Int) throws -> BuildState {
        try BuildStore.refreshState(c, buildID: buildID)
    }

    static func pkgVersion(_ b: BuildRecord) -> String? { b.pkgVersionText }

    static func srpmURL(_ b: BuildRecord, publicBase: String) -> String? {
        TaskDescriptions.srpmURL(path: b.srpmPath, url: b.srpmURL, publicBase: publicBase)
    }

    static func json(_ b: BuildRecord, resultsBase: String, publicBase: String) -> JSON {
        let o: JSONObject = [
            "id": .int(b.id),
            "state": .string(b.state.rawValue),
            "ownername": .string(b.ownername),
            "projectname": .string(b.projectname),
            "project_dirname": .string(b.projectDirname),
            "submitter": JSON(b.submitterName),
            "is_background": .bool(b.isBackground),
            "repo_url": .string("\(resultsBase)/\(b.ownername)/\(b.projectname)"),
            "source_package": [
                "name": JSON(b.pkgName),
                "version": JSON(b.pkgVersionText),
                "url": JSON(srpmURL(b, publicBase: publicBase)),
            ],
            "submitted_on": JSON(b.submittedOn),
            "started_on": JSON(b.startedOn),
            "ended_on": JSON(b.endedOn),
            "chroots": JSON(b.chrootNames),
        ]
        return .object(o)
    }

    static func chrootJSON(_ ch: BuildChrootRecord, build: BuildRecord, resultsBase: String) -> JSON {
        var resultURL: JSON = .null
        if let d = ch.resultDir, !d.isEmpty {
            resultURL = .string("\(resultsBase)/\(build.ownername)/\(build.projectDirname)/\(ch.name)/\(d)/")
        }
        return [
            "name": .string(ch.name),
            "state": .string(ch.state.rawValue),
            "started_on": JSON(ch.startedOn),
            "ended_on": JSON(ch.endedOn),
            "result_url": resultURL,
        ]
    }

    /// `[nevra…]` as API v3's built-packages answers list them.
    static func builtPackages(_ ch: BuildChrootRecord) -> JSON {
        .array(
            ch.builtPackages.map {
                [
                    "name": .string($0.name), "epoch": JSON($0.epoch), "version": .string($0.version),
                    "release": .string($0.release), "arch": .string($0.arch),
                ]
            }
        )
    }
}
