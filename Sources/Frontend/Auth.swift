import KoperJSON
import KoperStore
import LibCrypto
import Postgres

/// Frontend-level wrappers over the store (decision 0009): they run on a pooled connection inside a route's
/// closure, turn a missing record into 404 and a refused check into 401/403, and render records as API v3 JSON.

/// A user as permission checks see it.
typealias User = UserRecord

enum Auth {
    static func unauthorized(_ ctx: RequestContext) -> APIError {
        APIError(401, "Login invalid/expired. Please visit \(ctx.publicBase)/api to get or renew your API token.")
    }

    static func tokenHash(_ token: String) -> String { Crypto.sha256Hex(Array(token.utf8)) }

    /// The user behind HTTP Basic `api_login:api_token`, or 401. Tokens are stored as SHA-256 and compared in
    /// constant time; an expired token is refused like a wrong one.
    static func requireUser(_ c: PGConnection, _ ctx: RequestContext) throws -> User {
        guard let cred = ctx.credentials, !cred.login.isEmpty, !cred.password.isEmpty else { throw unauthorized(ctx) }
        guard let login = try UserStore.find(c, apiLogin: cred.login), let stored = login.tokenSHA256 else {
            throw unauthorized(ctx)
        }
        let presented = tokenHash(cred.password)
        guard Crypto.constantTimeEquals(Array(stored.utf8), Array(presented.utf8)), !login.isExpired else {
            throw unauthorized(ctx)
        }
        return login.user
    }

    /// Mints a new API login + token for a user (30 random lowercase letters, as upstream) and stores the hash.
    static func mintToken(
        _ c: PGConnection,
        userID: Int,
        days: Int
    ) throws -> (login: String, token: String, expiration: String) {
        let login = try Crypto.randomString(length: 20)
        let token = try Crypto.randomString(length: 30)
        guard
            let expiration = try UserStore.storeToken(
                c,
                userID: userID,
                login: login,
                tokenSHA256: tokenHash(token),
                days: days
            )
        else { throw APIError.notFound("User does not exist") }
        return (login, token, expiration)
    }
}
