import CoprModel
import HTTPCore
import KoperStore
import Postgres

/// `GET /coprs/OWNER/DIR/repo/NAME_RELEASE/FILE?arch=ARCH` — the file `dnf copr enable` writes (copr-protocol.md §6).
enum RepoAPI {
    static func repoFile(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try await render(app, ctx, owner: ctx.param("owner"))
    }

    static func repoFileGroup(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try await render(app, ctx, owner: "@" + ctx.param("group"))
    }

    static func render(_ app: FrontendApp, _ ctx: RequestContext, owner rawOwner: String) async throws -> HTTPResponse {
        let dirText = ctx.param("project")
        let release = ctx.param("release")
        let arch = ctx.q("arch").flatMap { $0.isEmpty ? nil : $0 }
        guard let owner = OwnerName(rawOwner), let dir = try? CoprDirName(dirText) else {
            throw APIError.notFound("Copr dir \(rawOwner)/\(dirText) does not exist.")
        }
        let results = app.config.resultsBase
        let host = ctx.head.headers["Host"] ?? ctx.hostWithoutPort
        let text = try await app.db.withConnection { c -> String in
            guard let project = try Projects.find(c, owner: owner.raw, name: dir.project) else {
                throw APIError.notFound("Copr dir \(owner.raw)/\(dirText) does not exist.")
            }
            guard let chroot = RepoFile.matchChroot(nameRelease: release, arch: arch, enabled: project.chroots) else {
                throw APIError(
                    404,
                    "Chroot \(release) does not exist in \(owner.raw)/\(dirText)",
                    headers: ["Copr-Error-Data": RepoFile.errorDataHeaderValue(availableChroots: project.chroots)]
                )
            }
            let deps = try resolveDependencies(c, project: project)
            let request = RepoFileRequest(
                hostname: host,
                resultsURL: results,
                owner: owner,
                projectName: project.name,
                dirName: dir.name,
                chroot: chroot,
                moduleHotfixes: project.moduleHotfixes,
                repoPriority: project.repoPriority,
                multilibArch: RepoFile.multilibArch(
                    projectMultilib: project.multilib,
                    requestedArch: arch,
                    chroot: chroot,
                    activeChroots: project.chroots
                ),
                runtimeDependencies: deps
            )
            return RepoFile.render(request)
        }
        return HTTPResponse(
            status: 200,
            headers: [
                "Content-Type": "text/plain; charset=utf-8",
                "Content-Disposition": "filename=\(RepoFile.fileName(owner: owner, dirName: dir.name))",
            ],
            body: Array(text.utf8)
        )
    }

    /// Runtime dependencies, followed transitively through `copr://` references (bounded, cycle-safe).
    static func resolveDependencies(_ c: PGConnection, project: ProjectRecord) throws -> [RepoFileDependency] {
        var result: [RepoFileDependency] = []
        var seen: Set<String> = [project.fullName]
        var queue = project.runtimeDependencies
        var steps = 0
        while !queue.isEmpty && steps < 100 {
            steps += 1
            let dep = queue.removeFirst()
            switch RepoReference(dep) {
            case .copr(let owner, let dir):
                let key = "\(owner.raw)/\(dir.name)"
                guard seen.insert(key).inserted else { continue }
                if let p = try Projects.find(c, owner: owner.raw, name: dir.project) {
                    result.append(
                        .project(
                            RepoFileProjectDependency(
                                owner: owner,
                                projectName: p.name,
                                dirName: dir.name,
                                moduleHotfixes: p.moduleHotfixes,
                                repoPriority: p.repoPriority
                            )
                        )
                    )
                    queue.append(contentsOf: p.runtimeDependencies)
                } else {
                    result.append(.missingProject(key))
                }
            case .url(let u):
                guard seen.insert(u).inserted else { continue }
                result.append(.url(u))
            case nil:
                continue
            }
        }
        return result
    }
}
