import CoprModel
import HTTPCore
import KoperJSON
import KoperStore
import Postgres

/// Minimal server-rendered pages: the URLs copr-cli prints must exist. (The full web UI is a later issue.)
enum Web {
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }

    static func page(title: String, body: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(escape(title)) - Koper</title></head>
        <body><header><a href="/">Koper</a></header>
        \(body)
        </body></html>

        """
    }

    static func home(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let projects = try await app.db.withConnection { c in try ProjectStore.listedOnHomepage(c, limit: 100) }
        var items = ""
        for p in projects {
            let owner = OwnerName(p.ownername)?.webPathPart ?? ""
            items +=
                "<li><!--copr-project--><a href=\"/coprs/\(escape(owner))/\(escape(p.name))/\">\(escape(p.ownername))/\(escape(p.name))</a> \(escape(p.description))</li>\n"
        }
        if items.isEmpty { items = "<li>No projects...</li>" }
        return htmlResponse(200, page(title: "Projects", body: "<h1>Projects</h1><ul>\(items)</ul>"))
    }

    static func apiPage(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        htmlResponse(
            200,
            page(
                title: "API",
                body:
                    "<h1>API</h1><p>Ask an administrator for an API token (<code>koper-frontend token mint USER</code>) or renew yours with <code>copr-cli new-api-token</code>.</p>"
            )
        )
    }

    static func project(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try await projectPage(app, ctx, owner: ctx.param("owner"))
    }

    static func groupProject(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try await projectPage(app, ctx, owner: "@" + ctx.param("group"))
    }

    static func projectPage(_ app: FrontendApp, _ ctx: RequestContext, owner: String) async throws -> HTTPResponse {
        let name = ctx.param("project")
        let results = app.config.resultsBase
        let (project, builds) = try await app.db.withConnection { c -> (ProjectRecord, [BuildRecord]) in
            let p = try Projects.require(c, owner: owner, name: name)
            return (p, try BuildStore.list(c, projectID: p.id, packageName: nil, state: nil, limit: 20, offset: 0))
        }
        let ownerName = OwnerName(owner)
        var chroots = ""
        for ch in project.chroots {
            let parsed = ChrootName(ch)
            let release = parsed?.nameRelease ?? ch
            let repoID = "\(ownerName?.repoIdPart ?? owner)-\(project.name)"
            chroots +=
                "<tr><td>\(escape(ch))</td><td><a href=\"/coprs/\(escape(ownerName?.webPathPart ?? owner))/\(escape(project.name))/repo/\(escape(release))/\(escape(repoID))-\(escape(release)).repo\">Repo Download</a></td><td><a href=\"\(escape(results))/\(escape(owner))/\(escape(project.name))/\(escape(ch))/\">results</a></td></tr>\n"
        }
        var buildRows = ""
        for b in builds {
            buildRows +=
                "<tr><td><a href=\"/coprs/build/\(b.id)/\">\(b.id)</a></td><td>\(escape(b.pkgName ?? "-"))</td><td>\(escape(b.pkgVersionText ?? "-"))</td><td class=\"state\">\(escape(b.state.rawValue))</td></tr>\n"
        }
        let body = """
            <h1>\(escape(project.fullName))</h1>
            <p>Project ID: \(project.id)</p>
            <h2>Description</h2><p>\(escape(project.description.isEmpty ? "Description not filled in by author. Very likely personal repository for testing purpose, which you should not use." : project.description))</p>
            <h2>Installation Instructions</h2><p>\(escape(project.instructions.isEmpty ? "Instructions not filled in by author. Author knows what to do. Everybody else should avoid this repo." : project.instructions))</p>
            <h2>Active Releases</h2><table>\(chroots)</table>
            <h2>Quick Enable</h2><pre>dnf copr enable \(escape(owner))/\(escape(project.name))</pre>
            <h2>Builds</h2><table><tr><th>Build ID</th><th>Package Name</th><th>Version</th><th>Status</th></tr>\(buildRows)</table>
            """
        return htmlResponse(200, page(title: project.fullName, body: body))
    }

    static func projectBuild(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try await buildPage(app, ctx)
    }

    static func build(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try await buildPage(app, ctx)
    }

    static func buildPage(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        guard let id = Int(ctx.param("id")) else { throw APIError.notFound("Build does not exist.") }
        let results = app.config.resultsBase
        let (build, chroots) = try await app.db.withConnection { c -> (BuildRecord, [BuildChrootRecord]) in
            guard let b = try BuildStore.find(c, id: id) else { throw APIError.notFound("Build \(id) does not exist.") }
            return (b, try BuildStore.chroots(c, buildID: id))
        }
        let owner = build.ownername
        let dirname = build.projectDirname
        var rows = ""
        for ch in chroots {
            let name = ch.name
            var link = escape(name)
            if let d = ch.resultDir {
                let url = "\(results)/\(owner)/\(dirname)/\(name)/\(d)/"
                link =
                    "<a href=\"\(escape(url))\">\(escape(name))</a> (<a href=\"\(escape(url))builder-live.log\">live log</a>)"
            }
            rows += "<tr><td>\(link)</td><td class=\"state\">\(escape(ch.state.rawValue))</td></tr>\n"
        }
        let body = """
            <h1>Build \(id)</h1>
            <p>Project: <a href="/coprs/\(escape(OwnerName(owner)?.webPathPart ?? owner))/\(escape(build.projectname))/">\(escape(owner))/\(escape(build.projectname))</a></p>
            <p>Package: \(escape(build.pkgName ?? "-")) \(escape(build.pkgVersionText ?? ""))</p>
            <p>Status: <span class="state">\(escape(build.state.rawValue))</span></p>
            <table><tr><th>Chroot</th><th>State</th></tr>\(rows)</table>
            """
        return htmlResponse(200, page(title: "Build \(id)", body: body))
    }
}
