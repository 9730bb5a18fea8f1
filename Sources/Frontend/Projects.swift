import KoperJSON
import KoperStore
import LibCrypto
import Postgres

/// Frontend-level wrappers over the store (decision 0009): they run on a pooled connection inside a route's
/// closure, turn a missing record into 404 and a refused check into 401/403, and render records as API v3 JSON.

enum Projects {
    static func require(_ c: PGConnection, owner: String, name: String) throws -> ProjectRecord {
        guard let p = try ProjectStore.find(c, owner: owner, name: name) else {
            throw APIError.notFound("Project \(owner)/\(name) does not exist.")
        }
        return p
    }

    static func find(_ c: PGConnection, owner: String, name: String) throws -> ProjectRecord? {
        try ProjectStore.find(c, owner: owner, name: name)
    }

    static func find(_ c: PGConnection, id: Int) throws -> ProjectRecord? {
        try ProjectStore.find(c, id: id)
    }

    static func json(_ p: ProjectRecord, resultsBase: String) -> JSON {
        var chrootRepos = JSONObject()
        for ch in p.chroots {
            chrootRepos[ch] = .string("\(resultsBase)/\(p.ownername)/\(p.name)/\(ch)/")
        }
        var deleteAfterDays: JSON = .null
        if let d = p.deleteAfter {
            // Whole days left, rounded to the nearest day (the stored instant and our clock differ by < 1 s).
            deleteAfterDays = .int(max(0, Int((Double(d - Int(nowEpoch())) / 86_400).rounded())))
        }
        let o: JSONObject = [
            "id": .int(p.id),
            "name": .string(p.name),
            "projectname": .string(p.name),
            "ownername": .string(p.ownername),
            "full_name": .string(p.fullName),
            "description": .string(p.description),
            "instructions": .string(p.instructions),
            "homepage": JSON(p.homepage),
            "contact": JSON(p.contact),
            "devel_mode": .bool(p.develMode),
            "persistent": .bool(p.persistent),
            "unlisted_on_hp": .bool(p.unlistedOnHP),
            "auto_prune": .bool(p.autoPrune),
            "enable_net": .bool(p.enableNet),
            "bootstrap": JSON(p.bootstrap),
            "bootstrap_image": JSON(p.bootstrapImage),
            "isolation": JSON(p.isolation),
            "module_hotfixes": .bool(p.moduleHotfixes),
            "appstream": .bool(p.appstream),
            "follow_fedora_branching": .bool(p.followFedoraBranching),
            "multilib": .bool(p.multilib),
            "fedora_review": .bool(p.fedoraReview),
            "repo_priority": JSON(p.repoPriority),
            "delete_after_days": deleteAfterDays,
            "keep_builds": JSON(p.keepBuilds),
            "additional_repos": JSON(p.additionalRepos),
            "runtime_dependencies": JSON(p.runtimeDependencies),
            "packit_forge_projects_allowed": JSON(p.packitForgeProjectsAllowed),
            "storage": .string(p.storage),
            "chroot_repos": .object(chrootRepos),
        ]
        return .object(o)
    }
}

func nowEpoch() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec)
}

#if canImport(Glibc)
import Glibc
#endif
