import CoprModel

/// An error Keygen reports; the API turns `kind` into the status. Messages never carry key material or the secret.
struct KeygenError: Error, Sendable, CustomStringConvertible {
    enum Kind: Sendable {
        case badRequest
        case notFound
        /// gpg or the key store failed; the request may succeed later.
        case unavailable
    }

    let kind: Kind
    let message: String

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    var status: Int {
        switch self.kind {
        case .badRequest: 400
        case .notFound: 404
        case .unavailable: 503
        }
    }

    var description: String { self.message }
}

/// A project as Keygen names it: `owner` is a user name or `@group`, validated with Copr's rules (CoprModel), so
/// both are safe in a user id, a path and the index.
struct ProjectRef: Sendable, Hashable, CustomStringConvertible {
    let owner: String
    let project: String

    init(owner: String, project: String) throws(KeygenError) {
        do throws(ValidationError) {
            try Names.validateUserName(owner.hasPrefix("@") ? String(owner.dropFirst()) : owner, field: "owner")
            try Names.validateProjectName(project, field: "project")
        } catch {
            throw KeygenError(.badRequest, error.description)
        }
        self.owner = owner
        self.project = project
    }

    /// The index key, `owner/project`.
    var key: String { "\(self.owner)/\(self.project)" }
    var description: String { self.key }

    /// The user id upstream Copr gives a project key: name `{owner}_{project}`, e-mail
    /// `{owner}#{project}@copr.{sign_domain}`. dnf shows it in its "Importing GPG key" prompt.
    func userID(signDomain: String) -> String {
        "\(self.owner)_\(self.project) (Copr) <\(self.owner)#\(self.project)@copr.\(signDomain)>"
    }
}

/// User ids of spare keys before they are assigned: `koper-spare-HEX <spare-HEX@koper.invalid>`. They never leave
/// Keygen: assignment deletes the placeholder (decision 0005).
enum SparePlaceholder {
    static let prefix = "koper-spare-"

    static func make(token: String) -> String {
        "\(Self.prefix)\(token) <spare-\(token)@koper.invalid>"
    }

    static func matches(_ userID: String) -> Bool {
        userID.hasPrefix(Self.prefix) && userID.hasSuffix("@koper.invalid>")
    }
}
