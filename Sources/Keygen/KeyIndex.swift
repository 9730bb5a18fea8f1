import AtomicFile
import Foundation
import KoperJSON

/// Which key belongs to which project, and the spare keys: `STATE_DIR/keys.json`, replaced atomically (temp file,
/// fsync, rename, fsync of the directory) on every change. The keys themselves live in the gpg keyring; the index
/// holds fingerprints and user ids only.
///
/// ```json
/// {"version":1,
///  "projects":{"alice/hello":{"fingerprint":"…","user_id":"alice_hello (Copr) <…>","assigned":1795400000,"ready":true}},
///  "spares":[{"fingerprint":"…","user_id":"koper-spare-… <…>","created":1795300000}]}
/// ```
struct KeyIndex: Sendable, Equatable {
    struct ProjectKey: Sendable, Equatable {
        var fingerprint: String
        var userID: String
        /// Unix time the key was given to the project.
        var assigned: Int64
        /// False while the key's user id is being changed from the spare's placeholder to the project's (a crash
        /// there leaves it false; the next start or `ensure` finishes the change).
        var ready: Bool
    }

    struct Spare: Sendable, Equatable {
        var fingerprint: String
        /// The placeholder user id (`SparePlaceholder`).
        var userID: String
        var created: Int64
    }

    static let version = 1

    /// By `owner/project`.
    var projects: [String: ProjectKey] = [:]
    /// Oldest first; assignment takes the first.
    var spares: [Spare] = []

    /// Every fingerprint the index knows.
    var fingerprints: [String] {
        self.projects.keys.sorted().compactMap { self.projects[$0]?.fingerprint } + self.spares.map(\.fingerprint)
    }

    // MARK: JSON

    func json() -> JSON {
        var projects = JSONObject()
        for name in self.projects.keys.sorted() {
            let p = self.projects[name]!
            projects[name] = [
                "fingerprint": .string(p.fingerprint), "user_id": .string(p.userID), "assigned": .int(Int(p.assigned)),
                "ready": .bool(p.ready),
            ]
        }
        let spares: [JSON] = self.spares.map {
            ["fingerprint": .string($0.fingerprint), "user_id": .string($0.userID), "created": .int(Int($0.created))]
        }
        return ["version": .int(Self.version), "projects": .object(projects), "spares": .array(spares)]
    }

    init() {}

    init(json: JSON) throws(KeygenError) {
        func bad(_ what: String) -> KeygenError { KeygenError(.unavailable, "key index: \(what)") }
        guard json["version"]?.intValue == Self.version else { throw bad("unknown version") }
        guard let projects = json["projects"]?.objectValue, let spares = json["spares"]?.arrayValue else {
            throw bad("missing projects or spares")
        }
        for name in projects.keys {
            guard let p = projects[name], let fpr = p["fingerprint"]?.stringValue, let uid = p["user_id"]?.stringValue,
                let assigned = p["assigned"]?.intValue, let ready = p["ready"]?.boolValue
            else { throw bad("bad project entry \(name)") }
            self.projects[name] = ProjectKey(fingerprint: fpr, userID: uid, assigned: Int64(assigned), ready: ready)
        }
        for s in spares {
            guard let fpr = s["fingerprint"]?.stringValue, let uid = s["user_id"]?.stringValue,
                let created = s["created"]?.intValue
            else { throw bad("bad spare entry") }
            self.spares.append(Spare(fingerprint: fpr, userID: uid, created: Int64(created)))
        }
    }

    // MARK: File

    /// The index at `path`, or an empty one if there is no file yet.
    static func load(path: String) throws(KeygenError) -> KeyIndex {
        guard FileManager.default.fileExists(atPath: path) else { return KeyIndex() }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KeygenError(.unavailable, "cannot read the key index")
        }
        do {
            return try KeyIndex(json: JSONParser.parse(Array(data)))
        } catch let error as KeygenError {
            throw error
        } catch {
            throw KeygenError(.unavailable, "key index is not valid JSON: \(error)")
        }
    }

    func save(path: String) throws(KeygenError) {
        var bytes = self.json().serialized()
        bytes.append(10)
        try writeFileAtomically(bytes, to: path, mode: 0o600)
    }
}

/// Replaces `path` atomically (AtomicFile: temp file, fsync, rename, fsync of the directory).
func writeFileAtomically(_ bytes: [UInt8], to path: String, mode: mode_t) throws(KeygenError) {
    do {
        try AtomicFile.write(bytes, to: path, mode: UInt32(mode))
    } catch {
        throw KeygenError(.unavailable, "\(error)")
    }
}
