import KoperStore
import Postgres

/// Build retention (decision 0006); the store does the work (`BuildStore.prune`).
enum Retention {
    static func prune(_ c: PGConnection, projectID: Int, packageID: Int? = nil) throws -> [String] {
        try BuildStore.prune(c, projectID: projectID, packageID: packageID)
    }
}
