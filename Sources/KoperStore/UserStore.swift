public import Postgres

/// A user as permission checks see it.
public struct UserRecord: PGRecord, Equatable {
    public let id: Int
    public let name: String
    public let isAdmin: Bool

    public init(id: Int, name: String, isAdmin: Bool) {
        self.id = id
        self.name = name
        self.isAdmin = isAdmin
    }

    public init(row: PGRow) throws {
        self.id = try row.decode("id")
        self.name = try row.decode("name")
        self.isAdmin = try row.decode("is_admin")
    }
}

/// The user behind an API login, with what checking the presented token needs.
public struct APILoginRecord: PGRecord, Equatable {
    public let user: UserRecord
    /// SHA-256 (hex) of the user's current token; nil if none was ever minted.
    public let tokenSHA256: String?
    /// Whether the token has no expiration date or its date has passed.
    public let isExpired: Bool

    public init(row: PGRow) throws {
        self.user = try UserRecord(row: row)
        self.tokenSHA256 = try row.decode("api_token_sha256")
        self.isExpired = try row.decode("expired")
    }
}

/// Users and their API tokens: all of their SQL.
public enum UserStore {
    public static func find(_ c: PGConnection, name: String) throws -> UserRecord? {
        try c.one("SELECT id, name, is_admin FROM users WHERE name = \(name)")
    }

    public static func find(_ c: PGConnection, id: Int) throws -> UserRecord? {
        try c.one("SELECT id, name, is_admin FROM users WHERE id = \(id)")
    }

    /// The user whose API login this is, for Basic authentication.
    public static func find(_ c: PGConnection, apiLogin: String) throws -> APILoginRecord? {
        try c.one(
            """
            SELECT id, name, is_admin, api_token_sha256,
                   (api_token_expiration IS NULL OR api_token_expiration < current_date) AS expired
            FROM users WHERE api_login = \(apiLogin)
            """
        )
    }

    /// Replaces the user's API login and token (stored as its SHA-256) and sets the token to expire in `days` days.
    /// Returns the expiration date (`YYYY-MM-DD`), or nil if there is no such user.
    public static func storeToken(
        _ c: PGConnection,
        userID: Int,
        login: String,
        tokenSHA256: String,
        days: Int
    ) throws -> String? {
        try c.value(
            """
            UPDATE users SET api_login = \(login), api_token_sha256 = \(tokenSHA256),
                api_token_expiration = current_date + \(Int32(clamping: days))
            WHERE id = \(userID) RETURNING api_token_expiration::text
            """,
            as: String.self
        )
    }

    /// Creates a user (with a login no token matches yet); nil if the name is taken.
    public static func create(
        _ c: PGConnection,
        name: String,
        email: String?,
        isAdmin: Bool,
        apiLogin: String
    ) throws -> Int? {
        try c.value(
            """
            INSERT INTO users (name, email, is_admin, api_login) VALUES (\(name), \(email), \(isAdmin), \(apiLogin))
            ON CONFLICT (name) DO NOTHING RETURNING id
            """,
            as: Int.self
        )
    }

    /// Makes the user a site admin; false if there is no such user.
    @discardableResult
    public static func grantAdmin(_ c: PGConnection, name: String) throws -> Bool {
        try c.execute("UPDATE users SET is_admin = true WHERE name = \(name)") > 0
    }
}
