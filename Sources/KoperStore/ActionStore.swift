import KoperJSON
public import KoperProtocol
public import Postgres

/// Backend actions (delete, createrepo, fork): queued in the same transaction as the change that needs them.
public enum ActionStore {
    public static let maxPending = 1000

    /// Queues an action and wakes the Backend's long-poll.
    public static func enqueue(
        _ c: PGConnection,
        _ payload: BackendAction.Payload,
        ownername: String?,
        projectname: String?
    ) throws {
        let action = BackendAction(id: 0, payload: payload)
        try c.execute(
            """
            INSERT INTO actions (action_type, ownername, projectname, data)
            VALUES (\(action.actionType), \(ownername), \(projectname), \(action.data.text))
            """
        )
        try TaskStore.wakeBackend(c, reason: "action")
    }

    /// Pending actions, oldest first. The row's owner and project fill in what older stored data leaves out.
    public static func pending(_ c: PGConnection, limit: Int = maxPending) throws -> [BackendAction] {
        try c.query(
            "SELECT id, action_type, ownername, projectname, data FROM actions WHERE state = 'pending' ORDER BY id LIMIT \(limit)"
        ).rows.map { row in
            var data = try row.decode("data", as: JSON?.self)?.objectValue ?? JSONObject()
            if data["ownername"] == nil, let owner = try row.decode("ownername", as: String?.self) {
                data["ownername"] = .string(owner)
            }
            if data["projectname"] == nil, let project = try row.decode("projectname", as: String?.self) {
                data["projectname"] = .string(project)
            }
            return BackendAction(
                id: try row.decode("id"),
                actionType: try row.decode("action_type"),
                data: .object(data)
            )
        }
    }

    /// Records the result of a pending action; false if it was not pending (a repeated acknowledgement).
    public static func finish(_ c: PGConnection, id: Int, result: ActionDone.Result) throws -> Bool {
        try c.execute(
            "UPDATE actions SET state = \(result.rawValue), ended_on = now() WHERE id = \(id) AND state = 'pending'"
        ) > 0
    }
}
