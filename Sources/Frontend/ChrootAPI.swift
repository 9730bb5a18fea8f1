import Foundation
import HTTPCore
import KoperJSON
import KoperStore
import Postgres

/// A project's chroot settings: `get-chroot` and `edit-chroot` (copr-api-behaviour.md §1).
enum ChrootAPI {
    static let resettable = [
        "additional_packages", "additional_repos", "additional_modules", "with_opts", "without_opts", "isolation",
        "bootstrap",
        "bootstrap_image", "delete_comps",
    ]

    static func require(_ c: PGConnection, project: ProjectRecord, chroot: String) throws -> ProjectChrootRecord {
        guard let record = try ProjectChrootStore.find(c, projectID: project.id, chroot: chroot) else {
            throw APIError.notFound("Chroot \(chroot) does not exist in \(project.fullName)")
        }
        return record
    }

    static func render(_ ch: ProjectChrootRecord, project: ProjectRecord) -> JSON {
        func split(_ s: String) -> JSON { JSON(s.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)) }
        return [
            "mock_chroot": .string(ch.name),
            "ownername": .string(project.ownername),
            "projectname": .string(project.name),
            "comps_name": .null,
            "additional_packages": split(ch.additionalPackages),
            "additional_repos": JSON(ch.additionalRepos),
            "additional_modules": split(ch.additionalModules),
            "with_opts": split(ch.withOpts),
            "without_opts": split(ch.withoutOpts),
            "isolation": JSON(ch.isolation),
            "bootstrap": JSON(ch.bootstrap),
            "bootstrap_image": JSON(ch.bootstrapImage),
            "delete_comps": .bool(ch.deleteComps),
        ]
    }

    static func get(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        guard let owner = ctx.q("ownername"), let name = ctx.q("projectname"), let chroot = ctx.q("chrootname") else {
            throw APIError.badRequest("Missing argument ownername, projectname or chrootname")
        }
        let json = try await app.db.withConnection { c -> JSON in
            let project = try Projects.require(c, owner: owner, name: name)
            return render(try require(c, project: project, chroot: chroot), project: project)
        }
        return jsonOK(json)
    }

    /// Accepts JSON, or multipart with a `json` part (copr-cli edit-chroot) — an `upload_comps` part is refused clearly.
    static func body(_ ctx: RequestContext) async throws -> JSONObject {
        switch ctx.request.body {
        case .file(let path, _):
            guard let ct = ctx.head.headers["Content-Type"],
                let boundary = MultipartParser.boundary(fromContentType: ct)
            else {
                let data = try await runBlocking { try readFile(path, limit: 1 << 20) }
                guard case .object(let o) = (try? JSONParser.parse(data)) ?? .null else {
                    throw APIError.badRequest("Request body must be a JSON object")
                }
                return o
            }
            let parts = try await runBlocking { try readMultipart(path, boundary: boundary) }
            if parts["upload_comps"] != nil {
                throw APIError.badRequest("upload_comps: comps files are not supported by this Koper version")
            }
            guard let data = parts["json"] else { return JSONObject() }
            guard case .object(let o) = (try? JSONParser.parse(data)) ?? .null else {
                throw APIError.badRequest("The 'json' part must be a JSON object")
            }
            return o
        default:
            return try ctx.jsonBody()
        }
    }

    /// The settings an edit-chroot body asks for; `reset_fields` set fields back to their defaults.
    static func chrootSettings(
        _ o: JSONObject,
        owner: String,
        project: String,
        chroot: String
    ) throws -> ProjectChrootSettings {
        var s = ProjectChrootSettings()
        if let v = try optionalStringList(o["additional_packages"], field: "additional_packages") {
            s.additionalPackages = v.joined(separator: " ")
        }
        if let v = try optionalStringList(o["additional_repos"], field: "additional_repos") { s.additionalRepos = v }
        if let m = o["additional_modules"], !m.isNull {
            if let text = m.stringValue {
                s.additionalModules = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.joined(
                    separator: ","
                )
            } else if let a = try optionalStringList(m, field: "additional_modules"), !a.isEmpty {
                s.additionalModules = a.joined(separator: ",")
            }
        }
        if let v = try optionalStringList(o["with_opts"], field: "with_opts") { s.withOpts = v.joined(separator: " ") }
        if let v = try optionalStringList(o["without_opts"], field: "without_opts") {
            s.withoutOpts = v.joined(separator: " ")
        }
        if let v = o["isolation"]?.stringValue {
            guard ["default", "unchanged", "nspawn", "simple"].contains(v) else {
                throw APIError.badRequest("isolation: Not a valid choice")
            }
            s.isolation = v
        }
        if let v = o["bootstrap"]?.stringValue {
            guard ["default", "unchanged", "on", "off", "image"].contains(v) else {
                throw APIError.badRequest("bootstrap: Not a valid choice")
            }
            s.bootstrap = .some(v)
        }
        if let v = o["bootstrap_image"]?.stringValue { s.bootstrapImage = .some(v) }
        if let v = try optionalBool(o["delete_comps"], field: "delete_comps") { s.deleteComps = v }
        for field in try optionalStringList(o["reset_fields"], field: "reset_fields") ?? [] {
            guard resettable.contains(field) else {
                throw APIError.badRequest(
                    "Trying to reset an invalid attribute: \(field)\nSee `copr-cli get-chroot \(owner)/\(project)/\(chroot)' for all the possible attributes"
                )
            }
            switch field {
            case "additional_repos": s.additionalRepos = []
            case "isolation": s.isolation = "unchanged"
            case "bootstrap": s.bootstrap = .some(nil)
            case "bootstrap_image": s.bootstrapImage = .some(nil)
            case "delete_comps": s.deleteComps = false
            case "additional_packages": s.additionalPackages = ""
            case "additional_modules": s.additionalModules = ""
            case "with_opts": s.withOpts = ""
            case "without_opts": s.withoutOpts = ""
            default: throw APIError.badRequest("Trying to reset an invalid attribute: \(field)")
            }
        }
        return s
    }

    static func edit(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let owner = ctx.param("owner")
        let name = ctx.param("project")
        let chroot = ctx.param("chroot")
        let settings = try chrootSettings(try await body(ctx), owner: owner, project: name, chroot: chroot)
        let json = try await app.db.transaction { c -> JSON in
            let user = try Auth.requireUser(c, ctx)
            let project = try Projects.require(c, owner: owner, name: name)
            try Permissions.requireEdit(c, user: user, project: project)
            let existing = try require(c, project: project, chroot: chroot)
            guard !settings.isEmpty else { return render(existing, project: project) }
            try ProjectChrootStore.update(
                c,
                projectID: project.id,
                mockChrootID: existing.mockChrootID,
                settings: settings
            )
            return render(try require(c, project: project, chroot: chroot), project: project)
        }
        return jsonOK(json)
    }

    static func readFile(_ path: String, limit: Int) throws -> [UInt8] {
        guard let h = FileHandle(forReadingAtPath: path) else { throw APIError(500, "Cannot read the request body") }
        defer { try? h.close() }
        let data = try h.read(upToCount: limit + 1) ?? Data()
        guard data.count <= limit else { throw APIError(413, "Request body too large") }
        return [UInt8](data)
    }

    static func readMultipart(_ path: String, boundary: String) throws -> [String: [UInt8]] {
        let bytes = try readFile(path, limit: 4 << 20)
        var parser = MultipartParser(boundary: boundary, maxParts: 8)
        var parts: [String: [UInt8]] = [:]
        var current: String? = nil
        do {
            for e in try parser.feed(bytes[...]) {
                switch e {
                case .partBegin(let h):
                    current = h.name
                    if let n = h.name { parts[n] = [] }
                case .partData(let d): if let n = current { parts[n]!.append(contentsOf: d) }
                case .partEnd: current = nil
                }
            }
            try parser.finish()
        } catch {
            throw APIError.badRequest("Malformed multipart body: \(error.message)")
        }
        return parts
    }
}
